"""Backbone metadata: the names, errors, cache and JSON that every other backbone module shares.

:class:`BackboneInfo` is plain data (JSON) that travels to Transform and the Trainer in
``custom_config["backbone"]``; ``graft_backbone.json`` is what Graft writes beside the modules it builds and trusts
only while it matches the ``saved_model.pb`` it describes. Kept apart from resolving and building so that reading
an info needs neither TensorFlow nor the builders (cheap to import: the CLI lists its commands without TF).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import graft  # noqa: F401  (legacy Keras before TensorFlow)

METADATA_FILE = "graft_backbone.json"
METADATA_FORMAT = 1
# Bump when the exported modules change, so that cached builds are rebuilt.
BUILDER_VERSION = 1
DEFAULT_CACHE_DIR = "~/.cache/graft/hub"
CACHE_ENV = "TFHUB_CACHE_DIR"

MOBILENET = "mobilenet_v1_imagenet"
TINY = "tiny"
MOBILENET_SIZES = (224, 192, 160, 128)
TINY_DEFAULT_SIZE = 32
TINY_SIZE_RANGE = (16, 1024)
TINY_SEED = 20240531
MINILM = "minilm_l6"
IMAGE_OFFLINE_NAMES = (MOBILENET, TINY)
TEXT_OFFLINE_NAMES = (MINILM,)
OFFLINE_NAMES = (*IMAGE_OFFLINE_NAMES, *TEXT_OFFLINE_NAMES)

_OFFLINE_HINT = (
    f"Offline backbones need no network: `graft backbone import {MOBILENET}` (real ImageNet weights; then use "
    f"backbone.handle={MOBILENET}) or `graft backbone {TINY}` (a small random CNN for tests)."
)


class BackboneError(ValueError):
    """A handle Graft cannot use. The message names the handle and the fix."""


def _err(handle: str, msg: str) -> BackboneError:
    return BackboneError(f"backbone handle {handle!r}: {msg}")


# ---- metadata --------------------------------------------------------------------------------------------------
@dataclass
class BackboneInfo:
    """What Graft knows about a backbone; plain data (JSON) for Transform, the Trainer and the run's artifacts."""

    handle: str  # what the user named
    path: str  # what hub.KerasLayer / hub.load get: the URL or gs:// handle itself, or an absolute local dir
    height: int
    width: int
    feature_size: int
    num_variables: int
    num_trainable_variables: int
    channels: int = 3
    # Float range of the input the module expects (TF Hub's image convention: [0, 1]).
    value_range: tuple[float, float] = (0.0, 1.0)
    # Where value_range comes from: 'graft_backbone.json' when the module declares it, '' for the convention.
    value_range_source: str = ""
    # Trainable variable names in module order (Graft's own modules: input -> output by depth).
    trainable_variable_names: list[str] = field(default_factory=list)
    num_parameters: int = 0
    # 'offline' (built by Graft), 'url', 'gcs' or 'local'.
    source: str = "local"
    # Where the module's files are (the hub cache dir for a URL); '' when they are read in place remotely.
    resolved_path: str = ""
    # sha256 of saved_model.pb: a changed module changes the components' custom_config, hence TFX's cache key.
    fingerprint: str = ""
    # 'graft_backbone.json' or 'module signature'.
    metadata_from: str = ""

    @property
    def input_shape(self) -> tuple[int, int, int]:
        return (self.height, self.width, self.channels)

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["value_range"] = list(self.value_range)
        return d

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> BackboneInfo:
        if not isinstance(data, dict):
            raise BackboneError(f"backbone metadata must be a JSON object, got {type(data).__name__}")
        names = {f.name for f in dataclasses.fields(cls)}
        required = {f.name for f in dataclasses.fields(cls) if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING}  # fmt: skip
        missing = sorted(required - set(data))
        if missing:
            raise BackboneError(f"backbone metadata lacks {', '.join(missing)} (got keys {sorted(data)})")
        unknown = sorted(set(data) - names)
        if unknown:
            raise BackboneError(f"backbone metadata has unknown keys {unknown}; known: {sorted(names)}")
        kw = dict(data)
        vr = kw.get("value_range", (0.0, 1.0))
        if not (isinstance(vr, (list, tuple)) and len(vr) == 2 and float(vr[0]) < float(vr[1])):
            raise BackboneError(f"backbone metadata value_range {vr!r} must be [lo, hi] with lo < hi")
        kw["value_range"] = (float(vr[0]), float(vr[1]))
        kw["trainable_variable_names"] = list(kw.get("trainable_variable_names", []))
        info = cls(**kw)
        for k in ("height", "width", "feature_size", "channels"):
            v = getattr(info, k)
            if not isinstance(v, int) or isinstance(v, bool) or v < 1:
                raise BackboneError(f"backbone metadata {k}={v!r} must be a positive integer")
        return info

    @classmethod
    def from_json(cls, text: str) -> BackboneInfo:
        try:
            data = json.loads(text)
        except json.JSONDecodeError as e:
            raise BackboneError(f"backbone metadata is not valid JSON: {e}") from None
        return cls.from_dict(data)

    def describe(self) -> str:
        lo, hi = self.value_range
        rows = [
            ("handle", self.handle),
            ("path", self.path),
            ("input", f"{self.height} x {self.width} x {self.channels} float32 in [{lo:g}, {hi:g}]"),
            ("feature size", str(self.feature_size)),
            (
                "variables",
                f"{self.num_variables} ({self.num_trainable_variables} trainable), {self.num_parameters:,} parameters",
            ),
            (
                "source",
                self.source
                + (f" (files in {self.resolved_path})" if self.resolved_path != self.path else ""),
            ),
            ("fingerprint", f"sha256:{self.fingerprint}" if self.fingerprint else "-"),
            ("metadata from", self.metadata_from),
        ]
        return "\n".join(f"{k + ':':<15}{v}" for k, v in rows)


