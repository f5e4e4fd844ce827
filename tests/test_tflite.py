"""Edge export: TFLite conversion, interpreter evaluation, the per-variant gate, the Pusher's copy, predict --tflite.

Real pieces: small real PNG/JPEG images (shapes drawn with PIL), a real tf.Transform analysis (Beam) and the
transformed splits it produces, Graft's offline ``tiny`` TF Hub backbone, a classifier trained on them and exported
by ``signatures.export_model`` exactly as the Trainer does, the real TFLite converter and interpreter.
"""

from __future__ import annotations

import json
import os

import numpy as np
import pytest

import graft  # noqa: F401

# isort: split
import tensorflow as tf
from test_model import train_cfg
from test_trainer import analyze, make_split, write_transformed

from graft.components import backbones, signatures
from graft.components import model as model_lib
from graft.components.edge import component as edge
from graft.components.edge import convert, evaluate

SIZE = 32


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """Transform output + transformed train/test splits + a trained, exported classifier on the tiny backbone."""
    import tensorflow_transform as tft

    root = tmp_path_factory.mktemp("tflite")
    train, test = make_split(24, seed=1), make_split(10, seed=2)
    tft_dir = analyze(train, str(root / "transform_output"), size=SIZE)
    tft_output = tft.TFTransformOutput(tft_dir)
    examples = root / "transformed"
    write_transformed(tft_output, train, str(examples / "Split-train"))
    write_transformed(tft_output, test, str(examples / "Split-test"))
    info = backbones.resolve_backbone("tiny", input_size=SIZE)
    cfg = train_cfg(fine_tune_fraction=0.0, dropout=0.0)
    model = model_lib.build_classifier(info, 3, cfg)
    x, y = convert.transformed_images(str(examples), "train", SIZE, SIZE)
    model.compile(optimizer=tf.keras.optimizers.Adam(0.01), loss=model_lib.make_loss(3))
    model.fit(x, y, batch_size=16, epochs=25, verbose=0, shuffle=True)
    export_dir = str(root / "model" / "Format-Serving")
    signatures.export_model(model, tft_output, export_dir, SIZE, SIZE)
    return {
        "root": root,
        "examples": str(examples),
        "export_dir": export_dir,
        "class_names": signatures.class_names(tft_output),
    }


def _export(trained, out, **kw):
    args = dict(
        variants=["float16", "int8"],
        representative_examples=60,
        max_accuracy_drop=0.01,
        height=SIZE,
        width=SIZE,
        latency_runs=5,
    )
    args.update(kw)
    return edge.export_variants(trained["export_dir"], trained["examples"], trained["class_names"], out, **args)


def test_float16_and_int8_convert_score_and_pass_the_gate(trained, tmp_path):
    out = str(tmp_path / "tflite")
    summary = _export(trained, out, max_accuracy_drop=0.05)
    by = {r["variant"]: r for r in summary["variants"]}
    assert set(by) == {"float16", "int8"}
    # the float32 reference is a trained model, not chance
    assert by["int8"]["saved_model_accuracy"] > 0.8, by
    for v in ("float16", "int8"):
        assert by[v]["blessed"], by[v]
        assert os.path.getsize(os.path.join(out, by[v]["file"])) == by[v]["size_bytes"] > 0
    # int8: raw-pixel uint8 in, uint8 out
    m = evaluate.TFLiteClassifier(os.path.join(out, "model_int8.tflite"))
    assert m.input["dtype"] == np.uint8 and m.output["dtype"] == np.uint8
    assert m.input_shape == (1, SIZE, SIZE, 3)
    assert convert.read_labels(os.path.join(out, "labels.txt")) == trained["class_names"]
    # results are TFMA-readable
    import tensorflow_model_analysis as tfma

    metrics = list(tfma.load_metrics(os.path.join(out, "evaluation", "int8")))
    overall = next(m for m in metrics if not m.slice_key.single_slice_keys)
    acc = {kv.key.name: kv.value.double_value.value for kv in overall.metric_keys_and_values}
    assert acc["sparse_categorical_accuracy"] == pytest.approx(by["int8"]["accuracy"])
    assert tfma.load_validation_result(os.path.join(out, "evaluation", "int8")).validation_ok
    assert edge.blessed_files(out) == ["model_float16.tflite", "model_int8.tflite", "labels.txt", "results.json"]


def test_tflite_probabilities_match_the_saved_model(trained, tmp_path):
    out = str(tmp_path / "tflite")
    _export(trained, out, variants=["float16"])
    loaded, fn = convert.load_classifier(trained["export_dir"], SIZE, SIZE)
    images, _ = convert.transformed_images(trained["examples"], "test", SIZE, SIZE, limit=8)
    ref = evaluate.predict_all(evaluate.saved_model_predict(fn), images)
    got = evaluate.predict_all(evaluate.TFLiteClassifier(os.path.join(out, "model_float16.tflite")).predict, images)
    np.testing.assert_allclose(got, ref, atol=0.02)


def test_blank_representative_set_breaks_int8_and_is_refused(trained, tmp_path, monkeypatch):
    """Calibrating on blank images gives activation ranges of nothing: the int8 model is refused by the gate, with
    both figures in the reason; the float16 variant still passes."""
    real = convert.transformed_images

    def blank_train(uri, split, h, w, limit=None):
        images, labels = real(uri, split, h, w, limit)
        return (np.zeros_like(images) if split == "train" else images), labels

    monkeypatch.setattr(convert, "transformed_images", blank_train)
    out = str(tmp_path / "tflite")
    summary = _export(trained, out)
    by = {r["variant"]: r for r in summary["variants"]}
    assert by["float16"]["blessed"], by["float16"]
    bad = by["int8"]
    assert not bad["blessed"], bad
    assert bad["drop"] > 0.01
    assert f"{bad['accuracy']:.4f}" in bad["reason"] and f"{bad['saved_model_accuracy']:.4f}" in bad["reason"]
    assert "max_tflite_accuracy_drop" in bad["reason"]
    import tensorflow_model_analysis as tfma

    assert not tfma.load_validation_result(os.path.join(out, "evaluation", "int8")).validation_ok
    assert edge.blessed_files(out) == ["model_float16.tflite", "labels.txt", "results.json"]
    assert json.loads((tmp_path / "tflite" / "results.json").read_text())["variants"][1]["blessed"] is False


def test_unknown_variant_is_a_clear_error():
    with pytest.raises(convert.EdgeExportError, match="allowed: float32, float16, dynamic_range, int8"):
        convert.check_variants(["int4"])
