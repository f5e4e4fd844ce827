"""Run the DAG locally: LocalDagRunner, sqlite MLMD under the run root, Beam DirectRunner. Thin on purpose.

Adds only what a local user needs around ``LocalDagRunner().run``:

* a lock on the run root, so two ``graft run`` on the same root never interleave (the second one exits with a clear
  message naming the holder; MLMD's sqlite file is never written by two pipelines at once);
* progress lines (each component's start, end, duration, cached or not) read from TFX's own log records;
* the run summary read back from MLMD afterwards.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import logging
import os
import socket
import sys
import time
from collections.abc import Iterator
from pathlib import Path

from graft.pipeline.config import GraftConfig

LOCK_NAME = ".graft-run.lock"


class RunLockedError(RuntimeError):
    pass


@contextlib.contextmanager
def run_lock(run_root: Path) -> Iterator[None]:
    """An exclusive flock on <run_root>/.graft-run.lock, released when the process ends (even on SIGKILL)."""
    run_root.mkdir(parents=True, exist_ok=True)
    path = run_root / LOCK_NAME
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as e:
            if e.errno not in (errno.EAGAIN, errno.EACCES):
                raise
            holder = os.pread(fd, 4096, 0).decode("utf-8", "replace").strip() or "another process"
            raise RunLockedError(
                f"another graft run is using {run_root} ({holder}). Wait for it to finish, or use another --root "
                "or --set name=... for a separate pipeline."
            ) from None
        os.ftruncate(fd, 0)
        os.pwrite(
            fd,
            json.dumps(
                {"pid": os.getpid(), "host": socket.gethostname(), "since": time.strftime("%FT%T")}
            ).encode(),
            0,
        )
        yield
    finally:
        os.close(fd)  # closing the descriptor releases the flock


# Warnings TFX / TFT / TF log on every healthy run; they say nothing actionable to a Graft user.
BENIGN_WARNINGS = (
    "ArtifactQuery.property_predicate is not supported",
    "Tables initialized inside a tf.function",
    "does not have payload_format custom property",
    "No training configuration found in save file",
)


class ProgressHandler(logging.Handler):
    """Turns TFX's 'Component X is running/finished' log records into one progress line each."""

    def __init__(self, stream=None, quiet: bool = False):
        super().__init__(logging.INFO)
        self.stream = stream or sys.stderr
        self.quiet = quiet
        self._start: dict[str, float] = {}
        self._cached: set[str] = set()
        self._current: str | None = None
        self.durations: dict[str, float] = {}

    def emit(self, record: logging.LogRecord) -> None:
        msg = record.msg
        if record.levelno >= logging.WARNING:
            if any(b in record.getMessage() for b in BENIGN_WARNINGS):
                return
            # absl's own handler is detached while we run (its INFO flood hides the progress); keep its warnings.
            self._print(f"[graft] {record.levelname.lower()}: {record.getMessage()}")
            return
        if not isinstance(msg, str) or not record.args:
            return
        if msg.startswith("Component %s is running"):
            node = str(record.args[0])
            self._current = node
            self._start[node] = time.perf_counter()
            self._print(f"[graft] {node:<28} running ...")
        elif msg.startswith("A cached execution %d is used") and self._current:
            self._cached.add(self._current)
        elif msg.startswith("Component %s is finished"):
            node = str(record.args[0])
            seconds = time.perf_counter() - self._start.get(node, time.perf_counter())
            self.durations[node] = seconds
            how = "cached" if node in self._cached else "done"
            self._print(f"[graft] {node:<28} {how:<6} {seconds:6.1f} s")

    def _print(self, line: str) -> None:
        if not self.quiet:
            print(line, file=self.stream, flush=True)


@contextlib.contextmanager
def _quiet_third_party_logs(verbose: bool) -> Iterator[None]:
    """TF/Beam/TFMA chatter is for debugging, not for users (-v shows it); errors always show."""
    import warnings

    names = ("apache_beam", "tensorflow", "tensorflow_transform", "tfx_bsl", "h5py")
    saved = {n: logging.getLogger(n).level for n in names}
    if verbose:
        yield
        return
    for n in names:
        logging.getLogger(n).setLevel(logging.ERROR)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # TFMA divides 0/0 for classes absent from a slice
        warnings.simplefilter("ignore", DeprecationWarning)
        try:
            yield
        finally:
            for n, level in saved.items():
                logging.getLogger(n).setLevel(level)


def run_pipeline(cfg: GraftConfig, quiet: bool = False, verbose: bool = False):
    """Build the DAG from the config and run it with LocalDagRunner. Returns the run's MLMD summary."""
    from graft.pipeline import dag, runs

    cfg.run_root.mkdir(parents=True, exist_ok=True)
    with run_lock(cfg.run_root):
        from graft.components.backbones import resolve_backbone

        backbone = resolve_backbone(cfg.backbone.handle, cfg.backbone.input_size)
        pipeline = dag.create_pipeline(cfg, backbone)

        from tfx.orchestration.local.local_dag_runner import LocalDagRunner

        absl_logger = logging.getLogger("absl")
        handler = ProgressHandler(quiet=quiet)
        absl_logger.addHandler(handler)
        old_level = absl_logger.level
        old_propagate = absl_logger.propagate
        absl_logger.setLevel(logging.INFO)
        if not verbose:
            # Keep absl's INFO flood out of the user's terminal; our handler still sees the records.
            absl_logger.propagate = False
        # Beam and absl parse sys.argv inside the executors (e.g. `-v` becomes absl's --verbosity): they must see
        # none of graft's own command-line arguments.
        saved_argv = sys.argv
        sys.argv = sys.argv[:1]
        try:
            with _quiet_third_party_logs(verbose):
                LocalDagRunner().run(pipeline)
        finally:
            sys.argv = saved_argv
            absl_logger.removeHandler(handler)
            absl_logger.setLevel(old_level)
            absl_logger.propagate = old_propagate
        return runs.summarize(cfg.metadata_path, "latest", cfg.name)
