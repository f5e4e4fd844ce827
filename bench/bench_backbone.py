"""Forward throughput of the imported Hub module vs tf.keras.applications.MobileNet with the same weights.

Both sides run in one process, side by side, on the same batch (32 random images): the Hub form is
``hub.KerasLayer(<graft's mobilenet_v1_imagenet module>)`` in a tf.keras model taking [0, 1] inputs; the reference
is ``tf.keras.applications.MobileNet(alpha=1.0)`` carrying the same ImageNet weights behind a Rescaling layer to
[-1, 1] (the conversion the module does inside), so both compute the same function (checked). After warm-up, each
run times ``--iters`` batches per side through a ``tf.function``, interleaved batch by batch (the order alternates)
so that both sides see the same load on a shared machine; the ratio is the median over runs of hub images/s /
keras images/s, goal >= 0.95 ("the Hub form costs nothing").

    python -m bench bench_backbone [--runs=5] [--iters=8] [--sizes=224,128]
"""

from __future__ import annotations

import argparse
import statistics
import time

import graft  # noqa: F401  (legacy Keras before TensorFlow)

BATCH = 32
GOAL = 0.95


def _parse(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="bench_backbone")
    p.add_argument("--runs", type=int, default=5, help="timed runs per side (median reported; >= 3)")
    p.add_argument("--iters", type=int, default=8, help="forward passes of batch 32 per run")
    p.add_argument("--sizes", default="224,128", help="input sizes (of 224, 192, 160, 128)")
    args, _ = p.parse_known_args(argv)
    args.runs = max(3, args.runs)
    return args


def _timed(fn, x) -> float:
    start = time.perf_counter()
    fn(x).numpy()  # .numpy() waits for the result
    return time.perf_counter() - start


def _paired_run(fns: dict, x, iters: int, first: str) -> dict[str, float]:
    """One run: ``iters`` rounds of one batch per side, alternating, so both sides see the same machine load."""
    spent = dict.fromkeys(fns, 0.0)
    order = [first, *[n for n in fns if n != first]]
    for i in range(iters):
        for name in order if i % 2 == 0 else order[::-1]:
            spent[name] += _timed(fns[name], x)
    return {name: iters * BATCH / t for name, t in spent.items()}


def bench_size(size: int, runs: int, iters: int) -> dict:
    import numpy as np
    import tensorflow as tf
    import tensorflow_hub as hub

    from graft.components import backbones
    from graft.components import mobilenet_v1 as mv1

    backbones.ensure_cache_env()
    module_dir, _ = backbones.import_mobilenet_v1(size)  # no-op when already built

    inputs = tf.keras.Input((size, size, 3))
    hub_model = tf.keras.Model(inputs, hub.KerasLayer(str(module_dir))(inputs))
    keras_mobilenet = mv1.build_keras_mobilenet(size)
    inputs_k = tf.keras.Input((size, size, 3))
    keras_model = tf.keras.Model(
        inputs_k, keras_mobilenet(tf.keras.layers.Rescaling(2.0, offset=-1.0)(inputs_k), training=False)
    )
    fns = {
        "hub": tf.function(lambda x: hub_model(x, training=False)),
        "keras": tf.function(lambda x: keras_model(x, training=False)),
    }
    x = tf.random.stateless_uniform([BATCH, size, size, 3], seed=[1, 2])
    max_diff = float(np.abs(fns["hub"](x).numpy() - fns["keras"](x).numpy()).max())
    for fn in fns.values():  # warm-up: tracing and first-run allocations
        for _ in range(2):
            fn(x).numpy()
    ips: dict[str, list[float]] = {"hub": [], "keras": []}
    ratios = []
    for r in range(runs):
        run = _paired_run(fns, x, iters, first="hub" if r % 2 == 0 else "keras")
        for name, v in run.items():
            ips[name].append(v)
        ratios.append(run["hub"] / run["keras"])
    hub_ips = statistics.median(ips["hub"])
    keras_ips = statistics.median(ips["keras"])
    return {
        "name": f"backbone forward {size}x{size} b{BATCH}: hub / keras",
        # Median of the per-run ratios: each run's two sides were interleaved batch by batch.
        "ratio": statistics.median(ratios),
        "goal": f">= {GOAL}",
        "detail": (
            f"hub.KerasLayer {hub_ips:.1f} img/s vs keras.applications.MobileNet {keras_ips:.1f} img/s "
            f"(medians of {runs} runs x {iters} interleaved batches; per-run ratios "
            f"{', '.join(f'{v:.3f}' for v in ratios)}); max |diff| {max_diff:.2e}"
        ),
    }


def main(argv: list[str]) -> list[dict]:
    args = _parse(argv)
    rows = []
    for size in (int(s) for s in args.sizes.split(",") if s.strip()):
        row = bench_size(size, args.runs, args.iters)
        print(f"{row['name']}: ratio {row['ratio']:.3f} ({row['detail']})", flush=True)
        rows.append(row)
    return rows


if __name__ == "__main__":
    import sys

    main(sys.argv[1:])
