"""Reading what the report shows: the run's artifacts (history, samples, statistics, anomalies,
thresholds) and the names and limits every section shares. No HTML, no plots.
"""

from __future__ import annotations

import dataclasses
import json
import math
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from graft.pipeline import runs

REPORT_FILE = "report.html"
REPORTS_DIR = "reports"
FACETS_FILE = "statistics_facets.html"
PNG_CURVES = "training_curves.png"
PNG_CONFUSION = "confusion_matrix.png"
PNG_SAMPLES = "samples.png"
PNG_COUNTS = "class_counts.png"

SAMPLES_PER_CLASS = 8
MAX_SAMPLE_CLASSES = 30
MAX_SAMPLE_RECORDS = 5000  # records read at most to find samples (keeps the report fast on big splits)
MAX_SKIPPED_SHOWN = 200

ACCURACY = "sparse_categorical_accuracy"
METRIC_LABELS = {
    "sparse_categorical_accuracy": "accuracy",
    "sparse_categorical_crossentropy": "cross-entropy loss",
    "example_count": "examples",
    "macro_auc": "macro AUC (one-vs-rest)",
}


class ReportError(RuntimeError):
    """No such run, or nothing to report; the message says what exists."""


# ---- where ------------------------------------------------------------------------------------------------------
def default_out_dir(run_root: str | Path, run_id: str) -> Path:
    return Path(run_root) / REPORTS_DIR / runs.record_path(run_root, run_id).stem


# ---- reading the artifacts ------------------------------------------------------------------------------------
def read_history(model_uri: str | None) -> dict[str, Any] | None:
    """The Trainer's training_history.json (beside Format-Serving in the Model artifact)."""
    if not model_uri:
        return None
    path = Path(model_uri) / "training_history.json"
    try:
        history = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return history if isinstance(history, dict) and history.get("epochs") else None


def sample_images(
    transformed_uri: str,
    class_names: list[str],
    per_class: int = SAMPLES_PER_CLASS,
    split: str = "train",
    max_records: int = MAX_SAMPLE_RECORDS,
) -> dict[str, list[Any]]:
    """Up to ``per_class`` transformed images (uint8 [H, W, 3] arrays) per class, in file order.

    Decodes Transform's output exactly as the Trainer's input_fn does (``features.decode_transformed_image``: a
    serialized uint8 tensor at the backbone's size), so these are the pixels the model trains on, before the
    in-model augmentation.
    """
    import tensorflow as tf
    from tensorflow.core.framework import tensor_pb2

    from graft.components import features

    files = sorted(Path(transformed_uri).glob(f"Split-{split}/*.gz"))
    out: dict[str, list[Any]] = {c: [] for c in class_names}
    if not files:
        return out
    wanted = set(class_names[:MAX_SAMPLE_CLASSES])
    seen = 0
    for raw in tf.data.TFRecordDataset([str(f) for f in files], compression_type="GZIP"):
        seen += 1
        if seen > max_records:
            break
        example = tf.train.Example.FromString(raw.numpy())
        feats = example.features.feature
        label = feats[features.TRANSFORMED_LABEL_KEY].int64_list.value
        if not label or not (0 <= label[0] < len(class_names)):
            continue
        name = class_names[label[0]]
        if name not in wanted or len(out[name]) >= per_class:
            continue
        data = feats[features.TRANSFORMED_IMAGE_KEY].bytes_list.value
        if not data:
            continue
        out[name].append(tf.make_ndarray(tensor_pb2.TensorProto.FromString(data[0])))
        if all(len(out[c]) >= per_class for c in wanted):
            break
    return out


