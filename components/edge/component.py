"""``TFLiteExport``: the TFX component that converts the trained model to TFLite, scores and gates each variant.

Wired after the Trainer and the Evaluator (``pipeline/dag.py``)::

    Trainer.model ----------------------------.
    Transform.transformed_examples (train/test)+--> TFLiteExport --> tflite_models --> Pusher (blessed variants
    Transform.transform_graph (label_vocab) --'         ^                               beside the SavedModel)
    Evaluator.evaluation (the SavedModel's accuracy) ---'

A separate component rather than more work in ``run_fn``: the Trainer's cache key and code stay untouched, a
change of ``edge.*`` or ``evaluation.max_tflite_accuracy_drop`` re-runs this component only, and its result is
its own MLMD artifact. Its exec properties carry only what it reads.

Output ``tflite_models`` (artifact type ``graft.TFLiteModels``)::

    model_<variant>.tflite          every variant that converted (blessed or not: the artifact is the record)
    labels.txt                      class names in output order
    results.json                    per variant: size, accuracy, the SavedModel's, drop, latency, blessed, reason
    evaluation/<variant>/           TFMA-readable metrics and validation result of that variant

Custom properties ``blessed_variants`` / ``refused_variants`` (JSON lists) make the decision visible in MLMD.
"""

from __future__ import annotations

import json
import os
from typing import Any

from tfx import types
from tfx.dsl.components.base import base_component, base_executor, executor_spec
from tfx.types import artifact_utils, standard_artifacts
from tfx.types.component_spec import ChannelParameter, ExecutionParameter

from graft.components.edge.config import DEFAULT_INT8_FLOAT_LAYERS

RESULTS_FILE = "results.json"
EVALUATION_DIR = "evaluation"
TFLITE_MODELS_KEY = "tflite_models"
DEFAULT_LATENCY_RUNS = 30


class TFLiteModels(types.Artifact):
    """TFLite variants of one trained model, with their evaluation and per-variant blessing."""

    TYPE_NAME = "graft.TFLiteModels"  # <namespace>.<Name>: the form KubeflowV2DagRunner compiles


class TFLiteExportSpec(types.ComponentSpec):
    PARAMETERS = {
        "variants_json": ExecutionParameter(type=str),
        "representative_examples": ExecutionParameter(type=int),
        "max_accuracy_drop": ExecutionParameter(type=float),
        "height": ExecutionParameter(type=int),
        "width": ExecutionParameter(type=int),
        "latency_runs": ExecutionParameter(type=int, optional=True),
        "int8_float_layers": ExecutionParameter(type=int, optional=True),
    }
    INPUTS = {
        "model": ChannelParameter(type=standard_artifacts.Model),
        "examples": ChannelParameter(type=standard_artifacts.Examples),
        "transform_graph": ChannelParameter(type=standard_artifacts.TransformGraph),
        "evaluation": ChannelParameter(type=standard_artifacts.ModelEvaluation, optional=True),
    }
    OUTPUTS = {TFLITE_MODELS_KEY: ChannelParameter(type=TFLiteModels)}


def saved_model_size(path: str) -> int:
    import tensorflow as tf

    total = 0
    for dirpath, _dirs, files in tf.io.gfile.walk(path):
        total += sum(tf.io.gfile.stat(os.path.join(dirpath, f)).length for f in files)
    return total


