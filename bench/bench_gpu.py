"""GPU: training steps/s with and without mixed precision, and on the GPU against the CPU.

Skipped, with the reason in the table, when TensorFlow sees no GPU (the case on the 2-core development machines).

With a GPU: the demo's classifier (offline ImageNet MobileNet V1, ``--size`` 224 by default) in phase 2 (the deepest
half of the backbone trainable: the heavier, fine-tuning step), batch ``--batch`` (64) of real photos (scikit-image's,
random crops) held in memory, ``train_on_batch`` steps timed after warm-up, the sides interleaved run by run:

* ``mixed_float16 / float32``: ``trainer.precision_policy(True)`` vs ``(False)``, both on the GPU. Graft's own
  layers follow the policy; a TF Hub module computes in the dtype it was saved with (float32; TF32 on Ampere and
  newer), so little gain is expected unless the backbone itself is exported in float16 -- the row says what it is.
* ``GPU / CPU``: float32 steps/s on ``/GPU:0`` over the same steps on ``/CPU:0``.

    python -m bench bench_gpu [--runs=3] [--steps=20] [--size=224] [--batch=64]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time

import graft  # noqa: F401  (legacy Keras before TensorFlow)

# isort: split
from bench import common


def _parse(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="bench_gpu")
    p.add_argument("--runs", type=int, default=3)
    p.add_argument("--steps", type=int, default=20)
    p.add_argument("--size", type=int, default=224)
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--quick", action="store_true")
    args, _ = p.parse_known_args(argv)
    if args.quick:
        args.runs, args.steps = 1, 5
    return args


def _batch(size: int, batch: int):
    import numpy as np
    import skimage.data
    import tensorflow as tf

    photos = [skimage.data.chelsea(), skimage.data.coffee(), skimage.data.astronaut(), skimage.data.rocket()]
    rng = np.random.default_rng(0)
    images = []
    for i in range(batch):
        p = photos[i % len(photos)]
        h, w = p.shape[:2]
        c = int(rng.integers(min(h, w) // 2, min(h, w) + 1))
        y, x = int(rng.integers(0, h - c + 1)), int(rng.integers(0, w - c + 1))
        images.append(tf.cast(tf.round(tf.image.resize(p[y : y + c, x : x + c], [size, size])), tf.uint8))
    return tf.stack(images), tf.constant(np.arange(batch) % 4, tf.int64)


def _model(device: str, mixed: bool, size: int):
    import tensorflow as tf

    from graft.components import backbones
    from graft.components import model as model_lib
    from graft.components import trainer as trainer_lib
    from graft.pipeline.config import GraftConfig

    cfg = GraftConfig().train
    cfg.fine_tune_fraction = 0.5
    info = backbones.resolve_backbone("mobilenet_v1_imagenet", size)
    with tf.device(device), trainer_lib.precision_policy(mixed):
        model = model_lib.build_classifier(info, 4, cfg)
        model_lib.compile_for_phase(model, 2, 1e-4, 4, 0.0)
    return model


def _steps_per_s(model, device: str, x, y, steps: int) -> float:
    import tensorflow as tf

    with tf.device(device):
        t = time.perf_counter()
        for _ in range(steps):
            loss = model.train_on_batch(x, y)
        float(loss)  # wait for the last step
        return steps / (time.perf_counter() - t)


def main(argv: list[str]) -> list[dict]:
    args = _parse(argv)
    import tensorflow as tf

    gpus = tf.config.list_physical_devices("GPU")
    if not gpus:
        reason = (
            f"skipped: no GPU visible to TensorFlow on this machine ({os.cpu_count()} CPU cores); "
            "run `python -m bench bench_gpu` where one is"
        )
        print(f"  {reason}")
        return [
            {
                "name": "GPU train steps/s: mixed_float16 / float32",
                "ratio": None,
                "goal": ">= 1",
                "detail": reason,
            },
            {"name": "GPU train steps/s: GPU / CPU", "ratio": None, "goal": "> 1", "detail": reason},
        ]
    from graft.components import trainer as trainer_lib

    trainer_lib.disable_autograph_for_tf_keras()
    x, y = _batch(args.size, args.batch)
    sides = {
        "gpu_mixed": _model("/GPU:0", True, args.size),
        "gpu_fp32": _model("/GPU:0", False, args.size),
        "cpu_fp32": _model("/CPU:0", False, args.size),
    }
    devices = {"gpu_mixed": "/GPU:0", "gpu_fp32": "/GPU:0", "cpu_fp32": "/CPU:0"}
    for name, model in sides.items():  # warm-up: tracing, autotuning
        _steps_per_s(model, devices[name], x, y, 2)
    rates: dict[str, list[float]] = {n: [] for n in sides}
    cpu_steps = max(2, args.steps // 10)
    for r in range(args.runs):
        for name in list(sides) if r % 2 == 0 else list(sides)[::-1]:
            steps = cpu_steps if name == "cpu_fp32" else args.steps
            rates[name].append(_steps_per_s(sides[name], devices[name], x, y, steps))
    mp = [a / b for a, b in zip(rates["gpu_mixed"], rates["gpu_fp32"], strict=True)]
    gc = [a / b for a, b in zip(rates["gpu_fp32"], rates["cpu_fp32"], strict=True)]
    name = tf.config.experimental.get_device_details(gpus[0]).get("device_name", "GPU")
    common.save_results(
        "bench_gpu", {"device": name, "args": vars(args), "steps_per_s": rates}, quick=args.quick
    )
    what = f"phase 2, MobileNet V1 {args.size}px, batch {args.batch}, {name}"
    return [
        {
            "name": "GPU train steps/s: mixed_float16 / float32",
            "ratio": statistics.median(mp),
            "goal": ">= 1",
            "detail": (
                f"{common.spread(rates['gpu_mixed'], '{:.2f}')} vs {common.spread(rates['gpu_fp32'], '{:.2f}')} "
                f"steps/s ({what}; the Hub backbone stays float32)"
            ),
        },
        {
            "name": "GPU train steps/s: GPU / CPU",
            "ratio": statistics.median(gc),
            "goal": "> 1",
            "detail": (
                f"{common.spread(rates['gpu_fp32'], '{:.2f}')} vs {common.spread(rates['cpu_fp32'], '{:.3f}')} "
                f"steps/s ({what}, float32; CPU: {os.cpu_count()} cores)"
            ),
        },
    ]


if __name__ == "__main__":
    for row in main(sys.argv[1:]):
        print(row)
