"""Backbones: resolve a TF Hub handle, read what the module expects, and build real modules offline.

A backbone is a TF2 SavedModel in TF Hub's reusable format: ``__call__(images, training=False)`` on float32
``[B, H, W, 3]`` in TF Hub's image range [0, 1], returning a feature vector ``[B, F]``, with ``variables``,
``trainable_variables`` and ``regularization_losses`` attributes. Users name one by *handle*:

  ``https://tfhub.dev/...`` / ``https://www.kaggle.com/models/...``   downloaded once into the cache by tensorflow_hub
  ``gs://bucket/dir`` (or ``gs://.../module.tar.gz``)                 read in place (tarballs are cached)
  ``/local/dir``                                                       a TF2 SavedModel directory
  ``mobilenet_v1_imagenet`` / ``tiny``                                 built here on demand, offline (see below)

Every form goes through the same loading code: :func:`tensorflow_hub.resolve` (download / cache / path check),
then ``hub.load`` and ``hub.KerasLayer`` on :attr:`BackboneInfo.path`, exactly what the Trainer does.

:func:`resolve_backbone` reads the metadata once, outside any ``preprocessing_fn`` (loading a module inside one
breaks Transform's analysis, tensorflow/transform#219): from ``graft_backbone.json`` beside modules Graft built
(trusted only while it matches the ``saved_model.pb`` it describes), else by loading the module: input size from
its ``__call__`` signature (static H, W), else ``backbone.input_size``; the feature size by calling it once on
zeros. The result, :class:`BackboneInfo`, is plain JSON that travels to Transform and the Trainer in
``custom_config["backbone"]``.

Built and downloaded modules live in ONE cache directory: ``$TFHUB_CACHE_DIR`` if set, else ``~/.cache/graft/hub``;
Graft sets ``TFHUB_CACHE_DIR`` to it so that tensorflow_hub's downloads land there too. Graft's own builds go to
``<cache>/graft/<name>_<size>[_classifier]``.

This module is cheap to import (no TensorFlow at import time): the CLI lists its commands without TensorFlow.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import json
import os
import shutil
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

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
OFFLINE_NAMES = (MOBILENET, TINY)

# Files that must never sit in a handle directory: code that runs when loaded.
_UNSAFE_SUFFIXES = (".pkl", ".pickle", ".joblib", ".dill", ".cloudpickle")
_KERAS_FILE_SUFFIXES = (".h5", ".hdf5", ".keras")

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


# ---- handle routing --------------------------------------------------------------------------------------------
def handle_kind(handle: str) -> str:
    """'offline', 'url', 'gcs' or 'local' (no I/O)."""
    if not isinstance(handle, str) or not handle.strip():
        raise BackboneError(
            "backbone.handle is empty: set it to a TF Hub URL, a gs:// path, a local TF2 SavedModel directory, "
            f"or one of the offline names {', '.join(OFFLINE_NAMES)}. " + _OFFLINE_HINT
        )
    if handle in OFFLINE_NAMES:
        return "offline"
    scheme = urlparse(handle).scheme.lower()
    if scheme in ("http", "https"):
        return "url"
    if scheme == "gs":
        return "gcs"
    if scheme == "file":
        return "local"
    if len(scheme) > 1:  # (one letter would be a Windows drive)
        raise _err(
            handle,
            f"the scheme '{scheme}://' is not supported: use https:// (tfhub.dev, Kaggle Models), gs://, or a local "
            "directory (copy the module there first)",
        )
    return "local"


def _local_path(handle: str) -> Path:
    p = urlparse(handle).path if handle.startswith("file://") else handle
    return Path(p).expanduser().absolute()


def _hub_resolve(handle: str) -> str:
    """tensorflow_hub's resolver (download into the cache, or check the path); errors become BackboneErrors."""
    import urllib.error

    import tensorflow as tf
    import tensorflow_hub as hub

    kind = handle_kind(handle)
    try:
        return hub.resolve(handle)
    except urllib.error.HTTPError as e:
        if e.code == 404:
            raise _err(handle, "not found (HTTP 404): check the model name and version in the URL") from None
        raise _err(handle, f"download failed: HTTP {e.code} {e.reason}. " + _OFFLINE_HINT) from None
    except (urllib.error.URLError, OSError, ConnectionError) as e:
        if kind == "url":
            raise _err(
                handle,
                f"cannot download it ({getattr(e, 'reason', e)}): there is no network path to it from this machine "
                f"(offline, blocked, or a wrong host name). {_OFFLINE_HINT} Or download the module elsewhere and unpack it into "
                f"{cache_dir()}/{hashlib.sha1(handle.encode()).hexdigest()} (tensorflow_hub's cache layout), or "
                "use a local directory as the handle.",
            ) from None
        if kind == "local":
            raise _err(handle, f"cannot read it: {e}") from None
        raise _err(handle, f"cannot read it: {e}. {_OFFLINE_HINT}") from None
    except tf.errors.OpError as e:
        msg = e.message or type(e).__name__
        if kind == "gcs":
            raise _err(
                handle,
                f"cannot read it from Google Cloud Storage ({type(e).__name__}: {msg}). Without network access or "
                "credentials (GOOGLE_APPLICATION_CREDENTIALS / gcloud auth application-default login) gs:// is "
                "unreachable. " + _OFFLINE_HINT,
            ) from None
        raise _err(handle, f"cannot read it ({type(e).__name__}: {msg})") from None


