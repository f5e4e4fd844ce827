"""Baseline for the Evaluator: the latest blessed model that is older than the candidate.

TFX's ``LatestBlessedModelStrategy`` returns the latest blessed model, full stop. On an unchanged rerun the
Trainer is cached, so the candidate *is* that latest blessed model: the Evaluator's inputs change (baseline none ->
the candidate itself), it re-runs, blesses the model against itself, and the Pusher pushes the same model again
as a new version. Nothing changed, yet work was redone and a duplicate version appeared.

Comparing a candidate with the latest blessed model created *before* it is what "retrain and push a model at least
as good as the last blessed one" means, and it keeps the Evaluator's inputs stable across unchanged reruns, so every component is cached.

Kubeflow V2 compiles only TFX's two built-in resolver policies, so the cluster DAG uses
``LatestBlessedModelStrategy`` (there every scheduled run trains on a new span, so the candidate is always new).
"""

from __future__ import annotations

from tfx import types
from tfx.dsl.components.common import resolver
from tfx.types import standard_artifacts

CANDIDATE_KEY = "candidate"
MODEL_KEY = "model"
BLESSING_KEY = "model_blessing"
_CURRENT_MODEL_ID = "current_model_id"
_BLESSED = "blessed"


class PreviousBlessedModelStrategy(resolver.ResolverStrategy):
    """Resolves {model, model_blessing} to the newest blessed Model whose id is lower than the candidate's.

    Inputs: ``candidate`` (the Trainer's model of this run), ``model`` (every Model), ``model_blessing`` (every
    ModelBlessing). Outputs ``model`` and ``model_blessing`` (empty when there is no such model: a first run), and
    ``candidate`` unchanged.
    """

    def resolve_artifacts(self, store, input_dict: dict[str, list[types.Artifact]]):
        candidates = input_dict.get(CANDIDATE_KEY, [])
        models = list(input_dict.get(MODEL_KEY, []))
        blessings = input_dict.get(BLESSING_KEY, [])
        result: dict[str, list[types.Artifact]] = {CANDIDATE_KEY: candidates, MODEL_KEY: [], BLESSING_KEY: []}
        if not candidates:
            return result
        for a in models:
            if not isinstance(a, standard_artifacts.Model):
                raise RuntimeError(f"'{MODEL_KEY}' expects Model artifacts, got {a.type_name}")
        newest_allowed = min(c.id for c in candidates)
        blessed = {
            b.get_int_custom_property(_CURRENT_MODEL_ID): b
            for b in blessings
            if b.get_int_custom_property(_BLESSED) == 1
        }
        for model in sorted(models, key=lambda a: a.id, reverse=True):
            if model.id < newest_allowed and model.id in blessed:
                result[MODEL_KEY] = [model]
                result[BLESSING_KEY] = [blessed[model.id]]
                break
        return result
