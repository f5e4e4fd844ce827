"""`python -m bench [NAME ...]`: run every bench/bench_*.py module (or the named ones) in order.

Each module exposes ``main(argv) -> list[dict]`` returning rows {name, ratio, goal, detail}; this driver prints
them as one table. Benchmarks never run inside `make test`.
"""

from __future__ import annotations

import importlib
import pkgutil
import sys
from pathlib import Path

import graft  # noqa: F401  (legacy Keras before TensorFlow)


def discover() -> list[str]:
    here = Path(__file__).parent
    return sorted(m.name for m in pkgutil.iter_modules([str(here)]) if m.name.startswith("bench_"))


def main(argv: list[str]) -> int:
    names = [a for a in argv if not a.startswith("-")] or discover()
    rows: list[dict] = []
    for name in names:
        mod = importlib.import_module(f"bench.{name}")
        print(f"== {name}", flush=True)
        rows.extend(mod.main([a for a in argv if a.startswith("-")]) or [])
    if rows:
        print()
        print(f"{'benchmark':<48} {'ratio':>8} {'goal':>10}  detail")
        for r in rows:
            print(f"{r['name']:<48} {r['ratio']:>8.3f} {r.get('goal', ''):>10}  {r.get('detail', '')}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
