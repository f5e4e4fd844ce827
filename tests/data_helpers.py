"""Helpers every test folder shares: small real images (PIL), small real text (a BBC News subset, Cherokee), bad
files, the DAG's component ids, reading MLMD.

One module instead of copies (tests/components, tests/pipeline, tests/kubeflow import it; pyproject puts tests/
on the path)."""

from __future__ import annotations

import glob
import io
import os
import struct
import sys
import zlib
from pathlib import Path

import numpy as np
from PIL import Image

CLASSES = ("bird", "cat", "dog")
# The console script of this environment (end-to-end tests run the real CLI in a subprocess).
GRAFT = str(Path(sys.executable).parent / "graft")
# Component ids of the DAG (graft.pipeline.dag), in the order the DAG runs them.
DATA_HALF = (
    "ImageExampleGen",
    "StatisticsGen",
    "CuratedSchemaGen",
    "ExampleValidator",
    "DataGate",
    "Transform",
)
# Every component that runs as a container task on Kubeflow (the resolver is a query, not a container).
CONTAINER_COMPONENTS = (*DATA_HALF, "Trainer", "Evaluator", "TFLiteExport", "Pusher")
# Every node of a local run: the components and the baseline resolver (graft.pipeline.dag.BASELINE_RESOLVER_ID).
ALL_NODES = (*DATA_HALF, "Trainer", "latest_blessed_model_resolver", "Evaluator", "TFLiteExport", "Pusher")


def image_bytes(size=(16, 16), fmt="PNG", mode="RGB", seed=0, frames=1) -> bytes:
    """A real encoded image with random content (unique per seed)."""
    rng = np.random.default_rng(seed)
    w, h = size
    channels = {"RGB": 3, "RGBA": 4, "L": 1}[mode]
    arrays = [(rng.random((h, w, channels)) * 255).astype(np.uint8) for _ in range(frames)]
    imgs = [Image.fromarray(a[:, :, 0] if channels == 1 else a, mode=mode) for a in arrays]
    buf = io.BytesIO()
    if fmt == "GIF" and frames > 1:
        imgs[0].save(buf, "GIF", save_all=True, append_images=imgs[1:], duration=50, loop=0)
    else:
        kwargs = {"quality": 90} if fmt == "JPEG" else {}
        imgs[0].save(buf, fmt, **kwargs)
    return buf.getvalue()


def write(path: Path | str | bytes, data: bytes) -> None:
    d = os.path.dirname(path)
    os.makedirs(d, exist_ok=True)
    with open(path, "wb") as f:
        f.write(data)


def make_tree(root: Path, classes=CLASSES, per_class=10, seed0=0, start=0, fmt="PNG") -> list[str]:
    """root/<class>/<i>.png; returns the relative paths written."""
    rels = []
    for ci, c in enumerate(classes):
        for i in range(start, start + per_class):
            rel = f"{c}/{i:03d}.{fmt.lower()}"
            write(root / rel, image_bytes(fmt=fmt, seed=seed0 + ci * 1000 + i))
            rels.append(rel)
    return rels


# ---- bad files ------------------------------------------------------------------------------------------------------
def truncated_jpeg(seed=1) -> bytes:
    data = image_bytes(size=(64, 48), fmt="JPEG", seed=seed)
    return data[: len(data) * 2 // 3]


def png_bad_crc(seed=2, chunk="IHDR") -> bytes:
    """A PNG with one chunk's CRC flipped (IHDR: PIL cannot open it; IDAT: only verify() notices)."""
    data = bytearray(image_bytes(fmt="PNG", seed=seed))
    pos = 8
    while pos < len(data):
        (length,) = struct.unpack(">I", data[pos : pos + 4])
        kind = bytes(data[pos + 4 : pos + 8]).decode()
        if kind == chunk:
            data[pos + 8 + length] ^= 0xFF
            return bytes(data)
        pos += 12 + length
    raise ValueError(f"no {chunk} chunk")


def _chunk(kind: bytes, payload: bytes) -> bytes:
    return (
        struct.pack(">I", len(payload))
        + kind
        + payload
        + struct.pack(">I", zlib.crc32(kind + payload) & 0xFFFFFFFF)
    )


def huge_png_header(width=100_000, height=100_000) -> bytes:
    """A PNG whose header claims width x height pixels, with a few bytes of (not enough) data: any attempt to
    decode it fails with a decode error, so a 'too many pixels' reason proves the header check came first."""
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + _chunk(b"IHDR", ihdr)
        + _chunk(b"IDAT", zlib.compress(b"\x00" * 64))
        + _chunk(b"IEND", b"")
    )