def _gfile():
    import tensorflow as tf

    return tf.io.gfile


def check_module_dir(path: str, handle: str) -> None:
    """A SavedModel directory with nothing in it that executes code when loaded (pickles, Keras Lambda layers)."""
    gfile = _gfile()
    if not gfile.exists(path):
        raise _err(
            handle,
            f"directory {path} does not exist. Point backbone.handle at a TF2 SavedModel directory, a TF Hub URL, "
            f"or one of the offline names {', '.join(OFFLINE_NAMES)}. " + _OFFLINE_HINT,
        )
    if not gfile.isdir(path):
        hint = ""
        if path.endswith(_KERAS_FILE_SUFFIXES):
            hint = (
                " This looks like a Keras model file; Graft loads TF2 SavedModels only: re-export it with "
                "tf.saved_model.save(model, DIR) and use DIR."
            )
        raise _err(handle, f"{path} is a file, not a SavedModel directory.{hint}")
    names = gfile.listdir(path)
    if "saved_model.pb" not in names:
        found = ", ".join(sorted(n.rstrip("/") for n in names)[:8]) or "nothing"
        extra = ""
        if "saved_model.pbtxt" in names:
            extra = " (saved_model.pbtxt is not accepted: re-save it in binary form)"
        elif "tfhub_module.pb" in names:
            extra = " (this is the legacy TF1 Hub format; use the module's TF2 SavedModel version)"
        elif any(n.endswith(_KERAS_FILE_SUFFIXES) for n in names):
            extra = " (Keras model files are not loaded: re-export with tf.saved_model.save(model, DIR))"
        raise _err(
            handle,
            f"{path} holds no saved_model.pb{extra}; it contains: {found}. Point backbone.handle at the directory "
            "that holds saved_model.pb and variables/ (a TF2 SavedModel in TF Hub format).",
        )
    for root, _dirs, files in gfile.walk(path):
        for f in files:
            if f.lower().endswith(_UNSAFE_SUFFIXES):
                raise _err(
                    handle,
                    f"refusing {os.path.join(root, f)}: pickle files can execute code when loaded. Graft loads "
                    "SavedModels only; remove the file (the module must not need it).",
                )
    meta = os.path.join(path, "keras_metadata.pb")
    if gfile.exists(meta):
        with gfile.GFile(meta, "rb") as fh:
            blob = fh.read()
        if b'"class_name": "Lambda"' in blob or b'"class_name":"Lambda"' in blob:
            raise _err(
                handle,
                "refusing a module with a Keras Lambda layer (keras_metadata.pb): Lambda layers carry Python code. "
                "Replace the Lambda by a built-in or registered layer and re-export.",
            )


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
    if any(k not in meta for k in _REQUIRED_METADATA):
        return None  # hand-edited or truncated: read the module itself
    if meta.get("saved_model_sha256") != _sha256_of(os.path.join(module_dir, "saved_model.pb")):
        return None  # the module changed after the JSON was written: read the module itself
    return meta


