"""Pipeline overhead against TFX's own penguin example, and the cost of an unchanged rerun, side by side.

Each round, in an order that alternates between rounds (so both sides see the same machine load on average):

* **penguin**: TFX's ``tfx/examples/penguin/penguin_pipeline_local.py`` ``create_pipeline``, as installed and
  unmodified, with its ``__main__``'s arguments except BulkInferrer (off), in a fresh process without
  ``TF_USE_LEGACY_KERAS`` (Keras 3, the example's Keras), LocalDagRunner, Beam in-memory (Graft's default Beam
  args), a fresh root (``bench/penguin_child.py`` says exactly what differs from ``__main__``). Its
  ``penguins_processed.csv`` is not in the wheel: it is rebuilt from the wheel's
  ``tfx/components/testdata/penguin/data/Split-*/*.gz`` (the same 334 scaled rows) once per session.
* **graft cold**: ``graft demo --root <fresh> --json`` in a fresh process (5,000 MNIST PNGs written, the whole DAG,
  the HTML report), whole process wall time; the Trainer's fit seconds come from the run's
  ``training_history.json`` (phase 1 + phase 2 ``fit()``, validation included).
* **graft rerun**: the same command on the same root right after: nothing changed, every component is cached.

Rows (median of the per-round ratios; spreads in the detail):

* ``pipeline overhead: (demo - fit) / penguin``: goal <= 0.5.
* ``cached rerun / cold run (graft demo)``: goal <= 0.15.

The backbone cache (``~/.cache/graft``, built once by ``graft backbone import``) is shared by all runs, like a
user's second project; everything under the run root is fresh. Raw numbers: ``bench/results/bench_pipeline.json``.

    python -m bench bench_pipeline [--runs=3] [--quick] [--keep DIR]

``--quick``: one round, the demo trained 1 + 1 epochs (a smoke test of the bench; its ratios are not the goals').
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
from pathlib import Path

from bench import common

GOAL_OVERHEAD = 0.5
GOAL_RERUN = 0.15
PENGUIN_NAME = "penguin_local_keras"
HERE = Path(__file__).parent


def _parse(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="bench_pipeline")
    p.add_argument(
        "--runs", type=int, default=3, help="rounds (median and spread reported; >= 3 unless --quick)"
    )
    p.add_argument("--quick", action="store_true", help="1 round, demo trained 1+1 epochs (smoke test)")
    p.add_argument("--keep", default=None, help="keep every run's root and logs under this directory")
    args, _ = p.parse_known_args(argv)
    args.runs = 1 if args.quick else max(3, args.runs)
    return args


# ---- the penguin example's data --------------------------------------------------------------------------------
CSV_COLUMNS = ("species", "culmen_length_mm", "culmen_depth_mm", "flipper_length_mm", "body_mass_g")


def write_penguin_csv(data_root: Path) -> Path:
    """<data_root>/labelled/penguins_processed.csv from the tfx wheel's penguin test TFRecords (both splits)."""
    import gzip

    import tfx
    from tensorflow.core.example import example_pb2

    base = Path(tfx.__file__).parent / "components" / "testdata" / "penguin" / "data"
    files = sorted(base.glob("Split-*/*.gz"))
    if not files:
        raise FileNotFoundError(f"no penguin TFRecords under {base}: is tfx 1.16 installed in this venv?")
    rows = []
    for f in files:
        with gzip.open(f, "rb") as fh:
            records = list(_tfrecords(fh.read()))
        for record in records:
            ex = example_pb2.Example.FromString(record)
            feats = ex.features.feature
            row = [str(feats["species"].int64_list.value[0])]
            row += [repr(float(feats[c].float_list.value[0])) for c in CSV_COLUMNS[1:]]
            rows.append(",".join(row))
    out = data_root / "labelled" / "penguins_processed.csv"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(",".join(CSV_COLUMNS) + "\n" + "\n".join(rows) + "\n")
    return out


def _tfrecords(buf: bytes):
    """The records of an uncompressed TFRecord byte string (length, crc, data, crc; CRCs not checked)."""
    import struct

    pos = 0
    while pos < len(buf):
        (length,) = struct.unpack_from("<Q", buf, pos)
        pos += 12
        yield buf[pos : pos + length]
        pos += length + 4


