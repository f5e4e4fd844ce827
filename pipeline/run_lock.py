"""The run lock: one ``graft run`` (or local run of a compiled spec) per run root at a time.

Its own module because both the local runner (takes it) and recovery (reads whether someone holds it) need it, and
neither may import the other. An flock: released by the kernel when the process ends, even on SIGKILL, so a crash
never leaves a stale lock; the file holds who took it, for the message of the run that finds it taken.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import os
import socket
import time
from collections.abc import Iterator
from pathlib import Path

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