def _check_size(handle: str, height: int, width: int, input_size: int | None) -> None:
    if input_size is not None and (height, width) != (input_size, input_size):
        raise _err(
            handle,
            f"the module takes a fixed input of {height}x{width}, but backbone.input_size={input_size}. Remove "
            f"backbone.input_size (or set it to {height})"
            + (f", or build the {input_size} variant if this is an offline module" if height == width else "")
            + ".",
        )


def _info_from_metadata(
    meta: dict, handle: str, path: str, source: str, resolved: str, input_size
) -> BackboneInfo:
    if meta.get("variant") != "feature_vector":
        raise _err(
            handle,
            f"this module is a {meta.get('variant')!r}, not an image feature vector (its output is "
            f"{meta.get('output_size')} {meta.get('output', 'values')}). Use the feature-vector module "
            f"{meta.get('feature_vector_dir', '')}".rstrip()
            + ".",
        )
    _check_size(handle, meta["height"], meta["width"], input_size)
    return BackboneInfo(
        handle=handle,
        path=path,
        height=int(meta["height"]),
        width=int(meta["width"]),
        channels=int(meta.get("channels", 3)),
        value_range=tuple(float(v) for v in meta.get("value_range", (0.0, 1.0))),
        value_range_source=METADATA_FILE if "value_range" in meta else "",
        feature_size=int(meta["output_size"]),
        num_variables=int(meta["num_variables"]),
        num_trainable_variables=int(meta["num_trainable_variables"]),
        trainable_variable_names=list(meta.get("trainable_variable_names", [])),
        num_parameters=int(meta.get("num_parameters", 0)),
        source=source,
        resolved_path=resolved,
        fingerprint=meta["saved_model_sha256"],
        metadata_from=METADATA_FILE,
    )


def _input_spec(obj: Any, handle: str):
    """The images TensorSpec of the module's __call__ (every traced variant must agree)."""
    import tensorflow as tf

    call = getattr(obj, "__call__", None)  # noqa: B004  (the restored function, not a callable check)
    cfs = list(getattr(call, "concrete_functions", None) or [])
    if not cfs:
        sigs = sorted(getattr(obj, "signatures", {}) or {})
        raise _err(
            handle,
            "the SavedModel has no traced __call__ (TF Hub's reusable TF2 format)"
            + (f"; it only has the signatures {sigs}" if sigs else "")
            + ". Graft needs an image feature-vector module in TF2 format (callable on float32 [B, H, W, 3] in "
            "[0, 1], returning [B, features]).",
        )
    specs = []
    for cf in cfs:
        args, kwargs = cf.structured_input_signature
        tensors = [
            a for a in [*tf.nest.flatten(args), *tf.nest.flatten(kwargs)] if isinstance(a, tf.TensorSpec)
        ]
        if len(tensors) != 1:
            raise _err(
                handle,
                f"__call__ takes {len(tensors)} tensors {tensors}; an image feature vector takes one float32 "
                "[B, H, W, 3] tensor.",
            )
        specs.append(tensors[0])
    spec = specs[0]
    shape = spec.shape
    if spec.dtype != tf.float32 or shape.rank != 4 or shape[3] not in (3, None):
        raise _err(
            handle,
            f"__call__ takes {spec.dtype.name} {shape}, not float32 [B, H, W, 3]: this is not an image "
            "feature-vector module.",
        )
    for other in specs[1:]:
        if other.shape != shape or other.dtype != spec.dtype:
            shape = tf.TensorShape([None, None, None, 3])  # variants disagree: treat H, W as dynamic
    return shape


