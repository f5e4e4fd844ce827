"""Transform module: the real DAG's transformed images equal tf.image outside TFX, bit for bit; the label
vocabulary; serving with image bytes only."""

from __future__ import annotations

import glob
import io
import json
import os
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from data_helpers import DATA_HALF, executions, image_bytes, write
from PIL import Image

from graft.components import features, preprocessing
from graft.pipeline import dag, dag_inputs
from graft.pipeline.config import GraftConfig

H, W = 24, 32  # not square: a swapped height/width would show


def expected_transformed(data: bytes, height=H, width=W, method="bilinear", antialias=True) -> bytes:
    """Independent of graft: decode + resize with tf.image, round, clip, uint8, serialize_tensor."""
    import tensorflow as tf

    img = tf.io.decode_image(data, channels=3, expand_animations=False)
    methods = {
        "bilinear": "bilinear",
        "nearest": "nearest",
        "bicubic": "bicubic",
        "area": "area",
        "lanczos3": "lanczos3",
    }
    out = tf.image.resize(
        tf.cast(img, tf.float32), [height, width], method=methods[method], antialias=antialias
    )
    out = tf.cast(tf.clip_by_value(tf.round(out), 0, 255), tf.uint8)
    return tf.io.serialize_tensor(out).numpy()


def _mixed_dataset(root: Path) -> dict[str, list[str]]:
    """3 classes x 8 images of every supported kind: JPEG, PNG RGB/RGBA/gray, BMP, animated GIF; up- and
    down-sampling, odd sizes."""
    kinds = [
        ("jpg", dict(fmt="JPEG", size=(40, 30))),
        ("png", dict(fmt="PNG", size=(9, 7), mode="RGBA")),
        ("png", dict(fmt="PNG", size=(50, 41), mode="L")),
        ("bmp", dict(fmt="BMP", size=(16, 12))),
        ("gif", dict(fmt="GIF", size=(24, 20), frames=3)),
        ("png", dict(fmt="PNG", size=(33, 25))),
        ("jpg", dict(fmt="JPEG", size=(24, 32), mode="L")),
        ("png", dict(fmt="PNG", size=(64, 48))),
    ]
    out = {}
    for ci, c in enumerate(("ant", "bee", "cow")):
        out[c] = []
        for i, (ext, kw) in enumerate(kinds):
            rel = f"{c}/{i}.{ext}"
            write(root / rel, image_bytes(seed=ci * 100 + i, **kw))
            out[c].append(rel)
    return out


@pytest.fixture(scope="module")
def transformed_run(tmp_path_factory):
    """One real run of the data half (LocalDagRunner, sqlite MLMD, Beam), then an unchanged rerun."""
    from tfx.orchestration import pipeline as tfx_pipeline
    from tfx.orchestration.local.local_dag_runner import LocalDagRunner

    tmp = tmp_path_factory.mktemp("pre")
    data = tmp / "data"
    _mixed_dataset(data)
    cfg = GraftConfig(name="pre", root=str(tmp / "runs"))
    cfg.data.path = str(data)
    cfg.data.min_train_examples_per_class = 3
    cfg.data.train_fraction, cfg.data.val_fraction, cfg.data.test_fraction = 0.5, 0.25, 0.25
    cfg.validate()
    backbone = {"height": H, "width": W, "channels": 3}
    # The real DAG from create_pipeline, run up to Transform (TFX partial run): the data half only.
    up_to_transform = tfx_pipeline.RunOptions(to_nodes=["Transform"])
    LocalDagRunner().run(
        dag.create_pipeline(cfg, backbone, dag_inputs.resolve(cfg)), run_options=up_to_transform
    )
    LocalDagRunner().run(
        dag.create_pipeline(cfg, backbone, dag_inputs.resolve(cfg)), run_options=up_to_transform
    )  # unchanged rerun
    return cfg, data


def _one_dir(pattern: str) -> str:
    found = sorted(glob.glob(pattern))
    assert len(found) == 1, found
    return found[0]


def _records(split_dir: str) -> list[bytes]:
    import tensorflow as tf

    files = sorted(glob.glob(os.path.join(split_dir, "*.gz")))
    return [r.numpy() for r in tf.data.TFRecordDataset(files, compression_type="GZIP")]


