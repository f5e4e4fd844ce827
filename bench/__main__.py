"""`python -m bench [NAME ...] [--quick] [--runs=N] [...]`: run every bench/bench_*.py module (or the named ones).

Each module exposes ``main(argv) -> list[dict]`` returning rows {name, ratio, goal, detail}; this driver prints
them as one table (a ratio of None is a skipped row, its reason in the detail), and writes it with the machine's
description to ``bench/results/latest.md`` (the raw measurements behind each row are in
``bench/results/<module>.json``). Options starting with ``-`` go to every module (each ignores what it does not
know): ``--quick`` makes every bench a smoke test (one round, tiny sizes; its ratios are not the goals').
A bench that fails is reported as a failed row and the others still run; the exit code is then 1.
Benchmarks never run inside `make test`.
"""

from __future__ import annotations

import importlib
import pkgutil
import sys
import time
import traceback
from pathlib import Path

import graft  # noqa: F401  (legacy Keras before TensorFlow)

# isort: split
from bench import common


def discover() -> list[str]:
    here = Path(__file__).parent
    return sorted(m.name for m in pkgutil.iter_modules([str(here)]) if m.name.startswith("bench_"))


def format_table(rows: list[dict]) -> str:
    lines = [f"{'benchmark':<52} {'ratio':>8} {'goal':>8} {'met':>4}  detail"]
    for r in rows:
        ratio = r.get("ratio")
        shown = "skipped" if ratio is None else f"{ratio:.3f}"
        lines.append(f"{r['name']:<52} {shown:>8} {r.get('goal', ''):>8} {met(r):>4}  {r.get('detail', '')}")
    return "\n".join(lines)


def met(row: dict) -> str:
    """'yes' / 'NO' / '-' (skipped or no goal) for a goal written as '<= x', '>= x', '< x' or '> x'."""
    ratio, goal = row.get("ratio"), str(row.get("goal") or "")
    if ratio is None or not goal:
        return "-"
    for op in ("<=", ">=", "<", ">"):
        if goal.startswith(op):
            target = float(goal[len(op) :])
            ok = {"<=": ratio <= target, ">=": ratio >= target, "<": ratio < target, ">": ratio > target}[op]
            return "yes" if ok else "NO"
    return "-"


def markdown(rows: list[dict], seconds: float, argv: list[str]) -> str:
    m = common.machine()
    out = [
        f"Measured {time.strftime('%Y-%m-%d %H:%M')} with `python -m bench {' '.join(argv)}` in {seconds / 60:.0f} min "
        f"on {m.get('cpus')} CPU cores, {m.get('memory_gib')} GiB, {'a GPU' if m.get('gpu') else 'no GPU'} "
        f"({m.get('platform')}, Python {m.get('python')}); load average at the end {m.get('load_avg_1_5_15')}.",
        "",
        "| benchmark | ratio | goal | met | detail |",
        "|---|---:|---:|:---:|---|",
    ]
    for r in rows:
        ratio = "skipped" if r.get("ratio") is None else f"{r['ratio']:.3f}"
        detail = str(r.get("detail", "")).replace("|", "/")
        out.append(f"| {r['name']} | {ratio} | {r.get('goal', '')} | {met(r)} | {detail} |")
    return "\n".join(out) + "\n"


def main(argv: list[str]) -> int:
    names = [a for a in argv if not a.startswith("-")] or discover()
    options = [a for a in argv if a.startswith("-")]
    rows: list[dict] = []
    failed = False
    start = time.perf_counter()
    for name in names:
        print(f"== {name}", flush=True)
        t = time.perf_counter()
        try:
            mod = importlib.import_module(f"bench.{name}")
            rows.extend(mod.main(options) or [])
        except Exception as e:  # noqa: BLE001 - one broken bench must not lose the others' hour of numbers
            traceback.print_exc()
            rows.append(
                {"name": name, "ratio": None, "goal": "", "detail": f"FAILED: {type(e).__name__}: {e}"}
            )
            failed = True
        print(f"== {name}: {time.perf_counter() - t:.0f} s", flush=True)
    if rows:
        print()
        print(format_table(rows))
        partial = any(not a.startswith("-") for a in argv)
        path = common.results_dir("--quick" in options) / ("latest-partial.md" if partial else "latest.md")
        path.write_text(markdown(rows, time.perf_counter() - start, argv))
        print(f"\n(table written to {path})")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
