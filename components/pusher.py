"""Pusher executor: a blessed model appears in ``<base>/<version>/`` whole, or not at all.

TFX 1.16's Pusher copies the model file by file straight into the numeric version directory (``saved_model.pb``
last, tfx#4466). TF Serving watches ``<base>`` for numeric subdirectories, so a Pusher killed (or out of disk)
in the middle leaves a version directory it will try to load: some variables, or a truncated
``saved_model.pb``. Graft's executor keeps TFX's Pusher contract (blessing check, ``pushed`` /
``pushed_destination`` / ``pushed_version`` properties, the archived copy in the PushedModel artifact) and changes
how the files land, for local destinations:

1. stale staging directories left by a killed push are removed (their process is gone);
2. the model is copied into ``<base>/.graft-staging-<version>-<pid>-<host>`` -- a hidden, non-numeric name that
   TF Serving ignores -- and every file and directory is fsync'ed;
3. one ``rename`` (atomic within a filesystem) makes it ``<base>/<version>``; the base directory is fsync'ed.

A kill at any point leaves either no new version or a complete one. The version is the Unix time, bumped above
the newest existing version so that TF Serving (which serves the highest number) always picks the new model. When
the newest version already holds exactly this model (the push was killed after the rename, before MLMD recorded
it), it is reused instead of copied again. Remote destinations (``gs://`` ...) have no atomic rename: there TFX's
own behaviour applies (``saved_model.pb`` copied last).

The DAG uses :class:`Pusher`: TFX's Pusher component (same spec, inputs, outputs and node id) with this executor,
plus an optional ``tflite_models`` input: the TFLite variants that passed their gate (components/edge) are copied
into the same staging directory, as ``<version>/tflite/model_<variant>.tflite`` with ``labels.txt`` and
``results.json``, so they land with the SavedModel in the one rename.
"""

from __future__ import annotations  # noqa: I001  (import graft must stay first)

import graft  # noqa: F401, I001  (legacy Keras before TensorFlow)

import errno  # noqa: E402
import hashlib  # noqa: E402
import os  # noqa: E402
import re  # noqa: E402
import shutil  # noqa: E402
import socket  # noqa: E402
import time  # noqa: E402
from typing import Any  # noqa: E402

from absl import logging  # noqa: E402
from tfx.components.pusher import component as tfx_pusher_component  # noqa: E402
from tfx.components.pusher import executor as tfx_pusher_executor  # noqa: E402
from tfx.dsl.components.base import base_component, executor_spec  # noqa: E402
from tfx.proto import pusher_pb2  # noqa: E402
from tfx.types import Channel, artifact_utils, component_spec, standard_artifacts  # noqa: E402
from tfx.types import standard_component_specs  # noqa: E402
from tfx.utils import io_utils, proto_utils  # noqa: E402

from graft.components.edge.component import TFLiteModels  # noqa: E402

STAGING_PREFIX = ".graft-staging-"
_STAGING_RE = re.compile(r"^\.graft-staging-(\d+)-(\d+)-(.+)$")
# A staging directory from another machine (shared filesystem) is only removed when it is this old.
FOREIGN_STAGING_MAX_AGE_S = 24 * 3600
_RENAME_ATTEMPTS = 20
TFLITE_DIR = "tflite"  # <version>/tflite/: the blessed TFLite variants (components/edge)


class PushError(RuntimeError):
    """The model could not be pushed; the serving directory holds no partial version."""


def is_version_dir(name: str) -> bool:
    """TF Serving's rule: a version is a directory whose name is a non-negative integer."""
    return name.isdigit()


def versions(base: str) -> list[int]:
    """The version numbers present under ``base``, ascending ([] if ``base`` does not exist)."""
    try:
        names = os.listdir(base)
    except FileNotFoundError:
        return []
    return sorted(int(n) for n in names if is_version_dir(n) and os.path.isdir(os.path.join(base, n)))


def next_version(base: str, now: float | None = None) -> int:
    """The Unix time, or one more than the newest existing version if that is not older."""
    existing = versions(base)
    t = int(now if now is not None else time.time())
    return max(t, existing[-1] + 1) if existing else t


def _host_tag() -> str:
    return re.sub(r"[^A-Za-z0-9_.-]", "_", socket.gethostname())[:64] or "host"


