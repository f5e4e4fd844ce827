"""The README's hand-over configs (Dataflow, Flink, Spark) compile, and every Beam task gets exactly their runner.

The YAML blocks are read from README.md itself (each after a ``<!-- scale-out: NAME -->`` marker), so the README
cannot drift from what is tested. Only ``data.path`` is replaced, by a gs:// TFRecord glob: a gs:// folder would be
listed at compile time, which needs credentials; everything else is the file as printed.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from graft.kubeflow import compile as kfc
from graft.kubeflow import spec as kspec
from graft.pipeline import dag
from graft.pipeline.config import load_config

README = Path(__file__).resolve().parents[2] / "README.md"
BEAM_TASKS = ("ImageExampleGen", "StatisticsGen", "Transform", "Evaluator")
HERMETIC_DATA = "data.path=gs://my-bucket/examples/*.tfrecord.gz"
EXPECTED_RUNNER = {"dataflow": "--runner=DataflowRunner", "flink": "--runner=PortableRunner"}
EXPECTED_RUNNER["spark"] = EXPECTED_RUNNER["flink"]


def readme_configs() -> dict[str, str]:
    text = README.read_text(encoding="utf-8")
    blocks = re.findall(r"<!-- scale-out: (\w+) -->\s*```yaml\n(.*?)```", text, flags=re.S)
    return dict(blocks)


def test_the_readme_has_the_three_configs():
    assert set(readme_configs()) == {"dataflow", "flink", "spark"}


@pytest.fixture(scope="module")
def backbone_info(tmp_path_factory):
    from graft.components.backbones import resolve_backbone

    path = tmp_path_factory.mktemp("bb") / "tiny.json"
    path.write_text(resolve_backbone("tiny").to_json())
    return path


@pytest.mark.parametrize("name", ["dataflow", "flink", "spark"])
def test_readme_config_compiles_with_its_runner_in_every_beam_task(name, tmp_path, backbone_info):
    cfg_file = tmp_path / f"{name}.yaml"
    cfg_file.write_text(readme_configs()[name])
    cfg = load_config(cfg_file, [HERMETIC_DATA])
    assert cfg.beam.runner == name
    expected = dag.beam_pipeline_args(cfg)
    assert EXPECTED_RUNNER[name] in expected
    assert not any("direct_running_mode" in a for a in expected)
    # The workers hold TFX and Graft (Graft's image): TFX must not package itself for them.
    image = cfg.kubeflow.image
    assert [a for a in expected if a.startswith("--sdk_container_image")] == [
        f"--sdk_container_image={image}"
    ]
    for target in kfc.TARGETS:
        r = kfc.compile_pipeline(
            cfg, target, tmp_path / kfc.DEFAULT_OUT[target], image=image, backbone_info=backbone_info
        )
        compiled = kspec.load(r.path)
        for task in BEAM_TASKS:
            assert compiled.beam_args(task) == expected, (target, task)
    if name == "dataflow":
        assert (
            "--project=my-project" in expected and "--temp_location=gs://my-bucket/dataflow/tmp" in expected
        )
    else:
        assert f"--job_endpoint={cfg.beam.portable.job_endpoint}" in expected
