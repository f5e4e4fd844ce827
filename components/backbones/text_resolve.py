"""Resolving a text backbone: TF Hub's BERT contract pair (encoder + its preprocessing model) and what it expects.

A text backbone is two TF2 SavedModels: a preprocessing model (tf.string [None] -> ``input_word_ids``,
``input_mask``, ``input_type_ids`` int32 [None, seq_length]) and an encoder (those -> ``pooled_output``,
``sequence_output``, ...). Both go through the same code as image modules: ``tensorflow_hub.resolve`` (download /
cache / path check), the directory checks, then ``hub.load`` on the path; so TF Hub URLs (BERT, ALBERT, small BERT
with their ``*_preprocess`` models), gs:// and local directories work alike, and ``minilm_l6`` is built offline
(:mod:`.text_builds`).

What Transform needs is READ from the modules, never retyped: the WordPiece vocabulary (the ``vocab_file`` asset)
and ``do_lower_case`` (variables TF Hub BERT modules carry; from the preprocessing model, else from the encoder, as
TFX's BERT examples read them), the sequence length (the preprocessing model's ``seq_length`` variable, else the
width of its output for one sentence), and the special-token ids (looked up in that vocabulary). The encoder's
size and variables come from ``graft_backbone.json`` beside modules Graft built (trusted only while it matches the
``saved_model.pb``), else from calling it once.
"""

from __future__ import annotations

import dataclasses
import json
import re
from dataclasses import dataclass, field
from typing import Any

from graft.components.backbones import text_ops
from graft.components.backbones.metadata import (
    METADATA_FILE,
    MINILM,
    TEXT_OFFLINE_NAMES,
    BackboneError,
    _err,
    _sha256_of,
    ensure_cache_env,
    read_module_metadata,
)

# TF Hub text encoders -> their preprocessing model (as TF Hub's "Classify text with BERT" tutorial pairs them).
_HUB_PREPROCESS = (
    (re.compile(r"/albert_en_"), "https://tfhub.dev/tensorflow/albert_en_preprocess/3"),
    (re.compile(r"/bert_multi_cased_"), "https://tfhub.dev/tensorflow/bert_multi_cased_preprocess/3"),
    (re.compile(r"/bert_en_cased_"), "https://tfhub.dev/tensorflow/bert_en_cased_preprocess/3"),
    (
        re.compile(r"/(small_bert/)?bert_en_uncased_|/experts/bert/|/electra_|/talkheads_"),
        "https://tfhub.dev/tensorflow/bert_en_uncased_preprocess/3",
    ),
)


@dataclass
class TextBackboneInfo:
    """What Graft knows about a text backbone; plain data (JSON) for Transform, the Trainer and the artifacts."""

    handle: str  # the encoder as the user named it
    path: str  # what hub.KerasLayer / hub.load get for the encoder
    preprocess_handle: str
    preprocess_path: str  # what hub.load gets for the preprocessing model
    seq_length: int
    vocab_file: str  # the preprocessing model's vocab asset (absolute path or gs://)
    lower_case: bool
    feature_size: int
    output_key: str  # the encoder output Graft uses: 'mean_pooled_output' (minilm_l6) or 'pooled_output'
    cls_id: int
    sep_id: int
    pad_id: int
    unk_id: int
    num_variables: int = 0
    num_trainable_variables: int = 0
    trainable_variable_names: list[str] = field(default_factory=list)
    num_parameters: int = 0
    source: str = "local"  # 'offline', 'url', 'gcs' or 'local' (of the encoder)
    resolved_path: str = ""
    fingerprint: str = ""  # sha256 of the encoder's saved_model.pb
    preprocess_fingerprint: str = ""
    metadata_from: str = ""
    # How text is normalised before WordPiece (text_ops.Tokenizer): 'bert' (Graft's builds) or 'tf_text'.
    normalization: str = "tf_text"
    task: str = "text"

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TextBackboneInfo:
        if not isinstance(data, dict) or data.get("task") != "text":
            raise BackboneError(
                f"text backbone metadata must be a JSON object with task 'text', got {data!r:.200}"
            )
        fields = {f.name: f for f in dataclasses.fields(cls)}
        required = {n for n, f in fields.items() if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING}  # fmt: skip
        missing, unknown = sorted(required - set(data)), sorted(set(data) - set(fields))
        if missing or unknown:
            raise BackboneError(f"text backbone metadata: missing keys {missing}, unknown keys {unknown}")
        info = cls(**data)
        if not isinstance(info.seq_length, int) or info.seq_length < 3:
            raise BackboneError(
                f"text backbone metadata seq_length={info.seq_length!r} must be an integer >= 3"
            )
        return info

    @classmethod
    def from_json(cls, text: str) -> TextBackboneInfo:
        try:
            return cls.from_dict(json.loads(text))
        except json.JSONDecodeError as e:
            raise BackboneError(f"text backbone metadata is not valid JSON: {e}") from None

    def describe(self) -> str:
        rows = [
            ("handle", self.handle),
            ("path", self.path),
            ("preprocess", self.preprocess_path),
            ("input", f"tf.string [None] -> 3 x int32 [None, {self.seq_length}]"),
            ("vocabulary", f"{self.vocab_file} (lower case: {self.lower_case})"),
            ("feature size", f"{self.feature_size} ({self.output_key})"),
            (
                "variables",
                f"{self.num_variables} ({self.num_trainable_variables} trainable), {self.num_parameters:,} parameters",
            ),
            ("source", self.source),
            ("fingerprint", f"sha256:{self.fingerprint}" if self.fingerprint else "-"),
            ("metadata from", self.metadata_from),
        ]
        return "\n".join(f"{k + ':':<15}{v}" for k, v in rows)