def _inspect_module(
    handle: str, path: str, source: str, resolved: str, input_size: int | None
) -> BackboneInfo:
    """Load the module the way the Trainer does (hub.load + hub.KerasLayer) and read its signature and output."""
    import tensorflow as tf
    import tensorflow_hub as hub

    try:
        obj = hub.load(path)
    except BackboneError:
        raise
    except (OSError, ValueError, tf.errors.OpError) as e:
        raise _err(handle, f"cannot load it as a TF2 SavedModel: {e}") from None
    if getattr(obj, "_is_hub_module_v1", False):
        raise _err(
            handle, "this is the legacy TF1 Hub format (hub.Module); use the module's TF2 SavedModel version."
        )
    shape = _input_spec(obj, handle)
    height, width = shape[1], shape[2]
    if height is None or width is None:
        if input_size is None:
            raise _err(
                handle,
                "the module accepts any image size, so Graft cannot read it from the signature: set "
                "backbone.input_size (e.g. --set backbone.input_size=224; the size the module was trained at).",
            )
        height = width = input_size
    else:
        _check_size(handle, height, width, input_size)
    layer = hub.KerasLayer(obj, trainable=False)
    try:
        out = layer(tf.zeros([1, height, width, 3], tf.float32))
    except (ValueError, TypeError, tf.errors.OpError) as e:
        raise _err(handle, f"calling it on a float32 [1, {height}, {width}, 3] batch failed: {e}") from None
    if isinstance(out, dict) or not isinstance(out, tf.Tensor) or out.shape.rank != 2 or out.shape[0] != 1:
        desc = (
            {k: v.shape for k, v in out.items()}
            if isinstance(out, dict)
            else getattr(out, "shape", type(out))
        )
        raise _err(
            handle,
            f"its output for one image is {desc}, not a feature vector [1, features]: this is not an image "
            "feature-vector module (a feature map or a dict of outputs needs a TF Hub 'feature_vector' variant).",
        )
    variables = list(getattr(obj, "variables", []) or [])
    trainable = list(getattr(obj, "trainable_variables", []) or [])
    return BackboneInfo(
        handle=handle,
        path=path,
        height=int(height),
        width=int(width),
        feature_size=int(out.shape[1]),
        num_variables=len(variables),
        num_trainable_variables=len(trainable),
        trainable_variable_names=[v.name for v in trainable],
        num_parameters=int(sum(v.shape.num_elements() or 0 for v in variables)),
        source=source,
        resolved_path=resolved,
        fingerprint=_sha256_of(os.path.join(resolved or path, "saved_model.pb")),
        metadata_from="module signature",
    )


def _info_for_dir(
    handle: str, path: str, module_dir: str, source: str, resolved: str, input_size
) -> BackboneInfo:
    check_module_dir(module_dir, handle)
    meta = read_module_metadata(module_dir)
    if meta is not None:
        return _info_from_metadata(meta, handle, path, source, resolved, input_size)
    return _inspect_module(handle, path, source, resolved, input_size)


def resolve_backbone(handle: str, input_size: int | None = None) -> BackboneInfo:
    """Resolve a handle (URL, gs://, local dir, offline name) to a usable module and read its metadata once.

    Offline names are built into the cache on first use (``input_size`` picks the variant: 224/192/160/128 for
    mobilenet_v1_imagenet, default 224; any size in [16, 1024] for tiny, default 32).
    """
    kind = handle_kind(handle)
    ensure_cache_env()
    if kind == "offline":
        module = build_offline(handle, input_size)
        path = str(module)
        return _info_for_dir(handle, path, _hub_resolve(path), "offline", path, input_size)
    if kind == "local":
        local = _local_path(handle)
        if not local.exists():
            check_module_dir(str(local), handle)  # raises the 'does not exist' error with the fix
        path = _hub_resolve(str(local))
        return _info_for_dir(handle, path, path, "local", path, input_size)
    # url / gcs: tensorflow_hub downloads (or, for a gs:// directory, checks) and caches; the Trainer passes the
    # handle itself to hub.KerasLayer, which finds the same cache entry.
    resolved = _hub_resolve(handle)
    local = "" if resolved.startswith("gs://") else resolved
    return _info_for_dir(handle, handle, resolved, kind, local, input_size)


