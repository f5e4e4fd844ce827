"""Bad days on a local run root: unwritable roots, full disks, and runs whose process died.

* :func:`check_writable` -- before anything runs: the run root and the serving directory must be writable, or the
  run stops at once with a :class:`ConfigError` naming the key and the fix (not an hour later, at the Pusher).
* :func:`close_abandoned_executions` -- TFX records an execution as RUNNING before its executor starts and updates
  it when the executor returns or raises. A process killed in between (SIGKILL, OOM killer, a reboot, Ctrl-C
  through Beam) leaves it RUNNING forever, with partial output directories. The next ``graft run`` on the root
  holds the run lock, so no other process can be running those executions: it marks them FAILED in MLMD with a
  ``graft_abandoned`` property saying why, removes their partial outputs (as TFX does for a failed execution),
  and records the interrupted run in ``<run_root>/runs/<run id>.json`` so ``graft runs`` and the report say
  "interrupted". Completed executions are untouched: the new run reuses them from the cache.
* :func:`failure_hint` -- a disk-full error anywhere in a failure becomes one sentence with the fix.

Cheap to import (no TensorFlow).
"""

from __future__ import annotations

import errno
import logging
import os
import shutil
import time
import uuid
from pathlib import Path

from graft import errors
from graft.pipeline.config import ConfigError, GraftConfig
from graft.pipeline.run_lock import LOCK_NAME

ABANDONED_PROP = "graft_abandoned"
_ACTIVE_STATES = (1, 2)  # Execution.NEW, Execution.RUNNING
_FAILED = 4  # Execution.FAILED
DISK_FULL_MARKERS = ("No space left on device", "database or disk is full", "Disk quota exceeded")

log = logging.getLogger(__name__)


# ---- before the run -----------------------------------------------------------------------------------------------
def _nearest_existing(path: Path) -> Path:
    p = path
    while not p.exists() and p != p.parent:
        p = p.parent
    return p


def _probe_dir(path: Path, key: str, what: str) -> None:
    """Create (if needed) and write a probe file in ``path``; ConfigError naming ``key`` when that fails."""
    try:
        path.mkdir(parents=True, exist_ok=True)
        probe = path / f".graft-write-test-{uuid.uuid4().hex}"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as e:
        why = {
            errno.EROFS: "it is on a read-only file system",
            errno.EACCES: "permission denied",
            errno.EPERM: "permission denied",
            errno.ENOSPC: "the disk is full",
            errno.ENOTDIR: "a part of the path is a file, not a directory",
        }.get(e.errno, e.strerror or str(e))
        raise ConfigError(
            f"config key '{key}': cannot write the {what} {path} ({why}). Point {key} at a writable directory"
            + (" (--root on the command line)" if key == "root" else "")
        ) from None


def check_writable(cfg: GraftConfig) -> None:
    """The run root must be writable (created here), and so must the serving directory's nearest existing parent."""
    _probe_dir(cfg.run_root, "root", "run root")
    serving = cfg.serving_model_dir
    if not str(serving).startswith(str(cfg.run_root) + os.sep):
        parent = _nearest_existing(serving)
        if parent.is_dir():
            try:
                probe = parent / f".graft-write-test-{uuid.uuid4().hex}"
                probe.write_bytes(b"")
                probe.unlink()
            except OSError as e:
                raise ConfigError(
                    f"config key 'push.serving_root': cannot write under {parent} ({e.strerror or e}), where "
                    f"the model would be pushed ({serving}). Point push.serving_root at a writable directory"
                ) from None
        else:
            raise ConfigError(
                f"config key 'push.serving_root': {parent} is a file, not a directory (models go to {serving})"
            )


# ---- after a killed run -------------------------------------------------------------------------------------------
def _connect_rw(metadata_path: Path):
    from ml_metadata.metadata_store import metadata_store
    from ml_metadata.proto import metadata_store_pb2

    config = metadata_store_pb2.ConnectionConfig()
    config.sqlite.filename_uri = str(metadata_path)
    config.sqlite.connection_mode = metadata_store_pb2.SqliteMetadataSourceConfig.READWRITE
    return metadata_store.MetadataStore(config)


def _node_of(store, execution, node_type_id: int | None) -> str:
    for c in store.get_contexts_by_execution(execution.id):
        if c.type_id == node_type_id:
            return c.name.split(".", 1)[-1]
    return store.get_execution_types_by_id([execution.type_id])[0].name.rsplit(".", 1)[-1]


def _remove_partial_outputs(pipeline_root: Path, node: str, execution_id: int) -> list[str]:
    """TFX's layout: <pipeline_root>/<node>/<output key>/<execution id> and .system/executor_execution/<id>."""
    node_dir = pipeline_root / node
    removed = []
    if not node_dir.is_dir():
        return removed
    candidates = [d / str(execution_id) for d in node_dir.iterdir() if d.is_dir() and d.name != ".system"]
    candidates.append(node_dir / ".system" / "executor_execution" / str(execution_id))
    for path in candidates:
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path, ignore_errors=True)
            removed.append(str(path))
    return removed


