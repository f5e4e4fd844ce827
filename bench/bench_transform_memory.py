"""Memory of a whole local `graft run` at 2,000 and 10,000 real-size images (5x the bytes): flat, or not.

The images are generated, seeded: two classes of ~320 px RGB photos-like JPEGs of ~65 KB each (a smooth random
colour field with texture and sensor-like noise, quality 92), written as a class-per-folder tree -- the bytes per
image of a phone photo downscaled, so the input's size in bytes grows 5x between the two sizes. For each size, a
fresh process (``bench/memory_child.py``) runs the whole `graft run` (ExampleGen ... Evaluator, Pusher; the 'tiny'
backbone at 32 px and one phase-1 epoch, so that training is negligible and the data components dominate) on the
in-memory DirectRunner, and reports its OWN peak: ``VmHWM`` read from /proc/self/status by the child itself (not
the parent's poll, not ``ru_maxrss``, which Linux carries over fork + exec from the parent; if it cannot be read
the bench fails), plus ``VmRSS`` sampled every 0.1 s and attributed to each component by MLMD's start/end times.

Row: whole-process peak at the large size / at the small one. Goal <= 1.3 (memory does not grow with the data).
``--graft-src=DIR`` measures another source tree's code, e.g. the commit before a fix
(``git archive COMMIT | tar -x -C DIR; git rev-parse COMMIT > DIR/.commit``): the child imports graft from
``DIR/site`` (built here: graft/ with the card folders linked in, as setuptools' package-dir maps them), and the
commit measured is recorded either way. ``--runs`` repeats the pair (order alternating).

    python -m bench bench_transform_memory [--sizes=2000,10000] [--runs=1] [--quick] [--keep=DIR] [--graft-src=DIR]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

from bench import common

GOAL = 1.3
IMAGE_SIDE = 320
JPEG_QUALITY = 92
CLASSES = ("warm", "cool")
REPO = Path(__file__).resolve().parent.parent
COMPONENTS = ("ImageExampleGen", "StatisticsGen", "Transform", "Trainer", "Evaluator")
# The whole DAG with negligible training: the data components are what is measured.
RUN_SETTINGS = (
    "backbone.input_size=32",
    "train.phase1_epochs=1",
    "train.fine_tune_fraction=0",
    "train.augment.enabled=false",
    "evaluation.min_accuracy=0",
)


def _parse(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="bench_transform_memory")
    p.add_argument("--sizes", default=None, help="small,large image counts (default 2000,10000)")
    p.add_argument("--runs", type=int, default=1, help="repetitions of the pair (median reported)")
    p.add_argument("--quick", action="store_true", help="200 vs 1,000 images (smoke test)")
    p.add_argument("--keep", default=None, help="keep data, roots and logs under this directory")
    p.add_argument(
        "--graft-src", default=None, help="measure the graft of this source tree (see the docstring)"
    )
    p.add_argument("--label", default="", help="a name for this measurement in the results (e.g. before)")
    args, _ = p.parse_known_args(argv)
    if args.sizes:
        args.small, args.large = (int(v) for v in args.sizes.split(","))
    elif args.quick:
        args.small, args.large = 200, 1000
    else:
        args.small, args.large = 2000, 10000
    args.runs = max(1, args.runs)
    return args


# ---- data ----------------------------------------------------------------------------------------------------------
def write_images(dest: Path, n: int, side: int = IMAGE_SIDE, seed: int = 0) -> dict:
    """``n`` JPEGs of ``side`` px, <dest>/<class>/<k>.jpg, alternating classes; deterministic in (seed, k)."""
    import io

    import numpy as np
    from PIL import Image

    marker = dest / ".complete"
    want = f"{n},{side},{seed},{JPEG_QUALITY}"
    if marker.exists() and marker.read_text() == want:
        return json.loads((dest / ".stats.json").read_text())
    shutil.rmtree(dest, ignore_errors=True)
    total = 0
    for k in range(n):
        rng = np.random.default_rng((seed, k))
        cls = k % len(CLASSES)
        coarse = rng.uniform(0, 255, (6, 6, 3)).astype(np.float32)
        coarse[..., 0 if cls == 0 else 2] += 60  # warm vs cool: learnable, not the point
        field = np.asarray(
            Image.fromarray(np.clip(coarse, 0, 255).astype(np.uint8), "RGB").resize(
                (side, side), Image.BICUBIC
            ),
            dtype=np.float32,
        )
        texture = rng.normal(0, 18, (side // 2, side // 2, 3)).repeat(2, 0).repeat(2, 1)
        pixels = field + texture + rng.normal(0, 14, field.shape)
        buf = io.BytesIO()
        Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8), "RGB").save(
            buf, "JPEG", quality=JPEG_QUALITY
        )
        folder = dest / CLASSES[cls]
        folder.mkdir(parents=True, exist_ok=True)
        (folder / f"{k:06d}.jpg").write_bytes(buf.getvalue())
        total += buf.tell()
    stats = {"images": n, "bytes": total, "side": side, "mean_kb": round(total / n / 1000, 1)}
    (dest / ".stats.json").write_text(json.dumps(stats))
    marker.write_text(want)
    return stats


# ---- one whole run in a fresh process --------------------------------------------------------------------------------
def _commit(src: Path) -> str:
    got = common.git_commit(src=src)
    if got != "?":
        return got
    marker = src / ".commit"  # a `git archive` export: write the commit there
    return marker.read_text().strip() if marker.exists() else "unknown"


def _site(src: Path) -> Path:
    """``src/site/graft``: ``src/graft`` plus links to the folders the import names map onto (pyproject.toml)."""
    site = src / "site"
    if not (site / "graft").exists():
        shutil.copytree(src / "graft", site / "graft")
        for sub in ("components", "pipeline", "kubeflow", "schemas"):
            (site / "graft" / sub).symlink_to(src / sub)
    return site


def run_whole(data: Path, work: Path, graft_src: str | None) -> dict:
    work.mkdir(parents=True, exist_ok=True)
    out_json = work / "child.json"
    cmd = [sys.executable, str(Path(__file__).with_name("memory_child.py")), str(out_json), "--"]
    cmd += ["run", "--data", str(data), "--backbone", "tiny", "--root", str(work / "root"), "--no-report"]
    for s in RUN_SETTINGS:
        cmd += ["--set", s]
    env = common.python_env(legacy_keras=True)
    if graft_src:
        env["PYTHONPATH"] = str(_site(Path(graft_src))) + os.pathsep + env.get("PYTHONPATH", "")
    run = common.run_child(cmd, env=env, cwd=str(work), log_path=work / "child.log")
    if run.returncode != 0 or not out_json.exists():
        raise RuntimeError(f"the run failed (exit {run.returncode}):\n{run.stderr_tail}")
    res = json.loads(out_json.read_text())
    if not res.get("peak_rss_mb"):
        raise RuntimeError("the child did not report its own VmHWM")
    return {"seconds": run.seconds, **res}


def main(argv: list[str]) -> list[dict]:
    args = _parse(argv)
    base = Path(args.keep) if args.keep else Path(tempfile.mkdtemp(prefix="graft-bench-memory-"))
    base.mkdir(parents=True, exist_ok=True)
    src = Path(args.graft_src) if args.graft_src else REPO
    commit = _commit(src)
    results: dict[str, list[dict]] = {"small": [], "large": []}
    data_stats = {}
    try:
        for which, n in (("small", args.small), ("large", args.large)):
            t = time.perf_counter()
            data_stats[which] = write_images(base / f"images_{n}", n)
            print(
                f"  {n} images written ({data_stats[which]['bytes'] / 2**20:.0f} MiB, "
                f"{data_stats[which]['mean_kb']} KB each) in {time.perf_counter() - t:.0f} s",
                flush=True,
            )
        for r in range(args.runs):
            for which in ("small", "large") if r % 2 == 0 else ("large", "small"):
                n = args.small if which == "small" else args.large
                work = base / f"run{r}_{n}{('_' + args.label) if args.label else ''}"
                shutil.rmtree(work, ignore_errors=True)
                res = run_whole(base / f"images_{n}", work, args.graft_src)
                results[which].append(res)
                print(
                    f"  run {r}: {n} images: peak {res['peak_rss_mb']:.0f} MiB in {res['seconds']:.0f} s; "
                    + comp_peaks([res]),
                    flush=True,
                )
                if not args.keep:
                    shutil.rmtree(work, ignore_errors=True)
    finally:
        if not args.keep:
            shutil.rmtree(base, ignore_errors=True)
    small = [r["peak_rss_mb"] for r in results["small"]]
    large = [r["peak_rss_mb"] for r in results["large"]]
    ratios = [lg / sm for sm, lg in zip(small, large, strict=True)]
    name = "bench_transform_memory" + (f"_{args.label}" if args.label else "")
    common.save_results(
        name,
        {"commit": commit, "sizes": [args.small, args.large], "data": data_stats, "results": results},
        quick=args.quick,
    )
    secs = {w: common.med([r["seconds"] for r in results[w]]) for w in results}
    return [
        {
            "name": f"graft run peak RSS: {args.large:,} / {args.small:,} images",
            "ratio": common.med(ratios),
            "goal": f"<= {GOAL}",
            "detail": (
                f"commit {commit[:12]}; whole process {common.spread(large, '{:.0f}')} MiB vs "
                f"{common.spread(small, '{:.0f}')} MiB ({IMAGE_SIDE} px JPEG, "
                f"{data_stats['large']['bytes'] / 2**20:.0f} vs {data_stats['small']['bytes'] / 2**20:.0f} MiB on "
                f"disk; {secs['large']:.0f} s vs {secs['small']:.0f} s); per-component peak MiB, large: "
                f"{comp_peaks(results['large'])}; small: {comp_peaks(results['small'])}"
            ),
        }
    ]


def comp_peaks(res: list[dict]) -> str:
    parts = []
    for name in COMPONENTS:
        vals = [r["components"].get(name, {}).get("peak_rss_mb") for r in res]
        vals = [v for v in vals if v is not None]
        if vals:
            parts.append(f"{name} {common.med(vals):.0f}")
    return ", ".join(parts)


if __name__ == "__main__":
    for row in main(sys.argv[1:]):
        print(row)
