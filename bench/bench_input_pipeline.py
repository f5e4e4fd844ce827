"""Trainer input pipeline and per-process start-up cost, measured side by side.

Rows:

* ``input_fn parallel vs serial``: steady-state images/s of ``trainer.input_fn`` (parallel interleave over the
  gzip shards, shuffle, parallel parse + decode, prefetch) over the same reading built serially (one file after the
  other, no shuffle, map and batch without parallelism or prefetch). Goal >= 1: on 2 shared cores parallelism has
  little to win (the work is gunzip + memcpy), so the goal is that shuffling and the parallel machinery cost
  nothing; with more cores the parallel stages scale and the serial one does not.
* ``input_fn vs train step (<backbone>)``: images/s the input pipeline delivers over images/s one phase-1 train step
  of the real classifier consumes (the offline ImageNet MobileNet V1 at 224, batch 32) on this machine. Goal >= 1:
  the input does not starve the model. Both are timed alternately in the same process.
* ``fit() steps/s: input_fn / batches in memory``: the Trainer's own loop (``fit`` of the demo's classifier, offline
  ImageNet MobileNet V1 at 128, batch 32, phase 1: the cheapest step, so the one most sensitive to a slow input)
  fed by the production ``input_fn`` (gzip shards, shuffle, parse, decode) against the same batches already decoded
  and held in memory (taken from that same ``input_fn``, so the same images and shapes), one epoch (``--fit-images``
  2,048 = 64 steps) per ``fit()`` as the Trainer runs it: a fresh pass over the split, shuffle buffer filled anew.
  ABBA blocks of fit() calls; median of the per-block ratios. Goal >= 0.95: the input pipeline costs the Trainer at
  most 5 % on 2 shared cores, where decoding competes with the model. (Fits of 15 steps gave 0.72: a fresh
  iterator's start-up -- interleave, shuffle-buffer fill -- is a fixed cost per epoch, small only for real epochs.)
* ``first fit(): AutoGraph on tf_keras vs skipped``: seconds of the first ``fit()`` of the classifier in a fresh
  process without and with ``trainer.disable_autograph_for_tf_keras()`` (each in its own subprocess, alternating);
  the ratio is the median without / the median with. Goal >= 3.

The data are real photos (scikit-image's chelsea, coffee, astronaut, rocket), randomly cropped and resized to
224 x 224, written as transformed examples (serialize_tensor of uint8, gzip TFRecords in 4 shards), as Transform
writes them.

    python -m bench bench_input_pipeline [--images=512] [--runs=3] [--fit-images=2048] [--skip-autograph] [--quick]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

import graft  # noqa: F401  (legacy Keras before TensorFlow)

SIZE = 224
BATCH = 32


def _parse(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="bench_input_pipeline")
    p.add_argument("--images", type=int, default=512)
    p.add_argument("--runs", type=int, default=3, help="timed runs per side (median reported)")
    p.add_argument("--skip-autograph", action="store_true", help="skip the first-fit subprocess row")
    p.add_argument(
        "--fit-images", type=int, default=2048, help="images in the one-epoch fit() row (input_fn vs memory)"
    )
    p.add_argument("--quick", action="store_true")
    args, _ = p.parse_known_args(argv)
    if args.quick:
        args.images, args.runs, args.fit_images = 128, 1, 256
    args.runs = max(1, args.runs)
    return args


def _write_shards(out_dir: str, n: int, shards: int = 4, size: int = SIZE) -> tuple[str, dict]:
    import numpy as np
    import skimage.data
    import tensorflow as tf

    from graft.components import features

    photos = [skimage.data.chelsea(), skimage.data.coffee(), skimage.data.astronaut(), skimage.data.rocket()]
    rng = np.random.default_rng(0)
    options = tf.io.TFRecordOptions(compression_type="GZIP")
    writers = [tf.io.TFRecordWriter(os.path.join(out_dir, f"part-{s}.gz"), options) for s in range(shards)]
    for i in range(n):
        photo = photos[i % len(photos)]
        h, w = photo.shape[:2]
        side = int(rng.integers(min(h, w) // 2, min(h, w)))
        y, x = int(rng.integers(0, h - side + 1)), int(rng.integers(0, w - side + 1))
        crop = tf.image.resize(photo[y : y + side, x : x + side], [size, size], antialias=True)
        img = features.encode_transformed_image(tf.clip_by_value(tf.round(crop), 0, 255)).numpy()
        ex = tf.train.Example(
            features=tf.train.Features(
                feature={
                    features.TRANSFORMED_IMAGE_KEY: tf.train.Feature(
                        bytes_list=tf.train.BytesList(value=[img])
                    ),
                    features.TRANSFORMED_LABEL_KEY: tf.train.Feature(
                        int64_list=tf.train.Int64List(value=[i % 4])
                    ),
                }
            )
        )
        writers[i % shards].write(ex.SerializeToString())
    for w in writers:
        w.close()
    spec = {
        features.TRANSFORMED_IMAGE_KEY: tf.io.FixedLenFeature([], tf.string),
        features.TRANSFORMED_LABEL_KEY: tf.io.FixedLenFeature([], tf.int64),
    }
    return os.path.join(out_dir, "*.gz"), spec


def _serial_dataset(pattern: str, spec: dict):
    import tensorflow as tf

    from graft.components import features

    files = sorted(tf.io.gfile.glob(pattern))

    def parse(record):
        parsed = tf.io.parse_single_example(record, spec)
        image = features.decode_transformed_image(parsed[features.TRANSFORMED_IMAGE_KEY], SIZE, SIZE)
        return image, parsed[features.TRANSFORMED_LABEL_KEY]

    return tf.data.TFRecordDataset(files, compression_type="GZIP").map(parse).batch(BATCH)


def _images_per_s(ds, batches: int) -> float:
    """Steady state: the first batch (tracing, shuffle-buffer fill) is not timed."""
    it = iter(ds.repeat())
    next(it)
    start = time.perf_counter()
    n = 0
    for _ in range(batches):
        images, _ = next(it)
        n += int(images.shape[0])
    return n / (time.perf_counter() - start)


def _first_fit_seconds(no_autograph: bool) -> float:
    """A fresh process: build the classifier on the tiny offline backbone, time its first fit()."""
    code = f"""