def close_abandoned_executions(cfg: GraftConfig) -> list[str]:
    """Mark this pipeline's NEW/RUNNING executions FAILED (call only while holding the run lock). Returns one
    plain line per execution closed."""
    if not cfg.metadata_path.exists():
        return []
    from graft.pipeline import runs

    store = _connect_rw(cfg.metadata_path)
    pipeline_ctx = store.get_context_by_type_and_name("pipeline", cfg.name)
    if pipeline_ctx is None:
        return []
    node_type = store.get_context_type(runs.NODE_CONTEXT)
    run_type = store.get_context_type(runs.PIPELINE_RUN_CONTEXT)
    lines = []
    now = time.strftime("%Y-%m-%d %H:%M:%S")
    for e in store.get_executions_by_context(pipeline_ctx.id):
        if e.last_known_state not in _ACTIVE_STATES:
            continue
        node = _node_of(store, e, node_type.id if node_type else None)
        run_id = next(
            (c.name for c in store.get_contexts_by_execution(e.id) if run_type and c.type_id == run_type.id),
            "?",
        )
        why = (
            "its outcome was never recorded (the process was killed or ran out of memory, the machine stopped, "
            f"or MLMD could not be written, e.g. a full disk); found and closed by the next graft run at {now}"
        )
        e.last_known_state = _FAILED
        e.custom_properties[ABANDONED_PROP].string_value = why
        store.put_executions([e])
        removed = _remove_partial_outputs(cfg.pipeline_root, node, e.id)
        _record_interrupted(cfg, run_id, node, why)
        lines.append(
            f"[graft] run {run_id} was interrupted during {node} (execution {e.id}): recorded as failed in MLMD"
            + (f", its {len(removed)} partial output folder(s) removed" if removed else "")
            + "; completed components are reused"
        )
    return lines


def _record_interrupted(cfg: GraftConfig, run_id: str, node: str, why: str) -> None:
    from graft.pipeline import runs

    if run_id == "?":
        return
    try:
        record = runs.read_run_record(cfg.run_root, run_id) or {"run_id": run_id, "pipeline_name": cfg.name}
        if not record.get("error"):
            record["error"] = {"type": "ProcessEnded", "message": f"{node}: {why}", "kind": "interrupted"}
            runs.write_run_record(cfg.run_root, run_id, record)
    except Exception as e:  # noqa: BLE001 - a missing record never stops a run
        log.warning("could not record the interrupted run %s: %s", run_id, e)


# ---- is a run still running? ---------------------------------------------------------------------------------------
def run_lock_held(run_root: str | Path) -> bool | None:
    """Whether some process holds the run lock of ``run_root`` (``graft run`` holds it for the whole run).

    Read from /proc/locks, without touching the lock: probing it with flock could make a ``graft run`` that starts
    at that instant fail. None where /proc/locks does not exist (not Linux).
    """
    try:
        st = os.stat(Path(run_root) / LOCK_NAME)
    except OSError:
        return False
    try:
        text = Path("/proc/locks").read_text()
    except OSError:
        return None
    for line in text.splitlines():
        # '1: FLOCK  ADVISORY  WRITE 19505 fe:00:2204673 0 EOF'; waiters are listed as '1: -> FLOCK ...'
        parts = line.split()
        if len(parts) < 6 or parts[1] != "FLOCK":
            continue
        dev = parts[5].split(":")
        try:
            if (
                len(dev) == 3
                and int(dev[2]) == st.st_ino
                and (int(dev[0], 16), int(dev[1], 16))
                == (
                    os.major(st.st_dev),
                    os.minor(st.st_dev),
                )
            ):
                return True
        except ValueError:
            continue
    return False


def unfinished_status(summary, newest: bool, live: bool | None) -> str | None:
    """`graft runs` wording for a run whose executions did not all end (none failed): running, or interrupted when
    its process is gone (an older run, or the newest while nobody holds the run lock). None: cannot tell."""
    node = next((e.node_id for e in summary.executions if e.state in ("RUNNING", "NEW")), None)
    where = f" at {node}" if node else ""
    if newest and live:
        return f"running{where}"
    if not newest or live is False:
        return f"interrupted{where} (process gone)"
    return None


# ---- messages -----------------------------------------------------------------------------------------------------
def is_disk_full(exc: BaseException) -> bool:
    for x in errors.chain(exc):
        if isinstance(x, OSError) and x.errno in (errno.ENOSPC, errno.EDQUOT):
            return True
        if any(m in str(x) for m in DISK_FULL_MARKERS):
            return True
    return False


def failure_hint(exc: BaseException, cfg: GraftConfig) -> str | None:
    """One sentence with the fix for failures that have one, else None."""
    if is_disk_full(exc):
        where = [str(cfg.run_root)]
        if not str(cfg.serving_model_dir).startswith(str(cfg.run_root)):
            where.append(str(cfg.serving_model_dir))
        return (
            f"the disk is full (no space left on the device holding {' / '.join(where)}). Free space there (or "
            "use another --root), then rerun the same command: completed components are reused from the cache, "
            "and nothing partial was pushed."
        )
    return None