def export_variants(
    saved_model_dir: str,
    examples_uri: str,
    class_names: list[str],
    out_dir: str,
    *,
    variants: list[str],
    representative_examples: int,
    max_accuracy_drop: float,
    height: int,
    width: int,
    evaluation_uri: str | None = None,
    latency_runs: int = DEFAULT_LATENCY_RUNS,
    int8_float_layers: int = 0,
) -> dict[str, Any]:
    """Convert, score and gate every variant into ``out_dir``; returns what ``results.json`` holds.

    ``int8_float_layers``: 0 (this function's default) converts int8 fully integer; the pipeline passes
    ``edge.int8_float_layers`` (default 3: the stem stays float32, see edge/selective.py).
    """
    import tensorflow as tf

    from graft.components import features
    from graft.components.edge import convert, evaluate

    variants = convert.check_variants(variants)
    tf.io.gfile.makedirs(out_dir)
    convert.write_labels(os.path.join(out_dir, convert.LABELS_FILE), class_names)
    loaded, fn = convert.load_classifier(saved_model_dir, height, width)
    test_images, test_labels = convert.transformed_images(examples_uri, features.TEST_SPLIT, height, width)
    reference_predict = evaluate.saved_model_predict(fn)
    from_evaluator = evaluate.evaluator_accuracy(evaluation_uri) if evaluation_uri else None
    recomputed = (
        None  # the Evaluator's figure is the reference; scoring the SavedModel again here added nothing
    )
    if (
        from_evaluator is None
    ):  # (a TFLite input mismatch shows as a drop against it and is refused by the gate)
        recomputed = evaluate.accuracies(
            evaluate.saved_model_probabilities(loaded, test_images), test_labels, class_names
        )["overall"][0]
    reference = recomputed if from_evaluator is None else from_evaluator
    source = "recomputed" if from_evaluator is None else "Evaluator"
    sm_latency = evaluate.latency_ms(reference_predict, test_images, latency_runs)
    representative = None
    if "int8" in variants:
        representative, _ = convert.transformed_images(
            examples_uri, features.TRAIN_SPLIT, height, width, limit=representative_examples
        )
    results = []
    for variant in variants:
        filename = convert.model_filename(variant)
        done: dict[str, Any] = {}
        try:
            flatbuffer = convert.convert(
                loaded, fn, variant, representative, int8_float_layers=int8_float_layers, info=done
            )
        except convert.EdgeExportError as e:
            results.append(
                _refused(variant, filename, str(e), reference, source, recomputed, max_accuracy_drop)
            )
            continue
        with tf.io.gfile.GFile(os.path.join(out_dir, filename), "wb") as f:
            f.write(flatbuffer)
        model = evaluate.TFLiteClassifier(flatbuffer)  # default threads: the latency figure below
        scorer = evaluate.TFLiteClassifier(flatbuffer, num_threads=evaluate.scoring_threads())
        accs = evaluate.accuracies(
            evaluate.predict_all(scorer.predict, test_images), test_labels, class_names
        )
        accuracy, n = accs["overall"]
        blessed, reason = evaluate.gate(accuracy, reference, max_accuracy_drop)
        evaluate.write_tfma_results(
            os.path.join(out_dir, EVALUATION_DIR, variant), variant, accs, blessed, reason
        )
        results.append(
            evaluate.VariantResult(
                variant=variant,
                file=filename,
                size_bytes=len(flatbuffer),
                accuracy=accuracy,
                examples=n,
                saved_model_accuracy=reference,
                saved_model_accuracy_source=source,
                recomputed_saved_model_accuracy=recomputed,
                drop=reference - accuracy,
                max_accuracy_drop=max_accuracy_drop,
                latency_ms_batch1=evaluate.latency_ms(model.predict, test_images, latency_runs),
                saved_model_latency_ms_batch1=sm_latency,
                blessed=blessed,
                reason=reason,
                quantization=done,
            ).to_dict()
        )
    summary = {
        "saved_model_size_bytes": saved_model_size(saved_model_dir),
        "class_names": list(class_names),
        "labels_file": convert.LABELS_FILE,
        "test_examples": int(len(test_labels)),
        "representative_examples": 0 if representative is None else int(len(representative)),
        "latency_runs": latency_runs,
        "variants": results,
    }
    with tf.io.gfile.GFile(os.path.join(out_dir, RESULTS_FILE), "w") as f:
        f.write(json.dumps(summary, indent=2))
    return summary


def _refused(variant, filename, reason, reference, source, recomputed, max_drop) -> dict:
    from graft.components.edge import evaluate

    nan = float("nan")
    return evaluate.VariantResult(
        variant=variant,
        file=filename,
        size_bytes=0,
        accuracy=nan,
        examples=0,
        saved_model_accuracy=reference,
        saved_model_accuracy_source=source,
        recomputed_saved_model_accuracy=recomputed,
        drop=nan,
        max_accuracy_drop=max_drop,
        latency_ms_batch1=nan,
        saved_model_latency_ms_batch1=nan,
        blessed=False,
        reason=reason,
    ).to_dict()


