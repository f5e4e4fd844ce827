"""End to end, task text: `graft run --data DIR --backbone minilm_l6` on real text through the one DAG.

The 100 labelled IMDB reviews TFX ships, written in GLUE form (train.tsv + test.tsv; val carved from train), the
offline all-MiniLM-L6-v2 pair at a 32-word-piece sequence length, a short phase 1 and one fine-tuning epoch. Task
detection is left to `auto` and edge.variants to its default (skipped for text, with the reason). Asserted against
MLMD and the pushed SavedModel, never against log text.

The threshold: on these 100 reviews truncated to 32 word pieces even a linear probe on the frozen encoder's
embeddings (scikit-learn LogisticRegression, 5-fold CV, measured 2026-12-01) scores 0.40-0.75 per 20-review fold,
0.56 on average: this data tests the wiring, not the model's quality (accuracy goals live in bench/). So
``evaluation.min_accuracy`` is 0.3, below every fold of that probe, and the test also asserts that the blessing
decision agrees with the measured accuracy, and that the pushed model's ``serving_default``, fed the raw test
strings, reproduces the accuracy the Evaluator measured through ``serving_tf_example``.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import numpy as np
import pytest
from data_helpers import GRAFT, TEXT_NODES, make_imdb_tsv

from graft.pipeline import runs

pytestmark = pytest.mark.slow

MIN_ACCURACY = 0.3
FAST = [
    "backbone.seq_length=32",
    "train.phase1_epochs=40",
    "train.phase1_learning_rate=0.003",
    "train.phase2_epochs=1",
    "train.batch_size=16",
    f"evaluation.min_accuracy={MIN_ACCURACY}",
]


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    base = tmp_path_factory.mktemp("e2e_text")
    data = base / "imdb"
    test_rows = make_imdb_tsv(data)
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
    assert summary.class_names == ["negative", "positive"]
    assert summary.test_metrics["example_count"] == len(world["test_rows"])
    accuracy = summary.test_metrics["sparse_categorical_accuracy"]
    assert summary.blessed is (accuracy >= MIN_ACCURACY)  # the decision agrees with the measurement
    assert summary.blessed and summary.pushed
    version_dir = Path(summary.pushed_path)
    assert version_dir.parent == world["serving"] and (version_dir / "saved_model.pb").is_file()
    assert world["payload"]["pushed_version"] == summary.pushed_version


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
    assert probs.shape == (len(texts), 2) and np.allclose(probs.sum(axis=1), 1.0, atol=1e-5)
    names = [n.decode() for n in out["class_name"].numpy()]
    assert set(names) <= {"negative", "positive"}
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
        a["class_name"] in ("negative", "positive") and 0.5 <= a["probability"] <= 1.0 for a in answers
    )
