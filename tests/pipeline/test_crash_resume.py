"""Crashes and resume, concurrent runs, a disk that fills up mid-run, and credentials in logs: whole `graft run`s
(LocalDagRunner, Beam, sqlite MLMD) on a small real image set, asserted against MLMD and the serving directory.

One module-scoped sequence on one root: a verbose run is SIGKILLed during the Trainer; the next run (while a third
one is refused by the run lock) closes the abandoned execution, reuses the cached upstream executions and pushes.
Every run has a fake service-account key and fake tokens in its environment, and every file the runs left behind
is searched for them. A separate root on a small tmpfs fills up mid-run, then gets space and resumes.
"""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import time
import uuid
from pathlib import Path

import data_helpers
import pytest
from data_helpers import DATA_HALF, GRAFT, executions

from graft.pipeline import recovery, runs

pytestmark = pytest.mark.slow

UPSTREAM = DATA_HALF
FAST = [
    "train.phase1_epochs=3",
    "train.phase2_epochs=1",
    "train.batch_size=8",
    "evaluation.min_accuracy=0.0",  # this module tests crashes, not model quality: every finished run is blessed
]


def make_shapes(root: Path, per_class: int = 15) -> None:
    data_helpers.make_shapes(root, per_class, seed=3)


def run_args(data: Path, root: Path, *extra: str) -> list[str]:
    args = [GRAFT, "run", "--data", str(data), "--backbone", "tiny", "--root", str(root)]
    for s in FAST:
        args += ["--set", s]
    return args + list(extra)


def integrity(mlmd: Path) -> str:
    con = sqlite3.connect(f"file:{mlmd}?mode=ro", uri=True)
    try:
        return con.execute("PRAGMA integrity_check").fetchone()[0]
    finally:
        con.close()


def states(mlmd: Path) -> dict[str, list[str]]:
    """executions() while another process may be writing the store: retry a busy database."""
    for _ in range(50):
        try:
            return executions(str(mlmd))
        except Exception:  # noqa: BLE001 - 'database is locked' while the run writes
            time.sleep(0.2)
    return executions(str(mlmd))


def version_dirs(serving: Path) -> list[Path]:
    return sorted(p for p in serving.iterdir() if p.name.isdigit()) if serving.exists() else []


def complete_model(version_dir: Path) -> bool:
    return (version_dir / "saved_model.pb").is_file() and (
        version_dir / "variables" / "variables.index"
    ).is_file()


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    base = tmp_path_factory.mktemp("crash")
    data = base / "data"
    make_shapes(data)
    secret = f"GRAFTFAKESECRET{uuid.uuid4().hex}"
    token = f"graftfaketoken{uuid.uuid4().hex}"
    creds = base / "service-account.json"
    creds.write_text(
        json.dumps(
            {
                "type": "service_account",
                "project_id": "graft-test",
                "private_key_id": secret[:24],
                "private_key": f"-----BEGIN PRIVATE KEY-----\n{secret}\n-----END PRIVATE KEY-----\n",
                "client_email": "graft@graft-test.iam.gserviceaccount.com",
            }
        )
    )
    env = dict(os.environ)
    env.update(
        {
            "GOOGLE_APPLICATION_CREDENTIALS": str(creds),
            "GITHUB_TOKEN": token,
            "HF_TOKEN": token,
            "AWS_SECRET_ACCESS_KEY": token,
            "KAGGLE_KEY": token,
        }
    )
    root = base / "runs"
    return {
        "base": base,
        "data": data,
        "root": root,
        "mlmd": root / "graft" / "metadata.sqlite",
        "serving": root / "graft" / "serving" / "graft",
        "env": env,
        "secrets": [secret, token],
        "logs": base / "logs",
    }


@pytest.fixture(scope="module")
def killed(world):
    """A verbose `graft run`, SIGKILLed once MLMD shows its Trainer execution RUNNING."""
    world["logs"].mkdir()
    out, err = world["logs"] / "killed.out", world["logs"] / "killed.err"
    with open(out, "wb") as fo, open(err, "wb") as fe:
        proc = subprocess.Popen(
            run_args(world["data"], world["root"], "-v"), stdout=fo, stderr=fe, env=world["env"]
        )
        deadline = time.time() + 600
        try:
            while time.time() < deadline and proc.poll() is None:
                if world["mlmd"].exists() and states(world["mlmd"]).get("Trainer") == ["RUNNING"]:
                    break
                time.sleep(0.5)
            assert proc.poll() is None, (
                f"the run ended before its Trainer started:\n{err.read_text()[-3000:]}"
            )
            time.sleep(2.0)  # well inside the Trainer (its first fit alone takes longer)
            proc.send_signal(signal.SIGKILL)
            proc.wait(60)
        finally:
            if proc.poll() is None:
                proc.kill()
    assert proc.returncode == -signal.SIGKILL
    return {"states": states(world["mlmd"])}


