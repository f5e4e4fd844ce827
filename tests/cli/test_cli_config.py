"""The command line and the config: one precedence for every command, bad input as a sentence with exit code 2.

Precedence (issue 15): defaults < --config FILE < --set KEY=VALUE < the command's dedicated flags. Each command
is called through click with the expensive part (the pipeline, the compile) replaced by a recorder of the
effective config, so these tests run in well under a second each; the real runs are in tests/test_e2e.py.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

from graft.cli import main
from graft.pipeline.config import ConfigError, load_config


def _cli(*args: str):
    return CliRunner(mix_stderr=False).invoke(main, list(args), catch_exceptions=False)


@pytest.fixture()
def cfg_file(tmp_path) -> Path:
    """A config file that sets everything the flags will override."""
    f = tmp_path / "my.yaml"
    f.write_text(
        yaml.safe_dump(
            {
                "root": str(tmp_path / "file_root"),
                "enable_cache": True,
                "data": {"path": str(tmp_path / "file_data")},
                "backbone": {"handle": "file_backbone"},
                "train": {"batch_size": 8},
            }
        )
    )
    return f


@pytest.fixture()
def recorded(monkeypatch):
    """Replace the pipeline run with a recorder of the config it would get."""
    seen: list = []

    def fake_execute(cfg, *args, **kwargs):
        seen.append(cfg)
        return 0

    monkeypatch.setattr("graft.cli.run._execute", fake_execute)
    return seen


# ---- 1. precedence: a flag beats the file, for every command --------------------------------------------------
def test_run_flags_beat_the_file_and_set(tmp_path, cfg_file, recorded):
    r = _cli(
        "run", "--config", str(cfg_file), "--set", "backbone.handle=set_backbone", "--set", "train.batch_size=16",
        "--data", str(tmp_path / "flag_data"), "--backbone", "flag_backbone", "--root", str(tmp_path / "flag_root"),
        "--no-cache",
    )  # fmt: skip
    assert r.exit_code == 0, r.stderr
    cfg = recorded[0]
    assert cfg.data.path == str(tmp_path / "flag_data")
    assert cfg.backbone.handle == "flag_backbone"  # flag > --set > file
    assert cfg.root == str(tmp_path / "flag_root")
    assert cfg.enable_cache is False
    assert cfg.train.batch_size == 16  # --set > file


def test_run_takes_data_and_backbone_from_the_file(tmp_path, cfg_file, recorded):
    r = _cli("run", "--config", str(cfg_file))
    assert r.exit_code == 0, r.stderr
    assert recorded[0].data.path == str(tmp_path / "file_data")
    assert recorded[0].backbone.handle == "file_backbone"


def test_run_without_data_anywhere_names_the_flag_and_the_key(recorded):
    r = _cli("run", "--backbone", "tiny")
    assert r.exit_code == 2
    assert "--data (or data.path in --config / --set)" in r.stderr and "--backbone" not in r.stderr
    assert not recorded


def test_demo_flags_beat_the_file(tmp_path, cfg_file, recorded, monkeypatch):
    monkeypatch.setattr("graft.pipeline.demo.write_mnist_tree", lambda dest, per_class=None: dest)
    r = _cli("demo", "--config", str(cfg_file), "--root", str(tmp_path / "flag_root"), "--no-cache", "-q")
    assert r.exit_code == 0, r.stderr
    cfg = recorded[0]
    assert cfg.root == str(tmp_path / "flag_root") and cfg.enable_cache is False
    assert cfg.name == "demo" and cfg.train.batch_size == 8  # the demo's settings < the file


def test_compile_flags_beat_the_file(tmp_path, cfg_file, monkeypatch):
    seen = []

    def fake_compile(cfg, *args, **kwargs):
        seen.append(cfg)
        raise ConfigError("recorded")

    monkeypatch.setattr("graft.kubeflow.compile.compile_pipeline", fake_compile)
    r = _cli("compile", "--config", str(cfg_file), "--data", "gs://b/flag", "--backbone", "gs://b/bb")
    assert r.exit_code == 2 and "recorded" in r.stderr
    assert seen[0].data.path == "gs://b/flag" and seen[0].backbone.handle == "gs://b/bb"


def test_schedule_local_flags_beat_the_file(tmp_path, cfg_file):
    r = _cli(
        "schedule", "--target", "local", "--cron", "30 2 * * *", "--config", str(cfg_file),
        "--data", str(tmp_path / "flag_data"), "--root", str(tmp_path / "flag_root"),
    )  # fmt: skip
    assert r.exit_code == 0, r.stderr
    line = next(x for x in r.stdout.splitlines() if x.startswith("30 2 * * *"))
    assert f"--data {tmp_path / 'flag_data'}" in line and f"--root {tmp_path / 'flag_root'}" in line
    assert "--backbone file_backbone" in line


def test_schema_infer_flag_beats_the_file(tmp_path, cfg_file, monkeypatch):
    seen = []

    def fake_infer(data, limit=2000):
        seen.append(data.path)
        raise ConfigError("recorded")

    monkeypatch.setattr("graft.components.schema_infer.infer_schema_text", fake_infer)
    r = _cli(
        "schema", "infer", "--config", str(cfg_file), "--data", str(tmp_path / "flag_data"),
        "--out", str(tmp_path / "s.pbtxt"),
    )  # fmt: skip
    assert r.exit_code == 2 and seen == [str(tmp_path / "flag_data")]


@pytest.mark.parametrize("command", ["runs", "report"])
def test_history_root_flag_beats_the_file(tmp_path, cfg_file, command):
    r = _cli(command, "--config", str(cfg_file), "--root", str(tmp_path / "flag_root"))
    assert r.exit_code == 2
    assert str(tmp_path / "flag_root") in r.stderr and "file_root" not in r.stderr


def test_config_show_set_beats_the_file(cfg_file):
    r = _cli("config", "show", "--config", str(cfg_file), "--set", "train.batch_size=32")
    assert r.exit_code == 0
    assert yaml.safe_load(r.stdout)["train"]["batch_size"] == 32


@pytest.mark.parametrize("command", ["run", "demo", "compile", "schedule", "runs", "report"])
def test_help_states_the_precedence(command):
    text = " ".join(_cli(command, "--help").stdout.split())
    assert "defaults < --config FILE < --set KEY=VALUE < this command's own flags" in text


# ---- 2. bad config and bad CLI input: a sentence naming the key or file, exit 2, no traceback ------------------
BAD_FILES = {
    "random bytes": (b"\xff\xfe\x00\x9c\x81binary", "is not UTF-8 text"),
    "latin-1 text": ("name: caf\xe9\n".encode("latin-1"), "is not UTF-8 text"),
    "not YAML": (b"data: {path: [unclosed\n", "is not valid YAML"),
    "tab indentation": (b"data:\n\tpath: x\n", "is not valid YAML"),
    "a list": (b"- data\n- train\n", "must hold a mapping of sections"),
    "a scalar": (b"just some words\n", "must hold a mapping of sections"),
    "empty": (b"", "is empty"),
    "only comments": (b"# nothing here\n", "is empty"),
    "non-string keys": (b"1: 2\n", "keys must be names"),
    "unknown section": (b"trian: {batch_size: 8}\n", "unknown config key 'trian'; did you mean 'train'?"),
    "unknown key": (
        b"train: {batchsize: 8}\n",
        "unknown config key 'train.batchsize'; did you mean 'train.batch_size'?",
    ),
    "section as scalar": (b"train: 5\n", "config key 'train': expected a mapping"),
    "int as text": (b"train: {batch_size: many}\n", "config key 'train.batch_size': expected an integer"),
    "bool as text": (b"enable_cache: maybe\n", "config key 'enable_cache': expected true or false"),
    "bad choice": (b"data: {format: jpeg}\n", "config key 'data.format': 'jpeg' is not allowed"),
    "list as number": (b"data: {classes: 5}\n", "config key 'data.classes': expected a list"),
    "not finite": (
        b"evaluation: {min_accuracy: .nan}\n",
        "config key 'evaluation.min_accuracy': expected a finite",
    ),
    "out of range": (
        b"data: {max_bad_fraction: 2}\n",
        "config key 'data.max_bad_fraction': must be between 0 and 1",
    ),
    "fractions": (b"data: {train_fraction: 0.5}\n", "fractions must add up to 1.0"),
    "unsafe name": (b"name: ../etc\n", "config key 'name': '../etc' is not a safe name"),
    "class weights vs classes": (
        b"data: {classes: [cat, dog]}\ntrain: {class_weights: {cat: 1, dgo: 2}}\n",
        "config key 'train.class_weights': class(es) dgo are not in data.classes",
    ),
}


@pytest.mark.parametrize("kind", sorted(BAD_FILES))
def test_bad_config_file_is_a_sentence_and_exit_2(tmp_path, kind):
    content, needle = BAD_FILES[kind]
    f = tmp_path / "bad.yaml"
    f.write_bytes(content)
    r = _cli("config", "show", "--config", str(f))
    assert r.exit_code == 2, r.stdout
    assert needle in r.stderr, r.stderr
    assert "Traceback" not in r.stderr and r.stdout == ""


BAD_ARGS = {
    "missing file": (["--config", "/nonexistent/graft.yaml"], "does not exist"),
    "a directory": (["--config", "{tmp}"], "is a directory"),
    "--set without =": (["--set", "train.batch_size"], "expected key=value"),
    "--set empty key": (["--set", "=3"], "empty key"),
    "--set empty part": (["--set", "train..batch_size=3"], "empty key part"),
    "--set bad YAML": (["--set", "data.classes=[a, b"], "the value is not valid YAML"),
    "--set into a value": (["--set", "name.x=1"], "config key 'name': expected a string"),
    "--set unknown": (["--set", "train.epochs=3"], "unknown config key 'train.epochs'"),
}


@pytest.mark.parametrize("kind", sorted(BAD_ARGS))
def test_bad_cli_input_is_a_sentence_and_exit_2(tmp_path, kind):
    args, needle = BAD_ARGS[kind]
    r = _cli("config", "show", *[a.replace("{tmp}", str(tmp_path)) for a in args])
    assert r.exit_code == 2
    assert needle in r.stderr, r.stderr
    assert "Traceback" not in r.stderr


def test_run_with_a_bad_file_exits_2_before_anything_runs(tmp_path, recorded):
    f = tmp_path / "bad.yaml"
    f.write_bytes(os.urandom(64) + b"\xff")
    r = _cli("run", "--config", str(f), "--data", str(tmp_path), "--backbone", "tiny")
    assert r.exit_code == 2 and "is not UTF-8 text" in r.stderr and not recorded


# ---- 3. every problem at once ---------------------------------------------------------------------------------
def test_every_problem_of_a_config_is_reported_at_once(tmp_path):
    f = tmp_path / "bad.yaml"
    f.write_text(
        "trian: {}\ntrain: {batch_size: 0, phase1_epochs: x}\ndata: {format: jpeg, max_bad_fraction: 3}\n"
    )
    with pytest.raises(ConfigError) as e:
        load_config(f, ["evaluation.min_accuracy=2"])
    msg = str(e.value)
    assert msg.startswith("6 problems in the config:"), msg
    for needle in (
        "unknown config key 'trian'",
        "'train.batch_size': 0 not in [1, 4096]",
        "'train.phase1_epochs': expected an integer",
        "'data.format': 'jpeg' is not allowed",
        "'data.max_bad_fraction': must be between 0 and 1",
        "'evaluation.min_accuracy': must be in [0, 1]",
    ):
        assert needle in msg


# ---- 8. paths normalised; the local schedule line runs on a fresh root; TF noise off ---------------------------
def test_three_spellings_of_data_path_are_one_config(tmp_path, monkeypatch):
    (tmp_path / "photos").mkdir()
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("HOME", str(tmp_path))
    spellings = [
        str(tmp_path / "photos"),
        str(tmp_path / "photos") + "/",
        "photos",
        "./photos/../photos",
        "~/photos",
    ]
    assert {load_config(None, [f"data.path={s}"]).data.path for s in spellings} == {str(tmp_path / "photos")}
    assert load_config(None, ["data.path=gs://b/images/"]).data.path == "gs://b/images"


def test_local_schedule_line_runs_on_a_fresh_root(tmp_path):
    """The printed crontab command, run with sh -c, starts graft run even though <root>/<name>/ does not exist."""
    exe = shutil.which("graft") or str(Path(sys.executable).with_name("graft"))
    assert Path(exe).exists()
    data = tmp_path / "empty_data"
    data.mkdir()
    root = tmp_path / "fresh" / "root"
    r = _cli("schedule", "--target", "local", "--cron", "30 2 * * *", "--data", str(data), "--backbone", "tiny",
             "--root", str(root))  # fmt: skip
    assert r.exit_code == 0, r.stderr
    line = next(x for x in r.stdout.splitlines() if x.startswith("30 2 * * *"))
    command = line.split(" ", 5)[5]
    done = subprocess.run(["sh", "-c", command], capture_output=True, text=True, timeout=300)
    log = root / "graft" / "schedule.log"
    assert "Directory nonexistent" not in done.stderr and log.exists(), done.stderr
    text = log.read_text()
    assert done.returncode == 2 and "no data found" in text, text  # graft ran, and said what is wrong


def test_tensorflow_start_up_noise_is_off_unless_verbose():
    env = {k: v for k, v in os.environ.items() if k != "TF_CPP_MIN_LOG_LEVEL"}
    code = "import sys; sys.argv = ['graft'] + sys.argv[1:]; import graft.cli, tensorflow"
    quiet = subprocess.run([sys.executable, "-c", code, "run"], capture_output=True, text=True, env=env)
    loud = subprocess.run([sys.executable, "-c", code, "run", "-v"], capture_output=True, text=True, env=env)
    assert quiet.returncode == 0 and "Unable to register" not in quiet.stderr, quiet.stderr
    assert loud.returncode == 0 and "Unable to register" in loud.stderr  # -v: shown (level 1)


def test_quiet_and_json_keep_stdout_for_the_summary(capfd):
    from graft.cli.run import _stdout_to_stderr

    with _stdout_to_stderr(True):
        print("Epoch 1/2 - loss: 0.5")  # what Keras' verbose=2 prints
        sys.stdout.flush()
        os.write(1, b"written to fd 1\n")
    print("summary")
    out, err = capfd.readouterr()
    assert out == "summary\n"
    assert "Epoch 1/2" in err and "written to fd 1" in err


def test_class_weights_are_checked_against_the_class_folders_before_anything_runs(tmp_path):
    from data_helpers import make_tree

    from graft.pipeline import dag_inputs

    make_tree(tmp_path / "data", per_class=1)
    cfg = load_config(None, [f"data.path={tmp_path / 'data'}", "train.class_weights={cat: 2, dgo: 1}"])
    with pytest.raises(ConfigError, match=r"class\(es\) dgo are not class folders of .*\(bird, cat, dog\)"):
        dag_inputs.resolve(cfg)


def test_doctor_says_a_read_only_file_system_is_not_writable():
    """/sys is read-only even for root (os.access says writable there; `graft run` then refuses the root)."""
    from graft.pipeline.doctor import _can_write

    assert _can_write(Path("/sys")) is False
