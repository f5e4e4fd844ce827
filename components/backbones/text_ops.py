"""BERT tokenization and input packing with TF Text: ONE implementation for the preprocessing module and Transform.

TF Hub's BERT preprocessing contract: strings -> WordPiece ids (``BertTokenizer``: optional lower-casing with accent
stripping, punctuation / CJK splitting, WordPiece with ``[UNK]``) -> ``[CLS] tokens [SEP]`` (a second segment,
when given, ``tokens [SEP]`` with type id 1) trimmed round-robin to ``seq_length`` and padded with ``[PAD]`` ->
``input_word_ids``, ``input_mask``, ``input_type_ids`` (int32 ``[B, seq_length]``).

The vocabulary file and the lower-casing flag are always READ from a module (``vocab_file`` asset,
``do_lower_case`` variable: the attributes TF Hub's BERT modules carry and TFX's BERT examples read), never
retyped; the special-token ids are looked up in that vocabulary. Graft's offline preprocessing module is built with
these functions, and Transform calls the same functions with what it read from the module, so training and serving
tokenize identically.
"""

from __future__ import annotations

from dataclasses import dataclass

import graft  # noqa: F401  (legacy Keras before TensorFlow)

SPECIAL_TOKENS = ("[PAD]", "[UNK]", "[CLS]", "[SEP]")
DEFAULT_SEQ_LENGTH = 128


class VocabError(ValueError):
    """A vocabulary Graft cannot use (missing special tokens, unreadable)."""


@dataclass(frozen=True)
class SpecialIds:
    pad: int
    unk: int
    cls: int
    sep: int


def register_ops() -> None:
    """Register TF Text's ops (a preprocessing SavedModel uses them): import tensorflow_text before loading one."""
    try:
        import tensorflow_text  # noqa: F401
    except ImportError as e:
        raise ImportError(
            "text backbones need tensorflow-text (TF Text ops such as BertTokenizer's): install it without its "
            f"dependencies, `pip install --no-deps tensorflow-text==2.16.1`, or run `make setup` ({e})"
        ) from None


def read_vocab(vocab_path: str) -> list[str]:
    import tensorflow as tf

    with tf.io.gfile.GFile(vocab_path) as f:
        return [line.rstrip("\n").rstrip("\r") for line in f]


def special_ids(vocab: list[str], where: str = "the vocabulary") -> SpecialIds:
    index = {tok: i for i, tok in enumerate(vocab)}
    missing = [t for t in SPECIAL_TOKENS if t not in index]
    if missing:
        raise VocabError(
            f"{where} lacks the BERT special tokens {missing}: it is not a BERT WordPiece vocabulary "
            "(use the module's own vocab_file)"
        )
    return SpecialIds(pad=index["[PAD]"], unk=index["[UNK]"], cls=index["[CLS]"], sep=index["[SEP]"])


class Tokenizer:
    """TF Text's BertTokenizer over a module's vocabulary file, with the module's text normalisation in front.

    ``normalization`` (recorded in the module's graft_backbone.json):

    * ``"bert"``: the original BERT / Hugging Face ``BertNormalizer``: control characters removed, then (when
      lower-casing) per-character lower case, NFD and combining marks stripped. What checkpoints trained with
      Hugging Face tokenizers (``minilm_l6``) saw; written with TF string ops, and TF Text's tokenizer then runs
      with ``lower_case=False``.
    * ``"tf_text"``: TF Text's own ``lower_case`` (NFKC case folding, then accent stripping): what TF Hub's
      ``*_preprocess`` models do. It differs from ``"bert"`` only on compatibility characters (ligatures,
      full-width forms, superscripts, 'ß').
    """

    def __init__(self, vocab_path: str, lower_case: bool, normalization: str = "bert"):
        import tensorflow_text as text

        if normalization not in NORMALIZATIONS:
            raise ValueError(f"normalization {normalization!r} is not one of {NORMALIZATIONS}")
        self.lower_case, self.normalization = bool(lower_case), normalization
        own = normalization == "bert"
        self.bert = text.BertTokenizer(
            vocab_path, lower_case=self.lower_case and not own, token_out_type="int64"
        )

    def normalize(self, texts):
        import tensorflow as tf
        import tensorflow_text as text

        if self.normalization != "bert":
            return texts
        # Hugging Face's _is_control: every Unicode 'C*' character except tab, newline, carriage return; and U+FFFD.
        texts = tf.strings.regex_replace(texts, r"[^\t\n\r\PC]|\x{FFFD}", "")
        if not self.lower_case:
            return texts
        # Per-character lower case: ICU would turn a word-final capital sigma into the final form, Python/Rust not.
        texts = tf.strings.lower(tf.strings.regex_replace(texts, "\u03a3", "\u03c3"), encoding="utf-8")
        return tf.strings.regex_replace(text.normalize_utf8(texts, "NFD"), r"\p{Mn}", "")

    def tokenize(self, texts):
        return self.bert.tokenize(self.normalize(texts))


NORMALIZATIONS = ("bert", "tf_text")


def make_tokenizer(vocab_path: str, lower_case: bool, normalization: str = "bert") -> Tokenizer:
    """The tokenizer of a module: its vocabulary file, its lower-casing flag, its normalisation."""
    return Tokenizer(vocab_path, lower_case, normalization)


def tokenize(tokenizer: Tokenizer, texts):
    """[B] strings -> RaggedTensor [B, (words), (wordpieces)] int32 (TF Hub's ``preprocessor.tokenize``)."""
    import tensorflow as tf

    return tf.cast(tokenizer.tokenize(texts), tf.int32)


def pack_inputs(segments, seq_length: int, ids: SpecialIds):
    """A list of 1 or 2 tokenized segments -> BERT encoder inputs at ``seq_length`` (TF Hub's ``bert_pack_inputs``)."""
    import tensorflow as tf
    import tensorflow_text as text

    if not 1 <= len(segments) <= 2:
        raise ValueError(f"pack_inputs takes 1 or 2 segments, got {len(segments)}")
    flat = [tf.cast(s.merge_dims(-2, -1) if s.ragged_rank > 1 else s, tf.int64) for s in segments]
    budget = seq_length - 1 - len(flat)  # [CLS] + one [SEP] per segment
    if budget < 1:
        raise ValueError(f"seq_length {seq_length} leaves no room for tokens")
    # One segment: round-robin trimming is truncation, written with core ragged ops so that the served graph needs
    # only the TF Text ops stock TF Serving links (its TF Text 2.12.1 lacks 'TFText>RoundRobinTrim':
    # tensorflow/serving#2267, #4057). Two segments: TF Text's trimmer.
    if len(flat) == 1:
        trimmed = [flat[0][:, :budget]]
    else:
        trimmed = text.RoundRobinTrimmer(max_seq_length=budget).trim(flat)
    word_ids, type_ids = text.combine_segments(
        trimmed, start_of_sequence_id=ids.cls, end_of_segment_id=ids.sep
    )
    word_ids, mask = text.pad_model_inputs(word_ids, max_seq_length=seq_length, pad_value=ids.pad)
    type_ids, _ = text.pad_model_inputs(type_ids, max_seq_length=seq_length, pad_value=0)
    return {
        "input_word_ids": tf.cast(word_ids, tf.int32),
        "input_mask": tf.cast(mask, tf.int32),
        "input_type_ids": tf.cast(type_ids, tf.int32),
    }


def preprocess(tokenizer, texts, seq_length: int, ids: SpecialIds):
    """[B] strings -> encoder inputs (one segment): what the preprocessing module's ``__call__`` computes."""
    return pack_inputs([tokenize(tokenizer, texts)], seq_length, ids)
