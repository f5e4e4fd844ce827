"""Baseline for the Evaluator: the latest blessed model that is older than the candidate.

TFX's ``LatestBlessedModelStrategy`` returns the latest blessed model, full stop. On an unchanged rerun the
Trainer is cached, so the candidate *is* that latest blessed model: the Evaluator's inputs change (baseline none ->
the candidate itself), it re-runs, blesses the model against itself, and the Pusher pushes the same model again
as a new version. Nothing changed, yet work was redone and a duplicate version appeared.

Comparing a candidate with the latest blessed model created *before* it is what "retrain and push a model at least
as good as the last blessed one" means, and it keeps the Evaluator's inputs stable across unchanged reruns, so every component is cached.

Only a model of the same task and class names is a baseline. A Model of another task or label set (an image model
on a root where a text model is now trained, or a class added to the data) cannot be scored on this run's eval
data: TFMA failed on it ("Fail to call signature func with signature_name: transform_features") after the whole
run. Such models are skipped, with a warning that names them; the newest comparable one is the baseline, and with
none the candidate is judged on the absolute thresholds alone, as on a first run. The task and class names are read
from the ``training_history.json`` the Trainer writes at the root of every Model artifact.

Kubeflow V2 compiles only TFX's two built-in resolver policies, so the cluster DAG uses
``LatestBlessedModelStrategy`` (there every scheduled run trains on a new span, so the candidate is always new).
"""

from __future__ import annotations

import json
import os

from absl import logging
from tfx import types
from tfx.dsl.components.common import resolver
from tfx.dsl.io import fileio
from tfx.types import standard_artifacts

CANDIDATE_KEY = "candidate"
MODEL_KEY = "model"
BLESSING_KEY = "model_blessing"
_CURRENT_MODEL_ID = "current_model_id"
_BLESSED = "blessed"
# Written by the Trainer at the root of its Model artifact (graft.components.trainer.HISTORY_FILE; that module
# imports TensorFlow, this one is imported by the DAG wiring).
HISTORY_FILE = "training_history.json"


def lineage(model: types.Artifact) -> tuple[str, tuple[str, ...]] | None:
    """(task, class names) the Trainer recorded for ``model``; None when its history is missing or unreadable."""
    path = os.path.join(model.uri, HISTORY_FILE)
    try:
        if not fileio.exists(path):
            return None
        with fileio.open(path, "r") as f:
            history = json.loads(f.read())
    except Exception as e:  # OSError, tf.errors.OpError (not an OSError), bad JSON: compared as before
        logging.warning(
            "baseline resolver: cannot read %s (%s); model %d compared as before", path, e, model.id
        )
        return None
    names = history.get("class_names")
    return str(history.get("task", "image")), tuple(str(n) for n in names) if isinstance(names, list) else ()


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
        wanted = lineage(min(candidates, key=lambda c: c.id))
        for model in sorted(models, key=lambda a: a.id, reverse=True):
            if model.id >= newest_allowed or model.id not in blessed:
                continue
            found = lineage(model)
            if wanted is not None and found is not None and found != wanted:
                logging.warning(
                    "baseline resolver: skipped blessed Model %d (%s): it was trained for task '%s' on classes %s, "
                    "this run for task '%s' on classes %s; they cannot be compared on one eval set (give a "
                    "different task or class set its own name or root to keep both).",
                    model.id,
                    model.uri,
                    found[0],
                    list(found[1]),
                    wanted[0],
                    list(wanted[1]),
                )
                continue
            result[MODEL_KEY] = [model]
            result[BLESSING_KEY] = [blessed[model.id]]
            break
        return result
