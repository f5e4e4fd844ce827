"""A pytest plugin that reports each test's CPU seconds (this process + the subprocesses it waited for) beside its
wall seconds: ``python -m pytest -p bench.pytest_cputime ...``.

Why: on a shared 2-core machine (other helpers training TensorFlow) a test's wall time says more about the load
than about the test -- a whole `graft run` got 14% of a core here. CPU time barely moves with the load, so it is
the figure to compare before / after a change to the suite; wall time is printed too. Each test is charged its
setup, call and teardown (a module-scoped fixture is charged to the first test that uses it, as --durations does).
Set GRAFT_CPUTIME_JSON=<path> to also write the figures as JSON, after every test (bench/results/test_durations.md
was made so).
"""

from __future__ import annotations

import json
import os
import resource
import time

import pytest

_rows: list[dict] = []


def _cpu() -> float:
    me, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return me.ru_utime + me.ru_stime + kids.ru_utime + kids.ru_stime


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_protocol(item, nextitem):
    wall, cpu = time.perf_counter(), _cpu()
    yield
    _rows.append(
        {"test": item.nodeid, "wall_s": round(time.perf_counter() - wall, 1), "cpu_s": round(_cpu() - cpu, 1)}
    )
    _write()  # after every test: a run stopped part-way keeps the figures it has


def _write() -> None:
    path = os.environ.get("GRAFT_CPUTIME_JSON")
    if path:
        total_cpu, total_wall = sum(r["cpu_s"] for r in _rows), sum(r["wall_s"] for r in _rows)
        with open(path, "w") as f:
            json.dump({"tests": _rows, "total_cpu_s": total_cpu, "total_wall_s": total_wall}, f, indent=1)


def pytest_terminal_summary(terminalreporter):
    if not _rows:
        return
    tr = terminalreporter
    tr.write_sep("=", "CPU seconds per test (this process + waited-for subprocesses), wall seconds beside")
    for r in sorted(_rows, key=lambda r: -r["cpu_s"]):
        tr.write_line(f"{r['cpu_s']:8.1f} cpu {r['wall_s']:8.1f} wall  {r['test']}")
    total_cpu, total_wall = sum(r["cpu_s"] for r in _rows), sum(r["wall_s"] for r in _rows)
    tr.write_line(f"{total_cpu:8.1f} cpu {total_wall:8.1f} wall  TOTAL ({len(_rows)} tests)")
