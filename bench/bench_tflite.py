"""Edge export (components/edge): per TFLite variant, size vs the SavedModel, accuracy drop, batch-1 CPU latency.

`python -m bench bench_tflite [--data PATH] [--set KEY=VALUE ...] [--runs N] [--quick]`

One real pipeline run (`graft demo` on the embedded digits, or `graft run --data PATH` on e.g. the shared CIFAR
slice, MobileNet V1 ImageNet at 128 px) produces the SavedModel and its TFLite variants; the run's own
``TFLiteExport`` scored every variant on the Evaluator's test split. This bench then measures latency side by side
in one process, interleaved round by round (A B A B ...), on the same decoded test images:

  * the SavedModel's classifier on decoded uint8 tensors (its Keras call, as restored by tf.saved_model.load,
    the same function the TFLite models were converted from, softmax on top) -- the fair peer for a model that
    takes pixels; and, for context only, ``serving_default`` on the encoded files (decode + resize included);
  * each variant in ``tf.lite.Interpreter`` (default threads, XNNPACK delegate as TF 2.16 ships it).

Rows: size ratio (goal int8 <= 0.3 x the float32 SavedModel), accuracy drop (goal <= 0.01), latency ratio
(goal <= 0.7 x the SavedModel's). Wall times on a shared 2-core machine are noisy: the ratios, measured in the same
rounds, are the figures to read.
"""

from __future__ import annotations

import argparse
import itertools
import json
import subprocess
import time
from pathlib import Path

import graft  # noqa: F401  (legacy Keras before TensorFlow)

# isort: split
from bench import common

CIFAR_BACKBONE = "mobilenet_v1_imagenet"
CIFAR_SETTINGS = [
    "backbone.input_size=128",
    "train.fine_tune_fraction=0.0",
    "evaluation.min_accuracy=0.3",
]


def _run_pipeline(args, root: Path) -> dict:
    sets = [s for pair in (args.set or []) for s in ("--set", pair)]
    if args.data:
        name = Path(args.data).name.replace("_", "-")
        cmd = [
            *common.graft_command(),
            "run",
            "--data",
            args.data,
            "--backbone",
            CIFAR_BACKBONE,
            "--root",
            str(root),
            "--set",
            f"name={name}",
        ]
        cmd += [s for pair in CIFAR_SETTINGS for s in ("--set", pair)]
    else:
        cmd = [*common.graft_command(), "demo", "--root", str(root)]
    if args.quick:
        cmd += ["--set", "train.phase1_epochs=1", "--set", "train.phase2_epochs=0"]
    cmd += [*sets, "-q", "--json"]
    child = common.run_child(cmd, env=common.python_env(True), log_path=root / "run.log", timeout=3600)
    if child.returncode != 0:
        raise RuntimeError(f"pipeline run failed ({child.returncode}): {child.stderr_tail[-2000:]}")
    text = child.stdout
    payload = json.loads(text[text.index("{") :])
    payload["seconds"] = child.seconds
    return payload


def _summary(root: Path, payload: dict):
    from graft.pipeline import runs

    name = payload.get("pipeline_name") or payload.get("name")
    mlmd = next(root.glob("*/metadata.sqlite"))
    return runs.summarize(mlmd, payload["run_id"], name or mlmd.parent.name)


def _encoded_test_files(summary, limit: int) -> list[bytes]:
    import glob

    import tensorflow as tf

    uri = summary.outputs.get("ImageExampleGen.examples")
    files = sorted(glob.glob(f"{uri}/Split-test/*"))
    out = []
    for rec in tf.data.TFRecordDataset(files, compression_type="GZIP").take(limit):
        ex = tf.train.Example.FromString(rec.numpy())
        out.append(ex.features.feature["image_bytes"].bytes_list.value[0])
    return out


def measure(summary, runs_per_round: int, rounds: int) -> dict:
    import tensorflow as tf

    from graft.components.edge import component as edge
    from graft.components.edge import convert, evaluate

    export = summary.tflite
    tflite_uri = summary.outputs["TFLiteExport.tflite_models"]
    model_uri = summary.outputs["Trainer.model"]
    saved_model = f"{model_uri}/Format-Serving"
    first = next(iter(export["variants"]))
    interp = evaluate.TFLiteClassifier(str(Path(tflite_uri) / first["file"]))
    _, h, w, _ = interp.input_shape
    images, _ = convert.transformed_images(
        summary.outputs["Transform.transformed_examples"], "test", h, w, 64
    )
    loaded, fn = convert.load_classifier(saved_model, h, w)
    peers = {"saved_model": evaluate.saved_model_predict(fn)}
    serving = tf.saved_model.load(saved_model).signatures["serving_default"]
    encoded = _encoded_test_files(summary, 64)
    files = itertools.cycle(
        encoded
    )  # the encoded files of the same split, one per call (the image is ignored)
    peers["serving_default_bytes"] = lambda _image: serving(image_bytes=tf.constant([next(files)]))
    for r in export["variants"]:
        if r["size_bytes"]:
            peers[r["variant"]] = evaluate.TFLiteClassifier(str(Path(tflite_uri) / r["file"])).predict
    per_round: dict[str, list[float]] = {k: [] for k in peers}
    for _ in range(rounds):
        for name, predict in peers.items():
            per_round[name].append(evaluate.latency_ms(predict, images, runs_per_round))
    sm = per_round["saved_model"]
    return {
        "saved_model_size_bytes": edge.saved_model_size(saved_model),
        "latency_ms": per_round,
        "latency_ratio_per_round": {
            k: [a / b for a, b in zip(v, sm, strict=True)] for k, v in per_round.items() if k != "saved_model"
        },
        "input": [h, w],
        "decoded_images": len(images),
    }


