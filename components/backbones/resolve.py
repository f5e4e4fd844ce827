"""Resolving a handle: route it (URL, gs://, local dir, offline name), check the directory, read what it expects.

Every form goes through the same loading code: :func:`tensorflow_hub.resolve` (download / cache / path check),
then ``hub.load`` and ``hub.KerasLayer`` on :attr:`BackboneInfo.path`, exactly what the Trainer does. The metadata
is read once, outside any ``preprocessing_fn`` (loading a module inside one breaks Transform's analysis,
tensorflow/transform#219).
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from graft.components.backbones.metadata import (
    _OFFLINE_HINT,
    METADATA_FILE,
    MINILM,
    MOBILENET,
    OFFLINE_NAMES,
    TINY,
    TINY_DEFAULT_SIZE,
    BackboneError,
    BackboneInfo,
    _err,
    _gfile,
    _sha256_of,
    cache_dir,
    ensure_cache_env,
    read_module_metadata,
)

# Files that must never sit in a handle directory: code that runs when loaded.
_UNSAFE_SUFFIXES = (".pkl", ".pickle", ".joblib", ".dill", ".cloudpickle")
_KERAS_FILE_SUFFIXES = (".h5", ".hdf5", ".keras")


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


def _is_text_module_dir(handle: str) -> bool:
    local = _local_path(handle)
    meta = read_module_metadata(str(local)) if (local / "saved_model.pb").is_file() else None
    return meta is not None and meta.get("task") == "text"


def resolve_image_backbone(handle: str, input_size: int | None = None):
    """Resolve an image feature-vector handle (URL, gs://, local dir, offline name) and read its metadata once.

    Offline names are built into the cache on first use (``input_size`` picks the variant: 224/192/160/128 for
    mobilenet_v1_imagenet, default 224; any size in [16, 1024] for tiny, default 32). Text handles go through
    :func:`graft.components.backbones.resolve_backbone`, which dispatches.
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
        return (
            declared,
            "TF Hub convention: the module declares none (set backbone.value_range if it expects another)",
        )
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


def build_offline(name: str, input_size: int | None = None) -> Path:
    """Build (or find in the cache) the offline module ``name``; the feature-vector module's directory."""
    from graft.components.backbones import image_builds

    if name == MOBILENET:
        return image_builds.import_mobilenet_v1(input_size or 224)[0]
    if name == TINY:
        return image_builds.build_tiny(input_size or TINY_DEFAULT_SIZE)
    if name == MINILM:
        from graft.components.backbones import text_builds

        return text_builds.build_minilm()[0]
    raise BackboneError(f"unknown offline backbone {name!r}; known: {', '.join(OFFLINE_NAMES)}")