def test_transformed_images_equal_tf_image_bit_for_bit(transformed_run):
    import tensorflow as tf
    from data_helpers import read_split

    cfg, data = transformed_run
    root = str(cfg.pipeline_root)
    raw_uri = _one_dir(f"{root}/ImageExampleGen/examples/*")
    out_uri = _one_dir(f"{root}/Transform/transformed_examples/*")
    classes = ["ant", "bee", "cow"]
    total = 0
    for split in features.SPLITS:
        expected = Counter()
        for ex in read_split(raw_uri, split):
            file_bytes = (data / ex[features.PATH_KEY].decode()).read_bytes()  # the file itself, from disk
            label = ex[features.LABEL_KEY].decode()
            expected[(expected_transformed(file_bytes), classes.index(label))] += 1
        got = Counter()
        for rec in _records(os.path.join(out_uri, f"Split-{split}")):
            ex = tf.train.Example.FromString(rec)
            f = ex.features.feature
            assert set(f) == {features.TRANSFORMED_IMAGE_KEY, features.TRANSFORMED_LABEL_KEY}
            image = f[features.TRANSFORMED_IMAGE_KEY].bytes_list.value[0]
            got[(image, f[features.TRANSFORMED_LABEL_KEY].int64_list.value[0])] += 1
            decoded = features.decode_transformed_image(image, H, W)
            assert decoded.dtype == tf.uint8 and decoded.shape == (H, W, 3)
            # Stored compactly: at most 1.2 x H*W*3 bytes per transformed example.
            assert len(rec) <= 1.2 * H * W * 3, len(rec)
        assert got == expected, split
        total += sum(got.values())
    assert total == 24


def test_label_vocabulary_is_an_asset_sorted_by_class_name(transformed_run):
    import tensorflow_transform as tft

    cfg, _ = transformed_run
    tto = tft.TFTransformOutput(_one_dir(f"{cfg.pipeline_root}/Transform/transform_graph/*"))
    assert [v.decode() for v in tto.vocabulary_by_name(features.LABEL_VOCAB_NAME)] == ["ant", "bee", "cow"]
    assert (
        os.path.basename(tto.vocabulary_file_by_name(features.LABEL_VOCAB_NAME)) == features.LABEL_VOCAB_NAME
    )
    assert Path(tto.vocabulary_file_by_name(features.LABEL_VOCAB_NAME)).read_text() == "ant\nbee\ncow\n"


def test_serving_needs_image_bytes_only(transformed_run):
    """A serving request has only image_bytes: the Transform graph still gives the image (the label is pruned)."""
    import tensorflow as tf
    import tensorflow_transform as tft

    cfg, data = transformed_run
    tto = tft.TFTransformOutput(_one_dir(f"{cfg.pipeline_root}/Transform/transform_graph/*"))
    layer = tto.transform_features_layer()
    files = [data / "bee" / "0.jpg", data / "cow" / "4.gif", data / "ant" / "1.png"]
    out = layer({features.IMAGE_KEY: tf.constant([f.read_bytes() for f in files])})
    assert set(out) == {features.TRANSFORMED_IMAGE_KEY}
    for i, f in enumerate(files):
        assert out[features.TRANSFORMED_IMAGE_KEY][i].numpy() == expected_transformed(f.read_bytes())


def test_unchanged_rerun_keeps_transform_cached(transformed_run):
    cfg, _ = transformed_run
    states = executions(str(cfg.metadata_path))
    for node in DATA_HALF:
        assert states[node] == ["COMPLETE", "CACHED"], (node, states[node])


# ---- decode semantics, checked against PIL (lossless formats) ---------------------------------------------------
@pytest.mark.parametrize(
    "kw",
    [
        dict(fmt="PNG", mode="L"),  # gray -> RGB (replicated)
        dict(fmt="PNG", mode="RGBA"),  # RGBA -> RGB (alpha dropped)
        dict(fmt="BMP"),
        dict(fmt="GIF", frames=3),  # first frame
    ],
)
def test_decode_matches_pil_rgb(kw):
    data = image_bytes(size=(13, 11), seed=5, **kw)
    pil = np.asarray(Image.open(io.BytesIO(data)).convert("RGB"))  # PIL opens a GIF on its first frame
    ours = preprocessing.decode_image(data).numpy()
    assert ours.shape == (11, 13, 3)
    np.testing.assert_array_equal(ours, pil)


