"""Text ExampleGen: manifests, GLUE split folders, class folders, pre-split trees, TFRecords, spans, bad rows.

Real text: the 100 IMDB reviews TFX ships (tfx/examples/imdb/data/imdb_small_with_labels.txt, label,text CSV).
The end-to-end tests run the real component in a one-component TFX pipeline (LocalDagRunner, Beam, sqlite MLMD).
"""

from __future__ import annotations

import csv
import importlib.util
from pathlib import Path

import pytest
from data_helpers import latest_artifact, read_split

from graft.components.data_errors import TooManyBadFilesError
from graft.components.image_example_gen import report as report_mod
from graft.components.text_example_gen import layout, rows

FRACTIONS = {"train": 0.8, "val": 0.1, "test": 0.1}


def imdb_csv() -> Path:
    spec = importlib.util.find_spec("tfx")
    return Path(next(iter(spec.submodule_search_locations))) / "examples/imdb/data/imdb_small_with_labels.txt"


def imdb() -> list[tuple[str, str]]:
    with open(imdb_csv(), newline="", encoding="utf-8") as f:
        return [(r["text"], r["label"]) for r in csv.DictReader(f)]


def write_tsv(path: Path, items, header=("sentence", "label")) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    lines = (["\t".join(header)] if header else []) + [f"{t.replace(chr(9), ' ')}\t{lab}" for t, lab in items]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def write_class_folders(root: Path, items) -> Path:
    for i, (text, label) in enumerate(items):
        d = root / ("pos" if label == "1" else "neg")
        d.mkdir(parents=True, exist_ok=True)
        (d / f"{i}.txt").write_text(text, encoding="utf-8")
    return root


def run_text_example_gen(tmp_path: Path, data_path: Path, name="teg", **kw):
    from tfx.orchestration import metadata
    from tfx.orchestration import pipeline as tfx_pipeline
    from tfx.orchestration.local.local_dag_runner import LocalDagRunner

    from graft.components.text_example_gen.component import TextExampleGen

    lay = layout.detect_text_layout(str(data_path))
    eg = TextExampleGen.from_layout(
        lay, fractions=FRACTIONS, max_bad_fraction=kw.pop("max_bad_fraction", 0.2), **kw
    )
    mlmd = tmp_path / f"{name}.sqlite"
    p = tfx_pipeline.Pipeline(
        pipeline_name=name,
        pipeline_root=str(tmp_path / "root"),
        components=[eg],
        enable_cache=False,
        metadata_connection_config=metadata.sqlite_metadata_connection_config(str(mlmd)),
    )
    LocalDagRunner().run(p)
    uri, props = latest_artifact(str(mlmd), "Examples")
    return uri, props, report_mod.read_data_report(uri)


# ---- rows (no TFX) ---------------------------------------------------------------------------------------------
def test_manifest_with_header_reads_every_imdb_review():
    good, bad = rows.parse_manifest(imdb_csv().read_bytes(), "imdb.csv")
    assert len(good) == 100 and not bad
    assert {r.label for r in good} == {"0", "1"}
    assert good[0].text.startswith("This was an absolutely terrible movie") and good[0].source == "imdb.csv:2"


def test_headerless_tsv_and_configured_columns(tmp_path):
    items = imdb()[:20]
    p = write_tsv(tmp_path / "x.tsv", items, header=None)
    good, bad = rows.parse_manifest(p.read_bytes(), "x.tsv")  # no header: the few-valued column is the label
    assert not bad and [(r.text, r.label) for r in good] == [(t.strip(), lab) for t, lab in items]
    p = write_tsv(tmp_path / "y.tsv", items, header=("review_body", "stars"))
    good, _ = rows.parse_manifest(p.read_bytes(), "y.tsv", text_column="review_body", label_column="stars")
    assert len(good) == 20
    with pytest.raises(rows.ManifestError, match=r"cannot find the text and label columns.*review_body"):
        rows.parse_manifest(p.read_bytes(), "y.tsv", text_column="body")