# ---- reading outputs ------------------------------------------------------------------------------------------------
def read_split(examples_uri: str, split: str) -> list[dict]:
    """The tf.Examples of one split of an Examples artifact, as {feature: value (or list)}."""
    import tensorflow as tf

    paths = sorted(glob.glob(os.path.join(examples_uri, f"Split-{split}", "*.gz")))
    out = []
    for rec in tf.data.TFRecordDataset(paths, compression_type="GZIP"):
        ex = tf.train.Example.FromString(rec.numpy())
        d = {}
        for k, feat in ex.features.feature.items():
            vals = list(feat.bytes_list.value) or list(feat.int64_list.value) or list(feat.float_list.value)
            d[k] = vals[0] if len(vals) == 1 else vals
        out.append(d)
    return out


def latest_artifact(metadata_path: str, type_name: str):
    """(uri, custom_properties dict) of the newest artifact of a type in an MLMD sqlite store."""
    from ml_metadata import metadata_store
    from ml_metadata.proto import metadata_store_pb2

    cfg = metadata_store_pb2.ConnectionConfig()
    cfg.sqlite.filename_uri = metadata_path
    store = metadata_store.MetadataStore(cfg)
    arts = store.get_artifacts_by_type(type_name)
    if not arts:
        return None, {}
    a = max(arts, key=lambda x: x.id)
    props = {}
    for k, v in a.custom_properties.items():
        which = v.WhichOneof("value")
        props[k] = getattr(v, which) if which else None
    return a.uri, props


def executions(metadata_path: str) -> dict[str, list[str]]:
    """node id -> states of its executions (oldest first), from MLMD's node contexts."""
    from ml_metadata import metadata_store
    from ml_metadata.proto import metadata_store_pb2

    cfg = metadata_store_pb2.ConnectionConfig()
    cfg.sqlite.filename_uri = metadata_path
    store = metadata_store.MetadataStore(cfg)
    out: dict[str, list[str]] = {}
    for ctx in store.get_contexts_by_type("node"):
        node = ctx.name.split(".", 1)[-1]
        execs = sorted(store.get_executions_by_context(ctx.id), key=lambda e: e.id)
        out[node] = [metadata_store_pb2.Execution.State.Name(e.last_known_state) for e in execs]
    return out


