"""The evaluation of a run, read back from TFMA's ModelEvaluation artifact: metrics of the candidate and the
baseline, the confusion matrix, per-class precision / recall / F1, and thresholds in words.

Split from ``runs.py`` (which re-exports these names): reading TFMA's output changes with TFMA, apart from the
MLMD walk that finds the artifacts.
"""

from __future__ import annotations

from pathlib import Path

from graft.pipeline.run_records import _read_json


def eval_model_names(uri: str) -> dict[str, str | None]:
    """{'candidate': name, 'baseline': name or None} from the evaluation's eval_config.json.

    With a baseline, TFMA stores both models' metrics and plots under their model names; loading with
    ``model_name=None`` then finds no plots (TFMA logs "Fail to find plots for model name: None").
    """
    names: dict[str, str | None] = {"candidate": None, "baseline": None}
    config = _read_json(str(Path(uri) / "eval_config.json"), {})
    for spec in (config.get("evalConfig") or {}).get("modelSpecs", []):
        role = "baseline" if spec.get("isBaseline") else "candidate"
        if names[role] is None:
            names[role] = spec.get("name") or None
    return names


def load_eval_result(uri: str, model: str = "candidate"):
    """TFMA's EvalResult of the candidate (or the baseline) model of one ModelEvaluation artifact."""
    import logging

    import tensorflow_model_analysis as tfma

    logging.getLogger("tensorflow").setLevel(logging.ERROR)  # TFMA's reader logs a deprecation on every load
    names = eval_model_names(uri)
    if model == "baseline" and names["baseline"] is None:
        raise LookupError(f"the evaluation at {uri} has no baseline model")
    return tfma.load_eval_result(uri, model_name=names[model])


def read_evaluation(uri: str, model: str = "candidate") -> tuple[dict[str, float], list[str]]:
    """Overall-slice metrics of the candidate (or baseline) model, and each failed threshold in plain words."""
    import tensorflow_model_analysis as tfma

    metrics: dict[str, float] = {}
    failures: list[str] = []
    try:
        result = load_eval_result(uri, model)
        for slice_key, per_output in result.slicing_metrics:
            if slice_key != ():
                continue
            for _output, per_sub in per_output.items():
                for sub_key, values in per_sub.items():
                    if sub_key:
                        continue
                    for name, v in values.items():
                        if isinstance(v, dict) and "doubleValue" in v:
                            # 'macro_average: true\n_recall' (TFMA's aggregation prefix) -> 'macro_recall'
                            clean = name.replace("macro_average: true\n_", "macro_")
                            metrics[clean] = _finite(float(v["doubleValue"]))
    except Exception as e:  # noqa: BLE001 - a summary must not crash on a partial evaluation
        failures.append(f"could not read the evaluation at {uri}: {e}")
    if model != "candidate":
        return metrics, failures
    try:
        validation = tfma.load_validation_result(uri)
        for failure in validation.metric_validations_per_slice:
            slice_desc = _slice_text(failure.slice_key)
            for f in failure.failures:
                failures.append(
                    f"{f.metric_key.name}{' (change vs baseline)' if f.metric_key.is_diff else ''} on {slice_desc}:"
                    f" {_fmt(f.metric_value)} does not meet {_threshold_text(f.metric_threshold)}"
                )
        if not validation.validation_ok and not failures:
            for m in validation.missing_slices:
                failures.append(f"slice {_slice_text(m)} has no examples")
            if not failures:
                failures.append(str(validation.validation_details).strip() or "validation failed")
    except Exception as e:  # noqa: BLE001
        failures.append(f"could not read the validation result at {uri}: {e}")
    return metrics, failures


def read_confusion_matrix(uri: str, model: str = "candidate") -> list[list[int]]:
    """Overall-slice multi-class confusion matrix [actual][predicted] at threshold 0 (argmax)."""
    try:
        result = load_eval_result(uri, model)
    except Exception:  # noqa: BLE001
        return []
    for slice_key, per_output in result.plots:
        if slice_key != ():
            continue
        for _output, per_sub in per_output.items():
            for _sub, plots in per_sub.items():
                cm = plots.get("multiClassConfusionMatrixAtThresholds")
                if not cm:
                    continue
                matrices = cm.get("matrices", [])
                matrix = next((m for m in matrices if float(m.get("threshold", 0.0)) == 0.0), None)
                if matrix is None and matrices:
                    matrix = matrices[0]
                entries = (matrix or {}).get("entries", [])
                n = 1 + max(
                    [int(e.get("actualClassId", 0)) for e in entries]
                    + [int(e.get("predictedClassId", 0)) for e in entries]
                    + [0]
                )
                grid = [[0] * n for _ in range(n)]
                for e in entries:
                    a, p = int(e.get("actualClassId", 0)), int(e.get("predictedClassId", 0))
                    if 0 <= a < n and 0 <= p < n:  # -1 = no prediction above the threshold
                        grid[a][p] += int(round(float(e.get("numWeightedExamples", 0))))
                return grid
    return []


def per_class_metrics(grid: list[list[int]], names: list[str]) -> dict[str, dict[str, float | None]]:
    out: dict[str, dict[str, float | None]] = {}
    n = len(grid)
    for k in range(n):
        tp = grid[k][k]
        support = sum(grid[k])
        predicted = sum(grid[a][k] for a in range(n))
        name = names[k] if k < len(names) else str(k)
        out[name] = {
            "precision": tp / predicted if predicted else None,
            "recall": tp / support if support else None,
            "support": support,
        }
    return out


def _finite(x: float) -> float | None:
    """NaN (e.g. precision of a class never predicted) -> None, so the JSON summary stays valid JSON."""
    return None if x != x or x in (float("inf"), float("-inf")) else x


def _fmt(metric_value) -> str:
    kind = metric_value.WhichOneof("type")
    if kind == "double_value":
        return f"{metric_value.double_value.value:.4f}"
    return str(getattr(metric_value, kind)) if kind else "?"


def _slice_text(slice_key) -> str:
    parts = []
    for sk in slice_key.single_slice_keys:
        kind = sk.WhichOneof("kind")
        val = getattr(sk, kind)
        if isinstance(val, bytes):
            val = val.decode("utf-8", "replace")
        parts.append(f"{sk.column}={val}")
    return ", ".join(parts) or "all test examples"


def _threshold_text(threshold) -> str:
    if threshold.HasField("value_threshold"):
        vt = threshold.value_threshold
        bits = []
        if vt.HasField("lower_bound"):
            bits.append(f">= {vt.lower_bound.value:.4f}")
        if vt.HasField("upper_bound"):
            bits.append(f"<= {vt.upper_bound.value:.4f}")
        return "the bound " + " and ".join(bits)
    if threshold.HasField("change_threshold"):
        ct = threshold.change_threshold
        allowed = ct.absolute.value  # candidate - baseline must be >= this (HIGHER_IS_BETTER)
        if abs(allowed) < 5e-5:
            return "the change bound (at least as good as the last blessed model)"
        if allowed < 0:
            return f"the change bound (at most {-allowed:.4f} below the last blessed model)"
        return f"the change bound (at least {allowed:.4f} better than the last blessed model)"
    return str(threshold)