def read_results(uri: str) -> dict[str, Any]:
    """``results.json`` of a TFLiteModels artifact ({} when absent)."""
    import tensorflow as tf

    path = os.path.join(uri, RESULTS_FILE)
    if not tf.io.gfile.exists(path):
        return {}
    with tf.io.gfile.GFile(path) as f:
        return json.loads(f.read())


def blessed_files(uri: str) -> list[str]:
    """The files a Pusher publishes: the blessed variants, then labels.txt and results.json (if any blessed)."""
    from graft.components.edge import convert

    results = read_results(uri)
    files = [r["file"] for r in results.get("variants", []) if r.get("blessed")]
    return [*files, convert.LABELS_FILE, RESULTS_FILE] if files else []


class Executor(base_executor.BaseExecutor):
    def Do(  # noqa: N802 (TFX API)
        self,
        input_dict: dict[str, list[types.Artifact]],
        output_dict: dict[str, list[types.Artifact]],
        exec_properties: dict[str, Any],
    ) -> None:
        import graft  # noqa: F401, I001  (legacy Keras before TensorFlow)

        import tensorflow_transform as tft
        from absl import logging
        from tfx.utils import path_utils

        from graft import env
        from graft.components import features

        model = artifact_utils.get_single_instance(input_dict["model"])
        examples = artifact_utils.get_single_instance(input_dict["examples"])
        transform_graph = artifact_utils.get_single_instance(input_dict["transform_graph"])
        evaluation = input_dict.get("evaluation") or []
        out = artifact_utils.get_single_instance(output_dict[TFLITE_MODELS_KEY])
        vocab = tft.TFTransformOutput(transform_graph.uri).vocabulary_by_name(features.LABEL_VOCAB_NAME)
        class_names = [v.decode("utf-8") if isinstance(v, bytes) else str(v) for v in vocab]
        with env.quiet_native_stderr():  # the converter's and interpreter's native lines, unless -v
            summary = export_variants(
                path_utils.serving_model_path(model.uri),
                examples.uri,
                class_names,
                out.uri,
                variants=json.loads(exec_properties["variants_json"]),
                representative_examples=int(exec_properties["representative_examples"]),
                max_accuracy_drop=float(exec_properties["max_accuracy_drop"]),
                height=int(exec_properties["height"]),
                width=int(exec_properties["width"]),
                evaluation_uri=evaluation[0].uri if evaluation else None,
                latency_runs=int(exec_properties.get("latency_runs") or DEFAULT_LATENCY_RUNS),
                int8_float_layers=int(exec_properties.get("int8_float_layers") or 0),
            )
        blessed = [r["variant"] for r in summary["variants"] if r["blessed"]]
        refused = [r["variant"] for r in summary["variants"] if not r["blessed"]]
        out.set_json_value_custom_property("blessed_variants", blessed)
        out.set_json_value_custom_property("refused_variants", refused)
        for r in summary["variants"]:
            logging.info(
                "TFLite %s: %s (%s)", r["variant"], "blessed" if r["blessed"] else "REFUSED", r["reason"]
            )


class TFLiteExport(base_component.BaseComponent):
    """Converts the Trainer's model to TFLite variants, scores each on the test split, gates it (see module doc)."""

    SPEC_CLASS = TFLiteExportSpec
    EXECUTOR_SPEC = executor_spec.ExecutorClassSpec(Executor)

    def __init__(
        self,
        model: types.BaseChannel,
        examples: types.BaseChannel,
        transform_graph: types.BaseChannel,
        *,
        variants: list[str],
        representative_examples: int,
        max_accuracy_drop: float,
        height: int,
        width: int,
        evaluation: types.BaseChannel | None = None,
        latency_runs: int = DEFAULT_LATENCY_RUNS,
        int8_float_layers: int = DEFAULT_INT8_FLOAT_LAYERS,
    ):
        spec = TFLiteExportSpec(
            model=model,
            examples=examples,
            transform_graph=transform_graph,
            evaluation=evaluation,
            variants_json=json.dumps(list(variants)),
            representative_examples=int(representative_examples),
            max_accuracy_drop=float(max_accuracy_drop),
            height=int(height),
            width=int(width),
            latency_runs=int(latency_runs),
            int8_float_layers=int(int8_float_layers),
            tflite_models=types.Channel(type=TFLiteModels),
        )
        super().__init__(spec=spec)