def sample_texts(
    transformed_uri: str,
    graph_uri: str | None,
    class_names: list[str],
    per_class: int = 2,
    split: str = "train",
) -> dict[str, list[list[str]]]:
    """Task text: up to ``per_class`` train examples per class as the model sees them, their word pieces (the
    transformed ``input_word_ids`` without padding, mapped back through the vocabulary asset of the Transform graph)."""
    import tensorflow as tf

    vocab_files = sorted(
        p for p in Path(graph_uri or "").glob("transform_fn/assets/*") if "label_vocab" not in p.name
    )
    if not vocab_files:
        return {}
    vocab = vocab_files[0].read_text(encoding="utf-8").splitlines()
    out: dict[str, list[list[str]]] = {c: [] for c in class_names[:MAX_SAMPLE_CLASSES]}
    files = sorted(Path(transformed_uri).glob(f"Split-{split}/*.gz"))
    for seen, raw in enumerate(tf.data.TFRecordDataset([str(f) for f in files], compression_type="GZIP")):
        if seen >= MAX_SAMPLE_RECORDS or all(len(v) >= per_class for v in out.values()):
            break
        feats = tf.train.Example.FromString(raw.numpy()).features.feature
        label = feats["label_index"].int64_list.value
        name = class_names[label[0]] if label and 0 <= label[0] < len(class_names) else None
        if name not in out or len(out[name]) >= per_class:
            continue
        ids, mask = feats["input_word_ids"].int64_list.value, feats["input_mask"].int64_list.value
        out[name].append(
            [vocab[i] if 0 <= i < len(vocab) else "?" for i, m in zip(ids, mask, strict=False) if m]
        )
    return out


def read_statistics(stats_uri: str | None) -> dict[str, Any]:
    """{split: DatasetFeatureStatistics} from StatisticsGen's FeatureStats.pb files."""
    if not stats_uri:
        return {}
    from tensorflow_metadata.proto.v0 import statistics_pb2

    out = {}
    for split_dir in sorted(Path(stats_uri).glob("Split-*")):
        path = split_dir / "FeatureStats.pb"
        if not path.exists():
            continue
        stats = statistics_pb2.DatasetFeatureStatisticsList()
        stats.ParseFromString(path.read_bytes())
        if stats.datasets:
            out[split_dir.name[len("Split-") :]] = stats.datasets[0]
    return out


def read_anomaly_rows(anomalies_uri: str | None) -> list[dict[str, str]]:
    """Every anomaly ExampleValidator found, per split: feature, short and long description."""
    return runs.anomaly_rows(anomalies_uri)


@dataclasses.dataclass
class ThresholdCheck:
    metric: str
    slice: str
    kind: str  # "value" | "change"
    rule: str
    candidate: float | None
    baseline: float | None
    change: float | None
    passed: bool


def _slice_text(slice_key: Iterable) -> str:
    parts = [f"{col}={val.decode() if isinstance(val, bytes) else val}" for col, val in slice_key]
    return ", ".join(parts) or "all test examples"


def _proto_slice_key(slice_key) -> tuple:
    out = []
    for sk in slice_key.single_slice_keys:
        val = getattr(sk, sk.WhichOneof("kind"))
        out.append((sk.column, val.decode("utf-8", "replace") if isinstance(val, bytes) else val))
    return tuple(out)


def _norm_key(slice_key: Iterable) -> tuple:
    return tuple(
        (str(c), v.decode("utf-8", "replace") if isinstance(v, bytes) else str(v)) for c, v in slice_key
    )


def _double(v) -> float | None:
    if isinstance(v, dict) and "doubleValue" in v:
        x = float(v["doubleValue"])
        return None if math.isnan(x) or math.isinf(x) else x
    return None


def _rule_text(threshold) -> tuple[str, str]:
    from tensorflow_model_analysis.proto import config_pb2

    if isinstance(threshold, config_pb2.GenericValueThreshold):
        bits = []
        if threshold.HasField("lower_bound"):
            bits.append(f"≥ {threshold.lower_bound.value:.4f}")
        if threshold.HasField("upper_bound"):
            bits.append(f"≤ {threshold.upper_bound.value:.4f}")
        return "value", "value " + " and ".join(bits)
    higher = threshold.direction == config_pb2.MetricDirection.HIGHER_IS_BETTER
    op = "≥" if higher else "≤"
    bits = []
    if threshold.HasField("absolute"):
        bits.append(f"candidate − baseline {op} {threshold.absolute.value + 0.0:+.4f}")
    if threshold.HasField("relative"):
        bits.append(f"(candidate − baseline) / baseline {op} {threshold.relative.value + 0.0:+.4f}")
    return "change", " and ".join(bits) or "change vs baseline"