# ---- one side each ---------------------------------------------------------------------------------------------
def run_penguin(work: Path, data_root: Path, beam_args: list[str]) -> dict:
    work.mkdir(parents=True, exist_ok=True)
    run = common.run_child(
        [sys.executable, str(HERE / "penguin_child.py"), str(work), str(data_root), json.dumps(beam_args)],
        env=common.python_env(legacy_keras=False),
        cwd=str(work),
        log_path=work / "penguin.log",
    )
    if run.returncode != 0:
        raise RuntimeError(f"the penguin example failed (exit {run.returncode}):\n{run.stderr_tail}")
    line = next(ln for ln in run.stdout.splitlines() if ln.startswith("PENGUIN_RESULT "))
    result = json.loads(line.split(" ", 1)[1])
    if not result["keras_version"].startswith("3."):
        raise RuntimeError(f"the penguin example ran on Keras {result['keras_version']}, not Keras 3")
    components = _components(work / "tfx" / "metadata" / PENGUIN_NAME / "metadata.db", PENGUIN_NAME)
    return {
        "seconds": run.seconds,
        "max_rss_mb": run.max_rss_mb,
        "components": components,
        **result,
    }


def run_graft(root: Path, extra: list[str], log_name: str) -> dict:
    cmd = [*common.graft_command(), "demo", "--root", str(root), "--json", *extra]
    run = common.run_child(
        cmd,
        env=common.python_env(legacy_keras=True),
        cwd=str(root.parent),
        log_path=root.parent / log_name,
    )
    if run.returncode != 0:
        raise RuntimeError(f"graft demo failed (exit {run.returncode}):\n{run.stderr_tail}")
    # stdout: Keras's epoch lines, then the summary JSON (printed with indent=2, so its "{" is alone on a line).
    text = "\n" + run.stdout
    payload, _ = json.JSONDecoder().raw_decode(text[text.rindex("\n{\n") + 1 :])
    history_path = Path(payload["outputs"]["Trainer.model"]) / "training_history.json"
    fit = None
    states = {e["node_id"]: e["state"] for e in payload["executions"]}
    if states.get("Trainer") != "CACHED":
        history = json.loads(history_path.read_text())
        fit = sum(p["seconds"] for p in history["phases"])
    return {
        "seconds": run.seconds,
        "max_rss_mb": run.max_rss_mb,
        "fit_seconds": fit,
        "run_seconds": payload.get("seconds"),
        # Process start -> the first execution's start in MLMD (imports, config, DAG build, demo data), and the
        # last execution's end -> process exit (run summary, report).
        "before_run_seconds": payload["start_ms"] / 1000 - run.started if payload.get("start_ms") else None,
        "after_run_seconds": run.started + run.seconds - payload["end_ms"] / 1000
        if payload.get("end_ms")
        else None,
        "states": states,
        "components": {e["node_id"]: e["seconds"] for e in payload["executions"]},
        "blessed": payload.get("blessed"),
        "test_accuracy": (payload.get("test_metrics") or {}).get("sparse_categorical_accuracy"),
    }


def _components(metadata_path: Path, name: str) -> dict:
    import graft  # noqa: F401, I001

    from graft.pipeline import runs

    try:
        s = runs.summarize(metadata_path, "latest", name, with_evaluation=False)
    except Exception as e:  # noqa: BLE001 - the breakdown is a detail
        return {"error": str(e)}
    return {e.node_id: e.seconds for e in s.executions}