def test_killed_trainer_is_recorded_as_running_never_as_a_success(world, killed):
    s = killed["states"]
    for node in UPSTREAM:
        assert s[node] == ["COMPLETE"], (node, s)
    assert s["Trainer"] == ["RUNNING"]  # what TFX 1.16 leaves behind for a killed execution
    assert "Evaluator" not in s and "Pusher" not in s
    assert version_dirs(world["serving"]) == []
    assert integrity(world["mlmd"]) == "ok"
    summary = runs.summarize(world["mlmd"], "latest", "graft", with_evaluation=False)
    assert summary.status == "RUNNING" and summary.pushed is None and summary.blessed is None
    out = subprocess.run(
        [GRAFT, "runs", "--root", str(world["root"]), "--json"], capture_output=True, text=True, check=False
    )
    assert out.returncode == 0, out.stderr
    (row,) = json.loads(out.stdout)
    # Nobody holds the run lock: the run is not running any more, whatever MLMD's RUNNING says.
    assert row["status"] == "interrupted at Trainer (process gone)", row


@pytest.fixture(scope="module")
def resumed(world, killed):
    """The next run on the root; while it holds the run lock, a third `graft run` on the same root is refused."""
    out, err = world["logs"] / "resumed.out", world["logs"] / "resumed.err"
    lock = world["root"] / "graft" / ".graft-run.lock"
    with open(out, "wb") as fo, open(err, "wb") as fe:
        proc = subprocess.Popen(
            run_args(world["data"], world["root"], "--json"), stdout=fo, stderr=fe, env=world["env"]
        )
        try:
            deadline = time.time() + 120
            while time.time() < deadline:
                try:
                    if json.loads(lock.read_text() or "{}").get("pid") == proc.pid:
                        break
                except (OSError, ValueError):
                    pass
                time.sleep(0.2)
            second = subprocess.run(
                run_args(world["data"], world["root"]),
                capture_output=True,
                text=True,
                timeout=120,
                env=world["env"],
            )
            running_meanwhile = proc.poll() is None
            # `graft runs` while it runs: once its run is in MLMD, it is 'running', the killed one 'interrupted'.
            history = []
            while proc.poll() is None and len(history) < 2:
                listed = subprocess.run(
                    [GRAFT, "runs", "--root", str(world["root"]), "--json"], capture_output=True, text=True
                )
                ok = listed.returncode == 0 and listed.stdout.startswith("[")
                history = json.loads(listed.stdout) if ok else []
            history_while_running = history if proc.poll() is None else []
            proc.wait(900)
        finally:
            if proc.poll() is None:
                proc.kill()
    (world["logs"] / "refused.err").write_text(second.stderr)
    (world["logs"] / "refused.out").write_text(second.stdout)
    text = out.read_text()
    return {
        "code": proc.returncode,
        "payload": json.loads(text[text.index("{") :]) if "{" in text else {},
        "stderr": err.read_text(),
        "second": second,
        "running_meanwhile": running_meanwhile,
        "history_while_running": history_while_running,
    }


def test_second_run_on_the_same_root_is_refused_clearly(world, resumed):
    second = resumed["second"]
    assert resumed["running_meanwhile"], "the first run ended before the second one was tried"
    assert second.returncode == 1, second.stderr[-2000:]
    assert "another graft run is using" in second.stderr and str(world["root"] / "graft") in second.stderr
    assert '"pid"' in second.stderr and "--root" in second.stderr  # who holds it, and what to do
    assert "Traceback" not in second.stderr


def test_graft_runs_says_running_while_the_lock_is_held(resumed):
    rows = resumed["history_while_running"]
    assert len(rows) == 2, "the run ended before `graft runs` saw it in MLMD"
    assert rows[0]["status"].startswith("interrupted at Trainer"), rows
    assert rows[1]["status"].startswith("running"), rows


def test_next_run_reuses_the_cached_upstream_and_pushes(world, killed, resumed):
    assert resumed["code"] == 0, resumed["stderr"][-4000:]
    run_id = resumed["payload"]["run_id"]
    summary = runs.summarize(world["mlmd"], run_id, "graft")
    st = {e.node_id: e.state for e in summary.executions}
    for node in UPSTREAM:
        assert st[node] == "CACHED", st
    assert st["Trainer"] == "COMPLETE" and st["Evaluator"] == "COMPLETE" and st["Pusher"] == "COMPLETE", st
    assert summary.status == "COMPLETE" and summary.blessed is True and summary.pushed is True
    (version,) = version_dirs(world["serving"])
    assert complete_model(version) and str(version) == summary.pushed_path
    assert not [n for n in os.listdir(world["serving"]) if not n.isdigit()]  # no staging directory left
    assert integrity(world["mlmd"]) == "ok"


