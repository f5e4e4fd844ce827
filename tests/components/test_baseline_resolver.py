"""The Evaluator's baseline: the newest blessed, older Model of the same task and class names (real TFX artifacts)."""

from __future__ import annotations

import json

import pytest
from tfx.types import standard_artifacts

from graft.components import baseline_resolver as br


def model(tmp_path, artifact_id: int, task: str | None = "image", classes=("cat", "dog")):
    m = standard_artifacts.Model()
    m.id = artifact_id
    m.uri = str(tmp_path / "Trainer" / "model" / str(artifact_id))
    if task is not None:
        (tmp_path / "Trainer" / "model" / str(artifact_id)).mkdir(parents=True)
        history = {"task": task, "class_names": list(classes), "epochs": []}
        (tmp_path / "Trainer" / "model" / str(artifact_id) / br.HISTORY_FILE).write_text(json.dumps(history))
    return m


def blessing(model_id: int, blessed: bool = True):
    b = standard_artifacts.ModelBlessing()
    b.id = 1000 + model_id
    b.set_int_custom_property("current_model_id", model_id)
    b.set_int_custom_property("blessed", 1 if blessed else 0)
    return b


def resolve(candidate, models, blessings):
    out = br.PreviousBlessedModelStrategy().resolve_artifacts(
        None, {br.CANDIDATE_KEY: [candidate], br.MODEL_KEY: models, br.BLESSING_KEY: blessings}
    )
    return [m.id for m in out[br.MODEL_KEY]], [b.id for b in out[br.BLESSING_KEY]]


def test_the_newest_older_blessed_model_is_the_baseline(tmp_path):
    ms = [model(tmp_path, i) for i in (1, 2, 3, 4)]
    # 3 is not blessed, 4 is the candidate itself (a cached rerun): 2 is the baseline.
    assert resolve(ms[3], ms, [blessing(1), blessing(2), blessing(3, False), blessing(4)]) == ([2], [1002])
    assert resolve(ms[0], ms, [blessing(1), blessing(2)]) == ([], [])  # nothing older: a first run


@pytest.mark.parametrize(
    "other",
    [{"task": "text"}, {"classes": ("cat", "dog", "fox")}, {"classes": ("dog", "cat")}],
    ids=["another task", "a class added", "another class order"],
)
def test_a_model_of_another_task_or_class_set_is_skipped_for_the_newest_comparable_one(
    tmp_path, other, caplog
):
    old = model(tmp_path, 1)
    newer_other = model(tmp_path, 2, **other)
    candidate = model(tmp_path, 3)
    with caplog.at_level("WARNING"):
        assert resolve(candidate, [old, newer_other, candidate], [blessing(1), blessing(2)]) == ([1], [1001])
    assert "skipped blessed Model 2" in caplog.text and "own name or root" in caplog.text
    # With only the incomparable model blessed there is no baseline: absolute thresholds, as on a first run.
    assert resolve(candidate, [old, newer_other, candidate], [blessing(2)]) == ([], [])


def test_a_model_without_a_readable_history_is_still_a_baseline(tmp_path):
    # Models written before the Trainer recorded its task (or by another trainer): compared as before.
    legacy = model(tmp_path, 1, task=None)
    candidate = model(tmp_path, 2)
    assert resolve(candidate, [legacy, candidate], [blessing(1)]) == ([1], [1001])


def test_the_history_file_is_the_one_the_trainer_writes():
    from graft.components import trainer

    assert br.HISTORY_FILE == trainer.HISTORY_FILE
