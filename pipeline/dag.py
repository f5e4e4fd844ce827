"""``create_pipeline(config, backbone_info, inputs)``: the one place the TFX DAG is wired.

  ImageExampleGen -> StatisticsGen -> CuratedSchemaGen (committed schema + label domain) -> ExampleValidator
  -> DataGate (stops the run on any data problem) -> Transform (analyze train, transform train/val/test)
  -> Trainer (train / val) -> baseline Resolver (last blessed model older than the candidate)
  -> Evaluator (test split, thresholds -> blessing) -> TFLiteExport (edge.variants: converted, scored on the test
  split, gated per variant against the SavedModel) -> Pusher (blessed only, TF Serving layout, TFLite beside)

Task text (``inputs.task``, decided by graft.pipeline.task): TextExampleGen and the text schema instead; the same
StatisticsGen / ExampleValidator / DataGate; Transform tokenizes with the module's tokenizer (the same
preprocessing_fn dispatches) and computes post-transform statistics, which a TokenGate checks (one [CLS] / [SEP],
the [UNK] rate over the data); the Trainer takes its schema from the TokenGate, so it cannot train on text that
failed. The Evaluator loads the model through graft.components.text_eval (TF Text ops registered first). The
TFLite export is skipped for text (see ``edge_variants``).

Transform reads its schema from the gate's ``validated_schema`` output: it cannot run unless the gate passed, on
LocalDagRunner and KubeflowV2DagRunner alike. Transform's analyzer-cache resolver is deliberately not wired (it
changes Transform's inputs on every run, so an unchanged rerun would re-run Transform).

Nothing here reads or writes files: the data layout, the class list and the schema text arrive resolved
(graft.pipeline.dag_inputs), and everything a component needs travels in its exec properties (the schema text, the
configured classes, the backbone's size), so the same function serves ``graft run`` and a Kubeflow compile.
Each component's exec properties carry only the config it uses -- they are TFX's cache key, so e.g. changing
``train.*`` re-runs neither ExampleGen nor Transform.
"""

from __future__ import annotations

import json
from typing import Any

from graft.pipeline.config import ConfigError, GraftConfig
from graft.pipeline.dag_inputs import DagInputs

PREPROCESSING_FN = "graft.components.preprocessing.preprocessing_fn"
RUN_FN = "graft.components.trainer.run_fn"
# Task text: Transform's statistics restricted to the TokenGate's features (graft.components.token_gate).
STATS_OPTIONS_UPDATER_FN = "graft.components.token_gate.stats_options_updater_fn"
BASELINE_RESOLVER_ID = "latest_blessed_model_resolver"

# TFX's Beam executors (ExampleGen, StatisticsGen, Transform, Evaluator) each copy the whole TFX install (48 MB) to a
# temp dir and run `setup.py sdist` on it when they start, so that remote Beam workers can import TFX -- unless a
# dependency flag is already set (tfx/utils/dependency_utils.py). With the DirectRunner the workers are this process
# (or subprocesses of this interpreter), which has TFX and Graft: the package is never used. It cost 5-8 s per run
# here and left 4 x 48 MB under /tmp per run. The flag is one TFX checks; the DirectRunner does not read it.
DIRECT_RUNNER_DEPENDENCY_FLAG = "--sdk_container_image=graft-direct-runner-workers-run-in-process"
# For flink / spark workers whose image is not known here (an EXTERNAL worker pool): they run Graft's image.
PORTABLE_WORKERS_IMAGE = "graft-portable-workers-run-the-graft-image"
_TFX_DEPENDENCY_FLAGS = (
    "--extra_package",
    "--setup_file",
    "--requirements_file",
    "--worker_harness_container_image",
    "--sdk_container_image",
)


def beam_pipeline_args(config: GraftConfig) -> list[str]:
    """``beam.*`` as Beam args, per runner; where the workers already hold TFX and Graft, plus a flag that stops
    TFX packaging itself per component (see above).

    direct: the workers are this process. flink / spark: the job server's Python workers run Graft's image
    (``beam.portable.environment_config`` names it for DOCKER; an EXTERNAL worker pool runs it), which has TFX --
    without the flag every Beam component would build a 48 MB TFX sdist and stage it for the workers to pip-install.
    dataflow: ``beam.dataflow.sdk_container_image`` is that flag already.
    """
    args = config.beam.pipeline_args()
    if any(a.startswith(_TFX_DEPENDENCY_FLAGS) for a in args):
        return args
    if any(a.startswith("--direct_running_mode") for a in args):  # added for the direct runner only
        args.append(DIRECT_RUNNER_DEPENDENCY_FLAG)
    elif config.beam.runner in ("flink", "spark") and any(a == "--runner=PortableRunner" for a in args):
        portable = config.beam.portable
        image = portable.environment_config if portable.environment_type == "DOCKER" else ""
        args.append(f"--sdk_container_image={image or config.kubeflow.image or PORTABLE_WORKERS_IMAGE}")
    return args


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
    import dataclasses

    from graft.components.text_preprocessing import TOKENIZER_KEYS

    reduced = GraftConfig()
    # transform.max_unk_rate is the TokenGate's, not preprocessing_fn's: its default here keeps Transform cached.
    reduced.transform = dataclasses.replace(config.transform, max_unk_rate=reduced.transform.max_unk_rate)
    reduced.data.classes = list(config.data.classes)
    b = _backbone_dict(backbone_info)
    if (
        b.get("task") == "text"
    ):  # the tokenizer's facts (vocabulary, casing, length, special ids) and nothing else
        backbone = {k: b[k] for k in TOKENIZER_KEYS if k in b}
    else:
        backbone = {k: b[k] for k in ("height", "width", "channels") if k in b}
    return {"graft_config": reduced.to_json(), "backbone": json.dumps(backbone, sort_keys=True)}


