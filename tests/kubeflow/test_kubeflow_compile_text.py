"""`graft compile` of a text config: the same create_pipeline (task text) as KFP v2 IR, hermetic.

A gs:// text encoder described by --backbone-info (the JSON of the real offline minilm_l6 resolved here, its paths
moved to a bucket as a user would after copying the modules), one gs:// TSV manifest (a layout the path names by
itself), task: text explicit (a gs:// module cannot be told apart without reading it). No credentials, no network.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from graft.kubeflow import compile as kfc
from graft.kubeflow import spec as kspec
from graft.pipeline.config import GraftConfig

IMAGE = "us-central1-docker.pkg.dev/graft-test/graft/graft:1.0"
HUB = "gs://graft-test/hub"


@pytest.fixture(scope="module")
def text_info(tmp_path_factory):
    from graft.components.backbones import resolve_backbone

    info = resolve_backbone("minilm_l6", seq_length=32).to_dict()
    info.update(
        handle=f"{HUB}/minilm_l6",
        path=f"{HUB}/minilm_l6",
        preprocess_handle=f"{HUB}/minilm_l6_preprocess_32",
        preprocess_path=f"{HUB}/minilm_l6_preprocess_32",
        vocab_file=f"{HUB}/minilm_l6_preprocess_32/assets/vocab.txt",
        resolved_path="",
        source="gcs",
    )
    path = tmp_path_factory.mktemp("bb") / "minilm.json"
    path.write_text(json.dumps(info))
    return path


def text_config() -> GraftConfig:
    cfg = GraftConfig(name="graft-text")
    cfg.task = "text"
    cfg.data.path = "gs://graft-test/text/reviews.tsv"
    cfg.data.classes = ["negative", "positive"]
    cfg.backbone.handle = f"{HUB}/minilm_l6"
    cfg.backbone.seq_length = 32
    cfg.edge.variants = []
    cfg.kubeflow.pipeline_root = "gs://graft-test/pipeline_root"
    cfg.push.serving_root = "gs://graft-test/serving"
    return cfg.validate()


def test_text_config_compiles_to_the_text_dag(tmp_path, text_info):
    result = kfc.compile_pipeline(
        text_config(), "vertex", tmp_path / "pipeline.json", image=IMAGE, backbone_info=text_info
    )
    c = kspec.load(result.path)
    assert {"TextExampleGen", "TokenGate", "Transform", "Trainer", "Evaluator", "Pusher"} <= set(c.tasks)
    assert "TFLiteExport" not in c.tasks and "ImageExampleGen" not in c.tasks
    assert c.executor_class("TextExampleGen") == "graft.components.text_example_gen.executor.Executor"
    order = c.order()
    for before, after in [("DataGate", "Transform"), ("Transform", "TokenGate"), ("TokenGate", "Trainer")]:
        assert order.index(before) < order.index(after), (before, after)
    params = dict(c.tasks["Evaluator"].inputs.parameters)
    assert params["module_path"].runtime_value.constant.string_value == "graft.components.text_eval"
    transform = json.loads(dict(c.tasks["Transform"].inputs.parameters)["custom_config"].runtime_value.constant.string_value)  # fmt: skip
    backbone = json.loads(transform["backbone"])
    assert (
        backbone["task"] == "text"
        and backbone["seq_length"] == 32
        and backbone["vocab_file"].startswith("gs://")
    )
    assert "seq_length 32" in result.describe()
    assert (
        kfc.find_local_paths(json.loads(Path(result.path).read_text()), extra=(str(text_info.parent),)) == []
    )


def test_text_compile_checks_the_sequence_length_against_the_metadata(tmp_path, text_info):
    cfg = text_config()
    cfg.backbone.seq_length = 64
    with pytest.raises(kfc.CompileError, match="backbone.seq_length"):
        kfc.compile_pipeline(cfg, "vertex", tmp_path / "p.json", image=IMAGE, backbone_info=text_info)