import json, time
import graft
import numpy as np
import tensorflow as tf
from graft.components import backbones, model as model_lib, trainer as trainer_lib
from graft.pipeline.config import GraftConfig
if {no_autograph!r}:
    trainer_lib.disable_autograph_for_tf_keras()
info = backbones.resolve_backbone("tiny", 32)
cfg = GraftConfig().train
model = model_lib.build_classifier(info, 4, cfg)
model_lib.compile_for_phase(model, 1, 1e-3, 4, 0.0)
x = np.random.default_rng(0).integers(0, 256, (64, 32, 32, 3), dtype=np.uint8)
ds = tf.data.Dataset.from_tensor_slices((x, np.arange(64) % 4)).batch(16)
t = time.perf_counter()
model.fit(ds, validation_data=ds, epochs=1, verbose=0)
print(json.dumps({{"seconds": time.perf_counter() - t}}))
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])["seconds"]


def _fit_seconds(model, ds) -> float:
    start = time.perf_counter()
    model.fit(ds, epochs=1, verbose=0)
    return time.perf_counter() - start


def _fit_row(tmp: str, args) -> dict:
    """One epoch of fit() through the production input_fn vs the same batches held in memory (the demo's model)."""
    import gc

    import numpy as np
    import tensorflow as tf

    from graft.components import backbones
    from graft.components import model as model_lib
    from graft.components import trainer as trainer_lib
    from graft.pipeline import demo

    size = demo.DEMO_SIZE
    out = os.path.join(tmp, f"fit{size}")
    os.makedirs(out, exist_ok=True)
    pattern, spec = _write_shards(out, args.fit_images, size=size)
    train_cfg = demo.demo_config(root=tmp).train
    batch = train_cfg.batch_size

    def production():
        # What the Trainer builds for a train epoch (without steps_per_epoch): a fresh pass over the split.
        return trainer_lib.input_fn(pattern, spec, batch, size, size, 4, shuffle=True, seed=1)

    held = list(production().as_numpy_iterator())
    steps = len(held)
    x = np.stack([b[0] for b in held if len(b[0]) == batch])
    y = np.stack([b[1] for b in held if len(b[1]) == batch])
    in_memory = tf.data.Dataset.from_tensor_slices((x, y))  # one element = one batch, already decoded

    trainer_lib.disable_autograph_for_tf_keras()
    tf.keras.utils.set_random_seed(train_cfg.seed)
    info = backbones.resolve_backbone(demo.DEMO_BACKBONE, size)
    model = model_lib.build_classifier(info, 4, train_cfg)
    model_lib.compile_for_phase(model, 1, train_cfg.phase1_learning_rate, 4, train_cfg.label_smoothing)
    _fit_seconds(model, in_memory.take(2))  # trace the train function once
    _fit_seconds(model, production().take(2))

    # ABBA blocks of one-epoch fit() calls (input_fn, memory, memory, input_fn; then the mirror), each on a fresh
    # dataset with the previous one collected: a shared machine's bursts and any order effect fall on both sides.
    # The ratio per block is the in-memory side's time over the input_fn side's (= input_fn steps/s / memory's).
    def timed(name: str) -> float:
        gc.collect()
        return _fit_seconds(model, production() if name == "prod" else in_memory)

    prod, mem, ratios = [], [], []
    for r in range(1 if args.quick else max(5, args.runs)):
        order = ("prod", "mem", "mem", "prod") if r % 2 == 0 else ("mem", "prod", "prod", "mem")
        spent = {"prod": 0.0, "mem": 0.0}
        for name in order:
            spent[name] += timed(name)
        prod.append(2 * steps / spent["prod"])
        mem.append(2 * len(x) / spent["mem"])
        ratios.append((spent["mem"] / len(x)) / (spent["prod"] / steps))
    return {
        "name": "fit() steps/s: input_fn / batches in memory",
        "ratio": statistics.median(ratios),
        "goal": ">= 0.95",
        "detail": (
            f"{statistics.median(prod):.2f} vs {statistics.median(mem):.2f} steps/s (phase 1, {info.handle} {size}px, "
            f"batch {batch}, one-epoch fit() of {steps} steps ({args.fit_images} images), {len(ratios)} ABBA "
            f"blocks; per-block ratios {', '.join(f'{v:.3f}' for v in ratios)})"
        ),
    }


