"""Image ExampleGen: the four input forms, stable splits, spans, and every kind of bad file (real TFX runs)."""

from __future__ import annotations

import csv
import hashlib
import io
import json
import multiprocessing
import os
import shutil
from pathlib import Path

import pytest
from data_helpers import (
    CLASSES,
    huge_png_header,
    image_bytes,
    latest_artifact,
    make_tree,
    png_bad_crc,
    read_split,
    truncated_jpeg,
    write,
)

from graft.components import features
from graft.components.data_errors import NoImagesFoundError, TooManyBadFilesError
from graft.components.image_example_gen import driver, files, layout
from graft.components.image_example_gen import report as report_mod
from graft.pipeline.config import ConfigError, DataConfig, GraftConfig


# ---- helpers ----------------------------------------------------------------------------------------------------
def _config(tmp_path: Path, data_path, name="eg", **data) -> GraftConfig:
    cfg = GraftConfig(name=name, root=str(tmp_path / "runs"))
    cfg.data.path = str(data_path)
    for k, v in data.items():
        setattr(cfg.data, k, v)
    return cfg.validate()


def run_example_gen(cfg: GraftConfig):
    """Run a pipeline of just the ImageExampleGen (LocalDagRunner, sqlite MLMD); return (uri, props, report)."""
    from tfx.orchestration import metadata
    from tfx.orchestration import pipeline as tfx_pipeline
    from tfx.orchestration.local.local_dag_runner import LocalDagRunner

    from graft.components.image_example_gen.component import ImageExampleGen

    eg = ImageExampleGen.from_layout(layout.detect_layout(cfg.data), cfg.data)
    p = tfx_pipeline.Pipeline(
        pipeline_name=cfg.name,
        pipeline_root=str(cfg.pipeline_root),
        components=[eg],
        enable_cache=True,
        metadata_connection_config=metadata.sqlite_metadata_connection_config(str(cfg.metadata_path)),
        beam_pipeline_args=cfg.beam.pipeline_args(),
    )
    LocalDagRunner().run(p)
    uri, props = latest_artifact(str(cfg.metadata_path), "Examples")
    return uri, props, report_mod.read_data_report(uri)


def expected_split(rel: bytes, buckets=(800, 100, 100)) -> str:
    """Independent re-statement of the split rule: sha256 of the serialized source_path feature, mod buckets."""
    import tensorflow as tf

    feat = tf.train.Feature(bytes_list=tf.train.BytesList(value=[rel]))
    b = int(hashlib.sha256(feat.SerializeToString(deterministic=True)).hexdigest(), 16) % sum(buckets)
    return "train" if b < buckets[0] else "val" if b < buckets[0] + buckets[1] else "test"


def split_of_paths(uri: str) -> dict[bytes, str]:
    out = {}
    for split in features.SPLITS:
        for ex in read_split(uri, split):
            out[ex[features.PATH_KEY]] = split
    return out


# ---- layout detection (no TFX run) --------------------------------------------------------------------------------
def test_layout_detects_each_form(tmp_path):
    folders = tmp_path / "folders"
    make_tree(folders, per_class=1)
    lay = layout.detect_layout(DataConfig(path=str(folders)))
    assert (lay.form, lay.patterns) == ("folders", {"single_split": "*/*"})

    pre = tmp_path / "pre"
    for s in ("train", "validation", "test"):
        make_tree(pre / s, per_class=1)
    lay = layout.detect_layout(DataConfig(path=str(pre)))
    assert lay.form == "presplit"
    assert lay.patterns == {"train": "train/*/*", "val": "validation/*/*", "test": "test/*/*"}
    assert len(lay.output_config(GraftConfig().data).split_config.splits) == 0

    man = tmp_path / "man"
    make_tree(man / "imgs", per_class=1)
    (man / "labels.csv").write_text("path,label\nimgs/cat/000.png,cat\n")
    for p in (man, man / "labels.csv"):
        lay = layout.detect_layout(DataConfig(path=str(p)))
        assert (lay.form, lay.input_base, lay.patterns) == ("csv", str(man), {"single_split": "labels.csv"})

    rec = tmp_path / "rec"
    rec.mkdir()
    (rec / "a.tfrecord.gz").write_bytes(b"")
    assert layout.detect_layout(DataConfig(path=str(rec))).form == "tfrecord"
    lay = layout.detect_layout(DataConfig(path=str(rec / "*.gz")))
    assert (lay.form, lay.input_base, lay.patterns) == ("tfrecord", str(rec), {"single_split": "*.gz"})

    spans = tmp_path / "spans"
    for n in ("span-001", "span-002"):
        make_tree(spans / n, per_class=1)
    lay = layout.detect_layout(DataConfig(path=str(spans)))
    assert lay.spans and lay.span_seen == 2 and lay.patterns == {"single_split": "span-{SPAN:3}/*/*"}