def make_shapes(root: Path, per_class: int = 20, seed: int = 0) -> None:
    """Three visually distinct classes of small real images (JPEG and PNG), deterministic: circles, squares and
    triangles in jittered colours on noise, 32x32."""
    from PIL import ImageDraw

    rng = np.random.RandomState(seed)
    for cls, color in [("circle", (220, 40, 40)), ("square", (40, 200, 40)), ("triangle", (40, 40, 220))]:
        d = root / cls
        d.mkdir(parents=True, exist_ok=True)
        for i in range(per_class):
            im = Image.fromarray(rng.randint(0, 80, (32, 32, 3)).astype(np.uint8))
            draw = ImageDraw.Draw(im)
            x, y = rng.randint(4, 12, 2)
            s = int(rng.randint(10, 18))
            c = tuple(int(v) for v in np.clip(np.array(color) + rng.randint(-30, 30, 3), 0, 255))
            if cls == "circle":
                draw.ellipse([x, y, x + s, y + s], fill=c)
            elif cls == "square":
                draw.rectangle([x, y, x + s, y + s], fill=c)
            else:
                draw.polygon([(x, y + s), (x + s, y + s), (x + s // 2, y)], fill=c)
            im.save(d / f"{i:03d}.{'png' if i % 2 else 'jpg'}")


# Text components of a text run's DAG (task text: graft.pipeline.dag), in the order they run; no TFLiteExport.
TEXT_NODES = (
    "TextExampleGen",
    "StatisticsGen",
    "CuratedSchemaGen",
    "ExampleValidator",
    "DataGate",
    "Transform",
    "TokenGate",
    "Trainer",
    "latest_blessed_model_resolver",
    "Evaluator",
    "Pusher",
)


# The e2e text test's data: three BBC News topics (few confusable pairs: politics and business, say, are left out).
BBC_TOPICS = ("entertainment", "sports", "tech")


def bbc_subset(
    topics: tuple[str, ...] = BBC_TOPICS, n_train: int = 16, n_test: int = 8
) -> dict[str, list[tuple[str, str]]]:
    """A small stratified subset of the text demo's BBC News (graft.pipeline.demo_text: deduplicated, its stable
    train/test split kept): per topic the first ``n_train`` train and ``n_test`` test articles in file order, as
    {'train': [(text, topic)], 'test': [...]} (topics interleaved, so no split is sorted by label)."""
    from graft.pipeline import demo_text

    splits, _ = demo_text.split_rows(r for r in demo_text.read_bbc_news() if r[1] in topics)
    out = {}
    for split, n in (("train", n_train), ("test", n_test)):
        per_topic = [[row for row in splits[split] if row[1] == t][:n] for t in topics]
        for t, rows in zip(topics, per_topic, strict=True):
            assert len(rows) == n, f"BBC News has {len(rows)} {split} articles of {t!r}, fewer than {n}"
        out[split] = [row for group in zip(*per_topic, strict=True) for row in group]
    return out


def make_bbc_tsv(root: Path, **subset_kwargs) -> list[tuple[str, str]]:
    """GLUE form: root/train.tsv + root/test.tsv (header text<TAB>label) of :func:`bbc_subset` (val is carved from
    train by the run). Returns the test rows as written."""
    from graft.pipeline import demo_text

    splits = bbc_subset(**subset_kwargs)
    demo_text.write_splits(root, splits, stamp=f"tests bbc_subset {subset_kwargs}")
    return splits["test"]


# Cherokee, in the Cherokee syllabary (U+13A0-U+13F4): no character of it is in MiniLM's (BERT uncased) vocabulary,
# so every word is one [UNK]. Two made-up topics of real words (people / animals), enough rows to pass every gate
# before Transform (data.min_train_examples_per_class after val is carved).
CHEROKEE = {
    "people": ("ᎠᏍᎦᏯ", "ᎠᎨᏯ", "ᎠᏧᏣ", "ᎠᎨᏳᏣ", "ᏣᎳᎩ"),
    "animals": ("ᎩᏟ", "ᏪᏌ", "ᏥᏍᏚ", "ᏐᏈᎵ", "ᏩᎭᏯ"),
}


def make_cherokee_tsv(root: Path, n_train: int = 10, n_test: int = 3) -> None:
    """GLUE train.tsv + test.tsv of short Cherokee-script sentences ('ᎣᏏᏲ <word> <word> ᏩᏙ'), per topic."""
    root.mkdir(parents=True, exist_ok=True)
    rows = {"train": [], "test": []}
    for label, words in CHEROKEE.items():
        pairs = [f"ᎣᏏᏲ {a} {b} ᏩᏙ" for a in words for b in words if a != b]
        rows["train"] += [(t, label) for t in pairs[:n_train]]
        rows["test"] += [(t, label) for t in pairs[n_train : n_train + n_test]]
    for split, part in rows.items():
        lines = ["text\tlabel", *(f"{t}\t{label}" for t, label in part)]
        (root / f"{split}.tsv").write_text("\n".join(lines) + "\n", encoding="utf-8")
