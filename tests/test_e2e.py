"""End to end: the real DAG through `graft run` (LocalDagRunner, Beam, sqlite MLMD) on ~60 small real images.

One module-scoped sequence of runs on the same root, each asserted against MLMD (never against log text):
first run blessed and pushed; an unchanged quiet rerun fully cached with nothing new pushed and only the summary on
stdout; a retrained model that must beat its baseline by an impossible margin is not blessed and leaves the serving
directory byte-identical; the pushed model answers `graft predict`.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
from pathlib import Path

import pytest
from data_helpers import ALL_NODES, GRAFT, make_shapes

from graft.pipeline import runs

pytestmark = pytest.mark.slow

COMPONENTS = ALL_NODES
FAST = [
    "train.phase1_epochs=8",
    "train.phase1_learning_rate=0.01",
    "train.phase2_epochs=1",
    "train.batch_size=8",
    "evaluation.min_accuracy=0.4",
]


def graft_run(data: Path, root: Path, *extra: str, flags: tuple[str, ...] = ()) -> tuple[int, dict, str]:
    """`graft run -q --json` with FAST and the ``extra`` config overrides (``--set``) and command-line ``flags``."""
    args = [GRAFT, "run", "--data", str(data), "--backbone", "tiny", "--root", str(root), "-q", "--json"]
    args += flags
    for s in [*FAST, *extra]:
        args += ["--set", s]
    out = subprocess.run(args, capture_output=True, text=True, timeout=900, check=False)
    # --json: stdout is exactly one JSON document (Keras epochs go to stderr), or nothing when the command line or
    # config is refused before anything runs (the sentence goes to stderr, exit 2).
    payload = json.loads(out.stdout) if out.stdout.strip() else {}
    return out.returncode, payload, out.stderr


def tree_digest(path: Path) -> dict[str, str]:
    if not path.exists():
        return {}
    return {
        str(p.relative_to(path)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(path.rglob("*"))
        if p.is_file()
    }


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    base = tmp_path_factory.mktemp("e2e")
    data = base / "data"
    make_shapes(data)
    root = base / "runs"
    return {
        "data": data,
        "root": root,
        "serving": root / "graft" / "serving" / "graft",
        "mlmd": root / "graft" / "metadata.sqlite",
    }


@pytest.fixture(scope="module")
def first_run(world):
    code, payload, err = graft_run(world["data"], world["root"])
    assert code == 0, err[-4000:]
    world["first_stderr"] = err
    return payload


def test_first_run_is_blessed_and_pushed(world, first_run):
    summary = runs.summarize(world["mlmd"], first_run["run_id"], "graft")
    assert summary.status == "COMPLETE"
    nodes = [e.node_id for e in summary.executions]
    assert sorted(nodes) == sorted(COMPONENTS), nodes  # one execution per component, none cached
    assert all(e.state == "COMPLETE" for e in summary.executions)
    assert summary.blessed is True and summary.pushed is True
    version_dir = Path(summary.pushed_path)
    assert version_dir.parent == world["serving"]
    assert (version_dir / "saved_model.pb").exists() and (version_dir / "variables").is_dir()
    assert summary.test_metrics["example_count"] > 0
    assert summary.test_metrics["sparse_categorical_accuracy"] >= 0.4
    assert summary.class_names == ["circle", "square", "triangle"]
    assert first_run["pushed_version"] == summary.pushed_version  # --json agrees with MLMD


def test_unchanged_quiet_rerun_is_fully_cached_pushes_nothing_and_prints_only_the_summary(world, first_run):
    """One unchanged rerun, plain ``-q`` (no --json) with TensorFlow's log level left unset: every component is
    cached, nothing new is pushed, stdout carries only the ``[graft]`` summary and TensorFlow's start-up noise stays
    off without -v. (The --json form of the summary on stderr is checked by the not-blessed run below.)"""
    before = tree_digest(world["serving"])
    args = [
        GRAFT,
        "run",
        "--data",
        str(world["data"]),
        "--backbone",
        "tiny",
        "--root",
        str(world["root"]),
        "-q",
    ]
    for s in FAST:
        args += ["--set", s]
    env = {k: v for k, v in os.environ.items() if k != "TF_CPP_MIN_LOG_LEVEL"}  # conftest sets it for itself
    out = subprocess.run(args, capture_output=True, text=True, timeout=900, check=False, env=env)
    assert out.returncode == 0, out.stderr[-3000:]
    lines = out.stdout.splitlines()
    assert lines and all(line.startswith("[graft] ") for line in lines), out.stdout
    assert "Unable to register" not in out.stderr  # TensorFlow's start-up noise stays off without -v
    summary = runs.summarize(world["mlmd"], "latest", "graft")
    assert summary.run_id != first_run["run_id"]
    states = {e.node_id: e.state for e in summary.executions}
    for node in COMPONENTS:
        if node.endswith("_resolver"):
            continue  # resolvers always resolve; they have nothing to cache
        assert states[node] == "CACHED", states
    assert tree_digest(world["serving"]) == before
    assert summary.pushed_version == first_run["pushed_version"]
    assert "nothing new pushed" in out.stdout


def test_model_that_cannot_beat_its_baseline_is_not_pushed(world, first_run):
    before = tree_digest(world["serving"])
    assert before
    # A new seed retrains (new candidate); demanding +1.0 accuracy over the blessed baseline can never be met.
    # No edge export and no report: this run asserts the Evaluator's refusal and the untouched serving directory
    # (TFLiteExport would convert and score a model nobody pushes; the report tests are test_report.py's).
    code, payload, err = graft_run(
        world["data"],
        world["root"],
        "train.seed=7",
        "evaluation.max_accuracy_drop=-1.0",
        "edge.variants=[]",
        flags=("--no-report",),
    )
    assert code == 0, err[-4000:]  # a completed run that is not blessed is not an error
    summary = runs.summarize(world["mlmd"], payload["run_id"], "graft")
    states = {e.node_id: e.state for e in summary.executions}
    assert states["Trainer"] == "COMPLETE" and states["Evaluator"] == "COMPLETE"
    assert summary.blessed is False
    assert summary.pushed is False
    assert tree_digest(world["serving"]) == before  # byte-identical
    assert any("change vs baseline" in f for f in summary.threshold_failures), summary.threshold_failures
    assert "NOT blessed" in err and "change vs baseline" in err
    assert payload["blessed"] is False


def test_pushed_model_answers_graft_predict(world, first_run, tmp_path):
    bad = tmp_path / "not_an_image.jpg"
    bad.write_bytes(b"this is text, not a JPEG")
    images = [world["data"] / "circle" / "000.jpg", bad, world["data"] / "triangle" / "001.png"]
    out = subprocess.run(
        [GRAFT, "predict", "--model", str(world["serving"]), "--json", *map(str, images)],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert out.returncode == 3, out.stderr[-3000:]  # the unreadable file is named, the others answered
    rows = [json.loads(line) for line in out.stdout.splitlines()]
    assert len(rows) == 3
    assert rows[1]["image"] == str(bad) and rows[1]["error"].startswith("not a readable image")
    for row in (rows[0], rows[2]):
        assert row["class_name"] in {"circle", "square", "triangle"}
        assert 1 / 3 <= row["probability"] <= 1.0
        assert row["model_version"] == first_run["pushed_version"]


def test_tflite_variants_are_gated_pushed_beside_the_saved_model_and_answer(world, first_run):
    """Edge export through the real DAG: every variant (edge.variants default: float16, int8) is in the TFLite
    artifact with its evaluation; exactly the blessed ones sit in <version>/tflite/; `graft predict --tflite`
    answers with one; the summary names each variant's fate."""
    summary = runs.summarize(world["mlmd"], first_run["run_id"], "graft")
    variants = {v["variant"]: v for v in summary.tflite["variants"]}
    assert set(variants) == {"float16", "int8"}
    pushed_dir = Path(summary.pushed_path) / "tflite"
    for name, v in variants.items():
        assert v["examples"] == summary.test_metrics["example_count"]  # the Evaluator's test split
        assert v["saved_model_accuracy"] == pytest.approx(summary.test_metrics["sparse_categorical_accuracy"])
        assert v["blessed"] == (v["drop"] <= v["max_accuracy_drop"] + 1e-9), v
        assert (pushed_dir / f"model_{name}.tflite").exists() == v["blessed"], v
        assert f"TFLite {name}:" in world["first_stderr"]
    assert any(v["blessed"] for v in variants.values()), variants
    assert (pushed_dir / "labels.txt").read_text().split() == ["circle", "square", "triangle"]
    image = world["data"] / "square" / "002.jpg"
    out = subprocess.run(
        [GRAFT, "predict", "--model", str(world["serving"]), "--tflite", "--json", str(image)],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    row = json.loads(out.stdout.strip().splitlines()[-1])
    assert row["tflite_variant"] in variants and variants[row["tflite_variant"]]["blessed"]
    assert row["class_name"] in {"circle", "square", "triangle"}


def test_usage_errors_exit_2_and_name_the_key(world):
    code, payload, err = graft_run(world["data"], world["root"], "train.batchsize=3")
    assert code == 2
    assert "unknown config key 'train.batchsize'" in err