def test_the_killed_execution_is_closed_as_failed_and_said_so(world, killed, resumed):
    from ml_metadata import metadata_store
    from ml_metadata.proto import metadata_store_pb2

    assert states(world["mlmd"])["Trainer"] == ["FAILED", "COMPLETE"]
    cfg = metadata_store_pb2.ConnectionConfig()
    cfg.sqlite.filename_uri = str(world["mlmd"])
    store = metadata_store.MetadataStore(cfg)
    trainer_ctx = store.get_context_by_type_and_name("node", "graft.Trainer")
    dead = min(store.get_executions_by_context(trainer_ctx.id), key=lambda e: e.id)
    assert "outcome was never recorded" in dead.custom_properties[recovery.ABANDONED_PROP].string_value
    # Its partial outputs are gone (as TFX removes a failed execution's), the completed one's are there.
    assert not list((world["root"] / "graft" / "pipeline_root" / "Trainer").glob(f"*/{dead.id}"))
    assert "was interrupted during Trainer" in resumed["stderr"]
    out = subprocess.run(
        [GRAFT, "runs", "--root", str(world["root"]), "--json"], capture_output=True, text=True, check=False
    )
    rows = json.loads(out.stdout)
    assert [r["status"] for r in rows] == ["interrupted at Trainer", "complete"], rows
    assert rows[1]["pushed_version"] == Path(resumed["payload"]["pushed_path"]).name


def test_no_credentials_in_any_log_report_or_artifact(world, killed, resumed):
    """Every file under the run root (MLMD, artifacts, run records, reports, the serving directory) and every log
    the runs printed -- the killed one ran with -v -- searched byte-wise for the fake key and the fake token."""
    searched = 0
    leaks = []
    for folder in (world["root"], world["logs"]):
        for p in folder.rglob("*"):
            if p.is_file():
                searched += 1
                blob = p.read_bytes()
                leaks += [f"{p}: {s[:20]}..." for s in world["secrets"] if s.encode() in blob]
    assert searched > 30 and not leaks, leaks
    reports = list((world["root"] / "graft" / "reports").rglob("*.html"))
    assert reports  # the report of the resumed run exists and was searched


# ---- a disk that fills up mid-run ------------------------------------------------------------------------------
def test_disk_full_mid_run_stops_cleanly_and_resumes(tmp_path):
    """The run root on a 1.2 MB tmpfs: the run fails part-way with the disk-full hint, MLMD stays intact, nothing is
    pushed; with more space the same command resumes from the cached components and pushes."""
    data = tmp_path / "data"
    make_shapes(data)
    mnt = tmp_path / "disk"
    mnt.mkdir()
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=1200k", "tmpfs", str(mnt)],
        capture_output=True,
        text=True,
        check=False,
    )
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here (needs root): {mounted.stderr.strip()}")
    try:
        root = mnt / "runs"
        mlmd = root / "graft" / "metadata.sqlite"
        serving = root / "graft" / "serving" / "graft"
        # Disk space and resume, not the edge export (the sequence above and test_e2e.py run it): no TFLite.
        no_edge = ("--set", "edge.variants=[]")
        first = subprocess.run(
            run_args(data, root, *no_edge), capture_output=True, text=True, timeout=900, check=False
        )
        assert first.returncode == 1, first.stderr[-3000:]
        assert "the disk is full" in first.stderr and str(root / "graft") in first.stderr, first.stderr[
            -3000:
        ]
        assert "rerun the same command" in first.stderr
        assert version_dirs(serving) == []
        assert integrity(mlmd) == "ok"
        done_before = {
            n
            for n, s in executions(str(mlmd)).items()
            if s and s[-1] == "COMPLETE" and not n.endswith("_resolver")  # resolvers run every time
        }
        assert "ImageExampleGen" in done_before and "Pusher" not in done_before

        subprocess.run(["mount", "-o", "remount,size=64m", str(mnt)], check=True)
        second = subprocess.run(
            run_args(data, root, *no_edge, "--json"), capture_output=True, text=True, timeout=900, check=False
        )
        assert second.returncode == 0, second.stderr[-3000:]
        payload = json.loads(second.stdout[second.stdout.index("{") :])
        summary = runs.summarize(mlmd, payload["run_id"], "graft", with_evaluation=False)
        st = {e.node_id: e.state for e in summary.executions}
        for node in done_before:
            assert st[node] == "CACHED", (node, st)
        assert summary.pushed is True
        (version,) = version_dirs(serving)
        assert complete_model(version)
        assert integrity(mlmd) == "ok"
    finally:
        subprocess.run(["umount", "-l", str(mnt)], check=False)
