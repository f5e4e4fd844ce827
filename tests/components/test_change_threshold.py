"""The change threshold, decided by TFMA's own validator on the EvalConfig Graft builds (issue 15, item 7).

Default ``evaluation.max_accuracy_drop: 0.0`` means "at least as good as the last blessed model": a tie passes, a
better model passes, a worse one fails. A negative value demands a real improvement (a tie then fails).
"""

from __future__ import annotations

import pytest

from graft.components.evaluation_config import EvaluationConfig


def _blessed(change: float, max_accuracy_drop: float = 0.0) -> bool:
    from tensorflow_model_analysis.evaluators import metrics_validator
    from tensorflow_model_analysis.metrics import metric_types

    from graft.components import evaluation

    eval_config = evaluation.build_eval_config(EvaluationConfig(max_accuracy_drop=max_accuracy_drop))
    key = metric_types.MetricKey(evaluation.ACCURACY, example_weighted=False)
    metrics = {
        key: 0.9 + change,
        metric_types.MetricKey(evaluation.ACCURACY, model_name="baseline", example_weighted=False): 0.9,
        metric_types.MetricKey(evaluation.ACCURACY, is_diff=True, example_weighted=False): change,
    }
    return metrics_validator.validate_metrics(((), metrics), eval_config).validation_ok


@pytest.mark.parametrize(
    ("change", "blessed"), [(0.0, True), (0.01, True), (-0.01, False)], ids=["tie", "better", "worse"]
)
def test_default_blesses_a_model_at_least_as_good_as_the_last(change, blessed):
    assert _blessed(change) is blessed


@pytest.mark.parametrize(
    ("change", "blessed"), [(0.0, False), (0.01, True), (-0.01, False)], ids=["tie", "better", "worse"]
)
def test_negative_drop_demands_a_real_improvement(change, blessed):
    assert _blessed(change, max_accuracy_drop=-0.005) is blessed


def test_a_small_allowed_drop_lets_a_slightly_worse_model_through():
    assert _blessed(-0.01, max_accuracy_drop=0.02) and not _blessed(-0.03, max_accuracy_drop=0.02)


def test_the_change_bound_reads_as_words():
    import tensorflow_model_analysis as tfma

    from graft.pipeline.runs import _threshold_text

    def text(absolute: float) -> str:
        return _threshold_text(
            tfma.MetricThreshold(change_threshold=tfma.GenericChangeThreshold(absolute={"value": absolute}))
        )

    assert text(-0.0) == "the change bound (at least as good as the last blessed model)"
    assert "-0.0000" not in text(-0.0)
    assert text(-0.02) == "the change bound (at most 0.0200 below the last blessed model)"
    assert text(0.005) == "the change bound (at least 0.0050 better than the last blessed model)"