def main(argv: list[str] | None = None) -> list[dict]:
    p = argparse.ArgumentParser(prog="bench_tflite")
    p.add_argument("--data", default=None, help="an image folder tree (e.g. ../shared/data/cifar10-dev)")
    p.add_argument("--set", action="append", help="extra config override for the run")
    p.add_argument("--runs", type=int, default=3, help="latency rounds (each: every model, interleaved)")
    p.add_argument("--root", default=None, help="where the run lives (default: a fresh temp dir)")
    p.add_argument("--quick", action="store_true")
    args, _ = p.parse_known_args(argv)
    import tempfile

    root = Path(args.root or tempfile.mkdtemp(prefix="bench_tflite_"))
    root.mkdir(parents=True, exist_ok=True)
    start = time.time()
    payload = _run_pipeline(args, root)
    summary = _summary(root, payload)
    if not summary.tflite:
        raise RuntimeError(f"the run recorded no TFLite results (TFLiteExport state: {summary.executions})")
    m = measure(summary, runs_per_round=10 if args.quick else 50, rounds=1 if args.quick else args.runs)
    data_name = Path(args.data).name if args.data else "demo (mnist_5k digits)"
    rows = []
    from bench.common import med, spread

    for r in summary.tflite["variants"]:
        v = r["variant"]
        if not r["size_bytes"]:
            rows.append(
                {"name": f"tflite {v} ({data_name})", "ratio": None, "goal": "", "detail": r["reason"]}
            )
            continue
        size_ratio = r["size_bytes"] / m["saved_model_size_bytes"]
        lat_ratio = med(m["latency_ratio_per_round"][v])
        common_detail = (
            f"{r['size_bytes'] / 1e6:.2f} MB vs SavedModel {m['saved_model_size_bytes'] / 1e6:.2f} MB; accuracy "
            f"{r['accuracy']:.4f} vs {r['saved_model_accuracy']:.4f} on {r['examples']} test examples; "
            f"{'pushed' if r['blessed'] else 'refused'}"
        )
        rows.append(
            {
                "name": f"tflite {v} size / SavedModel ({data_name})",
                "ratio": size_ratio,
                "goal": "<= 0.3" if v == "int8" else "",
                "detail": common_detail,
            }
        )
        rows.append(
            {
                "name": f"tflite {v} accuracy drop ({data_name})",
                "ratio": r["drop"],
                "goal": "<= 0.01",
                "detail": f"SavedModel accuracy from the {r['saved_model_accuracy_source']}",
            }
        )
        rows.append(
            {
                "name": f"tflite {v} latency b1 / SavedModel ({data_name})",
                "ratio": lat_ratio,
                "goal": "<= 0.7",
                "detail": (
                    f"{spread(m['latency_ms'][v], '{:.2f}')} ms vs SavedModel on decoded tensors "
                    f"{spread(m['latency_ms']['saved_model'], '{:.2f}')} ms (serving_default on files "
                    f"{spread(m['latency_ms']['serving_default_bytes'], '{:.2f}')} ms); per-round ratios "
                    + ", ".join(f"{x:.2f}" for x in m["latency_ratio_per_round"][v])
                    + f"; {m['input'][0]} px, batch 1, interleaved rounds, shared 2-core CPU (noisy)"
                ),
            }
        )
    name = "bench_tflite" + ("_" + Path(args.data).name if args.data else "_demo")
    common.save_results(
        name,
        {
            "commit": _commit(),
            "data": args.data or "demo",
            "pipeline_seconds": payload.get("seconds"),
            "bench_seconds": time.time() - start,
            "tflite": summary.tflite,
            "measured_side_by_side": m,
            "rows": rows,
        },
        quick=args.quick,
    )
    return rows


def _commit() -> str:
    try:
        return subprocess.run(
            ["git", "rev-parse", "HEAD"],
            capture_output=True,
            text=True,
            check=False,
            cwd=Path(__file__).parent,
        ).stdout.strip()
    except OSError:
        return "unknown"
