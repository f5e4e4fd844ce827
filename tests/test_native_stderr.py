"""TensorFlow's native stderr lines (TFLite converter, interpreter) stay off the screen unless -v (graft.env)."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from graft import env

CHILD = r"""
import graft, sys
import numpy as np, tensorflow as tf
from graft import env
m = tf.keras.Sequential([tf.keras.Input((8, 8, 3)), tf.keras.layers.Conv2D(4, 3), tf.keras.layers.GlobalAveragePooling2D()])
def rep():
    for _ in range(4):
        yield [np.random.rand(1, 8, 8, 3).astype("float32")]
with env.quiet_native_stderr():
    print("graft's own line inside the block", file=sys.stderr, flush=True)
    c = tf.lite.TFLiteConverter.from_keras_model(m)
    c.optimizations = [tf.lite.Optimize.DEFAULT]
    c.representative_dataset = rep
    flat = c.convert()
    interpreter = tf.lite.Interpreter(model_content=flat)
    interpreter.allocate_tensors()
print("converted", len(flat) > 0)
"""


def run_child(level: str) -> subprocess.CompletedProcess:
    environ = {**os.environ, env.TF_LOG_VAR: level, env.LEGACY_KERAS_VAR: "1"}
    return subprocess.run(
        [sys.executable, "-c", CHILD], capture_output=True, text=True, env=environ, timeout=300
    )


@pytest.mark.parametrize(
    "line, noise",
    [
        (
            "W0000 00:00:1796148676.255240   24523 tf_tfl_flatbuffer_helpers.cc:390] Ignored output_format.",
            True,
        ),
        (
            "fully_quantize: 0, inference_type: 6, input_inference_type: FLOAT32, output_inference_type: FLOAT32",
            True,
        ),
        ("INFO: Created TensorFlow Lite XNNPACK delegate for CPU.", True),
        ("[graft] TFLite int8: REFUSED (accuracy drop 0.014 > 0.01)", False),
        ("Traceback (most recent call last):", False),
        ("ValueError: W0000 is not a real log line", False),
    ],
)
def test_what_counts_as_native_noise(line, noise):
    assert env.is_native_noise(line + "\n") is noise


def test_converter_noise_is_dropped_at_level_3_and_shown_with_verbose():
    quiet = run_child("3")
    assert quiet.returncode == 0, quiet.stderr[-3000:]
    assert "converted True" in quiet.stdout
    assert "graft's own line inside the block" in quiet.stderr  # everything else is written back
    assert "fully_quantize" not in quiet.stderr and "Ignored output_format" not in quiet.stderr
    verbose = run_child("1")  # what -v sets: the same block passes the converter's lines through
    assert verbose.returncode == 0, verbose.stderr[-3000:]
    assert "fully_quantize" in verbose.stderr or "Ignored output_format" in verbose.stderr