def hub_preprocess_for(handle: str) -> str | None:
    """The TF Hub preprocessing model that goes with a TF Hub text encoder URL, or None if not known."""
    if not handle.startswith(("https://tfhub.dev/", "http://tfhub.dev/")):
        return None
    for pattern, preprocess in _HUB_PREPROCESS:
        if pattern.search(handle):
            return preprocess
    return None


def looks_like_text(handle: str) -> bool:
    """True for handles that name a text encoder without loading anything (offline names, known TF Hub URLs)."""
    return handle in TEXT_OFFLINE_NAMES or hub_preprocess_for(handle) is not None


def _attr_value(obj, name: str):
    v = getattr(obj, name, None)
    if v is None:
        return None
    if hasattr(v, "asset_path"):
        v = v.asset_path
    return v.numpy() if hasattr(v, "numpy") else v


def _read_preprocess(pre, enc_loader, handle: str) -> tuple[str, bool, int]:
    """(vocab file, lower case, seq length) read from the preprocessing model (else the encoder, for the vocab)."""
    import tensorflow as tf

    vocab, lower = _attr_value(pre, "vocab_file"), _attr_value(pre, "do_lower_case")
    if vocab is None or lower is None:
        enc = enc_loader()
        vocab = vocab if vocab is not None else _attr_value(enc, "vocab_file")
        lower = lower if lower is not None else _attr_value(enc, "do_lower_case")
    if vocab is None or lower is None:
        raise _err(
            handle,
            "neither the preprocessing model nor the encoder carries a `vocab_file` asset and a `do_lower_case` "
            "variable (TF Hub BERT modules do), so Transform cannot tokenize as the module does. Use a TF Hub BERT "
            "encoder / preprocessing pair, or re-export the module with those attributes.",
        )
    seq = _attr_value(pre, "seq_length")
    if seq is None:
        try:
            seq = int(pre(tf.constant(["a"]))["input_word_ids"].shape[1])
        except (KeyError, TypeError, ValueError, tf.errors.OpError) as e:
            raise _err(
                handle, f"its preprocessing model does not map strings to input_word_ids: {e}"
            ) from None
    vocab = vocab.decode() if isinstance(vocab, bytes) else str(vocab)
    return vocab, bool(lower), int(seq)


def _encoder_facts(enc, packed, handle: str) -> dict:
    import tensorflow as tf

    try:
        out = enc(packed, training=False) if callable(enc) else None
    except (TypeError, ValueError, tf.errors.OpError) as e:
        raise _err(handle, f"calling the encoder on the preprocessing model's output failed: {e}") from None
    if not isinstance(out, dict) or "pooled_output" not in out or "sequence_output" not in out:
        raise _err(
            handle,
            f"the encoder's output is {type(out).__name__}"
            + (f" with keys {sorted(out)}" if isinstance(out, dict) else "")
            + ", not TF Hub's BERT dict with pooled_output and sequence_output: use a BERT-contract encoder.",
        )
    key = "mean_pooled_output" if "mean_pooled_output" in out else "pooled_output"
    variables = list(getattr(enc, "variables", []) or [])
    trainable = list(getattr(enc, "trainable_variables", []) or [])
    return {
        "feature_size": int(out[key].shape[-1]),
        "output_key": key,
        "num_variables": len(variables),
        "num_trainable_variables": len(trainable),
        "trainable_variable_names": [v.name for v in trainable],
        "num_parameters": int(sum(v.shape.num_elements() or 0 for v in variables)),
    }