def main(argv: list[str]) -> list[dict]:
    args = _parse(argv)
    from graft.components import backbones
    from graft.components import model as model_lib
    from graft.components import trainer as trainer_lib
    from graft.pipeline.config import GraftConfig

    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        pattern, spec = _write_shards(tmp, args.images)

        def parallel():
            return trainer_lib.input_fn(pattern, spec, BATCH, SIZE, SIZE, 4, shuffle=True, seed=1)

        batches = 2 * args.images // BATCH
        par, ser = [], []
        for r in range(args.runs):
            for name in ("par", "ser") if r % 2 == 0 else ("ser", "par"):
                if name == "par":
                    par.append(_images_per_s(parallel(), batches))
                else:
                    ser.append(_images_per_s(_serial_dataset(pattern, spec), batches))
        p, s = statistics.median(par), statistics.median(ser)
        rows.append(
            {
                "name": "input_fn parallel vs serial",
                "ratio": p / s,
                "goal": ">= 1",
                "detail": f"{p:.0f} vs {s:.0f} images/s, {SIZE}px uint8, gzip, {os.cpu_count()} cores",
            }
        )

        trainer_lib.disable_autograph_for_tf_keras()
        info = backbones.resolve_backbone("mobilenet_v1_imagenet", SIZE)
        cfg = GraftConfig().train
        model = model_lib.build_classifier(info, 4, cfg)
        model_lib.compile_for_phase(model, 1, 1e-3, 4, 0.0)
        batch = next(iter(parallel()))
        model.train_on_batch(*batch)  # trace
        step = []
        for _ in range(args.runs):
            t = time.perf_counter()
            for _ in range(3):
                model.train_on_batch(*batch)
            step.append(3 * BATCH / (time.perf_counter() - t))
        m = statistics.median(step)
        rows.append(
            {
                "name": f"input_fn vs train step ({info.handle} {SIZE})",
                "ratio": p / m,
                "goal": ">= 1",
                "detail": f"input {p:.0f} vs phase-1 step {m:.1f} images/s (CPU; no GPU here)",
            }
        )

        rows.append(_fit_row(tmp, args))

    if not args.skip_autograph:
        base, fixed = [], []
        for r in range(args.runs):
            for no_ag in (False, True) if r % 2 == 0 else (True, False):
                (fixed if no_ag else base).append(_first_fit_seconds(no_ag))
        b, f = statistics.median(base), statistics.median(fixed)
        rows.append(
            {
                "name": "first fit(): AutoGraph on tf_keras vs skipped",
                "ratio": b / f,
                "goal": ">= 3",
                "detail": f"{b:.1f} s vs {f:.1f} s (median of {args.runs}, fresh processes)",
            }
        )
    return rows


if __name__ == "__main__":
    for row in main(sys.argv[1:]):
        print(row)
