"""The Evaluator's AUC runs at 1,000 thresholds (TFMA builds it on every slice; 10,000 cost a third of the demo's
Evaluator time for a macro AUC that moved by 2e-5)."""

from __future__ import annotations

from graft.components import evaluation
from graft.pipeline.config import EvaluationConfig


def test_auc_is_built_by_tfma_with_1000_thresholds():
    from tensorflow_model_analysis.metrics import metric_specs

    ec = evaluation.build_eval_config(EvaluationConfig(), [str(i) for i in range(10)])
    aucs = [m for spec in ec.metrics_specs for m in spec.metrics if m.class_name == "AUC"]
    assert len(aucs) == 1
    auc = metric_specs.metric_instance(aucs[0])
    assert auc.get_config()["num_thresholds"] == evaluation.AUC_THRESHOLDS == 1000
    assert auc.name == "auc"  # the metric key the report and summaries read is unchanged


def test_no_class_names_means_no_auc():
    ec = evaluation.build_eval_config(EvaluationConfig(), None)
    assert not [m for spec in ec.metrics_specs for m in spec.metrics if m.class_name == "AUC"]
