"""Text preprocessing for Transform: the text backbone's own tokenizer -> token ids, plus TFDV-checkable outputs.

What a ``preprocessing_fn`` calls for a text backbone (not wired into the DAG yet). The tokenizer is built from
what :func:`~graft.components.backbones.text_resolve.resolve_text_backbone` READ from the modules outside
Transform (vocabulary asset path, ``do_lower_case``, normalisation, sequence length, special-token ids: plain data
in ``custom_config["backbone"]``); loading a module inside a ``preprocessing_fn`` breaks Transform's analysis
(tensorflow/transform#219), and TFX's BERT examples build the tokenizer the same way. The packing code is the one
Graft's preprocessing SavedModel was built with (:mod:`graft.components.backbones.text_ops`), so Transform's
token ids equal the module's (tested).

Besides the encoder inputs it emits per-example checks, the ones TFX's BERT example proposed for TFDV:
``num_cls`` and ``num_sep`` (exactly one each for one segment), ``num_tokens`` (word pieces before truncation),
``num_unk`` ([UNK] word pieces) and ``unk_rate`` (their ratio, per example). The [UNK] cap is judged on the whole
split (sum of ``num_unk`` / sum of ``num_tokens``, from Transform's post-transform statistics: graft.components.
token_gate), not per example: one emoji-only row is not a vocabulary mismatch. :func:`tokenized_checks_schema` states the bounds as a TFDV schema
(``int_domain`` / ``float_domain``) for ExampleValidator on Transform's output; a high [UNK] rate means the text
does not match the module's vocabulary (another language or script, or mojibake).
"""

from __future__ import annotations

from typing import Any

import graft  # noqa: F401  (legacy Keras before TensorFlow)
from graft.components.backbones import text_ops

TEXT_KEY = "text"
WORD_IDS, MASK, TYPE_IDS = "input_word_ids", "input_mask", "input_type_ids"
CHECK_KEYS = ("num_cls", "num_sep", "num_tokens", "num_unk", "unk_rate")
ENCODER_INPUT_KEYS = (WORD_IDS, MASK, TYPE_IDS)
# What Transform needs of a TextBackboneInfo (its cache key: nothing else changes the token ids).
TOKENIZER_KEYS = ("task", "vocab_file", "lower_case", "normalization", "seq_length", "pad_id", "unk_id", "cls_id", "sep_id")  # fmt: skip
DEFAULT_MAX_UNK_RATE = 0.05


def _info(backbone: Any) -> dict:
    d = backbone if isinstance(backbone, dict) else backbone.to_dict()
    if d.get("task") != "text":
        raise ValueError(
            f"text preprocessing needs a text backbone's info (task 'text'), got task {d.get('task')!r}"
        )
    return d


def text_features(texts, backbone: Any) -> dict:
    """[B] or [B, 1] strings -> encoder inputs int64 [B, seq_length] and the checks, with the module's tokenizer."""
    import tensorflow as tf

    info = _info(backbone)
    texts = tf.reshape(texts, [-1])
    tokenizer = text_ops.make_tokenizer(
        info["vocab_file"], info["lower_case"], info.get("normalization", "tf_text")
    )
    ids = text_ops.SpecialIds(pad=info["pad_id"], unk=info["unk_id"], cls=info["cls_id"], sep=info["sep_id"])
    pieces = text_ops.tokenize(tokenizer, texts)
    packed = text_ops.pack_inputs([pieces], int(info["seq_length"]), ids)
    word_ids = packed[WORD_IDS]
    flat = pieces.merge_dims(-2, -1)
    num_tokens = tf.cast(flat.row_lengths(), tf.int64)
    unk = tf.reduce_sum(tf.cast(tf.equal(flat, ids.unk), tf.int64), axis=1)
    out = {k: tf.cast(packed[k], tf.int64) for k in (WORD_IDS, MASK, TYPE_IDS)}
    out["num_cls"] = tf.reduce_sum(tf.cast(tf.equal(word_ids, ids.cls), tf.int64), axis=1)
    out["num_sep"] = tf.reduce_sum(tf.cast(tf.equal(word_ids, ids.sep), tf.int64), axis=1)
    out["num_tokens"] = num_tokens
    out["num_unk"] = unk
    out["unk_rate"] = tf.where(num_tokens > 0, tf.cast(unk, tf.float32) / tf.cast(tf.maximum(num_tokens, 1), tf.float32), 0.0)  # fmt: skip
    return out


def preprocessing_fn_for(backbone: Any, text_key: str = TEXT_KEY):
    """A Transform ``preprocessing_fn`` producing :func:`text_features` from ``inputs[text_key]``."""
    info = _info(backbone)

    def preprocessing_fn(inputs):
        return text_features(inputs[text_key], info)

    return preprocessing_fn


def tokenized_checks_schema(seq_length: int, max_unk_rate: float = DEFAULT_MAX_UNK_RATE):
    """TFDV schema bounds for Transform's outputs: one [CLS] and one [SEP] per sequence, [UNK] rate capped."""
    from tensorflow_metadata.proto.v0 import schema_pb2

    schema = schema_pb2.Schema()
    for name, lo, hi in (("num_cls", 1, 1), ("num_sep", 1, 1)):
        f = schema.feature.add(name=name, type=schema_pb2.INT)
        f.int_domain.min, f.int_domain.max = lo, hi
        f.presence.min_fraction = 1.0
    f = schema.feature.add(name="unk_rate", type=schema_pb2.FLOAT)
    f.float_domain.min, f.float_domain.max = 0.0, float(max_unk_rate)
    f.presence.min_fraction = 1.0
    for name in (WORD_IDS, MASK, TYPE_IDS):
        f = schema.feature.add(name=name, type=schema_pb2.INT)
        f.shape.dim.add(size=seq_length)
    return schema


# Batches are cut to their longest row, rounded up to a multiple of this (a handful of shapes to trace, not one per
# length); capped at the stored width.
TRIM_MULTIPLE = 16


def trim_to_longest(inputs: dict, multiple: int = TRIM_MULTIPLE) -> dict:
    """Encoder inputs [B, seq_length] -> the same inputs cut after the batch's last real word piece.

    Exact, not an approximation: the encoder's attention and the mean pooling both ignore positions where
    ``input_mask`` is 0, so the columns dropped here change no output (tested). It is what makes a sentence set
    like SST-2 (most rows under 40 word pieces) cost a fraction of padding every row to 128, in the feature cache,
    in fine-tuning and in serving."""
    import tensorflow as tf

    mask = inputs[MASK]
    width = tf.shape(mask, out_type=tf.int64)[1]
    positions = tf.range(1, width + 1, dtype=tf.int64)
    last = tf.reduce_max(tf.where(tf.cast(mask, tf.bool), positions[tf.newaxis, :], tf.zeros_like(positions)[tf.newaxis, :]))  # fmt: skip
    m = tf.constant(int(multiple), tf.int64)
    length = tf.minimum(width, tf.maximum(m, (last + m - 1) // m * m))
    return {k: (v[:, :length] if k in ENCODER_INPUT_KEYS else v) for k, v in inputs.items()}
