"""The ``evaluation`` section: the thresholds that decide the blessing.

Owned by graft.components.evaluation (the Evaluator's EvalConfig). No TensorFlow / TFMA here.
"""

from __future__ import annotations

from dataclasses import dataclass

from graft.settings import check as _check


@dataclass
class EvaluationConfig:
    # Blessing needs every threshold below to pass. TFMA writes no blessing without thresholds (tfx#5148), so
    # min_accuracy always exists.
    min_accuracy: float = 0.5
    # Against the last blessed model: the new accuracy may be at most this much lower (absolute). 0 = at least
    # as good; a negative value demands an improvement.
    max_accuracy_drop: float = 0.0
    # Per-class recall floor (sliced by label). 0 disables it.
    min_class_recall: float = 0.0
    # Per TFLite variant (edge.variants): its test accuracy may be at most this much below the SavedModel's, or
    # the variant is not pushed (the SavedModel's own blessing is unaffected).
    max_tflite_accuracy_drop: float = 0.01

    def validate(self) -> None:
        _check(0.0 <= self.min_accuracy <= 1.0, "evaluation.min_accuracy", "must be in [0, 1]")
        _check(
            0.0 <= self.max_tflite_accuracy_drop <= 1.0,
            "evaluation.max_tflite_accuracy_drop",
            "must be in [0, 1]",
        )
        _check(-1.0 <= self.max_accuracy_drop <= 1.0, "evaluation.max_accuracy_drop", "must be in [-1, 1]")
        _check(0.0 <= self.min_class_recall <= 1.0, "evaluation.min_class_recall", "must be in [0, 1]")