def threshold_checks(eval_uri: str) -> list[ThresholdCheck]:
    """Every threshold of the evaluation, on every slice it applies to, with the measured values.

    Which thresholds exist and where they apply come from TFMA itself (the EvalConfig stored with the result and
    ``metric_thresholds_from_metrics_specs``, the function its validator uses); pass / fail comes from TFMA's
    validation result, so this table and the blessing cannot disagree.
    """
    import tensorflow_model_analysis as tfma
    from tensorflow_model_analysis.metrics import metric_specs
    from tensorflow_model_analysis.proto import config_pb2
    from tensorflow_model_analysis.slicer import slicer_lib

    names = runs.eval_model_names(eval_uri)
    candidate = runs.load_eval_result(eval_uri, "candidate")
    baseline = runs.load_eval_result(eval_uri, "baseline") if names["baseline"] else None
    baseline_by_slice = {_norm_key(k): v for k, v in (baseline.slicing_metrics if baseline else [])}
    failed: set[tuple] = set()
    validation = tfma.load_validation_result(eval_uri)
    for per_slice in validation.metric_validations_per_slice:
        key = _norm_key(_proto_slice_key(per_slice.slice_key))
        for f in per_slice.failures:
            failed.add((key, f.metric_key.name, bool(f.metric_key.is_diff)))

    thresholds = metric_specs.metric_thresholds_from_metrics_specs(
        candidate.config.metrics_specs, candidate.config
    )
    checks: list[ThresholdCheck] = []
    for metric_key, pairs in thresholds.items():
        if names["baseline"] and metric_key.model_name == names["baseline"]:
            continue  # TFMA does not check thresholds on the baseline itself
        if metric_key.sub_key is not None:
            sub = str(metric_key.sub_key).replace(" ", "")
        else:
            sub = ""
        for slice_spec, threshold in pairs:
            for slice_key, per_output in candidate.slicing_metrics:
                if slice_spec is not None and (
                    not isinstance(slice_spec, config_pb2.SlicingSpec)
                    or not slicer_lib.SingleSliceSpec(spec=slice_spec).is_slice_applicable(slice_key)
                ):
                    continue
                values = per_output.get(metric_key.output_name or "", {}).get(sub, {})
                if metric_key.name not in values:
                    continue
                base_values = (
                    baseline_by_slice.get(_norm_key(slice_key), {})
                    .get(metric_key.output_name or "", {})
                    .get(sub, {})
                )
                kind, rule = _rule_text(threshold)
                norm = _norm_key(slice_key)
                checks.append(
                    ThresholdCheck(
                        metric=metric_key.name,
                        slice=_slice_text(slice_key),
                        kind=kind,
                        rule=rule,
                        candidate=_double(values.get(metric_key.name)),
                        baseline=_double(base_values.get(metric_key.name)),
                        change=_double(values.get(f"{metric_key.name}_diff")),
                        passed=(norm, metric_key.name, kind == "change") not in failed,
                    )
                )
    checks.sort(key=lambda c: (c.slice != "all test examples", c.slice, c.metric, c.kind))
    return checks


def producing_run(metadata_path: str | Path, uri: str | None) -> str | None:
    """The run id whose execution produced the artifact at ``uri`` (e.g. the baseline model)."""
    if not uri:
        return None
    from ml_metadata.proto import metadata_store_pb2

    store = runs.connect(metadata_path)
    for artifact in store.get_artifacts_by_uri(uri):
        for ev in store.get_events_by_artifact_ids([artifact.id]):
            if ev.type != metadata_store_pb2.Event.OUTPUT:
                continue
            for ctx in store.get_contexts_by_execution(ev.execution_id):
                if store.get_context_type(runs.PIPELINE_RUN_CONTEXT).id == ctx.type_id:
                    return ctx.name
    return None
