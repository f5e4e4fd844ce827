"""Helpers shared by the bench modules: timed child processes with their peak RSS, medians with spread, results.

Nothing here imports TensorFlow or graft (``penguin_child`` and the Keras 3 reference must stay free of both).
"""

from __future__ import annotations

import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

RESULTS_DIR = Path(__file__).parent / "results"


@dataclass
class ChildRun:
    seconds: float  # wall time of the whole process, start to exit
    started: float  # time.time() when it was started
    returncode: int
    max_rss_mb: float  # peak resident set (VmHWM) of the child process itself
    stdout: str
    stderr_tail: str


def run_child(
    cmd: list[str],
    *,
    env: dict | None = None,
    cwd: str | None = None,
    log_path: str | Path | None = None,
    timeout: float | None = None,
) -> ChildRun:
    """Run ``cmd`` to completion; wall time from fork to exit and the peak RSS from ``wait4`` (this child only)."""
    log = open(log_path, "w") if log_path else subprocess.DEVNULL  # noqa: SIM115 - closed below
    out_path = Path(log_path).with_suffix(".stdout") if log_path else None
    out = open(out_path, "w") if out_path else subprocess.PIPE  # noqa: SIM115
    try:
        started = time.time()
        start = time.perf_counter()
        proc = subprocess.Popen(cmd, env=env, cwd=cwd, stdout=out, stderr=log, text=True)
        deadline = None if timeout is None else start + timeout
        hwm_kb = 0
        while True:
            hwm_kb = max(hwm_kb, _vm_hwm_kb(proc.pid))
            pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
            if pid:
                break
            if deadline is not None and time.perf_counter() > deadline:
                proc.kill()
                pid, status, usage = os.wait4(proc.pid, 0)
                break
            time.sleep(0.05)
        seconds = time.perf_counter() - start
        proc.returncode = os.waitstatus_to_exitcode(status)
    finally:
        if log_path:
            log.close()
            out.close()
    stdout = out_path.read_text() if out_path else (proc.stdout.read() if proc.stdout else "")
    tail = ""
    if log_path:
        with open(log_path, errors="replace") as f:
            tail = f.read()[-4000:]
    # Not wait4's ru_maxrss: Linux carries the parent's high-water mark over fork + exec into it, so a child of a
    # big bench process reported the parent's size. VmHWM is the high-water mark of the child's own address space
    # (polled every 50 ms until it exits; a high-water mark, so nothing before the last poll is missed).
    return ChildRun(seconds, started, proc.returncode, (hwm_kb or usage.ru_maxrss) / 1024.0, stdout, tail)


def json_child(cmd: list[str], *, log_path: str | Path, **kwargs) -> dict:
    """Run a child that prints its result as a JSON object on its last ``{`` line: that object plus its seconds,
    return code and peak RSS, or ``error`` (the tail of its stderr) when it printed none."""
    run = run_child(cmd, log_path=log_path, **kwargs)
    out = {"seconds": run.seconds, "returncode": run.returncode, "max_rss_mb": run.max_rss_mb}
    lines = [line for line in run.stdout.splitlines() if line.startswith("{")]
    if lines:
        out.update(json.loads(lines[-1]))
    else:
        out["error"] = run.stderr_tail[-1500:]
    return out


def git_commit(short: bool = False, src: Path | None = None) -> str:
    """The commit of the checkout the benches run from (what a result was measured at), '+uncommitted changes'
    appended when tracked files other than bench/results and README.md differ from it (results and the README
    table written by an earlier bench of the same session are not a code change), or '?'."""
    cwd = str(src or Path(__file__).parent)
    try:
        head = subprocess.run(
            ["git", "-C", cwd, "rev-parse", *(["--short"] if short else []), "HEAD"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        dirty = subprocess.run(
            [
                "git",
                "-C",
                cwd,
                "status",
                "--porcelain",
                "--untracked-files=no",
                "--",
                ":(top)",  # the whole checkout, wherever cwd is (bench/ or a source tree)
                ":(top,exclude)bench/results",
                ":(top,exclude)README.md",  # the driver rewrites its bench table after each bench
            ],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "?"
    return head + ("+uncommitted changes" if dirty else "")


def _vm_hwm_kb(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def python_env(legacy_keras: bool) -> dict:
    """This process's environment for a child Python; without TF_USE_LEGACY_KERAS when ``legacy_keras`` is False."""
    env = dict(os.environ)
    if legacy_keras:
        env["TF_USE_LEGACY_KERAS"] = "1"
    else:
        env.pop("TF_USE_LEGACY_KERAS", None)
    env.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    return env


def graft_command() -> list[str]:
    """The `graft` console script of this venv (or the CLI module through this interpreter)."""
    script = Path(sys.executable).with_name("graft")
    if script.exists():
        return [str(script)]
    return [sys.executable, "-c", "import sys; from graft.cli import main; sys.exit(main())"]


def med(values: list[float]) -> float:
    return statistics.median(values)


def spread(values: list[float], fmt: str = "{:.1f}") -> str:
    """'median (min-max, n=k)' of ``values``."""
    if not values:
        return "n/a"
    if len(values) == 1:
        return f"{fmt.format(values[0])} (n=1)"
    return f"{fmt.format(med(values))} ({fmt.format(min(values))}-{fmt.format(max(values))}, n={len(values)})"


def machine() -> dict:
    """What the numbers were measured on."""
    info = {
        "cpus": os.cpu_count(),
        "platform": platform.platform(),
        "python": platform.python_version(),
    }
    try:
        import psutil

        info["memory_gib"] = round(psutil.virtual_memory().total / 2**30, 1)
        info["load_avg_1_5_15"] = [round(x, 2) for x in os.getloadavg()]
    except Exception:  # noqa: BLE001
        pass
    info["gpu"] = shutil.which("nvidia-smi") is not None
    return info


def results_dir(quick: bool = False) -> Path:
    """bench/results (committed: the latest full session), or bench/results/quick (smoke tests; git-ignored)."""
    d = RESULTS_DIR / "quick" if quick else RESULTS_DIR
    d.mkdir(parents=True, exist_ok=True)
    return d


def save_results(name: str, payload: dict, quick: bool = False) -> Path:
    """<results_dir>/<name>.json (raw measurements behind a table row), with the machine and the time."""
    path = results_dir(quick) / f"{name}.json"
    payload = {
        "measured": time.strftime("%Y-%m-%dT%H:%M:%S"),
        "machine": machine(),
        "commit": git_commit(),
        **payload,
    }
    path.write_text(json.dumps(payload, indent=2, sort_keys=True, default=str) + "\n")
    return path
