"""`graft compile`: the real create_pipeline through TFX's KubeflowV2DagRunner, read back as kfp.pipeline_spec protos.

The cluster config is hermetic: TFRecords named by a gs:// glob (the layout needs no listing), a gs:// backbone whose
metadata comes from --backbone-info (written from the real 'tiny' module), gs:// pipeline root and serving root.
Nothing here needs credentials or a network.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
from pathlib import Path

import pytest
from click.testing import CliRunner
from data_helpers import CONTAINER_COMPONENTS

from graft.cli import main
from graft.kubeflow import compile as kfc
from graft.kubeflow import image as kimage
from graft.kubeflow import spec as kspec
from graft.pipeline.config import ConfigError, GraftConfig

IMAGE = "us-central1-docker.pkg.dev/graft-test/graft/graft:1.0"
TRAINER_IMAGE = "us-central1-docker.pkg.dev/graft-test/graft/graft-cuda:1.0"
ENTRYPOINT = ["python", "-m", "tfx.orchestration.kubeflow.v2.container.kubeflow_v2_run_executor"]
BEAM_TASKS = ("ImageExampleGen", "StatisticsGen", "Transform", "Evaluator")
# Executor classes that are TFX's own (the rest are Graft's and read from the DAG itself).
TFX_CLASSES = {
    "StatisticsGen": "tfx.components.statistics_gen.executor.Executor",
    "ExampleValidator": "tfx.components.example_validator.executor.Executor",
    "Transform": "tfx.components.transform.executor.Executor",
    "Trainer": "tfx.components.trainer.executor.GenericExecutor",
    "Evaluator": "tfx.components.evaluator.executor.Executor",
}
COMPONENTS = CONTAINER_COMPONENTS
RESOLVERS = (
    "latest_blessed_model_resolver-model-blessing-resolver",
    "latest_blessed_model_resolver-model-resolver",
)


def cluster_config(**sets) -> GraftConfig:
    cfg = GraftConfig(name="graft-ct")
    cfg.data.path = "gs://graft-test/examples/*.tfrecord.gz"
    cfg.backbone.handle = "gs://graft-test/hub/tiny_32"
    cfg.kubeflow.pipeline_root = "gs://graft-test/pipeline_root"
    cfg.push.serving_root = "gs://graft-test/serving"
    cfg.kubeflow.trainer_accelerator_type = "NVIDIA_L4"
    cfg.kubeflow.trainer_accelerator_count = 2
    cfg.kubeflow.trainer_cpu = 12
    cfg.kubeflow.trainer_memory_gb = 48
    for k, v in sets.items():
        section, _, key = k.partition("__")
        setattr(getattr(cfg, section), key, v)
    return cfg.validate()


@pytest.fixture(scope="module")
def backbone_info(tmp_path_factory):
    """`graft backbone show tiny --json`, as a user would write it where the module is reachable."""
    from graft.components.backbones import resolve_backbone

    path = tmp_path_factory.mktemp("bb") / "tiny.json"
    path.write_text(resolve_backbone("tiny").to_json())
    return path


@pytest.fixture(scope="module")
def compiled(tmp_path_factory, backbone_info):
    """The same config compiled for both targets, with Dataflow as the Beam runner."""
    out = tmp_path_factory.mktemp("compiled")
    cfg = cluster_config()
    cfg.beam.runner = "dataflow"
    cfg.beam.dataflow.project = "graft-test"
    cfg.beam.dataflow.region = "us-central1"
    cfg.beam.dataflow.temp_location = "gs://graft-test/dataflow/tmp"
    cfg.beam.dataflow.max_num_workers = 25
    cfg.beam.dataflow.machine_type = "n2-highmem-4"
    cfg.beam.dataflow.sdk_container_image = IMAGE
    cfg.beam.args = ["--experiments=use_runner_v2"]
    cfg.validate()
    results = {
        target: kfc.compile_pipeline(
            cfg, target, out / kfc.DEFAULT_OUT[target], image=IMAGE, backbone_info=backbone_info
        )
        for target in kfc.TARGETS
    }
    return {
        "cfg": cfg,
        "dir": out,
        "results": results,
        "paths": {t: Path(r.path) for t, r in results.items()},
    }


# ---- the files parse into kfp.pipeline_spec protos -----------------------------------------------------------------
def test_vertex_file_is_a_pipeline_job_and_kfp_file_a_pipeline_spec(compiled):
    from kfp.pipeline_spec import pipeline_spec_pb2 as pb

    vertex = kspec.load(compiled["paths"]["vertex"])
    assert isinstance(vertex.job, pb.PipelineJob) and isinstance(vertex.spec, pb.PipelineSpec)
    assert vertex.kind == "vertex"
    assert vertex.spec.schema_version == "2.1.0"
    assert vertex.job.runtime_config.gcs_output_directory == "gs://graft-test/pipeline_root"
    assert vertex.job.display_name == "graft-ct" and vertex.name == "graft-ct"
    assert vertex.spec.sdk_version.startswith("tfx-1.16")

    kfp = kspec.load(compiled["paths"]["kubeflow"])
    assert kfp.job is None and kfp.kind == "kubeflow"
    assert kfp.spec.default_pipeline_root == "gs://graft-test/pipeline_root"
    assert compiled["paths"]["kubeflow"].read_text().startswith("# PIPELINE DEFINITION\n# Name: graft-ct\n")
    # The two targets differ only in the pipeline root's place and the GPU's name.
    assert set(kfp.tasks) == set(vertex.tasks)
    # KFP's own client reads the YAML (what `graft submit --target kubeflow` uploads).
    from kfp.client.client import _extract_pipeline_yaml

    assert _extract_pipeline_yaml(str(compiled["paths"]["kubeflow"])).pipeline_spec == kfp.spec


def test_strict_parsing_rejects_an_unknown_field(tmp_path, compiled):
    doc = json.loads(compiled["paths"]["vertex"].read_text())
    doc["pipelineSpec"]["root"]["dag"]["tasks"]["Trainer"]["bogus"] = 1
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps(doc))
    with pytest.raises(kspec.SpecError, match="not a valid PipelineSpec"):
        kspec.load(bad)


# ---- one task per component with the right executor class ----------------------------------------------------------
def test_one_task_per_component_with_the_right_executor_class(compiled):
    c = kspec.load(compiled["paths"]["vertex"])
    assert set(c.tasks) == set(COMPONENTS) | set(RESOLVERS)
    dag_classes = kimage.dag_executor_classes()  # what create_pipeline wires, component by component
    assert set(dag_classes) == set(COMPONENTS)
    assert {k: dag_classes[k] for k in TFX_CLASSES} == TFX_CLASSES
    assert dag_classes["ImageExampleGen"] == "graft.components.image_example_gen.executor.Executor"
    assert dag_classes["TFLiteExport"] == "graft.components.edge.component.Executor"
    for task in COMPONENTS:
        assert c.executor_kind(task) == "container", task
        assert c.executor_class(task) == dag_classes[task], task
        assert list(c.executor(task).container.command) == ENTRYPOINT, task
    for task in RESOLVERS:
        assert c.executor_kind(task) == "resolver"
    queries = {t: dict(c.executor(t).resolver.output_artifact_queries) for t in RESOLVERS}
    assert queries[RESOLVERS[0]]["model_blessing"].filter == (
        'schema_title="tfx.ModelBlessing" AND state=LIVE AND metadata.blessed.number_value=1'
    )
    assert (
        "{{$.inputs.artifacts['input'].metadata['current_model_id']}}"
        in queries[RESOLVERS[1]]["model"].filter
    )
    # FileBasedExampleGen: TFX's driver (newest span, fingerprint) runs as the pre-cache-check hook.
    hook = c.executor("ImageExampleGen").container.lifecycle.pre_cache_check
    assert list(hook.command) == [
        "python",
        "-m",
        "tfx.orchestration.kubeflow.v2.file_based_example_gen.driver",
    ]
    # Dependency order: the data gate before Transform, the baseline before the Evaluator, the Pusher last.
    order = c.order()
    for before, after in [
        ("ImageExampleGen", "StatisticsGen"),
        ("DataGate", "Transform"),
        ("Transform", "Trainer"),
        (RESOLVERS[0], RESOLVERS[1]),
        (RESOLVERS[1], "Evaluator"),
        ("Trainer", "Evaluator"),
        ("Evaluator", "TFLiteExport"),
        ("TFLiteExport", "Pusher"),
    ]:
        assert order.index(before) < order.index(after), (before, after)
    assert order[-1] == "Pusher"


def test_user_functions_travel_by_dotted_path_not_module_file(compiled):
    c = kspec.load(compiled["paths"]["vertex"])
    params = {t: dict(c.tasks[t].inputs.parameters) for t in ("Transform", "Trainer")}
    assert params["Transform"]["preprocessing_fn"].runtime_value.constant.string_value == (
        "graft.components.preprocessing.preprocessing_fn"
    )
    assert (
        params["Trainer"]["run_fn"].runtime_value.constant.string_value == "graft.components.trainer.run_fn"
    )
    for t in ("Transform", "Trainer"):
        assert "module_file" not in params[t] and "module_path" not in params[t]
    assert set(kimage.USER_FUNCTIONS) == {
        "graft.components.preprocessing.preprocessing_fn",
        "graft.components.trainer.run_fn",
        "graft.components.text_eval.custom_eval_shared_model",
    }


# ---- Trainer resources, Beam args, image -----------------------------------------------------------------------------
def test_trainer_requests_the_configured_gpus_and_nothing_else_does(compiled):
    vertex = kspec.load(compiled["paths"]["vertex"])
    kfp = kspec.load(compiled["paths"]["kubeflow"])
    for c, gpu in ((vertex, "NVIDIA_L4"), (kfp, "nvidia.com/gpu")):
        res = c.executor("Trainer").container.resources
        assert (res.accelerator.type, res.accelerator.count) == (gpu, 2)
        assert (res.cpu_limit, res.memory_limit) == (12.0, 48.0)
        for task in COMPONENTS:
            if task != "Trainer":
                assert not c.executor(task).container.HasField("resources"), task
    assert compiled["results"]["vertex"].trainer_resources["accelerator"] == {"type": "NVIDIA_L4", "count": 2}


def test_cpu_only_trainer_has_no_accelerator(tmp_path, backbone_info):
    cfg = cluster_config(kubeflow__trainer_accelerator_count=0)
    r = kfc.compile_pipeline(cfg, "vertex", tmp_path / "p.json", image=IMAGE, backbone_info=backbone_info)
    res = kspec.load(r.path).executor("Trainer").container.resources
    assert not res.HasField("accelerator") and res.cpu_limit == 12.0


def test_beam_tasks_carry_the_dataflow_args(compiled):
    expected = [
        "--runner=DataflowRunner",
        "--project=graft-test",
        "--region=us-central1",
        "--temp_location=gs://graft-test/dataflow/tmp",
        "--staging_location=gs://graft-test/dataflow/tmp",
        "--machine_type=n2-highmem-4",
        "--max_num_workers=25",
        f"--sdk_container_image={IMAGE}",
        "--sdk_location=container",
        "--experiments=use_runner_v2",
    ]
    assert compiled["cfg"].beam.pipeline_args() == expected
    c = kspec.load(compiled["paths"]["vertex"])
    for task in BEAM_TASKS:
        assert c.beam_args(task) == expected, task
    hook_args = list(c.executor("ImageExampleGen").container.lifecycle.pre_cache_check.args)
    assert hook_args[-len(expected) :] == expected
    assert not any("DirectRunner" in a or "direct_running_mode" in a for a in c.beam_args("Transform"))


def test_default_beam_args_are_the_direct_runner_in_each_task(tmp_path, backbone_info):
    from graft.pipeline import dag

    cfg = cluster_config()
    r = kfc.compile_pipeline(cfg, "vertex", tmp_path / "p.json", image=IMAGE, backbone_info=backbone_info)
    c = kspec.load(r.path)
    expected = dag.beam_pipeline_args(cfg)
    assert expected[:2] == ["--direct_running_mode=in_memory", "--direct_num_workers=1"]
    for task in BEAM_TASKS:
        assert c.beam_args(task) == expected, task
    assert any("DirectRunner" in n for n in r.notes)


def test_flink_portable_runner_args(tmp_path, backbone_info):
    cfg = cluster_config()
    cfg.beam.runner = "flink"
    cfg.beam.portable.job_endpoint = "flink-jobserver.kubeflow:8099"
    cfg.beam.portable.environment_type = "EXTERNAL"
    cfg.beam.portable.environment_config = "localhost:50000"
    cfg.validate()
    r = kfc.compile_pipeline(cfg, "kubeflow", tmp_path / "p.yaml", image=IMAGE, backbone_info=backbone_info)
    assert kspec.load(r.path).beam_args("Transform") == [
        "--runner=PortableRunner",
        "--job_endpoint=flink-jobserver.kubeflow:8099",
        "--environment_type=EXTERNAL",
        "--environment_config=localhost:50000",
        f"--sdk_container_image={IMAGE}",  # the workers run Graft's image: TFX need not package itself
    ]


def test_every_task_runs_the_image_and_the_trainer_its_own(compiled, tmp_path, backbone_info):
    c = kspec.load(compiled["paths"]["vertex"])
    assert set(c.images().values()) == {IMAGE}
    assert set(c.images()) == set(COMPONENTS)
    cfg = cluster_config(kubeflow__trainer_image=TRAINER_IMAGE)
    r = kfc.compile_pipeline(cfg, "vertex", tmp_path / "p.json", image=IMAGE, backbone_info=backbone_info)
    images = kspec.load(r.path).images()
    assert images.pop("Trainer") == TRAINER_IMAGE
    assert set(images.values()) == {IMAGE}


# ---- no path of this machine --------------------------------------------------------------------------------------
def test_no_local_path_of_the_compiling_machine(compiled, backbone_info):
    from graft.components.backbones import cache_dir

    for target, path in compiled["paths"].items():
        text = path.read_text()
        doc = kspec.read_document(path)
        assert kfc.find_local_paths(doc, extra=(str(path.parent), str(backbone_info.parent))) == [], target
        for local in {
            str(path.parent),
            str(backbone_info.parent),
            str(cache_dir()),
            str(Path.home()),
            os.getcwd(),
            sys.prefix,
            tempfile.gettempdir(),
        }:
            assert f'"{local}' not in text and f"'{local}" not in text, (target, local)
    c = kspec.load(compiled["paths"]["vertex"])
    params = c.tasks["Pusher"].inputs.parameters
    dest = json.loads(params["push_destination"].runtime_value.constant.string_value)
    assert dest == {"filesystem": {"base_directory": "gs://graft-test/serving/graft"}}
    trainer_cc = json.loads(
        c.tasks["Trainer"].inputs.parameters["custom_config"].runtime_value.constant.string_value
    )
    bb = json.loads(trainer_cc["backbone"])
    assert bb["path"] == bb["handle"] == "gs://graft-test/hub/tiny_32"
    assert bb["resolved_path"] == "" and (bb["height"], bb["width"]) == (32, 32)
    eg = c.tasks["ImageExampleGen"].inputs.parameters
    assert eg["input_base"].runtime_value.constant.string_value == "gs://graft-test/examples"


def test_find_local_paths_sees_paths_inside_json_strings_and_ignores_bucket_paths():
    doc = {
        "a": "gs://bucket/tmp/x",
        "b": ["--temp_location=gs://b/root/tmp", "/opt/data/x"],
        "c": json.dumps({"inner": json.dumps({"path": os.path.join(tempfile.gettempdir(), "m")})}),
        "d": f"--staging_location={Path.home()}/stage",
        "e": "file:///srv/x",
        "f": "minio://bucket/home/y",
    }
    found = dict(kfc.find_local_paths(doc))
    assert set(found) == {"b[1]", "c<json>.inner<json>.path", "d", "e"}


@pytest.mark.parametrize(
    "change, needle",
    [
        ({"data__path": "/srv/images"}, "config key 'data.path': '/srv/images' is a path on this machine"),
        ({"kubeflow__pipeline_root": ""}, "config key 'kubeflow.pipeline_root': required"),
        ({"kubeflow__pipeline_root": "/mnt/pr"}, "config key 'kubeflow.pipeline_root'"),
        (
            {"push__serving_root": "s3://models"},
            "config key 'push.serving_root': 's3://models' is not readable by vertex",
        ),
        ({"push__serving_root": ""}, "config key 'push.serving_root': required"),
        (
            {"backbone__handle": "tiny"},
            "config key 'backbone.handle': 'tiny' is an offline module built on this machine",
        ),
        (
            {"backbone__input_size": 64},
            "config key 'backbone.input_size': 64, but the backbone metadata says 32x32",
        ),
    ],
)
def test_what_the_cluster_cannot_read_is_refused_by_name(tmp_path, backbone_info, change, needle):
    cfg = cluster_config(**change)
    with pytest.raises(ConfigError) as e:
        kfc.compile_pipeline(cfg, "vertex", tmp_path / "p.json", image=IMAGE, backbone_info=backbone_info)
    assert needle in str(e.value)
    assert not (tmp_path / "p.json").exists()


def test_image_is_required_and_checked(tmp_path, backbone_info):
    with pytest.raises(ConfigError, match="config key 'kubeflow.image': required"):
        kfc.compile_pipeline(cluster_config(), "vertex", tmp_path / "p.json", backbone_info=backbone_info)
    with pytest.raises(ConfigError, match="is not a container image reference"):
        kfc.compile_pipeline(
            cluster_config(), "vertex", tmp_path / "p.json", image="Not An Image", backbone_info=backbone_info
        )
    r = kfc.compile_pipeline(
        cluster_config(), "vertex", tmp_path / "p.json", image="graft/graft", backbone_info=backbone_info
    )
    assert any("no fixed tag" in n for n in r.notes)


def test_unreachable_remote_backbone_points_to_backbone_info(tmp_path, monkeypatch):
    from graft.components.backbones import BackboneError

    monkeypatch.setenv("NO_GCE_CHECK", "True")
    with pytest.raises(BackboneError, match=r"--backbone-info FILE: the JSON of `graft backbone show gs://"):
        kfc.compile_pipeline(cluster_config(), "vertex", tmp_path / "p.json", image=IMAGE)


def test_bad_backbone_info_file_names_the_fix(tmp_path):
    bad = tmp_path / "bb.json"
    bad.write_text('{"handle": "x"}')
    with pytest.raises(ConfigError, match=r"--backbone-info .*lacks .*graft backbone show HANDLE --json"):
        kfc.compile_pipeline(cluster_config(), "vertex", tmp_path / "p.json", image=IMAGE, backbone_info=bad)


# ---- the CLI ------------------------------------------------------------------------------------------------------
def _write_config(tmp_path: Path) -> Path:
    cfg = tmp_path / "cluster.yaml"
    cfg.write_text(
        "name: graft-ct\n"
        "data: {path: 'gs://graft-test/examples/*.tfrecord.gz'}\n"
        "backbone: {handle: 'gs://graft-test/hub/tiny_32'}\n"
        "push: {serving_root: 'gs://graft-test/serving'}\n"
        f"kubeflow: {{pipeline_root: 'gs://graft-test/pipeline_root', image: '{IMAGE}'}}\n"
    )
    return cfg


def test_cli_compile_writes_the_file_and_exits_2_on_a_config_error(tmp_path, backbone_info):
    cfg = _write_config(tmp_path)
    out = tmp_path / "out" / "pipeline.yaml"
    runner = CliRunner()
    res = runner.invoke(
        main,
        [
            "compile",
            "--config",
            str(cfg),
            "--target",
            "kubeflow",
            "--out",
            str(out),
            "--backbone-info",
            str(backbone_info),
            "--set",
            "kubeflow.trainer_accelerator_count=4",
            "--json",
        ],
    )
    assert res.exit_code == 0, res.output
    payload = json.loads(res.output)
    assert payload["path"] == str(out) and payload["target"] == "kubeflow"
    assert payload["trainer_resources"]["accelerator"] == {"type": "nvidia.com/gpu", "count": 4}
    assert kspec.load(out).executor("Trainer").container.resources.accelerator.count == 4

    res = runner.invoke(
        main, ["compile", "--config", str(cfg), "--backbone", "tiny", "--out", str(tmp_path / "x.json")]
    )
    assert res.exit_code == 2
    assert "config key 'backbone.handle'" in res.output and "gsutil" in res.output


@pytest.mark.parametrize("name, fixed", [("flowers_local", "flowers-local"), ("Graft.Daily", "graft-daily")])
def test_a_name_kfp_refuses_is_a_sentence_naming_the_key(tmp_path, backbone_info, name, fixed):
    """`name` may hold '_' and '.' (a directory name locally), KFP pipeline names may not; TFX's own refusal reads
    "User provided pipeline name % is illegal". The compile says which key and what to set, with the other
    problems of the same compile."""
    cfg = cluster_config()
    cfg.name = name
    cfg.push.serving_root = ""
    with pytest.raises(ConfigError) as e:
        kfc.compile_pipeline(cfg, "vertex", tmp_path / "p.json", image=IMAGE, backbone_info=backbone_info)
    assert f"config key 'name': '{name}' cannot name a Kubeflow / Vertex pipeline" in str(e.value)
    assert f"--set name={fixed}" in str(e.value)
    assert "config key 'push.serving_root': required" in str(e.value)
