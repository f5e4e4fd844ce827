"""The validation gate: curated schema + ExampleValidator + DataGate stop the real DAG before Transform."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner
from data_helpers import CLASSES, DATA_HALF, executions, make_tree, write

from graft.components import data_gate, features
from graft.components.data_errors import DataValidationError
from graft.pipeline import dag, dag_inputs
from graft.pipeline.config import ConfigError, GraftConfig

BACKBONE = {"height": 8, "width": 8, "channels": 3}  # a BackboneInfo-like dict: Transform needs only the size


def _config(tmp_path: Path, data, **data_kw) -> GraftConfig:
    cfg = GraftConfig(name="gate", root=str(tmp_path / "runs"))
    cfg.data.path = str(data)
    for k, v in data_kw.items():
        setattr(cfg.data, k, v)
    return cfg.validate()


def run_dag(cfg: GraftConfig):
    """The real DAG from create_pipeline, run up to Transform (TFX partial run): the data half only."""
    from tfx.orchestration import pipeline as tfx_pipeline
    from tfx.orchestration.local.local_dag_runner import LocalDagRunner

    LocalDagRunner().run(
        dag.create_pipeline(cfg, BACKBONE, dag_inputs.resolve(cfg)),
        run_options=tfx_pipeline.RunOptions(to_nodes=["Transform"]),
    )


def assert_stopped_before_transform(cfg: GraftConfig, *needles: str) -> str:
    with pytest.raises(DataValidationError) as e:
        run_dag(cfg)
    msg = str(e.value)
    for n in needles:
        assert n in msg, f"{n!r} not in:\n{msg}"
    states = executions(str(cfg.metadata_path))
    assert states["DataGate"][-1] == "FAILED"
    assert "Transform" not in states or all(s != "COMPLETE" for s in states["Transform"])
    assert e.value.problems and all(isinstance(p, str) for p in e.value.problems)
    return msg


# ---- the committed schema ---------------------------------------------------------------------------------------
def test_committed_schema_is_curated():
    text = Path(data_gate.default_schema_path()).read_text()
    schema = data_gate.parse_schema(text)
    by_name = {f.name: f for f in schema.feature}
    assert set(by_name) == {features.IMAGE_KEY, features.LABEL_KEY, features.PATH_KEY}
    for f in by_name.values():
        assert (
            f.presence.min_fraction == 1.0 and f.HasField("shape") and len(f.shape.dim) == 0
        )  # exactly one value
    assert list(schema.default_environment) == ["TRAINING", "SERVING"]
    assert list(by_name[features.LABEL_KEY].not_in_environment) == ["SERVING"]
    assert list(by_name[features.PATH_KEY].not_in_environment) == ["SERVING"]
    assert not by_name[features.IMAGE_KEY].not_in_environment
    assert data_gate.label_domain(schema) == []  # filled at run time
    data_gate.fill_label_domain(schema, ["b", "a"])
    assert data_gate.label_domain(schema) == ["b", "a"]


def test_transform_feature_spec_from_the_schema():
    from tensorflow_transform.tf_metadata import schema_utils

    schema = data_gate.parse_schema(Path(data_gate.default_schema_path()).read_text())
    spec = schema_utils.schema_as_feature_spec(schema).feature_spec
    assert {k: (v.shape, v.dtype.name) for k, v in spec.items()} == {
        k: ([], "string") for k in (features.IMAGE_KEY, features.LABEL_KEY, features.PATH_KEY)
    }


# ---- gate rules on reports (no TFX run) -----------------------------------------------------------------------
def _report(counts, form="folders"):
    return {
        "form": form,
        "data_path": "/data",
        "counts": counts,
        "num_examples": sum(sum(c.values()) for c in counts.values()),
    }


def test_gate_rules_in_plain_words():
    ok = {"train": {"a": 5, "b": 6}, "val": {"a": 1, "b": 1}, "test": {"a": 1}}
    assert data_gate.gate_problems(_report(ok), {}, ["a", "b"], [], 5) == []
    p = data_gate.gate_problems(_report({"train": {"a": 9}, "val": {}, "test": {"a": 1}}), {}, ["a"], [], 5)
    assert any(x.startswith("split 'val' has no examples") for x in p)
    assert any(x.startswith("only 1 class ('a'): a classifier needs at least 2") for x in p)
    p = data_gate.gate_problems(_report(ok), {}, ["a", "b", "c"], ["a", "b", "c"], 6)
    assert "class 'a' has 5 train examples, fewer than data.min_train_examples_per_class=6" in p[0]
    assert "class 'c' has 0 train examples" in p[1] and len(p) == 2
    p = data_gate.gate_problems(_report(ok, form="presplit"), {}, ["a"], ["a"], 1)
    assert any("label 'b' (6 train, 1 val, 0 test examples) is not in data.classes ['a']" in x for x in p)
    empty = {"train": {"a": 5, "b": 5}, "val": {"a": 1, "b": 1}, "test": {}}
    p = data_gate.gate_problems(_report(empty, form="presplit"), {}, ["a", "b"], [], 5)
    assert p == ["split 'test' has no examples: add images under test/<class>/ in /data"]


def test_anomalies_are_described_per_split_and_feature(tmp_path):
    """Real TFDV statistics and validation, described in plain words."""
    import tensorflow as tf
    import tensorflow_data_validation as tfdv

    schema = data_gate.parse_schema(Path(data_gate.default_schema_path()).read_text())
    data_gate.fill_label_domain(schema, ["cat", "dog"])

    def ex(label):
        f = {features.IMAGE_KEY: tf.train.Feature(bytes_list=tf.train.BytesList(value=[b"x"]))}
        f[features.PATH_KEY] = tf.train.Feature(bytes_list=tf.train.BytesList(value=[b"p"]))
        if label is not None:
            f[features.LABEL_KEY] = tf.train.Feature(bytes_list=tf.train.BytesList(value=label))
        return tf.train.Example(features=tf.train.Features(feature=f)).SerializeToString()

    path = str(tmp_path / "x.tfrecord")
    with tf.io.TFRecordWriter(path) as w:
        for e in [ex([b"cat"]), ex([b"horse"]), ex([b"cat", b"dog"]), ex(None)]:
            w.write(e)
    anomalies = tfdv.validate_statistics(tfdv.generate_statistics_from_tfrecord(path), schema)
    lines = [s for _, s in data_gate.describe_anomalies("val", anomalies)]
    text = "\n".join(lines)
    assert "split 'val', feature 'label': has values outside the allowed list" in text and "horse" in text
    assert "split 'val', feature 'label': some examples have no label or more than one" in text
    assert "split 'val', feature 'label': is missing from some or all examples" in text


# ---- the real DAG stops at the gate -----------------------------------------------------------------------------
def test_gate_stops_on_an_empty_split(tmp_path):
    data = tmp_path / "data"
    make_tree(data / "train", per_class=6)
    make_tree(data / "val", per_class=2, seed0=50)
    (
        data / "test"
    ).mkdir()  # a test/ folder without images (without the folder, test is carved out of train/)
    cfg = _config(tmp_path, data)
    assert_stopped_before_transform(cfg, "split 'test' has no examples: add images under test/<class>/")


def test_gate_stops_on_a_single_class(tmp_path):
    data = tmp_path / "data"
    make_tree(data, classes=("cat",), per_class=40)
    assert_stopped_before_transform(
        _config(tmp_path, data), "only 1 class ('cat'): a classifier needs at least 2"
    )


def test_gate_stops_on_a_class_with_too_few_train_examples(tmp_path):
    data = tmp_path / "data"
    make_tree(data, classes=("cat", "dog"), per_class=12)
    make_tree(data, classes=("eel",), per_class=3, seed0=77)
    msg = assert_stopped_before_transform(
        _config(tmp_path, data), "class 'eel' has", "fewer than data.min_train_examples_per_class=5"
    )
    assert "class 'cat'" not in msg


def test_gate_stops_on_labels_outside_the_configured_classes(tmp_path):
    data = tmp_path / "data"
    make_tree(data, per_class=12)
    msg = assert_stopped_before_transform(
        _config(tmp_path, data, classes=["cat", "dog"]),
        "label 'bird' (",
        "is not in data.classes ['cat', 'dog']: add it to data.classes or remove those images",
    )
    assert "outside the allowed list" not in msg  # TFDV's version of the same problem is not repeated


def test_gate_stops_on_a_schema_anomaly(tmp_path):
    """A user-curated schema (data.schema_path) that requires a feature the data lacks: ExampleValidator's anomaly
    reaches the user as a sentence naming the split and the feature."""
    data = tmp_path / "data"
    make_tree(data, classes=("cat", "dog"), per_class=12)
    custom = tmp_path / "my_schema.pbtxt"
    custom.write_text(
        Path(data_gate.default_schema_path()).read_text()
        + '\nfeature { name: "photographer" type: BYTES presence { min_fraction: 1.0 min_count: 1 } }\n'
    )
    msg = assert_stopped_before_transform(
        _config(tmp_path, data, schema_path=str(custom)),
        "split 'train', feature 'photographer': is missing from some or all examples",
        "split 'test', feature 'photographer'",
    )
    assert msg.startswith("data validation failed for")


def test_bad_schema_path_is_a_config_error(tmp_path):
    cfg = _config(tmp_path, tmp_path, schema_path=str(tmp_path / "missing.pbtxt"))
    with pytest.raises(ConfigError, match="data.schema_path.*cannot read"):
        dag_inputs.schema_text(cfg)
    bad = tmp_path / "bad.pbtxt"
    bad.write_text('feature { name: "image_bytes" ')
    cfg.data.schema_path = str(bad)
    with pytest.raises(ConfigError, match="not a valid tensorflow_metadata Schema"):
        dag_inputs.schema_text(cfg)


# ---- the DAG's wiring ---------------------------------------------------------------------------------------------
def test_transform_depends_on_the_gate_and_compiles_for_kubeflow(tmp_path):
    data = tmp_path / "data"
    make_tree(data, per_class=2)
    cfg = _config(tmp_path, data)
    p = dag.create_pipeline(cfg, BACKBONE, dag_inputs.resolve(cfg))
    by_id = {c.id: c for c in p.components}
    assert set(DATA_HALF) <= set(by_id)
    transform = by_id["Transform"]
    assert transform.inputs["schema"].producer_component_id == "DataGate"
    assert (
        "analyzer_cache" not in transform.inputs
    )  # no analyzer-cache resolver: unchanged reruns stay cached
    splits = json.loads(transform.exec_properties["splits_config"])
    assert splits == {"analyze": ["train"], "transform": ["train", "val", "test"]}
    cc = json.loads(transform.exec_properties["custom_config"])
    assert json.loads(cc["backbone"]) == BACKBONE
    assert GraftConfig.from_json(cc["graft_config"]).transform == cfg.transform

    # The same function compiles for Kubeflow V2 / Vertex without touching the local disk (only the output file).
    from tfx.orchestration.kubeflow.v2 import kubeflow_v2_dag_runner as kfp_runner

    cfg.kubeflow.pipeline_root = "gs://bucket/graft"
    before = sorted(p.name for p in tmp_path.rglob("*"))
    out = tmp_path / "compiled.json"
    runner = kfp_runner.KubeflowV2DagRunner(
        config=kfp_runner.KubeflowV2DagRunnerConfig(default_image="graft:test"), output_filename=str(out)
    )
    runner.run(dag.create_pipeline(cfg, BACKBONE, dag_inputs.resolve(cfg), for_kubeflow=True))
    assert sorted(p.name for p in tmp_path.rglob("*")) == sorted([*before, out.name])
    spec = json.loads(out.read_text())["pipelineSpec"]
    tasks = spec["root"]["dag"]["tasks"]
    assert "DataGate" in tasks["Transform"]["dependentTasks"]
    assert tasks["Transform"]["inputs"]["artifacts"]["schema"]["taskOutputArtifact"] == {
        "outputArtifactKey": "validated_schema",
        "producerTask": "DataGate",
    }


def test_changing_train_settings_keeps_the_data_half_cached(tmp_path):
    data = tmp_path / "data"
    make_tree(data, per_class=2)
    a = _config(tmp_path, data)
    b = _config(tmp_path, data)
    b.train.batch_size = 7
    b.evaluation.min_accuracy = 0.9
    pa, pb = (
        dag.create_pipeline(a, BACKBONE, dag_inputs.resolve(a)),
        dag.create_pipeline(b, BACKBONE, dag_inputs.resolve(b)),
    )
    props_b = {c.id: c.exec_properties for c in pb.components}
    for c in pa.components:
        if c.id in DATA_HALF:
            assert c.exec_properties == props_b[c.id], c.id


# ---- graft schema infer ------------------------------------------------------------------------------------------
def test_schema_infer_command_writes_a_usable_schema(tmp_path):
    from graft.cli import main

    data = tmp_path / "data"
    make_tree(data, per_class=3)
    write(data / "cat" / "bad.jpg", b"")
    out = tmp_path / "schema" / "mine.pbtxt"
    result = CliRunner().invoke(main, ["schema", "infer", "--data", str(data), "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert "inferred from 9 examples, 3 classes (1 bad files skipped)" in result.output
    schema = data_gate.parse_schema(out.read_text())
    by_name = {f.name: f for f in schema.feature}
    assert list(by_name[features.LABEL_KEY].not_in_environment) == ["SERVING"]
    assert data_gate.label_domain(schema) == list(CLASSES)
    # Usable as data.schema_path; refuses to overwrite without --force.
    cfg = _config(tmp_path, data, schema_path=str(out))
    assert "photographer" not in dag_inputs.schema_text(cfg)
    again = CliRunner().invoke(main, ["schema", "infer", "--data", str(data), "--out", str(out)])
    assert again.exit_code == 2 and "--force" in again.output
    empty = tmp_path / "empty"
    write(empty / "cat" / "x.txt", b"")
    none = CliRunner().invoke(
        main, ["schema", "infer", "--data", str(empty), "--out", str(tmp_path / "n.pbtxt")]
    )
    assert none.exit_code == 3 and "no usable image" in none.output


def test_image_bytes_only_example_is_valid_in_the_serving_environment():
    """What a serving request carries (image_bytes only) is valid in SERVING and not in TRAINING."""
    import tensorflow_data_validation as tfdv
    from tensorflow_metadata.proto.v0 import statistics_pb2

    schema = data_gate.parse_schema(Path(data_gate.default_schema_path()).read_text())
    data_gate.fill_label_domain(schema, ["cat", "dog"])
    stats = statistics_pb2.DatasetFeatureStatisticsList()
    ds = stats.datasets.add(num_examples=2)
    f = ds.features.add()
    f.path.step.append(features.IMAGE_KEY)
    f.type = statistics_pb2.FeatureNameStatistics.STRING
    f.string_stats.common_stats.num_non_missing = 2
    f.string_stats.common_stats.min_num_values = 1
    f.string_stats.common_stats.max_num_values = 1
    f.string_stats.common_stats.tot_num_values = 2
    assert not tfdv.validate_statistics(stats, schema, environment="SERVING").anomaly_info
    assert features.LABEL_KEY in tfdv.validate_statistics(stats, schema, environment="TRAINING").anomaly_info
