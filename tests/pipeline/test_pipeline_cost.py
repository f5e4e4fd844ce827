"""Waste the profiler found in the pipeline, kept out (bench/README "Benchmarks" has the before/after figures).

* Beam args: with the DirectRunner, TFX must not package itself into an sdist per Beam component.
  TFX's BaseBeamExecutor calls ``dependency_utils.make_beam_dependency_flags`` when it starts; without a
  dependency flag that copies the whole TFX install to a temp dir and runs ``setup.py sdist`` (seconds per
  component, 48 MB left under /tmp each time), for workers that, with the DirectRunner, are this very process.
* StatisticsGen gets the curated schema, where ``image_bytes`` has an ``image_domain``: TFDV computes byte-size
  statistics for it instead of the top-k / unique counts of a string feature, which kept every image's bytes as a
  counting key (peak RSS 1.96 -> 0.80 GB on 8k 224px images).
* The Evaluator's AUC runs at 1,000 thresholds (TFMA builds it on every slice; 10,000 cost a third of the demo's
  Evaluator time for a macro AUC that moved by 2e-5).
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import pytest
from data_helpers import make_tree

from graft.components import evaluation, features
from graft.pipeline import dag, dag_inputs
from graft.pipeline.config import EvaluationConfig, GraftConfig

BACKBONE = {"height": 32, "width": 32, "channels": 3}


# ---- Beam args -------------------------------------------------------------------------------------------------
def test_direct_runner_args_carry_a_dependency_flag_that_tfx_accepts():
    from tfx.utils import dependency_utils

    args = dag.beam_pipeline_args(GraftConfig())
    assert dag.DIRECT_RUNNER_DEPENDENCY_FLAG in args
    assert any(a.startswith("--direct_running_mode=") for a in args)
    # TFX finds a dependency flag and returns the args as they are: no sdist is built.
    assert dependency_utils.make_beam_dependency_flags(list(args)) == args


def test_other_runners_and_user_dependency_flags_are_left_alone():
    cfg = GraftConfig()
    cfg.beam.args = ["--runner=DataflowRunner", "--project=p", "--temp_location=gs://b/t", "--region=r"]
    assert not any(a.startswith("--sdk_container_image") for a in dag.beam_pipeline_args(cfg))
    cfg = GraftConfig()
    cfg.beam.args = ["--extra_package=/pkgs/mine.tar.gz"]
    args = dag.beam_pipeline_args(cfg)
    assert dag.DIRECT_RUNNER_DEPENDENCY_FLAG not in args and "--extra_package=/pkgs/mine.tar.gz" in args


# ---- a real run of the DAG up to StatisticsGen ------------------------------------------------------------------
@pytest.fixture(scope="module")
def stats_run(tmp_path_factory):
    """The DAG's own components and Beam args through LocalDagRunner, up to StatisticsGen, with the temp dir
    redirected so that anything TFX leaves there can be seen."""
    from tfx.orchestration import pipeline as tfx_pipeline
    from tfx.orchestration.local.local_dag_runner import LocalDagRunner

    base = tmp_path_factory.mktemp("cost")
    tmp = base / "tmp"
    tmp.mkdir()
    saved = tempfile.tempdir
    tempfile.tempdir = str(tmp)
    try:
        data = base / "data"
        make_tree(data, per_class=6)
        cfg = GraftConfig(name="cost", root=str(base / "runs"))
        cfg.data.path = str(data)
        cfg.validate()
        LocalDagRunner().run(
            dag.create_pipeline(cfg, BACKBONE, dag_inputs.resolve(cfg)),
            run_options=tfx_pipeline.RunOptions(to_nodes=["StatisticsGen"]),
        )
    finally:
        tempfile.tempdir = saved
    return cfg, tmp


def test_a_real_run_builds_no_tfx_sdist(stats_run):
    cfg, tmp = stats_run
    assert list(Path(cfg.pipeline_root).glob("StatisticsGen/statistics/*/Split-train/FeatureStats.pb"))
    assert not list(tmp.glob("*/build/tfx")), "TFX built its ephemeral sdist"


def test_statistics_treat_image_bytes_as_an_image(stats_run):
    import tensorflow_data_validation as tfdv

    cfg, _ = stats_run
    (path,) = Path(cfg.pipeline_root).glob("StatisticsGen/statistics/*/Split-train/FeatureStats.pb")
    by_name = {f.path.step[0]: f for f in tfdv.load_stats_binary(str(path)).datasets[0].features}
    image = by_name[features.IMAGE_KEY]
    assert image.WhichOneof("stats") == "bytes_stats", image
    assert image.bytes_stats.avg_num_bytes > 0 and image.bytes_stats.unique == 0
    # The label stays a string feature with its classes counted.
    assert by_name[features.LABEL_KEY].WhichOneof("stats") == "string_stats"
    assert by_name[features.LABEL_KEY].string_stats.unique == 3


# ---- Evaluator ---------------------------------------------------------------------------------------------------
def test_auc_is_built_by_tfma_with_1000_thresholds():
    from tensorflow_model_analysis.metrics import metric_specs

    ec = evaluation.build_eval_config(EvaluationConfig(), [str(i) for i in range(10)])
    aucs = [m for spec in ec.metrics_specs for m in spec.metrics if m.class_name == "AUC"]
    assert len(aucs) == 1
    auc = metric_specs.metric_instance(aucs[0])
    assert auc.get_config()["num_thresholds"] == evaluation.AUC_THRESHOLDS == 1000
    assert auc.name == "auc"  # the metric key the report and summaries read is unchanged


def test_no_class_names_means_no_auc():
    ec = evaluation.build_eval_config(EvaluationConfig(), None)
    assert not [m for spec in ec.metrics_specs for m in spec.metrics if m.class_name == "AUC"]


def test_inferred_schemas_get_the_image_domain_too():
    from tensorflow_metadata.proto.v0 import schema_pb2

    from graft.components import schema_infer

    schema = schema_pb2.Schema()
    for name in (features.IMAGE_KEY, features.LABEL_KEY, features.PATH_KEY):
        schema.feature.add(name=name, type=schema_pb2.BYTES)
    schema.feature[
        0
    ].domain = features.IMAGE_KEY  # what TFDV's inference may give: a string domain of contents
    curated = schema_infer.curate(schema, ["a", "b"])
    image = next(f for f in curated.feature if f.name == features.IMAGE_KEY)
    assert image.WhichOneof("domain_info") == "image_domain"
    from graft import schemas

    committed = Path(schemas.schema_path("image_classification"))
    assert "image_domain {}" in committed.read_text()