def test_layout_hash_buckets_follow_fractions():
    data = GraftConfig().data
    assert layout.hash_buckets(data) == {"train": 800, "val": 100, "test": 100}
    data.train_fraction, data.val_fraction, data.test_fraction = 0.7, 0.2, 0.1
    out = layout.DataLayout("folders", "/x", {"single_split": "*/*"}).output_config(data)
    assert [(s.name, s.hash_buckets) for s in out.split_config.splits] == [
        ("train", 700),
        ("val", 200),
        ("test", 100),
    ]
    assert out.split_config.partition_feature_name == features.PATH_KEY


@pytest.mark.parametrize(
    "setup, needle",
    [
        (lambda d: None, "does not exist"),
        (lambda d: d.mkdir(), "it is empty"),
        (
            lambda d: (d.mkdir(), (d / "a.csv").write_text(""), (d / "b.csv").write_text("")),
            "several CSV files",
        ),
        (lambda d: (d.mkdir(), (d / "notes.txt").write_text("hi")), "notes.txt"),
    ],
)
def test_layout_errors_are_clear(tmp_path, setup, needle):
    d = tmp_path / "data"
    setup(d)
    with pytest.raises(ConfigError, match=needle) as e:
        layout.detect_layout(DataConfig(path=str(d)))
    assert "data.path" in str(e.value)
    with pytest.raises(ConfigError, match="empty"):
        layout.detect_layout(GraftConfig().data)


# ---- the driver's listing never raises on odd files -----------------------------------------------------------------
def test_driver_fingerprint_and_span_survive_odd_files(tmp_path):
    make_tree(tmp_path / "span-1", per_class=1)
    make_tree(tmp_path / "span-12", per_class=2)
    (tmp_path / "span-30").mkdir()  # newest folder but empty: TFX semantics pick the newest span WITH files
    d = tmp_path / "span-12" / "cat"
    os.symlink("loop.jpg", d / "loop.jpg")
    os.symlink("missing.jpg", d / "broken.jpg")
    write(os.fsencode(d) + b"/\xff\xfe.png", image_bytes())
    assert driver.latest_span(str(tmp_path), "span-{SPAN}/*/*") == (12, "12")
    fp = driver.fingerprint("single_split", str(tmp_path), "span-12/*/*")
    assert "num_files:9" in fp  # 6 images + loop + broken + non-UTF-8 name
    # TFX's own fingerprint raises on exactly these files (the reason for the custom driver).
    from tfx.utils import io_utils

    with pytest.raises(Exception):  # noqa: B017 - UnicodeDecodeError / UnknownError / NotFoundError
        io_utils.generate_fingerprint("single_split", str(tmp_path / "span-12/*/*"))


# ---- one real TFX run per input form ------------------------------------------------------------------------------
def test_folders_form_counts_splits_and_features(tmp_path):
    data = tmp_path / "data"
    rels = make_tree(data, per_class=10)
    uri, props, rep = run_example_gen(_config(tmp_path, data))
    assert rep["form"] == "folders" and rep["classes"] == list(CLASSES)
    assert rep["num_examples"] == 30 and rep["num_skipped"] == 0
    by_path = split_of_paths(uri)
    assert sorted(by_path) == sorted(r.encode() for r in rels)
    # Every file is where the hash of its relative path says, and the report counts what was written.
    for rel, split in by_path.items():
        assert split == expected_split(rel), rel
    for split in features.SPLITS:
        exs = read_split(uri, split)
        per_class = {}
        for ex in exs:
            assert (
                ex[features.IMAGE_KEY] == (data / ex[features.PATH_KEY].decode()).read_bytes()
            )  # bytes as stored
            assert ex[features.LABEL_KEY].decode() == ex[features.PATH_KEY].decode().split("/")[0]
            per_class[ex[features.LABEL_KEY].decode()] = per_class.get(ex[features.LABEL_KEY].decode(), 0) + 1
        assert rep["counts"][split] == dict(sorted(per_class.items()))
    assert json.loads(props[report_mod.PROP_COUNTS]) == rep["counts"]
    assert json.loads(props[report_mod.PROP_CLASSES]) == list(CLASSES)
    assert props[report_mod.PROP_NUM_EXAMPLES] == 30 and props["span"] == 0


