"""The environment itself: pinned stack, legacy Keras everywhere, hub.KerasLayer trains, CLI is cheap."""

from __future__ import annotations

import importlib.metadata as md
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from graft.pipeline import doctor

REPO = Path(__file__).resolve().parents[1]
VENV_BIN = Path(sys.executable).parent


def test_stack_versions_are_the_pinned_ones():
    pins = doctor.pinned_versions(REPO / "requirements.lock")
    expected = {
        "tfx": "1.16.0",
        "tensorflow": "2.16.2",
        "tf-keras": "2.16.0",
        "tensorflow-hub": "0.16.1",
        "apache-beam": "2.59.0",
        "tensorflow-data-validation": "1.16.1",
        "tensorflow-model-analysis": "0.47.1",
        "tensorflow-transform": "1.16.0",
        "kfp": "2.5.0",
    }
    for dist, version in expected.items():
        assert pins[dist] == version, f"requirements.lock pins {dist}=={pins.get(dist)}"
        assert md.version(dist) == version, f"installed {dist}=={md.version(dist)}, lock says {version}"
    assert sys.version_info[:2] == (3, 10)


def test_legacy_keras_active_in_test_session():
    import tensorflow as tf

    assert os.environ["TF_USE_LEGACY_KERAS"] == "1"
    assert tf.keras.Model.__module__.startswith("tf_keras")


def _run_py(code: str, env_extra: dict[str, str] | None = None, drop_var: bool = True) -> str:
    env = dict(os.environ)
    if drop_var:
        env.pop("TF_USE_LEGACY_KERAS", None)
    env.update(env_extra or {})
    out = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=300, check=False
    )
    assert out.returncode == 0, out.stderr[-3000:]
    return out.stdout.strip().splitlines()[-1]


def test_importing_graft_selects_legacy_keras_in_a_clean_process():
    line = _run_py("import graft, tensorflow as tf; print(tf.keras.Model.__module__)")
    assert line.startswith("tf_keras"), line


def test_late_variable_is_detected_not_silently_keras3():
    """The trap: TF imported and tf.keras bound first, then tensorflow_transform sets the variable too late."""
    code = (
        "import tensorflow as tf\n"
        "tf.keras.Model  # binds Keras 3\n"
        "import tensorflow_transform, os\n"
        "from graft import env\n"
        "print(os.environ.get('TF_USE_LEGACY_KERAS'), env.keras_flavour(), end=' ')\n"
        "try:\n"
        "    env.assert_legacy_keras()\n"
        "    print('no-error')\n"
        "except env.LegacyKerasError as e:\n"
        "    print('error', 'TF_USE_LEGACY_KERAS=1' in str(e))\n"
    )
    # `import graft` would fix the variable up front; this process imports tensorflow before graft on purpose.
    line = _run_py(code)
    assert line == "1 keras3 error True", line


def test_transform_and_trainer_modules_force_legacy_keras():
    """TFX executors import our user modules by dotted path; importing them must select tf-keras first."""
    for module in ("graft.components.preprocessing", "graft.components.trainer"):
        spec = __import__("importlib.util").util.find_spec(module)
        if spec is None:
            pytest.skip(f"{module} not written yet")
        line = _run_py(f"import {module}, tensorflow as tf; print(tf.keras.Model.__module__)")
        assert line.startswith("tf_keras"), (module, line)