def effective_value_range(info: BackboneInfo, configured=None) -> tuple[tuple[float, float], str]:
    """The input range to feed the module and where it comes from: the module's declaration, else the config key
    ``backbone.value_range``, else TF Hub's [0, 1] convention. A key contradicting a declaration is an error."""
    declared = tuple(float(v) for v in info.value_range)
    if configured is None:
        if info.value_range_source:
            return declared, f"declared by the module ({info.value_range_source})"
        return declared, "TF Hub convention: the module declares none (set backbone.value_range if it expects another)"
    wanted = (float(configured[0]), float(configured[1]))
    if info.value_range_source and wanted != declared:
        raise _err(
            info.handle,
            f"config key 'backbone.value_range' is {list(wanted)} but the module declares {list(declared)} in "
            f"{info.value_range_source}: remove backbone.value_range (the module's own declaration is used).",
        )
    return wanted, "config key backbone.value_range"


def keras_layer(info: BackboneInfo | str, trainable: bool = False, **kwargs):
    """``hub.KerasLayer`` for a backbone, with tensorflow_hub pointed at Graft's cache."""
    import tensorflow_hub as hub

    ensure_cache_env()
    path = info.path if isinstance(info, BackboneInfo) else info
    return hub.KerasLayer(path, trainable=trainable, **kwargs)


# ---- building modules ------------------------------------------------------------------------------------------
def _build_key(name: str, variant: str, size: int, source_sha256: str) -> dict:
    return {
        "name": name,
        "variant": variant,
        "size": size,
        "source_sha256": source_sha256,
        "builder_version": BUILDER_VERSION,
    }


def _up_to_date(module_dir: Path, key: dict) -> bool:
    if not (module_dir / "saved_model.pb").is_file():
        return False
    meta = read_module_metadata(str(module_dir))
    return meta is not None and meta.get("build_key") == key


def _export(
    model,
    out: Path,
    *,
    size: int,
    key: dict,
    meta: dict,
    to_range: tuple[float, float],
    output_name: str,
    labels: list[str] | None = None,
    force: bool = False,
) -> Path:
    """Save ``model`` (a tf.keras model on ``to_range`` inputs) as a TF Hub reusable SavedModel at ``out``.

    Built in a temporary sibling directory and renamed into place, so a crash never leaves half a module and a
    reader never sees one. If an identical build appeared meanwhile (another process), it is kept as is.
    """
    import tensorflow as tf

    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.parent / f".{out.name}.tmp-{uuid.uuid4().hex[:8]}"
    scratch = out.parent / f".{out.name}.scratch-{uuid.uuid4().hex[:8]}"
    try:
        labels_file = None
        if labels:
            scratch.mkdir()
            labels_file = scratch / "labels.txt"  # saved as assets/labels.txt: one class name per logit
            labels_file.write_text("\n".join(labels) + "\n")
        module = _hub_module_class()(model, to_range, labels_file, name=out.name)
        spec = tf.TensorSpec([None, size, size, 3], tf.float32, name="images")
        serving = module.__call__.get_concrete_function(spec, training=False)
        # Both variants traced (TF Hub reusable format): hub.KerasLayer picks one with a Python bool.
        module.__call__.get_concrete_function(spec, training=True)

        @tf.function(input_signature=[spec])
        def serve(images):
            return {output_name: serving(images)}

        tf.saved_model.save(module, str(tmp), signatures={"serving_default": serve.get_concrete_function()})
        variables = list(model.variables)
        trainable = list(model.trainable_variables)
        full = {
            "graft_backbone_format": METADATA_FORMAT,
            **meta,
            "height": size,
            "width": size,
            "channels": 3,
            "value_range": [0.0, 1.0],
            "num_variables": len(variables),
            "num_trainable_variables": len(trainable),
            "num_parameters": int(sum(v.shape.num_elements() for v in variables)),
            # Input -> output by depth: the Trainer fine-tunes the top fraction of this list.
            "trainable_variable_names": [v.name for v in trainable],
            "build_key": key,
            "saved_model_sha256": _sha256_of(str(tmp / "saved_model.pb")),
        }
        (tmp / METADATA_FILE).write_text(json.dumps(full, indent=2) + "\n")
        if not force and _up_to_date(out, key):
            return out  # an identical module appeared while this one was built: leave it for its readers
        if out.exists():
            shutil.rmtree(out)
        try:
            os.rename(tmp, out)
        except OSError:
            if not _up_to_date(out, key):  # another process won the race with an identical build: keep it
                raise
    finally:
        for d in (tmp, scratch):
            if d.exists():
                shutil.rmtree(d, ignore_errors=True)
    return out


