"""Test session setup. Legacy Keras must be selected before anything imports TensorFlow."""

import os

os.environ["TF_USE_LEGACY_KERAS"] = "1"
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import pytest  # noqa: E402

import graft  # noqa: E402,F401  (the same switch, through the package every entry point imports)


def gpu_available() -> bool:
    import tensorflow as tf

    return bool(tf.config.list_physical_devices("GPU"))


@pytest.fixture
def requires_gpu():
    if not gpu_available():
        pytest.skip(
            "no GPU visible to TensorFlow: this test checks the GPU path (mixed precision / strategy)"
        )
