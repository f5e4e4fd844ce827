"""``create_pipeline(config, backbone_info)``: the one place the TFX DAG is wired.

Data half (this module):
  ImageExampleGen -> StatisticsGen -> CuratedSchemaGen (committed schema + label domain) -> ExampleValidator
  -> DataGate (stops the run on any data problem) -> Transform (analyze train, transform train/val/test)

Transform reads its schema from the gate's ``validated_schema`` output: it cannot run unless the gate passed, on
LocalDagRunner and KubeflowV2DagRunner alike. Transform's analyzer-cache resolver is deliberately not wired (it
changes Transform's inputs on every run, so an unchanged rerun would re-run Transform).

Nothing here writes files: everything a component needs travels in its exec properties (the schema text, the
configured classes, the backbone's size), so the same function serves ``graft run`` and a Kubeflow compile.
Each component's exec properties carry only the config it uses -- they are TFX's cache key, so e.g. changing
``train.*`` re-runs neither ExampleGen nor Transform.
"""

from __future__ import annotations

import json
import os
from typing import Any

from graft.pipeline.config import ConfigError, GraftConfig

PREPROCESSING_FN = "graft.components.preprocessing.preprocessing_fn"


def schema_text(config: GraftConfig) -> str:
    """The curated schema's text: data.schema_path, or the committed one. Validated here, at build time."""
    from graft.components import data_gate

    path = config.data.schema_path or data_gate.default_schema_path()
    try:
        with open(os.path.expanduser(path), encoding="utf-8") as f:
            text = f.read()
    except OSError as e:
        raise ConfigError(f"config key 'data.schema_path': cannot read {path}: {e.strerror or e}") from None
    try:
        data_gate.parse_schema(text, where=path)
    except ValueError as e:
        raise ConfigError(f"config key 'data.schema_path': {e}") from None
    return text


def _backbone_dict(backbone_info: Any) -> dict:
    if hasattr(backbone_info, "to_dict"):
        return backbone_info.to_dict()
    if isinstance(backbone_info, str):
        return json.loads(backbone_info)
    return dict(backbone_info)


def transform_custom_config(config: GraftConfig, backbone_info: Any) -> dict[str, str]:
    """Transform's custom_config: the contract's keys, holding only what preprocessing_fn uses.

    ``graft_config`` is a full GraftConfig JSON with defaults everywhere except ``transform`` and ``data.classes``;
    ``backbone`` holds the backbone's input size only (the transformed images depend on nothing else, so a
    same-size backbone swap or a train.* change keeps Transform cached).
    """
    reduced = GraftConfig()
    reduced.transform = config.transform
    reduced.data.classes = list(config.data.classes)
    b = _backbone_dict(backbone_info)
    backbone = {k: b[k] for k in ("height", "width", "channels") if k in b}
    return {"graft_config": reduced.to_json(), "backbone": json.dumps(backbone, sort_keys=True)}


def create_pipeline(
    config: GraftConfig,
    backbone_info: Any,
    *,
    pipeline_root: str | None = None,
    metadata_path: str | None = None,
    for_kubeflow: bool = False,
):
    """Build the TFX pipeline. Local by default (sqlite MLMD at ``config.metadata_path``); ``for_kubeflow=True``
    leaves MLMD to the cluster and uses ``kubeflow.pipeline_root``."""
    import graft  # noqa: F401, I001  (legacy Keras before TensorFlow)

    from tfx.components import ExampleValidator, StatisticsGen, Transform
    from tfx.orchestration import metadata
    from tfx.orchestration import pipeline as tfx_pipeline
    from tfx.proto import transform_pb2

    from graft.components import data_gate, features
    from graft.components.image_example_gen.component import ImageExampleGen
    from graft.components.image_example_gen.layout import detect_layout

    config.validate()
    classes_json = json.dumps(list(config.data.classes))

    # ---- data in -------------------------------------------------------------------------------------------------
    example_gen = ImageExampleGen.from_layout(detect_layout(config.data), config.data)
    statistics_gen = StatisticsGen(examples=example_gen.outputs["examples"])
    schema_gen = data_gate.CuratedSchemaGen(
        examples=example_gen.outputs["examples"], schema_text=schema_text(config), classes_json=classes_json
    )
    example_validator = ExampleValidator(
        statistics=statistics_gen.outputs["statistics"], schema=schema_gen.outputs["schema"]
    )
    gate = data_gate.DataGate(
        examples=example_gen.outputs["examples"],
        anomalies=example_validator.outputs["anomalies"],
        schema=schema_gen.outputs["schema"],
        classes_json=classes_json,
        min_train_examples_per_class=config.data.min_train_examples_per_class,
    )
    # ---- Transform: the backbone's preprocessing; runs only on validated data ------------------------------------
    transform = Transform(
        examples=example_gen.outputs["examples"],
        schema=gate.outputs["validated_schema"],
        preprocessing_fn=PREPROCESSING_FN,
        splits_config=transform_pb2.SplitsConfig(
            analyze=[features.TRAIN_SPLIT], transform=list(features.SPLITS)
        ),
        custom_config=transform_custom_config(config, backbone_info),
        # StatisticsGen already describes the raw data; statistics of serialized uint8 tensors tell nobody anything.
        disable_statistics=True,
    )
    components = [example_gen, statistics_gen, schema_gen, example_validator, gate, transform]

    # ---- model half (Trainer, baseline Resolver, Evaluator, Pusher) is wired after Transform -----------------------

    if for_kubeflow:
        root = pipeline_root or config.kubeflow.pipeline_root
        if not root:
            raise ConfigError(
                "config key 'kubeflow.pipeline_root': required to compile for Kubeflow (e.g. gs://...)"
            )
        connection = None
    else:
        root = pipeline_root or str(config.pipeline_root)
        connection = metadata.sqlite_metadata_connection_config(metadata_path or str(config.metadata_path))
    return tfx_pipeline.Pipeline(
        pipeline_name=config.name,
        pipeline_root=root,
        components=components,
        enable_cache=config.enable_cache,
        metadata_connection_config=connection,
        beam_pipeline_args=config.beam.pipeline_args(),
    )
