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
    return edge.export_variants(
        trained["export_dir"], trained["examples"], trained["class_names"], out, **args
    )


@pytest.fixture(scope="module")
def variants(trained):
    """float16 and int8 converted, scored and gated once (0.05 tolerance) into one directory the tests only read."""
    out = str(trained["root"] / "tflite_models")
    summary = _export(trained, out, max_accuracy_drop=0.05)
    return out, summary


def test_float16_and_int8_convert_score_and_pass_the_gate(trained, variants):
    out, summary = variants  # the conversion every test here shares (float16 and int8, a 0.05 tolerance)
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
    assert edge.blessed_files(out) == [
        "model_float16.tflite",
        "model_int8.tflite",
        "labels.txt",
        "results.json",
    ]


def test_tflite_probabilities_match_the_saved_model(trained, variants):
    out = variants[0]
    loaded, fn = convert.load_classifier(trained["export_dir"], SIZE, SIZE)
    images, _ = convert.transformed_images(trained["examples"], "test", SIZE, SIZE, limit=8)
    ref = evaluate.predict_all(evaluate.saved_model_predict(fn), images)
    got = evaluate.predict_all(
        evaluate.TFLiteClassifier(os.path.join(out, "model_float16.tflite")).predict, images
    )
    np.testing.assert_allclose(got, ref, atol=0.02)


def test_fast_scoring_paths_give_the_same_probabilities(trained, variants):
    """The component scores with the batched SavedModel and an every-core interpreter (speed); both must give
    what the batch-1 paths give (those are what latency and conversion use)."""
    out = variants[0]
    loaded, fn = convert.load_classifier(trained["export_dir"], SIZE, SIZE)
    images, _ = convert.transformed_images(trained["examples"], "test", SIZE, SIZE)
    batch1 = evaluate.predict_all(evaluate.saved_model_predict(fn), images)
    np.testing.assert_allclose(evaluate.saved_model_probabilities(loaded, images, batch=4), batch1, atol=1e-5)
    path = os.path.join(out, "model_int8.tflite")
    default = evaluate.predict_all(evaluate.TFLiteClassifier(path).predict, images)
    threaded = evaluate.predict_all(evaluate.TFLiteClassifier(path, num_threads=2).predict, images)
    np.testing.assert_allclose(threaded, default, atol=1e-6)
    assert evaluate.scoring_threads() >= 1


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


def _artifact(cls, uri, **props):
    a = cls()
    a.uri = str(uri)
    for k, v in props.items():
        a.set_int_custom_property(k, v)
    return a


def _push(trained, tflite_uri, serving, tmp_path, blessed=1):
    from tfx.proto import pusher_pb2
    from tfx.types import standard_artifacts
    from tfx.utils import proto_utils

    from graft.components import pusher

    model_dir = trained["export_dir"].rsplit(os.sep, 1)[0]  # <model uri>/Format-Serving
    inputs = {
        "model": [_artifact(standard_artifacts.Model, model_dir)],
        "model_blessing": [
            _artifact(standard_artifacts.ModelBlessing, tmp_path / "blessing", blessed=blessed)
        ],
        "tflite_models": [_artifact(edge.TFLiteModels, tflite_uri)],
    }
    pushed = _artifact(standard_artifacts.PushedModel, tmp_path / "pushed")
    dest = pusher_pb2.PushDestination(
        filesystem=pusher_pb2.PushDestination.Filesystem(base_directory=str(serving))
    )
    props = {"push_destination": proto_utils.proto_to_json(dest)}
    pusher.Executor().Do(inputs, {"pushed_model": [pushed]}, props)
    return pushed