def staging_name(version: int) -> str:
    return f"{STAGING_PREFIX}{version}-{os.getpid()}-{_host_tag()}"


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def remove_stale_staging(base: str, now: float | None = None) -> list[str]:
    """Remove staging directories whose push can no longer finish; returns the names removed."""
    removed = []
    try:
        names = os.listdir(base)
    except FileNotFoundError:
        return removed
    now = time.time() if now is None else now
    for name in names:
        m = _STAGING_RE.match(name)
        if not m:
            continue
        path = os.path.join(base, name)
        pid, host = int(m.group(2)), m.group(3)
        if host == _host_tag():
            stale = pid != os.getpid() and not _pid_alive(pid)
        else:
            try:
                stale = now - os.lstat(path).st_mtime > FOREIGN_STAGING_MAX_AGE_S
            except FileNotFoundError:
                continue
        if stale:
            shutil.rmtree(path, ignore_errors=True)
            removed.append(name)
            logging.warning("Removed %s: a staging directory left by an interrupted push.", path)
    return removed


def _fsync_dir(path: str) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _copy_file(src: str, dst: str) -> None:
    """Copy one file and fsync it."""
    with open(src, "rb") as fin, open(dst, "wb") as fout:
        shutil.copyfileobj(fin, fout, 1 << 20)
        fout.flush()
        os.fsync(fout.fileno())


def copy_tree_durably(src: str, dst: str) -> None:
    """Copy the directory tree ``src`` into the new directory ``dst``; every file and directory fsync'ed."""
    os.makedirs(dst)
    dirs = [dst]
    for dirpath, dirnames, filenames in os.walk(src):
        out = os.path.join(dst, os.path.relpath(dirpath, src))
        for d in sorted(dirnames):
            os.mkdir(os.path.join(out, d))
            dirs.append(os.path.join(out, d))
        for f in sorted(filenames):
            _copy_file(os.path.join(dirpath, f), os.path.join(out, f))
    for d in reversed(dirs):
        _fsync_dir(d)


def tree_files(path: str) -> dict[str, str]:
    """{path relative to ``path``: full path} of every file under ``path``."""
    out = {}
    for dirpath, _dirnames, filenames in os.walk(path):
        for f in filenames:
            full = os.path.join(dirpath, f)
            out[os.path.relpath(full, path)] = full
    return out


def files_digest(files: dict[str, str]) -> str:
    """sha256 over the relative paths and contents of ``files`` ({relative path: full path})."""
    h = hashlib.sha256()
    for rel in sorted(files):
        h.update(rel.encode("utf-8", "surrogateescape") + b"\0")
        with open(files[rel], "rb") as fin:
            for block in iter(lambda fin=fin: fin.read(1 << 20), b""):
                h.update(block)
        h.update(b"\0")
    return h.hexdigest()


def tree_digest(path: str) -> str:
    """sha256 over the relative paths and contents of every file under ``path``."""
    return files_digest(tree_files(path))


# ---- edge models (components/edge): copied into the same staging as the SavedModel -----------------------------
def _copy_extra_durably(extra: dict[str, str] | None, staging: str) -> None:
    for rel, src in sorted((extra or {}).items()):
        dst = os.path.join(staging, rel)
        new_dir = not os.path.isdir(os.path.dirname(dst))
        os.makedirs(os.path.dirname(dst), exist_ok=True)
        _copy_file(src, dst)
        if new_dir:
            _fsync_dir(os.path.dirname(dst))