@pytest.mark.parametrize("method", sorted(preprocessing.RESIZE_METHODS))
@pytest.mark.parametrize("antialias", [True, False])
def test_resize_settings_reach_tf_image(method, antialias):
    data = image_bytes(size=(37, 29), fmt="PNG", seed=9)
    got = preprocessing.image_to_transformed(data, 16, 20, method, antialias).numpy()
    assert got == expected_transformed(data, 16, 20, method, antialias)


def test_transform_settings_come_from_custom_config():
    cfg = GraftConfig()
    cfg.transform.resize_method = "area"
    cfg.transform.antialias = False
    cfg.data.classes = ["b", "a"]
    cc = dag.transform_custom_config(cfg, {"height": 10, "width": 12, "channels": 3, "path": "/somewhere"})
    assert json.loads(cc["backbone"]) == {"height": 10, "width": 12, "channels": 3}
    s = preprocessing.transform_settings(cc)
    assert s == {
        "height": 10,
        "width": 12,
        "resize_method": "area",
        "antialias": False,
        "crop_fraction": 1.0,
        "classes": ["b", "a"],
    }
    with pytest.raises(ValueError, match="preprocessing_fn needs custom_config"):
        preprocessing.transform_settings({"graft_config": cfg.to_json()})


def test_configured_classes_fix_the_label_order(tmp_path):
    """data.classes gives the index order (not frequency, not name); TFT beam outside TFX, TF2 mode."""
    import tensorflow as tf
    import tensorflow_transform as tft
    import tensorflow_transform.beam as tft_beam

    cfg = GraftConfig()
    cfg.data.classes = ["dog", "bird", "cat"]
    cc = dag.transform_custom_config(cfg, {"height": 4, "width": 4})
    raw = [
        {
            features.IMAGE_KEY: image_bytes(size=(6, 5), seed=i),
            features.LABEL_KEY: label.encode(),
            features.PATH_KEY: b"p",
        }
        for i, label in enumerate(["cat", "cat", "cat", "bird", "dog", "dog"])
    ]
    spec = {
        k: tf.io.FixedLenFeature([], tf.string)
        for k in (features.IMAGE_KEY, features.LABEL_KEY, features.PATH_KEY)
    }
    with tft_beam.Context(temp_dir=str(tmp_path / "tmp"), force_tf_compat_v1=False):
        (out, _), fn = (
            raw,
            tft.DatasetMetadata.from_feature_spec(spec),
        ) | tft_beam.AnalyzeAndTransformDataset(lambda inputs: preprocessing.preprocessing_fn(inputs, cc))
        _ = fn | tft_beam.WriteTransformFn(str(tmp_path / "out"))
    assert [int(o[features.TRANSFORMED_LABEL_KEY]) for o in out] == [2, 2, 2, 1, 0, 0]
    tto = tft.TFTransformOutput(str(tmp_path / "out"))
    assert [v.decode() for v in tto.vocabulary_by_name(features.LABEL_VOCAB_NAME)] == ["dog", "bird", "cat"]
    assert preprocessing.order_classes([b"zebra", b"cat"], ["dog", "cat"]) == ["dog", "cat", "zebra"]


def test_crop_fraction_keeps_the_centre_before_the_resize():
    import tensorflow as tf

    image = np.zeros((40, 40, 3), np.uint8)
    image[10:30, 10:30] = 200  # a bright centre square, half of each side
    whole = preprocessing.resize_to_uint8(tf.constant(image), 20, 20).numpy()
    centre = preprocessing.resize_to_uint8(tf.constant(image), 20, 20, crop_fraction=0.5).numpy()
    assert whole[0, 0, 0] == 0 and whole[10, 10, 0] == 200
    assert (centre == 200).all()  # only the square is left, resized to the output size
    from graft.pipeline.config import ConfigError

    cfg = GraftConfig()
    cfg.transform.crop_fraction = 0.0
    with pytest.raises(ConfigError, match="transform.crop_fraction"):
        cfg.validate()