def test_pusher_writes_blessed_variants_beside_the_saved_model(trained, variants, tmp_path):
    out, summary = variants
    # one refusal in the record: a copy of the results with int8 marked refused (its file is there but must stay)
    refused = tmp_path / "refused"
    import shutil

    shutil.copytree(out, refused)
    data = json.loads((refused / "results.json").read_text())
    for r in data["variants"]:
        if r["variant"] == "int8":
            r["blessed"] = False
    (refused / "results.json").write_text(json.dumps(data))
    serving = tmp_path / "serving"
    pushed = _push(trained, str(refused), serving, tmp_path)
    (version,) = [d for d in serving.iterdir()]
    assert version.name == pushed.get_string_custom_property("pushed_version")
    assert (version / "saved_model.pb").exists()
    assert sorted(os.listdir(version / "tflite")) == ["labels.txt", "model_float16.tflite", "results.json"]
    assert (version / "tflite" / "model_float16.tflite").read_bytes() == (
        refused / "model_float16.tflite"
    ).read_bytes()
    # nothing but the version is left in the serving directory (no staging)
    assert os.listdir(serving) == [version.name]


def test_pusher_pushes_nothing_when_the_saved_model_is_not_blessed(trained, variants, tmp_path):
    serving = tmp_path / "serving"
    pushed = _push(trained, variants[0], serving, tmp_path, blessed=0)
    assert pushed.get_int_custom_property("pushed") == 0
    assert not serving.exists() or not os.listdir(serving)


def test_a_failed_variant_copy_leaves_no_partial_version(trained, tmp_path):
    from graft.components import pusher

    serving = tmp_path / "serving"
    extra = {"tflite/model_int8.tflite": str(tmp_path / "missing.tflite")}
    with pytest.raises(pusher.PushError, match="no partial version"):
        pusher.push_atomically(trained["export_dir"], str(serving), extra=extra)
    assert os.listdir(serving) == []


def test_graft_predict_tflite_answers(trained, variants, tmp_path):
    import subprocess
    import sys
    from pathlib import Path

    from test_trainer import draw_image

    serving = tmp_path / "serving"
    _push(trained, variants[0], serving, tmp_path)
    img = tmp_path / "square.png"
    img.write_bytes(draw_image("square", 777))
    graft_bin = str(Path(sys.executable).parent / "graft")
    for flags in (["--tflite"], ["--tflite", "--tflite-variant", "float16"]):
        run = subprocess.run(
            [graft_bin, "predict", "--model", str(serving), *flags, "--json", str(img)],
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )
        assert run.returncode == 0, run.stderr[-2000:]
        answer = json.loads(run.stdout.strip().splitlines()[-1])
        assert answer["tflite_variant"] == (flags[-1] if len(flags) > 1 else "int8")
        assert answer["class_name"] in trained["class_names"] and 0.0 <= answer["probability"] <= 1.0
    # the same answer as the SavedModel on this image
    from graft.pipeline import predict

    assert predict.predict_files(serving, [str(img)])[0]["class_name"] == answer["class_name"]
    with pytest.raises(predict.PredictError, match="variant 'dynamic_range' was not pushed"):
        predict.predict_files_tflite(serving, [str(img)], "dynamic_range")
    # A file that is no image among good ones: the good ones are answered, the bad one named with the reason.
    bad = tmp_path / "notes.jpg"
    bad.write_text("not an image at all")
    good, wrong, again = predict.predict_files_tflite(serving, [str(img), str(bad), str(img)])
    assert good["class_name"] == again["class_name"] == answer["class_name"]
    assert wrong["image"] == str(bad) and "class_name" not in wrong
    assert (
        wrong["error"].startswith("not a readable image: ") and "Graph execution error" not in wrong["error"]
    )


def test_summary_lines_and_report_rows_give_each_variant_its_fate(variants):
    from graft.pipeline import runs, tflite_report

    results = edge.read_results(variants[0])
    results["variants"][1]["blessed"] = False
    results["variants"][1]["reason"] = "accuracy 0.3000 vs SavedModel 0.9000: drop 0.6000 exceeds ..."
    s = runs.RunSummary(
        run_id="r", pipeline_name="p", blessed=True, pushed=True, pushed_path="/s/m/7", tflite=results
    )
    rows = {r["variant"]: r for r in tflite_report.rows(s)}
    assert (
        rows["float16"]["pushed"] and rows["float16"]["why"] == "pushed to /s/m/7/tflite/model_float16.tflite"
    )
    assert not rows["int8"]["pushed"] and "0.3000 vs SavedModel 0.9000" in rows["int8"]["why"]
    assert 0 < rows["int8"]["size_ratio"] < rows["float16"]["size_ratio"]
    lines = tflite_report.summary_lines(s)
    assert any(
        line.startswith("[graft] TFLite int8:") and "NOT pushed (refused: accuracy 0.3000" in line
        for line in lines
    )
    s.blessed, s.pushed = False, False
    assert "SavedModel was not blessed" in tflite_report.rows(s)[0]["why"]