def test_bad_rows_are_quarantined_with_reasons():
    text = imdb()[0][0][:150]
    data = (
        f"sentence\tlabel\n{text}\t1\n   \t0\n{text}\t\n{'long ' * 50}\t1\nthree\tfields\there\n"
    ).encode() + b"caf\xe9 latin-1\t1\n"
    good, bad = rows.parse_manifest(data, "m.tsv", max_text_bytes=200)
    reasons = {b["path"]: b["reason"] for b in bad}
    assert [(r.text, r.label, r.source) for r in good] == [(text.strip(), "1", "m.tsv:2")]
    assert reasons["m.tsv:3"] == "empty text" and reasons["m.tsv:4"] == "missing label"
    assert reasons["m.tsv:5"].startswith("text too long (250 bytes > data.max_text_bytes=200)")
    assert reasons["m.tsv:6"].startswith("row has 3 fields, expected 2")
    assert reasons["m.tsv:7"].startswith("undecodable bytes")
    assert rows.parse_text_file(b"", "neg/1.txt", "neg")[1]["reason"] == "empty text"


# ---- layout ----------------------------------------------------------------------------------------------------
def test_layout_detects_each_form(tmp_path):
    items = imdb()
    m = write_tsv(tmp_path / "m" / "all.tsv", items)
    assert layout.detect_text_layout(str(m)).form == "manifest"
    assert layout.detect_text_layout(str(m.parent)).patterns == {"single_split": "all.tsv"}
    glue = tmp_path / "glue"
    write_tsv(glue / "train.tsv", items[:60])
    write_tsv(glue / "test.tsv", items[60:80])
    lay = layout.detect_text_layout(str(glue))
    assert (lay.form, lay.patterns) == ("split_manifests", {"train": "train.tsv", "test": "test.tsv"})
    write_tsv(glue / "dev.tsv", items[80:])
    assert layout.detect_text_layout(str(glue)).patterns["val"] == "dev.tsv"
    folders = write_class_folders(tmp_path / "folders", items[:10])
    assert layout.detect_text_layout(str(folders)).patterns == {"single_split": "*/*.txt"}
    pre = tmp_path / "aclimdb"
    write_class_folders(pre / "train", items[:50])
    write_class_folders(pre / "test", items[50:])
    lay = layout.detect_text_layout(str(pre))
    assert (lay.form, lay.patterns) == ("presplit", {"test": "test/*/*.txt", "train": "train/*/*.txt"})
    spans = tmp_path / "spans"
    write_tsv(spans / "span-1" / "train.tsv", items[:50])
    write_tsv(spans / "span-1" / "test.tsv", items[50:])
    lay = layout.detect_text_layout(str(spans))
    assert lay.spans and lay.patterns == {"train": "span-{SPAN}/train.tsv", "test": "span-{SPAN}/test.tsv"}
    only_train = tmp_path / "only_train"
    write_tsv(only_train / "train.tsv", items)
    with pytest.raises(layout.TextLayoutError, match="no test.tsv"):
        layout.detect_text_layout(str(only_train))
    (tmp_path / "empty").mkdir()
    with pytest.raises(layout.TextLayoutError, match="no text data"):
        layout.detect_text_layout(str(tmp_path / "empty"))


# ---- real TFX runs -----------------------------------------------------------------------------------------------
def test_glue_split_folder_keeps_its_splits(tmp_path):
    items = imdb()
    glue = tmp_path / "glue"
    write_tsv(glue / "train.tsv", items[:70])
    write_tsv(glue / "test.tsv", items[70:])
    uri, props, rep = run_text_example_gen(tmp_path, glue)
    train, val, test = read_split(uri, "train"), read_split(uri, "val"), read_split(uri, "test")
    # No dev.tsv: val is carved out of train.tsv (data.val_fraction, stable hash of source); test.tsv untouched.
    assert len(train) + len(val) == 70 and len(test) == 30 and 0 < len(val) < 20
    assert all(ex["source"].startswith(b"test.tsv:") for ex in test)
    assert all(ex["source"].startswith(b"train.tsv:") for ex in val)
    assert {ex["text"].decode() for ex in train + val} == {t.strip() for t, _ in items[:70]}
    counts = {s: sum(rep["counts"][s].values()) for s in ("train", "val", "test")}
    assert counts == {"train": len(train), "val": len(val), "test": 30}
    assert rep["num_skipped"] == 0 and props[report_mod.PROP_NUM_EXAMPLES] == 100


