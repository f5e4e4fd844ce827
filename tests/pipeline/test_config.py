from __future__ import annotations

import pytest

from graft.pipeline.config import ConfigError, GraftConfig, load_config, parse_override


def test_defaults_validate_and_roundtrip_json():
    cfg = GraftConfig().validate()
    again = GraftConfig.from_json(cfg.to_json())
    assert again == cfg
    assert cfg.train.fine_tune_fraction == 0.07
    assert cfg.evaluation.min_accuracy > 0  # thresholds always exist (tfx#5148)


def test_yaml_then_set_overrides(tmp_path):
    f = tmp_path / "c.yaml"
    f.write_text("train:\n  batch_size: 8\n  augment:\n    enabled: false\ndata:\n  classes: [a, b]\n")
    cfg = load_config(f, ["train.batch_size=16", "evaluation.min_accuracy=0.9", "data.classes=x,y,z"])
    assert cfg.train.batch_size == 16
    assert cfg.train.augment.enabled is False
    assert cfg.evaluation.min_accuracy == 0.9
    assert cfg.data.classes == ["x", "y", "z"]


def test_exponent_numbers_without_a_dot_are_numbers_in_yaml_and_set(tmp_path):
    # PyYAML (YAML 1.1) resolves 1e-4 to the string '1e-4'; a float key takes it as the number it is.
    f = tmp_path / "c.yaml"
    f.write_text("train:\n  phase2_learning_rate: 1e-4\n")
    cfg = load_config(f, ["train.phase1_learning_rate=3E-3", "evaluation.min_accuracy=5e-1"])
    assert cfg.train.phase2_learning_rate == pytest.approx(1e-4)
    assert cfg.train.phase1_learning_rate == pytest.approx(3e-3)
    assert cfg.evaluation.min_accuracy == pytest.approx(0.5)
    with pytest.raises(ConfigError, match="'train.batch_size': expected an integer"):
        load_config(None, ["train.batch_size=1e2"])  # an integer key is not widened
    with pytest.raises(ConfigError, match="'train.phase2_learning_rate': expected a number, got '1e-4x'"):
        load_config(None, ["train.phase2_learning_rate=1e-4x"])


@pytest.mark.parametrize(
    "override, needle",
    [
        ("train.batchsize=3", "unknown config key 'train.batchsize'"),
        ("nope.x=1", "unknown config key 'nope'"),
        ("train.batch_size=abc", "'train.batch_size': expected an integer"),
        ("train.batch_size=-1", "'train.batch_size'"),
        ("train.fine_tune_fraction=1.5", "'train.fine_tune_fraction': must be in [0, 1]"),
        ("train.mixed_precision=maybe", "allowed values: 'auto', 'on', 'off'"),
        ("train.class_weights=weird", "'train.class_weights'"),
        ("data.train_fraction=0.5", "add up to 1.0"),
        ("push.model_name=../../etc", "not a safe name"),
        ("data.classes=[ok, ../evil]", "not a safe name"),
        ("evaluation.min_accuracy=1.5", "'evaluation.min_accuracy'"),
        ("train.phase1_learning_rate=.nan", "finite"),
        ("data.schema_path=my_schema.txt", "'data.schema_path'"),
        ("kubeflow.trainer_accelerator_count=-1", "'kubeflow.trainer_accelerator_count': must be in [0, 16]"),
        ("kubeflow.trainer_accelerator_type=t4", "expected a Vertex accelerator name"),
        ("kubeflow.kfp_accelerator_resource=gpu", "Kubernetes extended resource name"),
        (
            "kubeflow.image=Not An Image",
            "'kubeflow.image': 'Not An Image' is not a container image reference",
        ),
        ("kubeflow.region=Europe", "'kubeflow.region'"),
        ("kubeflow.trainer_memory_gb=0", "'kubeflow.trainer_memory_gb'"),
        ("kubeflow.kfp_host=localhost:8080", "'kubeflow.kfp_host'"),
        ("beam.runner=spark2", "allowed values: 'direct', 'dataflow', 'flink', 'spark'"),
        ("beam.runner=dataflow", "'beam.dataflow.project'"),
        ("beam.runner=flink", "'beam.portable.job_endpoint'"),
    ],
)
def test_bad_values_name_the_key(override, needle):
    with pytest.raises(ConfigError) as e:
        load_config(None, [override])
    assert needle in str(e.value)


def test_override_syntax_errors():
    with pytest.raises(ConfigError, match="expected key=value"):
        parse_override("train.batch_size")
    assert parse_override("train.class_weights={a: 2, b: 1}") == ("train.class_weights", {"a": 2, "b": 1})


def test_missing_or_bad_config_file(tmp_path):
    with pytest.raises(ConfigError, match="does not exist"):
        load_config(tmp_path / "missing.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("- just\n- a list\n")
    with pytest.raises(ConfigError, match="must hold a mapping"):
        load_config(bad)


def test_derived_paths(tmp_path):
    cfg = load_config(None, [f"root={tmp_path}", "name=demo", "push.model_name=digits"])
    assert cfg.metadata_path == tmp_path / "demo" / "metadata.sqlite"
    assert cfg.serving_model_dir == tmp_path / "demo" / "serving" / "digits"


def test_dataflow_settings_become_beam_args_and_beam_args_come_last():
    cfg = load_config(
        None,
        [
            "beam.runner=dataflow",
            "beam.dataflow.project=my-project",
            "beam.dataflow.region=europe-west4",
            "beam.dataflow.temp_location=gs://bucket/tmp",
            "beam.dataflow.sdk_container_image=europe-docker.pkg.dev/my-project/graft/graft:1.0",
            "beam.args=[--max_num_workers=3]",
        ],
    )
    args = cfg.beam.pipeline_args()
    assert args[0] == "--runner=DataflowRunner" and args[-1] == "--max_num_workers=3"
    assert "--max_num_workers=10" in args  # the typed default, overridden by the later beam.args value
    assert not any(a.startswith("--direct_") for a in args)
    with pytest.raises(ConfigError, match="'beam.dataflow.temp_location'.*gs://"):
        load_config(
            None,
            [
                "beam.runner=dataflow",
                "beam.dataflow.project=my-project",
                "beam.dataflow.region=europe-west4",
                "beam.dataflow.temp_location=/tmp/x",
            ],
        )