def trainer_custom_config(config: GraftConfig, backbone_info: Any) -> dict[str, str]:
    """Trainer's custom_config: ``train``, ``backbone`` and the class list only (defaults elsewhere).

    Exec properties are TFX's cache key: a change of evaluation thresholds or the push destination must not retrain.
    """
    reduced = GraftConfig()
    reduced.train = config.train
    reduced.backbone = config.backbone
    reduced.data.classes = list(config.data.classes)
    if hasattr(backbone_info, "value_range_source"):  # a key contradicting the module's declaration fails now
        from graft.components.backbones import effective_value_range

        effective_value_range(backbone_info, config.backbone.value_range)
    b = _backbone_dict(backbone_info)
    return {"graft_config": reduced.to_json(), "backbone": json.dumps(b, sort_keys=True)}


# Why TFLite is not built for text: the served graph tokenizes with TF Text ops (WordPiece, normalisation), which
# TFLite's builtin op set lacks (TF Text's TFLite kernels are a separate, C++-registered library), and the encoder's
# variable-length attention has no int8 calibration path here. Not converted rather than converted badly.
TEXT_TFLITE_SKIPPED = (
    "TFLite export skipped for task text: the model tokenizes with TF Text ops that TFLite's builtin ops lack"
)


def edge_variants(config: GraftConfig, task: str) -> list[str]:
    """The TFLite variants to build: ``edge.variants``, or none for text (an explicit list is then an error)."""
    if task != "text":
        return list(config.edge.variants)
    from graft.components.edge.config import EdgeConfig

    if list(config.edge.variants) != list(EdgeConfig().variants) and config.edge.variants:
        raise ConfigError(
            f"config key 'edge.variants': {list(config.edge.variants)} cannot be built for task text (the model "
            "tokenizes with TF Text ops that TFLite's builtin ops lack); set edge.variants: [] for text"
        )
    return []


