"""Score a TFLite variant through the interpreter on the test split, and gate it against the SavedModel.

The test split is Transform's transformed ``test`` split: the same examples the Evaluator scores (it reads the raw
test split and applies the same Transform graph through ``transform_features``), already decoded and resized, so
what is measured is the conversion and nothing else. The SavedModel's accuracy is read from the Evaluator's own
result (the figure its blessing used); only when no Evaluator result is given is the float32 classifier run here on
the same tensors as the reference. (It used to run as a cross-check too: it repeated the Evaluator's forward pass
over the test split, 19 s of the CIFAR slice's 60 s here, and a TFLite input that differed from the Evaluator's
would show anyway, as a drop the gate refuses.)

The gate, per variant: ``accuracy >= saved_model_accuracy - max_accuracy_drop``. A refused variant is not pushed;
the SavedModel's own blessing is not touched.

Results are written TFMA-readable: ``<dir>/metrics*.tfrecord`` (``MetricsForSlice``: example count and
``sparse_categorical_accuracy`` overall and per ``label`` slice) and ``<dir>/validations*.tfrecord``
(``ValidationResult``), so ``tfma.load_metrics`` / ``tfma.load_validation_result`` read a variant's evaluation
like the Evaluator's.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field

import graft  # noqa: F401  (legacy tf.keras before TensorFlow is imported)

# isort: split
import numpy as np
import tensorflow as tf

ACCURACY = "sparse_categorical_accuracy"
EXAMPLE_COUNT = "example_count"
LABEL_SLICE = "label"
LATENCY_WARMUP = 3
REFERENCE_BATCH = 64


def scoring_threads() -> int:
    """Interpreter threads for the accuracy pass: every core (measured on 2 cores, MobileNet V1 224 px, batch 1:
    float16 20.4 -> 9.4 ms per image, int8 7.5 -> 4.9 ms; same outputs). Latency is measured apart, with the
    interpreter's default threads, so that figure keeps its meaning."""
    return max(1, os.cpu_count() or 1)


class TFLiteClassifier:
    """One TFLite model in the interpreter: uint8 [H, W, 3] image -> float32 probabilities [C]."""

    def __init__(self, model: bytes | str, num_threads: int | None = None):
        kwargs = {"model_path": model} if isinstance(model, str) else {"model_content": model}
        self.interpreter = tf.lite.Interpreter(num_threads=num_threads, **kwargs)
        self.interpreter.allocate_tensors()
        self.input = self.interpreter.get_input_details()[0]
        self.output = self.interpreter.get_output_details()[0]

    @property
    def input_shape(self) -> tuple[int, ...]:
        return tuple(int(d) for d in self.input["shape"])

    def _to_input(self, image: np.ndarray) -> np.ndarray:
        x = np.asarray(image)[np.newaxis]
        dtype = self.input["dtype"]
        scale, zero = self.input["quantization"]
        if scale and (scale, zero) != (1.0, 0):
            # a quantized input: real pixel value = scale * (q - zero)
            info = np.iinfo(dtype)
            return np.clip(np.round(x.astype(np.float32) / scale + zero), info.min, info.max).astype(dtype)
        return x.astype(dtype)

    def predict(self, image: np.ndarray) -> np.ndarray:
        self.interpreter.set_tensor(self.input["index"], self._to_input(image))
        self.interpreter.invoke()
        y = self.interpreter.get_tensor(self.output["index"])[0]
        scale, zero = self.output["quantization"]
        if scale:
            return scale * (y.astype(np.float32) - zero)
        return y.astype(np.float32)


def predict_all(predict: Callable[[np.ndarray], np.ndarray], images: np.ndarray) -> np.ndarray:
    return np.stack([predict(im) for im in images])


def latency_ms(predict: Callable[[np.ndarray], object], images: np.ndarray, runs: int) -> float:
    """Median wall time of one batch-1 call, in ms (after a few warm-up calls)."""
    for im in images[:LATENCY_WARMUP]:
        predict(im)
    times = []
    for i in range(runs):
        start = time.perf_counter()
        predict(images[i % len(images)])
        times.append(time.perf_counter() - start)
    return float(np.median(times) * 1000.0)


def saved_model_probabilities(loaded, images: np.ndarray, batch: int = REFERENCE_BATCH) -> np.ndarray:
    """The float32 classifier's probabilities on every image, in batches (the batch-1 concrete function of
    convert.load_classifier is for conversion and latency; batches of 64 score 25 -> 19 ms per image here)."""
    step = tf.function(lambda x: tf.nn.softmax(tf.cast(loaded(x, training=False), tf.float32), axis=-1))
    out = [step(tf.constant(images[i : i + batch], tf.uint8)).numpy() for i in range(0, len(images), batch)]
    return np.concatenate(out) if out else np.zeros((0, 0), np.float32)


def saved_model_predict(concrete_fn) -> Callable[[np.ndarray], np.ndarray]:
    """The float32 classifier (convert.load_classifier) as the same image -> probabilities callable."""

    def predict(image: np.ndarray) -> np.ndarray:
        return concrete_fn(tf.constant(image[np.newaxis], tf.uint8))["probabilities"].numpy()[0]

    return predict