def test_class_folders_hash_split_and_quarantine(tmp_path):
    items = imdb()
    root = write_class_folders(tmp_path / "folders", items)
    (root / "neg" / "empty.txt").write_bytes(b"  \n")
    (root / "pos" / "latin1.txt").write_bytes(b"caf\xe9 cr\xe8me, a great film")
    uri, _props, rep = run_text_example_gen(tmp_path, root)
    got = {s: read_split(uri, s) for s in ("train", "val", "test")}
    assert sum(len(v) for v in got.values()) == 100 and all(got.values())
    assert {ex["label"] for v in got.values() for ex in v} == {b"neg", b"pos"}
    skipped = report_mod.read_skipped_files(uri)
    assert {(s["path"], s["reason"].split(" (")[0]) for s in skipped} == {
        ("neg/empty.txt", "empty text"),
        ("pos/latin1.txt", "undecodable bytes"),
    }


def test_too_many_bad_rows_stop_the_run(tmp_path):
    items = imdb()[:10]
    bad_rows = [("", "1")] * 5
    m = write_tsv(tmp_path / "m" / "all.tsv", items + bad_rows)
    with pytest.raises(Exception) as e:  # noqa: B017  (LocalDagRunner wraps the executor's error)
        run_text_example_gen(tmp_path, m, max_bad_fraction=0.1)
    chain, err = [], e.value
    while err is not None:
        chain.append(err)
        err = err.__cause__ or err.__context__
    assert any(isinstance(x, TooManyBadFilesError) and "5 of 15 text rows" in str(x) for x in chain)


def test_tfrecords_with_a_text_feature(tmp_path):
    import tensorflow as tf

    d = tmp_path / "tfr"
    d.mkdir()
    with tf.io.TFRecordWriter(str(d / "data.tfrecord")) as w:
        for text, label in imdb()[:30]:
            ex = tf.train.Example(
                features=tf.train.Features(
                    feature={
                        "sentence": tf.train.Feature(bytes_list=tf.train.BytesList(value=[text.encode()])),
                        "label": tf.train.Feature(int64_list=tf.train.Int64List(value=[int(label)])),
                    }
                )
            )
            w.write(ex.SerializeToString())
    uri, _props, rep = run_text_example_gen(tmp_path, d)
    assert rep["num_examples"] == 30 and set(rep["classes"]) == {"0", "1"}
    assert all(
        ex["source"].startswith(b"data.tfrecord:")
        for s in ("train", "val", "test")
        for ex in read_split(uri, s)
    )


def test_split_forms_without_val_carve_it_from_train():
    glue = layout.TextDataLayout("split_manifests", "/d", {"train": "train.tsv", "test": "test.tsv"})
    assert glue.carve(FRACTIONS) == [["train", 1000 - round(FRACTIONS["val"] * 1000)], ["val", round(FRACTIONS["val"] * 1000)]]  # fmt: skip
    full = layout.TextDataLayout("split_manifests", "/d", {"train": "a", "val": "b", "test": "c"})
    single = layout.TextDataLayout("manifest", "/d", {"single_split": "all.tsv"})
    assert full.carve(FRACTIONS) == [] and single.carve(FRACTIONS) == []
    assert layout.declared_text_layout("gs://b/reviews.tsv").patterns == {"single_split": "reviews.tsv"}
    assert layout.declared_text_layout("gs://b/data/") is None