@functools.cache
def _hub_module_class():
    """The tf.Module class Graft exports (defined on first use: TensorFlow is not imported with this module)."""
    import tensorflow as tf

    class HubImageModule(tf.Module):
        """TF Hub reusable SavedModel: ``__call__(images, training=False)`` on float32 [B, H, W, 3] in [0, 1].

        ``variables`` and ``trainable_variables`` are saved as attributes in the Keras model's order (input ->
        output by depth); a plain tf.Module would derive them by crawling attributes in alphabetical order, so
        they are shadowed here. The Keras model is captured by the traced functions, not tracked: only its
        variables are saved (no per-layer Keras serialization).
        """

        variables = None
        trainable_variables = None

        def __init__(self, model, to_range, labels_file, name):
            super().__init__(name=name.replace("-", "_"))
            self.variables = list(model.variables)
            self.trainable_variables = list(model.trainable_variables)
            self.regularization_losses = []
            lo, hi = float(to_range[0]), float(to_range[1])
            keras_model = model

            @tf.function
            def call(images, training=False):
                images = tf.convert_to_tensor(images, tf.float32)
                # TF Hub's [0, 1] -> the range the weights were trained on.
                return keras_model(images * (hi - lo) + lo, training=training)

            self.__call__ = call
            if labels_file is not None:
                self.labels_file = tf.saved_model.Asset(str(labels_file))

    return HubImageModule


def build_tiny(size: int = TINY_DEFAULT_SIZE, out_dir: str | Path | None = None, force: bool = False) -> Path:
    """A small random-init CNN (3 x conv + BatchNorm + ReLU6, global average pool -> 64 features), seeded."""
    lo, hi = TINY_SIZE_RANGE
    if not isinstance(size, int) or not lo <= size <= hi:
        raise BackboneError(f"tiny backbone: size {size!r} must be an integer in [{lo}, {hi}]")
    out = offline_module_dir(TINY, size, out_dir=out_dir)
    key = _build_key(TINY, "feature_vector", size, f"seed:{TINY_SEED}")
    if not force and _up_to_date(out, key):
        return out

    import tensorflow as tf

    k = tf.keras
    inputs = k.Input((size, size, 3), name="images")
    x = inputs
    for i, filters in enumerate((16, 32, 64), start=1):
        x = k.layers.Conv2D(
            filters,
            3,
            strides=2,
            padding="same",
            use_bias=False,
            kernel_initializer=k.initializers.HeNormal(seed=TINY_SEED + i),
            name=f"block{i}_conv",
        )(x)
        x = k.layers.BatchNormalization(name=f"block{i}_bn")(x)
        x = k.layers.ReLU(6.0, name=f"block{i}_relu")(x)
    x = k.layers.GlobalAveragePooling2D(name="pool")(x)
    model = k.Model(inputs, x, name="graft_tiny")
    meta = {
        "name": TINY,
        "variant": "feature_vector",
        "output": "features",
        "output_size": 64,
        "description": "random-init CNN for tests: 3 x (conv 3x3 stride 2 + BatchNorm + ReLU6) + average pool",
        "source": f"random init, seed {TINY_SEED}",
    }
    return _export(
        model,
        out,
        size=size,
        key=key,
        meta=meta,
        to_range=(-1.0, 1.0),
        output_name="feature_vector",
        force=force,
    )