def accuracies(probabilities: np.ndarray, labels: np.ndarray, class_names: Sequence[str]) -> dict:
    """{'overall': (accuracy, n), '<class>': (recall, n), ...} for the examples that have a label."""
    keep = labels >= 0
    pred = np.argmax(probabilities[keep], axis=-1)
    true = labels[keep]
    out = {"overall": (float(np.mean(pred == true)) if len(true) else float("nan"), int(len(true)))}
    for i, name in enumerate(class_names):
        mask = true == i
        if mask.any():
            out[name] = (float(np.mean(pred[mask] == i)), int(mask.sum()))
    return out


# ---- the SavedModel's figure, from the Evaluator's result -----------------------------------------------------
def evaluator_accuracy(eval_uri: str) -> float | None:
    """The candidate model's overall accuracy in a ModelEvaluation artifact (None if it is not there)."""
    from tensorflow_model_analysis.writers import metrics_plots_and_validations_writer as mpv

    baseline = None
    try:
        with tf.io.gfile.GFile(os.path.join(eval_uri, "eval_config.json")) as f:
            specs = (json.load(f).get("evalConfig") or {}).get("modelSpecs", [])
        baseline = next((s.get("name") for s in specs if s.get("isBaseline")), None)
    except (OSError, ValueError, tf.errors.NotFoundError):
        pass
    for m in mpv.load_and_deserialize_metrics(eval_uri):
        if m.slice_key.single_slice_keys:
            continue
        for kv in m.metric_keys_and_values:
            k = kv.key
            if k.name == ACCURACY and not k.is_diff and (baseline is None or k.model_name != baseline):
                return float(kv.value.double_value.value)
    return None


# ---- the gate --------------------------------------------------------------------------------------------------
@dataclass
class VariantResult:
    variant: str
    file: str
    size_bytes: int
    accuracy: float
    examples: int
    saved_model_accuracy: float
    saved_model_accuracy_source: str  # "Evaluator" | "recomputed"
    recomputed_saved_model_accuracy: float | None  # None when the Evaluator's figure is the reference
    drop: float
    max_accuracy_drop: float
    latency_ms_batch1: float
    saved_model_latency_ms_batch1: float
    blessed: bool
    reason: str
    # int8 with edge.int8_float_layers > 0: the ops kept float, the debugger's worst layers (selective.py)
    quantization: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        return asdict(self)


def gate(accuracy: float, reference: float, max_drop: float) -> tuple[bool, str]:
    """(blessed, why): accuracy at most ``max_drop`` below the SavedModel's."""
    drop = reference - accuracy
    if not np.isfinite(accuracy):
        return False, "no labelled test examples to score it on"
    if drop <= max_drop + 1e-9:
        return True, (
            f"accuracy {accuracy:.4f} vs SavedModel {reference:.4f}: drop {drop:+.4f} within "
            f"evaluation.max_tflite_accuracy_drop {max_drop:.4f}"
        )
    return False, (
        f"accuracy {accuracy:.4f} vs SavedModel {reference:.4f}: drop {drop:.4f} exceeds "
        f"evaluation.max_tflite_accuracy_drop {max_drop:.4f}"
    )


# ---- TFMA-readable output --------------------------------------------------------------------------------------
def write_tfma_results(out_dir: str, model_name: str, accs: dict, blessed: bool, reason: str) -> None:
    """metrics + validations files that tfma.load_metrics / tfma.load_validation_result read."""
    from tensorflow_model_analysis.proto import metrics_for_slice_pb2, validation_result_pb2

    tf.io.gfile.makedirs(out_dir)
    records = []
    for name, (acc, n) in accs.items():
        m = metrics_for_slice_pb2.MetricsForSlice()
        if name != "overall":
            m.slice_key.single_slice_keys.add(column=LABEL_SLICE, bytes_value=name.encode("utf-8"))
        for metric, value in ((EXAMPLE_COUNT, float(n)), (ACCURACY, acc)):
            kv = m.metric_keys_and_values.add()
            kv.key.name = metric
            kv.key.model_name = model_name
            kv.value.double_value.value = value
        records.append(m.SerializeToString())
    with tf.io.TFRecordWriter(os.path.join(out_dir, "metrics-00000-of-00001.tfrecord")) as w:
        for r in records:
            w.write(r)
    v = validation_result_pb2.ValidationResult(validation_ok=blessed)
    if not blessed:
        v.validation_details.slicing_details.add().num_matching_slices = 1
        failure = v.metric_validations_per_slice.add()
        f = failure.failures.add()
        f.metric_key.name = ACCURACY
        f.metric_key.model_name = model_name
        f.metric_value.double_value.value = accs["overall"][0]
        f.message = reason
    with tf.io.TFRecordWriter(os.path.join(out_dir, "validations-00000-of-00001.tfrecord")) as w:
        w.write(v.SerializeToString())