def test_presplit_form_keeps_its_splits(tmp_path):
    data = tmp_path / "data"
    sizes = {"train": 6, "val": 2, "test": 3}
    for split, n in sizes.items():
        make_tree(data / split, per_class=n, seed0={"train": 0, "val": 300, "test": 600}[split])
    uri, _, rep = run_example_gen(_config(tmp_path, data))
    assert rep["form"] == "presplit"
    for split, n in sizes.items():
        assert rep["counts"][split] == {c: n for c in CLASSES}
        paths = {ex[features.PATH_KEY].decode() for ex in read_split(uri, split)}
        assert all(p.startswith(f"{split}/") for p in paths) and len(paths) == 3 * n


def test_csv_manifest_form(tmp_path):
    data = tmp_path / "data"
    imgs = tmp_path / "elsewhere"
    rows = []
    for i in range(8):
        write(data / "photos" / f"a {i}.jpg", image_bytes(fmt="JPEG", seed=i))
        rows.append((f"photos/a {i}.jpg", "cat"))
        write(imgs / f"d{i}.png", image_bytes(seed=100 + i))
        rows.append((f"../elsewhere/d{i}.png", "dog"))
    rows += [
        ("photos/a 0.jpg", "dog"),  # listed twice with another label
        ("photos/missing.jpg", "cat"),
        ("photos/extra.jpg", ""),  # empty label
    ]
    write(data / "photos" / "extra.jpg", image_bytes(fmt="JPEG", seed=77))
    with open(data / "manifest.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["path", "label"])
        w.writerows(rows)
        f.write("photos/x.jpg,cat,extra\n")
    cfg = _config(tmp_path, data / "manifest.csv", max_bad_fraction=0.3, allowed_roots=[str(imgs) + "/"])
    uri, _, rep = run_example_gen(cfg)
    assert rep["form"] == "csv" and rep["classes"] == ["cat", "dog"]
    assert rep["num_examples"] == 16 and rep["num_skipped"] == 4
    by_path = split_of_paths(uri)
    assert b"photos/a 3.jpg" in by_path and b"../elsewhere/d3.png" in by_path
    reasons = {s["path"]: s["reason"] for s in report_mod.read_skipped_files(uri)}
    assert "listed again in line" in reasons["photos/a 0.jpg"]
    assert reasons["photos/missing.jpg"] == "file not found"
    assert "empty label" in reasons["photos/extra.jpg"]
    assert "expected 2 columns" in reasons[f"manifest.csv:{len(rows) + 2}"]  # header + rows, then this line


def test_tfrecord_form(tmp_path):
    import tensorflow as tf

    def ex(feats: dict) -> bytes:
        f = {}
        for k, v in feats.items():
            f[k] = (
                tf.train.Feature(int64_list=tf.train.Int64List(value=[v]))
                if isinstance(v, int)
                else tf.train.Feature(bytes_list=tf.train.BytesList(value=[v]))
            )
        return tf.train.Example(features=tf.train.Features(feature=f)).SerializeToString()

    data = tmp_path / "data"
    data.mkdir()
    with tf.io.TFRecordWriter(str(data / "part-0.tfrecord.gz"), "GZIP") as w:
        for i in range(6):
            w.write(
                ex(
                    {
                        "image_bytes": image_bytes(seed=i),
                        "label": b"cat",
                        "source_path": f"c/{i}.png".encode(),
                    }
                )
            )
        for i in range(6):  # TF-slim style names, no path: identified by content hash
            w.write(ex({"image/encoded": image_bytes(fmt="JPEG", seed=50 + i), "image/class/text": b"dog"}))
        w.write(ex({"image_bytes": b"not an image", "label": b"cat", "source_path": b"c/bad.png"}))
        w.write(ex({"label": b"cat", "source_path": b"c/noimage.png"}))
        w.write(b"\xff\xff\xff\xff")  # not a tf.Example proto
    # A second, uncompressed file with a damaged record: its good records before the damage are kept.
    with tf.io.TFRecordWriter(str(data / "part-1.tfrecord")) as w:
        for i in range(3):
            w.write(
                ex(
                    {
                        "image_bytes": image_bytes(seed=200 + i),
                        "label": b"dog",
                        "source_path": f"d/{i}.png".encode(),
                    }
                )
            )
    raw = bytearray((data / "part-1.tfrecord").read_bytes())
    raw[-20] ^= 0xFF  # inside the last record's payload: its CRC no longer matches
    (data / "part-1.tfrecord").write_bytes(bytes(raw))
    # A file whose name is not UTF-8.
    with tf.io.TFRecordWriter(os.fsencode(data) + b"/part-\xff.tfrecord") as w:
        for i in range(2):
            w.write(
                ex(
                    {
                        "image_bytes": image_bytes(seed=300 + i),
                        "label": b"cat",
                        "source_path": f"e/{i}.png".encode(),
                    }
                )
            )
    uri, _, rep = run_example_gen(_config(tmp_path, data, max_bad_fraction=0.5))
    assert rep["form"] == "tfrecord" and rep["classes"] == ["cat", "dog"]
    assert rep["num_examples"] == 16 and rep["num_skipped"] == 4
    by_path = split_of_paths(uri)
    hashed = [p for p in by_path if p.startswith(b"sha256:")]
    assert len(hashed) == 6 and b"c/3.png" in by_path
    assert b"sha256:" + hashlib.sha256(image_bytes(fmt="JPEG", seed=52)).hexdigest().encode() in by_path
    reasons = {s["path"]: s["reason"] for s in report_mod.read_skipped_files(uri)}
    assert reasons["c/bad.png"].startswith("not an image")
    assert reasons["c/noimage.png"].startswith("no image")
    assert reasons["part-0.tfrecord.gz#15"] == "the record is not a serialized tf.Example"
    assert reasons["part-1.tfrecord"].startswith("corrupt TFRecord file after 2 good records")
    assert b"d/1.png" in by_path and b"d/2.png" not in by_path
    assert b"e/1.png" in by_path


# ---- stability, spans ------------------------------------------------------------------------------------------------
def test_split_is_stable_when_files_are_added(tmp_path):
    data = tmp_path / "data"
    make_tree(data, per_class=10)
    cfg = _config(tmp_path, data)
    uri1, _, rep1 = run_example_gen(cfg)
    before = split_of_paths(uri1)
    make_tree(data, per_class=30, start=10, seed0=7)  # 90 new files, same classes
    make_tree(data, classes=("eel",), per_class=10, seed0=9000)  # and a new class (new seeds: no twins)
    uri2, _, rep2 = run_example_gen(cfg)
    assert uri2 != uri1, "the input fingerprint changed, so ExampleGen must re-run (not be cached)"
    after = split_of_paths(uri2)
    assert rep2["num_examples"] == 30 + 90 + 10
    moved = {p: (before[p], after[p]) for p in before if after[p] != before[p]}
    assert not moved


def test_newest_span_is_read_and_recorded(tmp_path):
    data = tmp_path / "data"
    make_tree(data / "span-1", per_class=6)
    make_tree(data / "span-2", classes=("cat", "dog"), per_class=7, seed0=5)
    uri, props, rep = run_example_gen(_config(tmp_path, data))
    assert props["span"] == 2 and rep["span"] == 2
    assert rep["classes"] == ["cat", "dog"] and rep["num_examples"] == 14
    # source_path is relative to the span folder: the same file keeps its split from span to span.
    assert all(not p.startswith(b"span-") for p in split_of_paths(uri))


# ---- bad files ----------------------------------------------------------------------------------------------------
def test_bad_files_are_listed_with_reasons_and_odd_names_are_read(tmp_path):
    data = tmp_path / "data"
    make_tree(data, per_class=8)
    cat = data / "cat"
    bad = {
        "cat/truncated.jpg": truncated_jpeg(),
        "cat/empty.jpg": b"",
        "cat/text.jpg": b"this is a text file, not a JPEG\n",
        "cat/badcrc.png": png_bad_crc(),
        "cat/badcrc_idat.png": png_bad_crc(chunk="IDAT"),
        "cat/huge.png": huge_png_header(),
        "cat/pic.tiff": image_bytes(fmt="TIFF"),
    }
    for rel, content in bad.items():
        write(data / rel, content)
    os.symlink("self.jpg", cat / "self.jpg")  # a symlink loop
    os.symlink("nowhere.jpg", cat / "broken.jpg")
    os.mkfifo(cat / "pipe.jpg")  # must not block the reader
    # Ignored silently: hidden files and OS junk.
    write(data / ".DS_Store", b"junk")
    write(cat / ".DS_Store", b"junk")
    write(cat / "Thumbs.db", b"junk")
    write(cat / "._000.png", b"resource fork")
    write(data / "__MACOSX" / "cat" / "000.png", b"junk")
    write(data / ".hidden" / "x.png", image_bytes())
    # Odd but valid names are read, with the exact bytes of the name as source_path.
    odd = [b"dog/with space.png", "dog/caf\u00e9 \u732b.png".encode(), b"dog/\xff\xfe latin1.png"]
    for i, rel in enumerate(odd):
        write(os.fsencode(data) + b"/" + rel, image_bytes(seed=900 + i))

    uri, props, rep = run_example_gen(_config(tmp_path, data, max_bad_fraction=0.5))
    reasons = {s["path"]: s["reason"] for s in report_mod.read_skipped_files(uri)}
    assert reasons["cat/truncated.jpg"].startswith("truncated or corrupt JPEG data")
    assert reasons["cat/empty.jpg"] == "empty file (0 bytes)"
    assert reasons["cat/text.jpg"].startswith("not an image")
    assert reasons["cat/badcrc.png"].startswith("corrupt PNG")
    assert reasons["cat/badcrc_idat.png"].startswith("corrupt PNG")
    assert (
        "data.max_image_pixels" in reasons["cat/huge.png"] and "without decoding" in reasons["cat/huge.png"]
    )
    assert reasons["cat/pic.tiff"].startswith("unsupported image format TIFF")
    assert reasons["cat/self.jpg"] == "symbolic link loop"
    assert reasons["cat/broken.jpg"].startswith("broken symbolic link")
    assert reasons["cat/pipe.jpg"].startswith("not a regular file")
    assert len(reasons) == 10, reasons
    assert rep["num_skipped"] == 10 == props[report_mod.PROP_NUM_SKIPPED]
    assert rep["num_examples"] == 24 + 3 and rep["num_files"] == 37
    paths = split_of_paths(uri)
    for rel in odd:
        assert rel in paths, rel
    assert rep["classes"] == list(CLASSES)


def test_too_many_bad_files_stop_the_run_with_the_list(tmp_path):
    data = tmp_path / "data"
    make_tree(data, per_class=10)
    write(data / "dog" / "broken.jpg", truncated_jpeg())
    cfg = _config(tmp_path, data)  # default data.max_bad_fraction = 0.01; 1 of 31 is bad
    with pytest.raises(TooManyBadFilesError) as e:
        run_example_gen(cfg)
    msg = str(e.value)
    assert "1 of 31 input files" in msg and "data.max_bad_fraction=0.01" in msg
    assert "dog/broken.jpg: truncated or corrupt JPEG" in msg
    # TFX deleted the failed execution's outputs; the list is kept where the message says.
    kept = msg.split("All of them are listed in ")[1].split(". Fix")[0]
    assert json.loads(Path(kept).read_text()) == [
        {"path": "dog/broken.jpg", "reason": json.loads(Path(kept).read_text())[0]["reason"]}
    ]
    assert Path(kept).parent == cfg.pipeline_root / "ImageExampleGen" / "skipped_files"


def test_no_images_is_a_clear_error(tmp_path):
    data = tmp_path / "data"
    write(data / "cat" / "readme.txt", b"no images here")
    with pytest.raises(NoImagesFoundError, match="no usable image found"):
        run_example_gen(_config(tmp_path, data, max_bad_fraction=1.0))


# ---- checks on single files ---------------------------------------------------------------------------------------
def test_pixel_limit_is_checked_before_any_decoding():
    # The header claims 10^10 pixels and the data cannot be decoded: a decode attempt would report corruption, so
    # a pixel-limit reason proves the header check ran first.
    reason = files.check_image(huge_png_header(), max_pixels=50_000_000)
    assert reason.startswith("image too large: 10,000,000,000 pixels > data.max_image_pixels=50,000,000")
    reason = files.check_image(huge_png_header(width=10_000, height=8_000), max_pixels=50_000_000)
    assert reason.startswith(
        "image too large: 10000x8000 = 80,000,000 pixels > data.max_image_pixels=50,000,000"
    )
    # A real, decodable image above a small limit is refused the same way.
    ok = image_bytes(size=(40, 30))
    assert files.check_image(ok, max_pixels=10_000) is None
    assert "40x30 = 1,200 pixels > data.max_image_pixels=1,000" in files.check_image(ok, max_pixels=1_000)
    # Above PIL's own bomb limit (2 x 89M pixels) but within a configured, larger limit: PIL must not refuse it.
    big = huge_png_header(width=20_000, height=10_000)  # 200M pixels
    assert files.check_image(big, max_pixels=150_000_000).startswith("image too large: 20000x10000")
    assert files.check_header(big, max_pixels=300_000_000) == (None, "PNG")
    # All frames of a GIF count.
    gif = image_bytes(size=(10, 10), fmt="GIF", frames=5)
    assert files.check_image(gif, max_pixels=499).startswith("image too large: 10x10x5 frames")


def test_supported_formats_pass_the_check():
    for fmt, mode in [
        ("JPEG", "RGB"),
        ("JPEG", "L"),
        ("PNG", "RGBA"),
        ("PNG", "L"),
        ("BMP", "RGB"),
        ("GIF", "L"),
    ]:
        assert files.check_image(image_bytes(fmt=fmt, mode=mode), max_pixels=10_000) is None, (fmt, mode)
    # A multi-picture JPEG (what many phones write; PIL calls it MPO) is a JPEG to TensorFlow.
    from PIL import Image

    frames = [Image.open(io.BytesIO(image_bytes(seed=s))).convert("RGB") for s in (1, 2)]
    buf = io.BytesIO()
    frames[0].save(buf, "MPO", save_all=True, append_images=frames[1:])
    assert Image.open(io.BytesIO(buf.getvalue())).format == "MPO"
    assert files.check_image(buf.getvalue(), max_pixels=10_000) is None
    # WebP and TIFF are images TensorFlow 2.16's decode_image cannot read: refused with the fix.
    assert files.check_image(image_bytes(fmt="WEBP"), max_pixels=10_000).startswith(
        "unsupported image format WEBP"
    )


def _read_as_nobody(path, queue):
    os.setgid(65534)
    os.setuid(65534)
    queue.put(files.read_file_checked(path))


def test_unreadable_file_is_a_reason_not_a_crash(tmp_path):
    path = tmp_path / "secret.png"
    write(path, image_bytes())
    path.chmod(0)
    tmp_path.chmod(0o755)
    if os.geteuid() != 0:
        assert files.read_file_checked(str(path)) == (None, "permission denied")
        return
    # root reads everything: check as an unprivileged user, in a forked child.
    ctx = multiprocessing.get_context("fork")
    q = ctx.Queue()
    child = ctx.Process(target=_read_as_nobody, args=(str(path), q))
    child.start()
    child.join(30)
    assert q.get(timeout=5) == (None, "permission denied")


def test_class_names_are_checked():
    assert files.class_name_problem("golden retriever") is None
    assert files.class_name_problem("caf\u00e9") is None
    assert "not valid UTF-8" in files.class_name_problem(os.fsdecode(b"\xff"))
    assert "control characters" in files.class_name_problem("a\tb")
    assert "white space" in files.class_name_problem(" a")


def test_example_gen_reruns_are_cached(tmp_path):
    data = tmp_path / "data"
    make_tree(data, per_class=4)
    cfg = _config(tmp_path, data)
    uri1, _, _ = run_example_gen(cfg)
    uri2, _, _ = run_example_gen(cfg)
    assert uri1 == uri2  # unchanged data: the cached artifact is reused
    shutil.copy(data / "cat" / "000.png", data / "cat" / "copy.png")
    uri3, _, rep = run_example_gen(cfg)
    assert uri3 != uri1 and rep["num_examples"] == 13


# ---- splits the way data comes: a pre-split tree without val/ (or val/ and test/) ------------------------------------
def test_layout_carves_the_splits_a_presplit_tree_lacks(tmp_path):
    data = DataConfig()
    both = tmp_path / "both"
    for s in ("train", "test"):
        make_tree(both / s, per_class=1)
    lay = layout.detect_layout(DataConfig(path=str(both)))
    assert lay.patterns == {"train": "train/*/*", "test": "test/*/*"}
    assert lay.carve(data) == [["train", 900], ["val", 100]]  # data.val_fraction of train/
    only = tmp_path / "only"
    make_tree(only / "train", per_class=1)
    lay = layout.detect_layout(DataConfig(path=str(only)))
    assert lay.patterns == {"train": "train/*/*"}
    assert lay.carve(data) == [["train", 800], ["val", 100], ["test", 100]]  # like a class-folder tree
    data.train_fraction, data.val_fraction = 0.7, 0.2
    assert layout.detect_layout(DataConfig(path=str(both))).carve(data) == [["train", 800], ["val", 200]]
    full = tmp_path / "full"
    for s in ("train", "val", "test"):
        make_tree(full / s, per_class=1)
    assert layout.detect_layout(DataConfig(path=str(full))).carve(data) == []


def _train_test_tree(data: Path, train: int = 20, test: int = 5, start: int = 0) -> None:
    make_tree(data / "train", per_class=train, seed0=1000 + start, start=start)
    make_tree(data / "test", per_class=test, seed0=5000 + start, start=start)


def test_train_test_tree_gets_val_carved_out_of_train(tmp_path):
    data = tmp_path / "data"
    _train_test_tree(data)
    uri, props, rep = run_example_gen(_config(tmp_path, data))
    assert rep["form"] == "presplit"
    assert rep["carved"] == {"val": {"from": "train", "fraction": 0.1}}
    assert json.loads(props[report_mod.PROP_CARVED]) == rep["carved"]
    given_test = {f"test/{c}/{i:03d}.png".encode() for c in CLASSES for i in range(5)}
    splits = split_of_paths(uri)
    assert {p for p, s in splits.items() if s == "test"} == given_test  # test/ untouched
    val = {p for p, s in splits.items() if s == "val"}
    assert val and not val & given_test and all(p.startswith(b"train/") for p in val)
    for p, s in splits.items():
        if p.startswith(b"train/"):
            assert s == expected_split(p, buckets=(900, 100, 0)), p
    assert sum(rep["counts"]["train"].values()) + len(val) == 3 * 20


def test_train_only_tree_gets_val_and_test_carved(tmp_path):
    data = tmp_path / "data"
    make_tree(data / "train", per_class=20)
    uri, _, rep = run_example_gen(_config(tmp_path, data))
    assert set(rep["carved"]) == {"val", "test"}
    assert rep["carved"]["test"] == {"from": "train", "fraction": 0.1}
    splits = split_of_paths(uri)
    assert len(splits) == 60 and all(p.startswith(b"train/") for p in splits)
    assert {s for s in splits.values()} == {"train", "val", "test"}
    assert all(s == expected_split(p) for p, s in splits.items())


def test_carved_splits_are_stable_when_files_are_added(tmp_path):
    data = tmp_path / "data"
    _train_test_tree(data)
    cfg = _config(tmp_path, data)
    uri1, _, _ = run_example_gen(cfg)
    before = split_of_paths(uri1)
    _train_test_tree(data, train=20, test=5, start=20)  # more train and test files, new names and pixels
    uri2, _, rep2 = run_example_gen(cfg)
    assert uri2 != uri1 and rep2["num_examples"] == 2 * 3 * 25
    after = split_of_paths(uri2)
    assert not {p: (before[p], after[p]) for p in before if after[p] != before[p]}


@pytest.mark.slow
@pytest.mark.parametrize("given", [("train", "test"), ("train",)], ids=["train+test", "train-only"])
def test_presplit_tree_without_val_runs_end_to_end(tmp_path, given):
    """The real DAG through `graft run` on a tree as datasets ship: val (and test) carved, the run completes."""
    from test_e2e import graft_run

    data = tmp_path / "data"
    for s in given:
        make_tree(data / s, per_class=20 if s == "train" else 6, seed0={"train": 0, "test": 5000}[s])
    # What is asserted is the splits and that every stage runs on them: one epoch, no fine-tuning, no edge export,
    # no HTML report (test_e2e.py covers model quality, the phases and the TFLite variants; test_report.py the report).
    cheap = ("train.phase1_epochs=1", "train.phase2_epochs=0", "edge.variants=[]")
    code, payload, err = graft_run(data, tmp_path / "runs", *cheap, flags=("--no-report",))
    assert code == 0, err[-4000:]
    states = {e["node_id"]: e["state"] for e in payload["executions"]}
    assert all(states[c] == "COMPLETE" for c in ("ImageExampleGen", "Transform", "Trainer", "Evaluator")), (
        states
    )
    counts = payload["example_counts"]
    assert set(counts) == {"train", "val", "test"} and all(sum(counts[s].values()) for s in counts)
    assert set(payload["carved"]) == ({"val"} if "test" in given else {"val", "test"})
    if "test" in given:
        assert counts["test"] == {c: 6 for c in CLASSES}  # test/ exactly as given
        assert sum(counts["train"].values()) + sum(counts["val"].values()) == 3 * 20


def test_runner_choice_picks_the_write_path():
    """DirectRunner: shards written as they stream; any other runner: the files reshuffled, TFX's WriteSplit."""
    from graft.components.image_example_gen.executor import is_distributed
    from graft.pipeline import dag

    assert not is_distributed([])
    assert not is_distributed(dag.beam_pipeline_args(GraftConfig()))
    assert not is_distributed(["--runner=DirectRunner", "--direct_running_mode=in_memory"])
    assert is_distributed(["--runner=DataflowRunner", "--project=p"])
    assert is_distributed(["--runner=PortableRunner", "--job_endpoint=localhost:8099"])
    assert not is_distributed(["--runner=DataflowRunner", "--runner=DirectRunner"])  # the last one wins


def test_bad_files_and_empty_class_folders_are_reported_together(tmp_path):
    """One stop names the bad files AND the class folders without a usable image (not one per run)."""
    data = tmp_path / "data"
    make_tree(data, per_class=10)
    write(data / "dog" / "broken.jpg", truncated_jpeg())
    write(data / "zebra" / "notes.txt", b"not an image")  # a class folder with no usable image
    (data / "fish").mkdir()  # an empty class folder
    with pytest.raises(TooManyBadFilesError) as e:
        run_example_gen(_config(tmp_path, data))
    msg = str(e.value)
    assert "dog/broken.jpg: truncated or corrupt JPEG" in msg
    assert "Class folders without any usable image: fish, zebra" in msg


def test_three_spellings_of_one_folder_are_one_execution(tmp_path, monkeypatch):
    """data.path is normalised before it reaches the cache key: DIR, DIR/ and a relative path run ExampleGen once."""
    from data_helpers import executions

    data = tmp_path / "data"
    make_tree(data, per_class=6)
    monkeypatch.chdir(tmp_path)
    for spelling in (str(data), str(data) + "/", "./data/../data"):
        run_example_gen(_config(tmp_path, spelling))
    states = executions(str(tmp_path / "runs" / "eg" / "metadata.sqlite"))
    assert sorted(next(iter(states.values()))) == ["CACHED", "CACHED", "COMPLETE"], states


def test_csv_rows_are_confined_to_the_manifest_folder_unless_allowed(tmp_path):
    from graft.components.image_example_gen.listing import csv_candidates

    data, elsewhere = tmp_path / "data", tmp_path / "elsewhere"
    write(data / "in.png", image_bytes(seed=1))
    write(elsewhere / "out.png", image_bytes(seed=2))
    write(
        data / "m.csv",
        f"path,label\nin.png,cat\n../elsewhere/out.png,dog\n{elsewhere / 'out.png'},dog\n".encode(),
    )
    good, bad = csv_candidates(str(data), "m.csv")
    assert [c.rel for c in good] == ["in.png"]
    assert len(bad) == 2 and all("outside the manifest's folder" in b["reason"] for b in bad)
    assert all("data.allowed_roots" in b["reason"] for b in bad)
    good, bad = csv_candidates(str(data), "m.csv", [str(elsewhere)])
    assert (
        len(good) == 2
        and [b["reason"] for b in bad] == [bad[0]["reason"]]
        and "listed again" in bad[0]["reason"]
    )
