"""`python -m bench [NAME ...] [--quick] [--runs=N] [...]`: run every bench/bench_*.py module (or the named ones).

Each module exposes ``main(argv) -> list[dict]`` returning rows {name, ratio, goal, detail}; this driver prints
them as one table (a ratio of None is a skipped row, its reason in the detail), and keeps the latest result of
each bench, with when, how, at which commit and on what machine it was measured, in ``bench/results/table.json``
and ``bench/results/latest.md`` (a session of some benches updates those; the raw measurements behind each row are
in ``bench/results/<module>.json``), and rewrites the README's table from them (``python -m bench --readme`` does
only that). Options starting with ``-`` go to every module (each ignores what it does not know): ``--quick`` makes
every bench a smoke test (one round, tiny sizes; its ratios are not the goals', and it touches neither the
committed results nor the README). A bench that fails is reported as a failed row and the others still run; the
exit code is then 1. Benchmarks never run inside `make test`.
"""

from __future__ import annotations

import importlib
import json
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


TABLE = "table.json"


README = Path(__file__).resolve().parents[1] / "README.md"
README_BEGIN = (
    "<!-- bench table: generated from bench/results/table.json by `python -m bench --readme`; do not edit -->"
)
README_END = "<!-- end of the bench table -->"


def table_lines(table: dict) -> list[str]:
    """The table of the latest result of every bench (header, rows, then when / how / at which commit each ran):
    the same lines in ``latest.md`` and in the README's Benchmarks section."""
    out = ["| benchmark | ratio | goal | met | detail |", "|---|---:|---:|:---:|---|"]
    sessions = []
    for name in sorted(table):
        entry = table[name]
        for r in entry["rows"]:
            ratio = "skipped" if r.get("ratio") is None else f"{r['ratio']:.3f}"
            detail = str(r.get("detail", "")).replace("|", "/")
            out.append(f"| {r['name']} | {ratio} | {r.get('goal', '')} | {met(r)} | {detail} |")
        sessions.append(
            f"- `{name}`: {entry['measured']} at commit {entry.get('commit', 'not recorded')}, "
            f"`python -m bench {entry['argv']}`, {entry['seconds'] / 60:.0f} min; {entry['machine']}"
        )
    return out + ["", "Measured:", "", *sessions]


def markdown(table: dict) -> str:
    """The latest result of every bench (one section of rows per bench, each with when and how it was measured)."""
    head = [
        "Latest result of each bench (`python -m bench` updates the benches it runs). Ratios are medians of the "
        "per-round ratios of sides measured side by side in one session; spreads in the detail.",
        "",
    ]
    return "\n".join(head + table_lines(table)) + "\n"


def sync_readme(table: dict, readme: Path = README) -> None:
    """Rewrite the README's table (between its two marker lines) from ``table``: a figure there is always one of
    bench/results, never a hand copy."""
    text = readme.read_text()
    if README_BEGIN not in text or README_END not in text:
        raise SystemExit(
            f"{readme}: the bench table markers are missing ({README_BEGIN!r} ... {README_END!r})"
        )
    before, rest = text.split(README_BEGIN, 1)
    _, after = rest.split(README_END, 1)
    readme.write_text(
        before + README_BEGIN + "\n" + "\n".join(table_lines(table)) + "\n" + README_END + after
    )


def _machine_line() -> str:
    m = common.machine()
    return (
        f"{m.get('cpus')} CPU cores, {m.get('memory_gib')} GiB, {'a GPU' if m.get('gpu') else 'no GPU'}, "
        f"{m.get('platform')}, Python {m.get('python')}; load average after it {m.get('load_avg_1_5_15')}"
    )


def _store(table_path: Path, name: str, entry: dict, readme: bool = False) -> None:
    """Record one bench's entry: read, update and write the table under an exclusive lock, so two bench sessions
    running at once (an hour-long one and a quick one) do not overwrite each other's entries with what they read
    when they started."""
    import fcntl

    with open(table_path.with_suffix(".lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        table = json.loads(table_path.read_text()) if table_path.exists() else {}
        table[name] = entry
        table_path.write_text(json.dumps(table, indent=2, sort_keys=True, default=str) + "\n")
        _publish(table_path, table, readme)


def _publish(table_path: Path, table: dict, readme: bool) -> None:
    """latest.md beside table.json, and the README's table when ``readme``: the two views of the table."""
    (table_path.parent / "latest.md").write_text(markdown(table))
    if readme:
        sync_readme(table)


def main(argv: list[str]) -> int:
    names = [a for a in argv if not a.startswith("-")]
    options = [a for a in argv if a.startswith("-") and a != "--readme"]
    out_dir = common.results_dir("--quick" in options)
    table_path = out_dir / TABLE
    if "--readme" in argv and not names:  # only rewrite latest.md and the README's table from table.json
        _publish(table_path, json.loads(table_path.read_text()), readme=True)
        return 0
    names = names or discover()
    rows: list[dict] = []
    failed = False
    for name in names:
        print(f"== {name}", flush=True)
        t = time.perf_counter()
        try:
            mod = importlib.import_module(f"bench.{name}")
            got = mod.main(options) or []
        except Exception as e:  # noqa: BLE001 - one broken bench must not lose the others' hour of numbers
            traceback.print_exc()
            got = [{"name": name, "ratio": None, "goal": "", "detail": f"FAILED: {type(e).__name__}: {e}"}]
            failed = True
        seconds = time.perf_counter() - t
        print(f"== {name}: {seconds:.0f} s", flush=True)
        rows.extend(got)
        entry = {
            "rows": got,
            "measured": time.strftime("%Y-%m-%d %H:%M"),
            "argv": " ".join([name, *options]),
            "seconds": seconds,
            "machine": _machine_line(),
            "commit": common.git_commit(short=True),
        }
        _store(table_path, name, entry, readme="--quick" not in options)
    if rows:
        print()
        print(format_table(rows))
        print(f"\n(latest result of every bench: {out_dir / 'latest.md'})")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