def import_mobilenet_v1(
    size: int = 224, out_dir: str | Path | None = None, force: bool = False
) -> tuple[Path, Path]:
    """Build the ImageNet MobileNet V1 1.0 feature-vector and classifier modules; (feature_vector, classifier)."""
    if size not in MOBILENET_SIZES:
        raise BackboneError(
            f"{MOBILENET}: size {size!r} is not available; use one of {', '.join(map(str, MOBILENET_SIZES))}"
        )
    from graft.components import mobilenet_v1 as mv1

    try:
        weights_file = mv1.weights_path()
    except mv1.WeightsNotFoundError as e:
        raise WeightsMissingError(str(e)) from None
    source_sha = mv1.file_sha256(weights_file)
    fv_dir = offline_module_dir(MOBILENET, size, out_dir=out_dir)
    cls_dir = offline_module_dir(MOBILENET, size, classifier=True, out_dir=out_dir)
    fv_key = _build_key(MOBILENET, "feature_vector", size, source_sha)
    cls_key = _build_key(MOBILENET, "classifier", size, source_sha)
    if not force and _up_to_date(fv_dir, fv_key) and _up_to_date(cls_dir, cls_key):
        return fv_dir, cls_dir

    import tensorflow as tf

    weights = mv1.read_slim_weights(weights_file)
    backbone = mv1.build_keras_mobilenet(size, weights)
    source = {"weights": mv1.WEIGHTS_PROVENANCE, "sha256": source_sha}
    base_meta = {"name": MOBILENET, "source": source, "input_range_inside": [-1.0, 1.0]}
    _export(
        backbone,
        fv_dir,
        size=size,
        key=fv_key,
        meta={
            **base_meta,
            "variant": "feature_vector",
            "output": "features",
            "output_size": mv1.FEATURE_SIZE,
        },
        to_range=(-1.0, 1.0),
        output_name="feature_vector",
        force=force,
    )
    dense = tf.keras.layers.Dense(mv1.NUM_CLASSES, name="logits")
    classifier = tf.keras.Model(backbone.input, dense(backbone.output), name="mobilenet_v1_classifier")
    dense.set_weights([weights.logits_kernel, weights.logits_bias])
    classes = mv1.imagenet_classes()
    _export(
        classifier,
        cls_dir,
        size=size,
        key=cls_key,
        meta={
            **base_meta,
            "variant": "classifier",
            "output": "ImageNet-1k logits (TF-slim's 'background' logit dropped)",
            "output_size": mv1.NUM_CLASSES,
            "labels_file": "assets/" + "labels.txt",
            "feature_vector_dir": str(fv_dir),
        },
        to_range=(-1.0, 1.0),
        output_name="logits",
        labels=[name for _synset, name in classes],
        force=force,
    )
    return fv_dir, cls_dir


class WeightsMissingError(BackboneError):
    """The package carrying the offline weights is not installed."""


def build_offline(name: str, input_size: int | None = None) -> Path:
    """Build (or find in the cache) the offline module ``name``; the feature-vector module's directory."""
    if name == MOBILENET:
        return import_mobilenet_v1(input_size or 224)[0]
    if name == TINY:
        return build_tiny(input_size or TINY_DEFAULT_SIZE)
    raise BackboneError(f"unknown offline backbone {name!r}; known: {', '.join(OFFLINE_NAMES)}")


def classifier_labels(module_dir: str | Path) -> list[str]:
    """Class names of a classifier module Graft built (one per logit)."""
    meta = read_module_metadata(str(module_dir))
    if meta is None or not meta.get("labels_file"):
        raise BackboneError(
            f"{module_dir} is not a classifier module built by Graft (no labels in {METADATA_FILE})"
        )
    return (Path(module_dir) / meta["labels_file"]).read_text().splitlines()
