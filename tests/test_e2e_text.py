"""End to end, task text: `graft run --data DIR --backbone minilm_l6` on real text through the one DAG.

Data: a small stratified subset of the text demo's BBC News (data_helpers.make_bbc_tsv, through
graft.pipeline.demo_text's reader: deduplicated, its stable split kept): 3 topics (entertainment, sports, tech) x 16
train articles (val carved from them by the run) + 3 x 8 test articles, in GLUE form (train.tsv + test.tsv). The
offline all-MiniLM-L6-v2 pair at a 32-word-piece sequence length (a news topic shows in the headline and first
words), phase 1 on the cached features, and phase 2 for one epoch of train.steps_per_epoch=2 batches (the only
end-to-end run of text fine-tuning: asserted to have run). Task detection is left to `auto` and edge.variants to
its default (skipped for text, with the reason). Asserted against MLMD and the pushed SavedModel, never against log
text. The cost is the components' fixed cost (Transform, Trainer, Evaluator), not the data's: 16 words instead of
32 and one phase-2 step instead of two measured no faster side by side.

The threshold: on exactly these articles at this sequence length, a linear probe on the frozen encoder's
mean-pooled embeddings (bench.bench_text.embed + scikit-learn LogisticRegression(max_iter=3000), measured
2026-12-01) scores 0.958 in 5-fold stratified CV on the 48 train articles (lowest fold 0.89), 0.958 in 5-fold CV on
all 72, and 0.958 (23/24) fitted on train and scored on test; the pipeline itself scored 0.917 (22/24). So
``evaluation.min_accuracy`` is 0.7 (17 of the 24 test articles): ~0.26 below the probe, ~0.2 below the pipeline,
~0.37 above chance (1/3). A model that learned nothing, or a broken tokenizer or label mapping, fails it (the same
run with the train labels shuffled scored 0.375 and was not blessed); a working one clears it by that margin.
The test also asserts that the blessing decision agrees with the measured accuracy, and that the pushed model's
``serving_default``, fed the raw test strings, reproduces the accuracy the Evaluator measured through
``serving_tf_example``.

The TokenGate through the same DAG: text in a script MiniLM's vocabulary lacks (Cherokee) stops the run after
Transform with the gate's sentence, before the Trainer, nothing pushed.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import numpy as np
import pytest
from data_helpers import BBC_TOPICS, GRAFT, TEXT_NODES, latest_artifact, make_bbc_tsv, make_cherokee_tsv

from graft.pipeline import runs

pytestmark = pytest.mark.slow

MIN_ACCURACY = 0.7
N_TRAIN, N_TEST = 16, 8  # articles per topic
FAST = [
    "backbone.seq_length=32",
    "train.phase1_epochs=40",
    "train.phase1_learning_rate=0.003",
    "train.phase2_epochs=1",
    "train.steps_per_epoch=2",  # phase 2: one epoch of 2 batches (phase 1 runs on the cached features, uncapped)
    "train.batch_size=16",
    f"evaluation.min_accuracy={MIN_ACCURACY}",
]


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    base = tmp_path_factory.mktemp("e2e_text")
    data = base / "bbc"
    test_rows = make_bbc_tsv(data, n_train=N_TRAIN, n_test=N_TEST)
    root = base / "runs"
    args = [GRAFT, "run", "--data", str(data), "--backbone", "minilm_l6", "--root", str(root), "-q", "--json"]
    for s in FAST:
        args += ["--set", s]
    out = subprocess.run(args, capture_output=True, text=True, timeout=900, check=False)
    assert out.returncode == 0, out.stderr[-4000:]
    return {
        "payload": json.loads(out.stdout),
        "test_rows": test_rows,
        "mlmd": root / "graft" / "metadata.sqlite",
        "serving": root / "graft" / "serving" / "graft",
    }


def test_text_run_trains_blesses_and_pushes(world):
    summary = runs.summarize(world["mlmd"], world["payload"]["run_id"], "graft")
    assert summary.status == "COMPLETE"
    assert sorted(e.node_id for e in summary.executions) == sorted(TEXT_NODES)  # no TFLiteExport for text
    assert summary.class_names == sorted(BBC_TOPICS)
    assert summary.test_metrics["example_count"] == len(world["test_rows"])
    accuracy = summary.test_metrics["sparse_categorical_accuracy"]
    assert summary.blessed is (accuracy >= MIN_ACCURACY)  # the decision agrees with the measurement
    assert summary.blessed and summary.pushed
    version_dir = Path(summary.pushed_path)
    assert version_dir.parent == world["serving"] and (version_dir / "saved_model.pb").is_file()
    assert world["payload"]["pushed_version"] == summary.pushed_version


def test_text_run_fine_tuned_the_encoder(world):
    """Phase 2 ran (the only end-to-end run of text fine-tuning): one epoch of train.steps_per_epoch batches."""
    model_uri, _ = latest_artifact(str(world["mlmd"]), "Model")
    history = json.loads((Path(model_uri) / "training_history.json").read_text())
    assert history["phase2_skipped"] is None
    phase2 = next(p for p in history["phases"] if p["phase"] == 2)
    assert phase2["epochs_run"] == 1 and phase2["trainable_backbone_variables"] > 0
    assert [e["phase"] for e in history["epochs"]].count(2) == 1


def test_pushed_model_answers_raw_strings(world):
    import tensorflow as tf

    from graft.components.backbones import text_ops

    summary = runs.summarize(world["mlmd"], world["payload"]["run_id"], "graft")
    text_ops.register_ops()  # the served graph tokenizes with TF Text ops
    model = tf.saved_model.load(summary.pushed_path)
    serve = model.signatures["serving_default"]
    assert list(serve.structured_input_signature[1]) == ["text"]
    texts = [t for t, _ in world["test_rows"]]
    out = serve(text=tf.constant(texts))
    probs = out["probabilities"].numpy()
    assert probs.shape == (len(texts), len(BBC_TOPICS)) and np.allclose(probs.sum(axis=1), 1.0, atol=1e-5)
    names = [n.decode() for n in out["class_name"].numpy()]
    assert set(names) <= set(BBC_TOPICS)
    assert names == [summary.class_names[i] for i in out["class_index"].numpy()]
    accuracy = float(np.mean([n == label for n, (_, label) in zip(names, world["test_rows"], strict=True)]))
    assert accuracy == pytest.approx(summary.test_metrics["sparse_categorical_accuracy"], abs=1e-6)
    # serving_tf_example (what the Evaluator called) agrees with serving_default on the same texts.
    examples = [
        tf.train.Example(
            features=tf.train.Features(
                feature={"text": tf.train.Feature(bytes_list=tf.train.BytesList(value=[t.encode()]))}
            )
        ).SerializeToString()
        for t in texts
    ]
    by_example = model.signatures["serving_tf_example"](examples=tf.constant(examples))
    np.testing.assert_allclose(by_example["probabilities"].numpy(), probs, atol=1e-5)


def test_graft_predict_answers_texts(world):
    texts = [t for t, _ in world["test_rows"][:3]]
    args = [GRAFT, "predict", "--model", str(world["serving"]), "--json"]
    for t in texts:
        args += ["--text", t]
    out = subprocess.run(args, capture_output=True, text=True, timeout=600, check=False)
    assert out.returncode == 0, out.stderr[-2000:]
    answers = [json.loads(line) for line in out.stdout.splitlines()]
    assert [a["text"] for a in answers] == texts
    assert all(
        a["class_name"] in BBC_TOPICS and 1 / len(BBC_TOPICS) <= a["probability"] <= 1.0 for a in answers
    )


def test_text_the_vocabulary_lacks_stops_before_the_trainer(tmp_path):
    """The TokenGate, through the real DAG: Cherokee text is ~100 % [UNK] for MiniLM, so the run stops after
    Transform with the gate's sentence (exit 3, a data error), the Trainer never runs and nothing is pushed."""
    data, root = tmp_path / "cherokee", tmp_path / "runs"
    make_cherokee_tsv(data)
    args = [GRAFT, "run", "--data", str(data), "--backbone", "minilm_l6", "--root", str(root), "-q", "--json"]
    for s in ("backbone.seq_length=16", "train.phase2_epochs=0"):
        args += ["--set", s]
    out = subprocess.run(args, capture_output=True, text=True, timeout=900, check=False)
    assert out.returncode == 3, out.stderr[-4000:]
    err = out.stderr
    assert "of word pieces are [UNK]" in err and "transform.max_unk_rate" in err, err[-4000:]
    mlmd = root / "graft" / "metadata.sqlite"
    (run_id,) = runs.list_run_ids(runs.connect(mlmd), "graft")
    summary = runs.summarize(mlmd, run_id, "graft")
    states = {e.node_id: e.state for e in summary.executions}
    assert summary.status == "FAILED", states
    assert states["Transform"] == "COMPLETE" and states["TokenGate"] == "FAILED", states
    assert not {"Trainer", "Evaluator", "Pusher"} & set(states), states
    assert not summary.pushed
    serving = root / "graft" / "serving"
    assert not serving.exists() or not any(serving.rglob("*"))