# ---- the bench ---------------------------------------------------------------------------------------------------
def rows(rounds: list[dict], quick: bool = False) -> list[dict]:
    """The table rows of measured rounds (also re-derivable from bench/results/bench_pipeline.json's rounds)."""
    penguin = [r["penguin"]["seconds"] for r in rounds]
    cold = [r["cold"]["seconds"] for r in rounds]
    fit = [r["cold"]["fit_seconds"] for r in rounds]
    overhead = [c - f for c, f in zip(cold, fit, strict=True)]
    rerun = [r["rerun"]["seconds"] for r in rounds]
    ratio_overhead = [o / p for o, p in zip(overhead, penguin, strict=True)]
    ratio_rerun = [re / c for re, c in zip(rerun, cold, strict=True)]
    not_cached = sorted(
        {
            n
            for r in rounds
            for n, s in r["rerun"]["states"].items()
            if s != "CACHED" and not n.endswith("_resolver")
        }
    )
    tag = " QUICK (1+1 epochs, 1 round)" if quick else ""

    def m(values) -> str:
        values = [v for v in values if v is not None]
        return f"{common.med(values):.1f}" if values else "n/a"

    comps = [r["cold"]["components"] for r in rounds]
    named = ("ImageExampleGen", "StatisticsGen", "Transform", "Evaluator", "TFLiteExport")
    # What the named parts leave of the non-fit time (cold - fit): the other nodes, Beam / MLMD set-up between them.
    rest = [
        r["cold"]["seconds"]
        - sum(c.get(n) or 0 for n in (*named, "Trainer"))
        - r["cold"]["before_run_seconds"]
        - r["cold"]["after_run_seconds"]
        for c, r in zip(comps, rounds, strict=True)
    ]
    where = (
        f"ExampleGen {m(c.get('ImageExampleGen') for c in comps)}, StatisticsGen "
        f"{m(c.get('StatisticsGen') for c in comps)}, Transform {m(c.get('Transform') for c in comps)}, Trainer "
        f"outside fit {m(c.get('Trainer', 0) - r['cold']['fit_seconds'] for c, r in zip(comps, rounds, strict=True))}"
        f", Evaluator {m(c.get('Evaluator') for c in comps)}, TFLiteExport {m(c.get('TFLiteExport') for c in comps)}"
        f", before the DAG {m(r['cold']['before_run_seconds'] for r in rounds)}, after it "
        f"{m(r['cold']['after_run_seconds'] for r in rounds)}, the rest {m(rest)}"
    )
    return [
        {
            "name": "pipeline overhead: (demo - fit) / penguin",
            "ratio": common.med(ratio_overhead),
            "goal": f"<= {GOAL_OVERHEAD}",
            "detail": (
                f"graft demo {common.spread(cold)} s - fit {common.spread(fit)} s = {common.spread(overhead)} s; "
                f"penguin (Keras 3, Tuner on, BulkInferrer off) {common.spread(penguin)} s; per-round ratios "
                f"{', '.join(f'{v:.2f}' for v in ratio_overhead)}; whole processes, cold roots; graft's "
                f"non-fit seconds (medians): {where}{tag}"
            ),
        },
        {
            "name": "cached rerun / cold run (graft demo)",
            "ratio": common.med(ratio_rerun),
            "goal": f"<= {GOAL_RERUN}",
            "detail": (
                f"rerun {common.spread(rerun)} s vs cold {common.spread(cold)} s; per-round ratios "
                f"{', '.join(f'{v:.3f}' for v in ratio_rerun)}; not cached on rerun: "
                f"{', '.join(not_cached) or 'none'} (resolvers aside){tag}"
            ),
        },
    ]


def main(argv: list[str]) -> list[dict]:
    args = _parse(argv)
    import graft  # noqa: F401, I001

    from graft.pipeline.config import GraftConfig

    beam_args = GraftConfig().beam.pipeline_args()
    extra = ["--set", "train.phase1_epochs=1", "--set", "train.phase2_epochs=1"] if args.quick else []
    base = Path(args.keep) if args.keep else Path(tempfile.mkdtemp(prefix="graft-bench-pipeline-"))
    base.mkdir(parents=True, exist_ok=True)
    data_root = base / "penguin_data"
    write_penguin_csv(data_root)
    rounds = []
    try:
        for r in range(args.runs):
            rnd: dict = {}
            order = ("penguin", "graft") if r % 2 == 0 else ("graft", "penguin")
            for side in order:
                where = base / f"round{r}-{side}"
                if side == "penguin":
                    rnd["penguin"] = run_penguin(where, data_root, beam_args)
                    print(f"  round {r}: penguin {rnd['penguin']['seconds']:.1f} s", flush=True)
                else:
                    root = where / "root"
                    root.parent.mkdir(parents=True, exist_ok=True)
                    rnd["cold"] = run_graft(root, extra, "cold.log")
                    rnd["rerun"] = run_graft(root, extra, "rerun.log")
                    cached = [n for n, s in rnd["rerun"]["states"].items() if s == "CACHED"]
                    print(
                        f"  round {r}: graft demo cold {rnd['cold']['seconds']:.1f} s "
                        f"(fit {rnd['cold']['fit_seconds']:.1f} s), rerun {rnd['rerun']['seconds']:.1f} s "
                        f"({len(cached)}/{len(rnd['rerun']['states'])} cached)",
                        flush=True,
                    )
                if not args.keep:
                    shutil.rmtree(where, ignore_errors=True)
            rounds.append(rnd)
    finally:
        if not args.keep:
            shutil.rmtree(base, ignore_errors=True)

    common.save_results(
        "bench_pipeline", {"quick": args.quick, "beam_args": beam_args, "rounds": rounds}, quick=args.quick
    )
    return rows(rounds, args.quick)


if __name__ == "__main__":
    for row in main(sys.argv[1:]):
        print(row)