def resolve_text_backbone(
    handle: str, preprocess_handle: str | None = None, seq_length: int | None = None
) -> TextBackboneInfo:
    """Resolve a text encoder handle and its preprocessing model; read vocab, casing, sizes from the modules."""
    import tensorflow as tf
    import tensorflow_hub as hub

    from graft.components.backbones import resolve as r

    ensure_cache_env()
    if handle in TEXT_OFFLINE_NAMES:
        from graft.components.backbones import text_builds

        enc_dir, pre_dir = text_builds.build_minilm(seq_length or text_ops.DEFAULT_SEQ_LENGTH)
        # The same resolver as every other handle (for a local directory: a path check).
        enc_path = enc_local = r._hub_resolve(str(enc_dir))
        pre_path = pre_local = r._hub_resolve(str(pre_dir))
        preprocess_handle = preprocess_handle or pre_path
        kind = "offline"
    else:
        kind = r.handle_kind(handle)
        preprocess_handle = preprocess_handle or hub_preprocess_for(handle)
        if not preprocess_handle:
            raise _err(
                handle,
                "a text encoder needs its preprocessing model (TF Hub's BERT pair): set the preprocessing handle "
                f"(a TF Hub *_preprocess URL or a local directory), or use the offline text backbone {MINILM}.",
            )
        enc_path, enc_local = _resolve_one(r, handle, kind)
        pre_path, pre_local = _resolve_one(r, preprocess_handle, r.handle_kind(preprocess_handle))
    for module_dir, h in ((enc_local or enc_path, handle), (pre_local or pre_path, preprocess_handle)):
        r.check_module_dir(module_dir, h)
    text_ops.register_ops()
    try:
        pre = hub.load(pre_path)
    except (OSError, ValueError, tf.errors.OpError) as e:
        raise _err(preprocess_handle, f"cannot load it as a TF2 SavedModel: {e}") from None
    loaded = {}

    def encoder():
        if "enc" not in loaded:
            try:
                loaded["enc"] = hub.load(enc_path)
            except (OSError, ValueError, tf.errors.OpError) as e:
                raise _err(handle, f"cannot load it as a TF2 SavedModel: {e}") from None
        return loaded["enc"]

    vocab_file, lower_case, seq = _read_preprocess(pre, encoder, preprocess_handle)
    if seq_length is not None and seq != seq_length:
        raise _err(
            preprocess_handle,
            f"its preprocessing model packs to seq_length {seq}, not the requested {seq_length}: drop the "
            f"sequence-length setting, or use a preprocessing model built for {seq_length}",
        )
    pre_meta = read_module_metadata(pre_local) if pre_local else None
    # Graft's builds record their normalisation; TF Hub's preprocessing models use TF Text's lower_case.
    normalization = "tf_text"
    if pre_meta is not None and pre_meta.get("task") == "text":
        normalization = pre_meta.get("normalization", "tf_text")
    ids = text_ops.special_ids(text_ops.read_vocab(vocab_file), f"the vocabulary {vocab_file}")
    meta = read_module_metadata(enc_local) if enc_local else None
    if meta is not None and meta.get("task") == "text" and meta.get("role") == "encoder":
        facts = {
            k: meta[k]
            for k in (
                "output_key",
                "num_variables",
                "num_trainable_variables",
                "trainable_variable_names",
                "num_parameters",
            )  # fmt: skip
        }
        facts["feature_size"] = int(meta["output_size"])
        metadata_from, fingerprint = METADATA_FILE, meta["saved_model_sha256"]
    else:
        facts = _encoder_facts(encoder(), pre(tf.constant(["a"])), handle)
        metadata_from = "module signature"
        fingerprint = _sha256_of(f"{enc_local or enc_path}/saved_model.pb")
    return TextBackboneInfo(
        handle=handle,
        path=enc_path,
        preprocess_handle=preprocess_handle,
        preprocess_path=pre_path,
        seq_length=seq,
        vocab_file=vocab_file,
        lower_case=lower_case,
        cls_id=ids.cls,
        sep_id=ids.sep,
        pad_id=ids.pad,
        unk_id=ids.unk,
        source=kind,
        resolved_path=enc_local,
        fingerprint=fingerprint,
        preprocess_fingerprint=_sha256_of(f"{pre_local or pre_path}/saved_model.pb"),
        metadata_from=metadata_from,
        normalization=normalization,
        **facts,
    )


def _resolve_one(r, handle: str, kind: str) -> tuple[str, str]:
    """(path for hub.load, local files or '') through tensorflow_hub's resolver, as for image modules."""
    if kind == "local":
        local = r._local_path(handle)
        if not local.exists():
            r.check_module_dir(str(local), handle)  # raises the 'does not exist' error with the fix
        path = r._hub_resolve(str(local))
        return path, path
    resolved = r._hub_resolve(handle)
    return handle, ("" if resolved.startswith("gs://") else resolved)