def push_atomically(
    model_path: str, base: str, now: float | None = None, extra: dict[str, str] | None = None
) -> tuple[str, int, bool]:
    """Publish the SavedModel directory ``model_path`` as a new version under the local directory ``base``.

    ``extra`` maps paths inside the version directory to files copied in the same staging (the blessed TFLite
    variants: ``tflite/model_int8.tflite`` ...), so they appear with the SavedModel or not at all.
    Returns (version directory, version, reused): ``reused`` when the newest version already held this exact
    model. On any error the staging directory is removed and :class:`PushError` names the cause; ``base`` then
    holds no new entry.
    """
    try:
        os.makedirs(base, exist_ok=True)
    except OSError as e:
        raise PushError(f"cannot create the serving directory {base}: {e.strerror or e}") from e
    remove_stale_staging(base, now)
    existing = versions(base)
    if existing:
        newest = os.path.join(base, str(existing[-1]))
        if tree_digest(newest) == files_digest({**tree_files(model_path), **(extra or {})}):
            logging.info(
                "Version %s under %s already holds this model: not copied again.", existing[-1], base
            )
            return newest, existing[-1], True
    version = next_version(base, now)
    staging = os.path.join(base, staging_name(version))
    try:
        copy_tree_durably(model_path, staging)
        _copy_extra_durably(extra, staging)
        for _ in range(_RENAME_ATTEMPTS):
            target = os.path.join(base, str(version))
            if not os.path.exists(target):
                try:
                    os.rename(staging, target)
                except OSError as e:
                    if e.errno not in (errno.EEXIST, errno.ENOTEMPTY):
                        raise
                else:
                    _fsync_dir(base)
                    return target, version, False
            version += 1  # another push took this number meanwhile
        raise PushError(f"could not find a free version number under {base} after {_RENAME_ATTEMPTS} tries")
    except OSError as e:
        shutil.rmtree(staging, ignore_errors=True)
        hint = (
            "the disk is full: free space there (or set push.serving_root to another disk) and rerun"
            if e.errno == errno.ENOSPC
            else "check that the directory is writable (push.serving_root) and rerun"
        )
        raise PushError(
            f"could not push the model to {base}: {e.strerror or e} ({getattr(e, 'filename', '') or base}); "
            f"no partial version was left there; {hint}"
        ) from e
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise


class Executor(tfx_pusher_executor.Executor):
    """TFX's Pusher executor with an atomic, durable push to local filesystems (see the module docstring)."""

    def Do(  # noqa: N802 (TFX API)
        self,
        input_dict: dict[str, list[Any]],
        output_dict: dict[str, list[Any]],
        exec_properties: dict[str, Any],
    ) -> None:
        destination = pusher_pb2.PushDestination()
        proto_utils.json_to_proto(exec_properties[standard_component_specs.PUSH_DESTINATION_KEY], destination)
        kind = destination.WhichOneof("destination")
        base = destination.filesystem.base_directory if kind == "filesystem" else ""
        if not base or "://" in base:
            if _tflite_files(input_dict):
                logging.warning(
                    "TFLite variants are pushed to local serving directories only; not to %s.", base
                )
            super().Do(input_dict, output_dict, exec_properties)
            return
        self._log_startup(input_dict, output_dict, exec_properties)
        model_push = artifact_utils.get_single_instance(
            output_dict[standard_component_specs.PUSHED_MODEL_KEY]
        )
        if not self.CheckBlessing(input_dict):
            self._MarkNotPushed(model_push)
            return
        model_path = self.GetModelPath(input_dict)
        serving_path, version, reused = push_atomically(model_path, base, extra=_tflite_files(input_dict))
        logging.info("Model %s to serving path %s.", "already present" if reused else "written", serving_path)
        # TFX's archived copy of the pushed model, in the PushedModel artifact.
        io_utils.copy_dir(model_path, model_push.uri)
        self._MarkPushed(model_push, pushed_destination=serving_path, pushed_version=str(version))
        logging.info("Model pushed to %s.", model_push.uri)


def _tflite_files(input_dict: dict[str, list[Any]]) -> dict[str, str]:
    """{'tflite/<file>': source} for the blessed TFLite variants of the optional ``tflite_models`` input."""
    from graft.components.edge import component as edge

    models = input_dict.get(edge.TFLITE_MODELS_KEY) or []
    if not models:
        return {}
    uri = models[0].uri
    return {f"{TFLITE_DIR}/{f}": os.path.join(uri, f) for f in edge.blessed_files(uri)}


class PusherSpec(standard_component_specs.PusherSpec):
    """TFX's PusherSpec plus the optional ``tflite_models`` input (components/edge)."""

    INPUTS = {
        **standard_component_specs.PusherSpec.INPUTS,
        "tflite_models": component_spec.ChannelParameter(type=TFLiteModels, optional=True),
    }


class Pusher(tfx_pusher_component.Pusher):
    """TFX's Pusher component with Graft's atomic executor (its node id stays 'Pusher'); ``tflite_models`` adds
    the blessed TFLite variants under ``<version>/tflite/`` in the same atomic push."""

    SPEC_CLASS = PusherSpec
    EXECUTOR_SPEC = executor_spec.ExecutorClassSpec(Executor)

    def __init__(self, model, model_blessing, push_destination, tflite_models=None):
        spec = PusherSpec(
            model=model,
            model_blessing=model_blessing,
            push_destination=push_destination,
            tflite_models=tflite_models,
            pushed_model=Channel(type=standard_artifacts.PushedModel),
        )
        base_component.BaseComponent.__init__(self, spec=spec)