def test_hub_keras_layer_trains_one_step(tmp_path):
    import numpy as np
    import tensorflow as tf
    import tensorflow_hub as hub

    # A reusable SavedModel in TF Hub's TF2 format: __call__ plus variables / trainable_variables lists.
    root = tf.train.Checkpoint()
    root.w = tf.Variable(tf.random.normal([3, 4], seed=1), name="w")
    root.variables = [root.w]
    root.trainable_variables = [root.w]
    root.__call__ = tf.function(
        lambda x: tf.reduce_mean(x, axis=[1, 2]) @ root.w,
        input_signature=[tf.TensorSpec([None, 8, 8, 3], tf.float32)],
    )
    path = str(tmp_path / "module")
    tf.saved_model.save(root, path)

    layer = hub.KerasLayer(path, trainable=True)
    model = tf.keras.Sequential([tf.keras.Input([8, 8, 3]), layer, tf.keras.layers.Dense(2)])
    model.compile(optimizer="sgd", loss=tf.keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    before = layer.trainable_weights[0].numpy().copy()
    x = np.random.RandomState(0).rand(4, 8, 8, 3).astype("float32")
    y = np.array([0, 1, 0, 1])
    hist = model.fit(x, y, epochs=1, batch_size=4, verbose=0)
    assert np.isfinite(hist.history["loss"][0])
    assert not np.array_equal(before, layer.trainable_weights[0].numpy())


def test_cli_help_and_version_do_not_import_tensorflow():
    graft_bin = VENV_BIN / "graft"
    assert graft_bin.exists(), "the graft console script is not installed: run make setup"
    code = (
        "import sys, time; t=time.perf_counter()\n"
        "from graft import cli\n"
        "try:\n    cli.main(['--help'])\nexcept SystemExit:\n    pass\n"
        "print('TF' if 'tensorflow' in sys.modules else 'noTF', round(time.perf_counter()-t, 2))\n"
    )
    line = _run_py(code)
    assert line.split()[0] == "noTF", line
    t0 = time.perf_counter()
    out = subprocess.run(
        [str(graft_bin), "--version"], capture_output=True, text=True, timeout=60, check=True
    )
    assert "graft, version" in out.stdout
    # Not a speed assertion (that lives in bench/): a generous bound that only an import of TF would break.
    assert time.perf_counter() - t0 < 10


def test_every_command_has_help():
    from click.testing import CliRunner

    from graft.cli import main

    runner = CliRunner()

    def walk(group, path):
        for name, cmd in group.commands.items():
            res = runner.invoke(main, [*path, name, "--help"])
            assert res.exit_code == 0, (path, name, res.output)
            assert "Usage:" in res.output
            if hasattr(cmd, "commands"):
                walk(cmd, [*path, name])

    walk(main, [])


def test_doctor_passes_here():
    out = subprocess.run(
        [str(VENV_BIN / "graft"), "doctor"], capture_output=True, text=True, timeout=300, check=False
    )
    assert out.returncode == 0, out.stdout + out.stderr
    assert "import tfx.v1" in out.stdout
    for label in (
        "TensorFlow",
        "tf-keras",
        "TFX",
        "Apache Beam",
        "TFDV",
        "TFMA",
        "TFT",
        "tensorflow-hub",
        "GPUs",
    ):
        assert label in out.stdout


def test_doctor_reports_problem_with_fix(tmp_path):
    report = doctor.run_checks(str(tmp_path))
    assert report.ok
    bad = doctor.Report([doctor.Check("x", "broken", ok=False, fix="do this")])
    assert not bad.ok and "fix: do this" in bad.render()


def test_find_python_fails_clearly_without_310(tmp_path):
    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "PYENV_ROOT": str(tmp_path / "nopyenv")}
    out = subprocess.run(
        ["bash", str(REPO / "tools" / "find-python310.sh")],
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    if out.returncode == 0:
        pytest.skip(f"this machine has a system Python 3.10 at {out.stdout.strip()}")
    assert out.returncode == 1
    assert "no working Python 3.10" in out.stderr and "pyenv install 3.10" in out.stderr


def test_doctor_reads_missing_bytecode_from_the_files(tmp_path, monkeypatch):
    # The doctor's bytecode check looks at the .pyc files, not at a wall-time threshold.
    from graft.pipeline import doctor

    pkg = tmp_path / "graft_probe_pkg"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("X = 1\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    assert doctor._modules_without_bytecode(("graft_probe_pkg",)) == ["graft_probe_pkg"]
    import py_compile

    py_compile.compile(str(pkg / "__init__.py"))
    assert doctor._modules_without_bytecode(("graft_probe_pkg",)) == []
    assert doctor._modules_without_bytecode() == []  # make setup compiled the venv's bytecode