def create_pipeline(
    config: GraftConfig,
    backbone_info: Any,
    inputs: DagInputs,
    *,
    pipeline_root: str | None = None,
    metadata_path: str | None = None,
    serving_dir: str | None = None,
    for_kubeflow: bool = False,
):
    """Build the TFX pipeline. Local by default (sqlite MLMD at ``config.metadata_path``); ``for_kubeflow=True``
    leaves MLMD to the cluster and uses ``kubeflow.pipeline_root``.

    Reads nothing: the data layout, the class list and the schema text come in ``inputs``, resolved by the caller
    (``graft.pipeline.dag_inputs.resolve(config)``), which decides what may be read."""
    import graft  # noqa: F401, I001  (legacy Keras before TensorFlow)

    from tfx.components import Evaluator, ExampleValidator, StatisticsGen, Trainer, Transform
    from tfx.dsl.components.common.resolver import Resolver
    from tfx.dsl.input_resolution.strategies.latest_blessed_model_strategy import LatestBlessedModelStrategy
    from tfx.orchestration import metadata
    from tfx.orchestration import pipeline as tfx_pipeline
    from tfx.proto import pusher_pb2, trainer_pb2, transform_pb2
    from tfx.types import Channel, standard_artifacts

    from graft.components import baseline_resolver, data_gate, evaluation, features
    from graft.components.image_example_gen.component import ImageExampleGen

    # TFX's Pusher component with Graft's executor: a local push lands atomically (staged, then renamed).
    from graft.components.pusher import Pusher

    config.validate()
    classes_json = json.dumps(list(config.data.classes))

    # ---- data in -------------------------------------------------------------------------------------------------
    class_names = inputs.class_names
    text = inputs.task == "text"
    if text:
        from graft.components.text_example_gen.component import TextExampleGen

        example_gen = TextExampleGen.from_layout(
            inputs.layout,
            fractions={
                features.TRAIN_SPLIT: config.data.train_fraction,
                features.VAL_SPLIT: config.data.val_fraction,
                features.TEST_SPLIT: config.data.test_fraction,
            },
            max_bad_fraction=config.data.max_bad_fraction,
            data_path=config.data.path,
            text_column=config.data.text_column,
            label_column=config.data.label_column,
            max_text_bytes=config.data.max_text_bytes,
        )
    else:
        example_gen = ImageExampleGen.from_layout(inputs.layout, config.data)
    schema_gen = data_gate.CuratedSchemaGen(
        examples=example_gen.outputs["examples"], schema_text=inputs.schema_text, classes_json=classes_json
    )
    # With the schema, TFDV knows image_bytes is an image (image_domain): byte-size statistics instead of top-k /
    # unique counts keyed by every image's whole bytes (memory grew with the dataset; 20 images in the stats).
    statistics_gen = StatisticsGen(
        examples=example_gen.outputs["examples"], schema=schema_gen.outputs["schema"]
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
        # The class folders seen now, when data.classes is not set: the Evaluator's per-class metrics are built
        # for exactly these, so the gate stops a run whose data has other classes (an empty class folder).
        folder_classes_json=json.dumps([] if config.data.classes else (class_names or [])),
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
        # Images: StatisticsGen already describes the raw data; statistics of serialized uint8 tensors tell nobody
        # anything. Text: the token checks (num_cls, num_sep, num_tokens, num_unk) are read by the TokenGate.
        disable_statistics=not text,
        stats_options_updater_fn=STATS_OPTIONS_UPDATER_FN if text else None,
    )
    trainer_schema = gate.outputs["validated_schema"]
    token_gate = None
    if text:
        from graft.components.token_gate import TokenGate

        b = _backbone_dict(backbone_info)
        token_gate = TokenGate(
            statistics=transform.outputs["post_transform_stats"],
            schema=gate.outputs["validated_schema"],
            max_unk_rate=config.transform.max_unk_rate,
            vocabulary=f"{b.get('vocab_file')}, lower case {b.get('lower_case')}",
        )
        trainer_schema = token_gate.outputs["validated_schema"]
    # ---- Trainer: phase 1 frozen backbone + new head, phase 2 fine-tune the top of the backbone ------------------
    trainer = Trainer(
        run_fn=RUN_FN,
        examples=transform.outputs["transformed_examples"],
        transform_graph=transform.outputs["transform_graph"],
        schema=trainer_schema,  # text: the TokenGate's output, so a failed token check stops the Trainer
        train_args=trainer_pb2.TrainArgs(splits=[features.TRAIN_SPLIT]),
        eval_args=trainer_pb2.EvalArgs(splits=[features.VAL_SPLIT]),
        custom_config=trainer_custom_config(config, backbone_info),
    )
    # ---- Baseline: the last blessed model older than this candidate ----------------------------------------------
    if for_kubeflow:
        # KubeflowV2DagRunner compiles only TFX's built-in resolver policies (see baseline_resolver.py).
        baseline = Resolver(
            strategy_class=LatestBlessedModelStrategy,
            model=Channel(type=standard_artifacts.Model),
            model_blessing=Channel(type=standard_artifacts.ModelBlessing),
        ).with_id(BASELINE_RESOLVER_ID)
    else:
        baseline = Resolver(
            strategy_class=baseline_resolver.PreviousBlessedModelStrategy,
            candidate=trainer.outputs["model"],
            model=Channel(type=standard_artifacts.Model),
            model_blessing=Channel(type=standard_artifacts.ModelBlessing),
        ).with_id(BASELINE_RESOLVER_ID)
    # ---- Evaluator on the test split (val was spent on early stopping); blessing from the thresholds -------------
    evaluator = Evaluator(
        examples=example_gen.outputs["examples"],
        model=trainer.outputs["model"],
        baseline_model=baseline.outputs["model"],
        example_splits=[features.TEST_SPLIT],
        eval_config=evaluation.build_eval_config(config.evaluation, class_names),
        # Text: the model's signatures hold TF Text ops; this hook registers them before TFMA loads it.
        module_path="graft.components.text_eval" if text else None,
    )
    # ---- Edge: TFLite variants of the trained model, scored on the test split, gated per variant ------------------
    tflite_export = None
    if edge_variants(config, inputs.task):
        from graft.components.edge.component import TFLiteExport

        b = _backbone_dict(backbone_info)
        tflite_export = TFLiteExport(
            model=trainer.outputs["model"],
            examples=transform.outputs["transformed_examples"],
            transform_graph=transform.outputs["transform_graph"],
            evaluation=evaluator.outputs["evaluation"],
            variants=list(config.edge.variants),
            representative_examples=config.edge.representative_examples,
            int8_float_layers=config.edge.int8_float_layers,
            max_accuracy_drop=config.evaluation.max_tflite_accuracy_drop,
            height=int(b["height"]),
            width=int(b["width"]),
        )
    # ---- Pusher: only a blessed model reaches <serving_root>/<model_name>/<version>/ -----------------------------
    pusher = Pusher(
        model=trainer.outputs["model"],
        model_blessing=evaluator.outputs["blessing"],
        push_destination=pusher_pb2.PushDestination(
            filesystem=pusher_pb2.PushDestination.Filesystem(
                base_directory=serving_dir or str(config.serving_model_dir)
            )
        ),
        tflite_models=tflite_export.outputs["tflite_models"] if tflite_export else None,
    )
    components = [
        example_gen,
        statistics_gen,
        schema_gen,
        example_validator,
        gate,
        transform,
        *([token_gate] if token_gate else []),
        trainer,
        baseline,
        evaluator,
        *([tflite_export] if tflite_export else []),
        pusher,
    ]

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
        beam_pipeline_args=beam_pipeline_args(config),
    )