# ---- selective int8 (edge.int8_float_layers): the stem in float32, the rest full integer ------------------------
def _ops(path):
    """[(op name, dtype of its weights or None)] of a TFLite model, in execution order."""
    it = tf.lite.Interpreter(model_path=path)
    it.allocate_tensors()
    details = {d["index"]: d for d in it.get_tensor_details()}
    out = []
    for op in it._get_ops_details():
        inputs = [i for i in op["inputs"] if i >= 0]
        weights = details[inputs[1]]["dtype"] if len(inputs) > 1 else None
        out.append((op["op_name"], weights))
    return out


def test_int8_float_layers_keep_the_stem_float_and_the_rest_integer(trained, tmp_path):
    out = str(tmp_path / "tflite")
    summary = _export(trained, out, variants=["int8"], int8_float_layers=1, max_accuracy_drop=0.05)
    (r,) = summary["variants"]
    assert r["blessed"], r
    q = r["quantization"]
    assert q["int8_float_layers"] == 1
    assert q["float_ops"] and q["float_ops"][-1] == "block1_relu", q  # input ops through the first conv
    assert all(w["rmse_steps"] >= 0 and w["layer"] for w in q["worst_layers_full_int8"]), q
    path = os.path.join(out, "model_int8.tflite")
    weighted = [w for op, w in _ops(path) if op in ("CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED")]
    assert weighted[0] == np.float32, weighted  # the stem: float32 weights
    assert all(w == np.int8 for w in weighted[1:]), weighted  # the rest: integer
    m = evaluate.TFLiteClassifier(path)
    assert m.input["dtype"] == np.uint8 and m.output["dtype"] == np.float32
    # the float stem only costs its own weights: same order of size as the full-integer model
    full = _export(trained, str(tmp_path / "full"), variants=["int8"], max_accuracy_drop=1.0)["variants"][0]
    assert full["quantization"] == {} and full["size_bytes"] < r["size_bytes"] < 2 * full["size_bytes"]


def test_int8_float_layers_over_the_whole_model_is_refused_naming_the_key(trained, tmp_path):
    """The tiny backbone + head has 4 weighted layers: keeping 4 in float is no int8 model; the variant is refused
    with the key and the count, float16 still converts and passes."""
    out = str(tmp_path / "tflite")
    summary = _export(trained, out, int8_float_layers=4, max_accuracy_drop=0.05)
    by = {r["variant"]: r for r in summary["variants"]}
    assert by["float16"]["blessed"], by["float16"]
    assert not by["int8"]["blessed"]
    assert "edge.int8_float_layers=4" in by["int8"]["reason"] and "it has 4" in by["int8"]["reason"]
    assert edge.blessed_files(out) == ["model_float16.tflite", "labels.txt", "results.json"]


def test_edge_int8_float_layers_is_a_typed_key_with_a_named_error():
    from graft.components.edge.config import DEFAULT_INT8_FLOAT_LAYERS, EdgeConfig
    from graft.errors import ConfigError
    from graft.pipeline import config as config_lib

    assert EdgeConfig().int8_float_layers == DEFAULT_INT8_FLOAT_LAYERS == 3
    assert config_lib.load_config(overrides=["edge.int8_float_layers=0"]).edge.int8_float_layers == 0
    for bad in ("-1", "two"):
        with pytest.raises(ConfigError, match="edge.int8_float_layers"):
            config_lib.load_config(overrides=[f"edge.int8_float_layers={bad}"])