# ---- the cache -------------------------------------------------------------------------------------------------
def cache_dir() -> Path:
    """The one cache for downloaded and built modules: $TFHUB_CACHE_DIR, else ~/.cache/graft/hub."""
    return Path(os.environ.get(CACHE_ENV) or DEFAULT_CACHE_DIR).expanduser().absolute()


def ensure_cache_env() -> Path:
    """Create the cache and point tensorflow_hub at it (TFHUB_CACHE_DIR), so downloads and builds agree."""
    d = cache_dir()
    d.mkdir(parents=True, exist_ok=True)
    os.environ[CACHE_ENV] = str(d)
    return d


def offline_module_dir(
    name: str, size: int, classifier: bool = False, out_dir: str | Path | None = None
) -> Path:
    base = Path(out_dir).expanduser().absolute() if out_dir else cache_dir() / "graft"
    return base / f"{name}_{size}{'_classifier' if classifier else ''}"


def _gfile():
    import tensorflow as tf

    return tf.io.gfile


def _sha256_of(path: str) -> str:
    h = hashlib.sha256()
    with _gfile().GFile(path, "rb") as f:
        while chunk := f.read(1 << 20):
            h.update(chunk)
    return h.hexdigest()


# ---- reading the metadata --------------------------------------------------------------------------------------
_REQUIRED_METADATA = (
    "variant",
    "height",
    "width",
    "output_size",
    "num_variables",
    "num_trainable_variables",
    "saved_model_sha256",
)


# A text module's graft_backbone.json (task: text): the encoder's or the preprocessing model's.
_REQUIRED_TEXT_METADATA = ("task", "role", "vocab_file", "lower_case", "saved_model_sha256")


def read_module_metadata(module_dir: str) -> dict | None:
    """The graft_backbone.json beside a module, if present and still describing this saved_model.pb."""
    gfile = _gfile()
    p = os.path.join(module_dir, METADATA_FILE)
    if not gfile.exists(p):
        return None
    try:
        with gfile.GFile(p) as f:
            meta = json.loads(f.read())
    except (json.JSONDecodeError, UnicodeDecodeError):
        return None
    if not isinstance(meta, dict) or meta.get("graft_backbone_format") != METADATA_FORMAT:
        return None
    required = _REQUIRED_TEXT_METADATA if meta.get("task") == "text" else _REQUIRED_METADATA
    if any(k not in meta for k in required):
        return None  # hand-edited or truncated: read the module itself
    if meta.get("saved_model_sha256") != _sha256_of(os.path.join(module_dir, "saved_model.pb")):
        return None  # the module changed after the JSON was written: read the module itself
    return meta
