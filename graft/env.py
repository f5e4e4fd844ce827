"""Process environment that must be right before TensorFlow is imported.

TF 2.16 binds ``tf.keras`` to Keras 3 unless ``TF_USE_LEGACY_KERAS=1`` is set when TensorFlow resolves it, and
``hub.KerasLayer`` cannot live in a Keras 3 model. Every entry point (CLI, conftest, the Transform and Trainer
modules that TFX executors import, the container image) calls :func:`force_legacy_keras` first.

``tensorflow_transform`` sets the variable itself when imported, which is too late when TensorFlow was imported
earlier: the variable then reads "1" while ``tf.keras`` is Keras 3. :func:`assert_legacy_keras` catches that.
"""

from __future__ import annotations

import contextlib
import os
import re
import sys
import tempfile
from collections.abc import Iterator

LEGACY_KERAS_VAR = "TF_USE_LEGACY_KERAS"
TF_LOG_VAR = "TF_CPP_MIN_LOG_LEVEL"
# What the user set before Graft touched it (None: nothing): an explicit setting always wins.
_USER_TF_LOG_LEVEL = os.environ.get(TF_LOG_VAR)


def force_legacy_keras() -> None:
    """Select tf-keras (Keras 2) for this process and its children. Call before importing TensorFlow."""
    os.environ[LEGACY_KERAS_VAR] = "1"
    # TensorFlow's C++ start-up chatter (INFO/WARNING, and the three "E ... Unable to register cuDNN/cuFFT/cuBLAS
    # factory" lines every CPU-only import prints) drowns the pipeline's own log: off unless -v (see
    # tensorflow_log_level). Real failures still surface as Python exceptions. Users can override it.
    os.environ.setdefault(TF_LOG_VAR, "3")


def tensorflow_log_level(verbose: bool) -> None:
    """-v shows TensorFlow's C++ warnings and errors (level 1); otherwise none (3). The user's own setting wins."""
    if _USER_TF_LOG_LEVEL is None:
        os.environ[TF_LOG_VAR] = "1" if verbose else "3"


# What TensorFlow's native code writes straight to file descriptor 2, past TF_CPP_MIN_LOG_LEVEL: absl-format lines
# ("W0000 00:00:17961.25 24523 tf_tfl_flatbuffer_helpers.cc:390] Ignored output_format."), the TFLite
# calibrator's printf ("fully_quantize: 0, inference_type: 6, ..."), the interpreter's XNNPACK banner, and absl's
# note about its own initialisation.
_NATIVE_NOISE = re.compile(
    r"^(?:[IWE]\d{4} \d\d:\d\d:[\d.]+\s+\d+ [\w./-]+:\d+\] .*"
    r"|fully_quantize: \d+, inference_type: .*"
    r"|INFO: Created TensorFlow Lite XNNPACK delegate for CPU\."
    r"|WARNING: All log messages before absl::InitializeLog\(\) is called are written to STDERR)$"
)


def is_native_noise(line: str) -> bool:
    return bool(_NATIVE_NOISE.match(line.rstrip("\r\n")))


@contextlib.contextmanager
def quiet_native_stderr() -> Iterator[None]:
    """While TensorFlow's C++ log is off (level 3: no -v), drop the native lines above written inside the block.

    The TFLite converter and interpreter write them to fd 2 directly, so sys.stderr cannot catch them: fd 2 points
    at a temporary file for the block, and every other line written there (Python's own logging, a real error) is
    written back to stderr when the block ends, in order. With -v, or a user's own TF_CPP_MIN_LOG_LEVEL below 3,
    nothing is redirected.
    """
    if os.environ.get(TF_LOG_VAR) != "3":
        yield
        return
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as captured:
        os.dup2(captured.fileno(), 2)
        try:
            yield
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            captured.seek(0)
            kept = [
                line
                for line in captured.read().decode("utf-8", "replace").splitlines(keepends=True)
                if not is_native_noise(line)
            ]
            if kept:
                sys.stderr.write("".join(kept))
                sys.stderr.flush()


def keras_flavour() -> str:
    """'tf_keras' or 'keras3' for the tf.keras this process actually uses (imports TensorFlow)."""
    import tensorflow as tf

    # tf.keras is a lazy loader that binds on first attribute access; the class's module tells which Keras.
    module = tf.keras.Model.__module__
    return "tf_keras" if module.startswith("tf_keras") else "keras3"


class LegacyKerasError(RuntimeError):
    pass


def assert_legacy_keras() -> None:
    """Raise a clear error if this process builds Keras 3 models (TensorFlow imported before the variable)."""
    force_legacy_keras()
    flavour = keras_flavour()
    if flavour != "tf_keras":
        import tensorflow as tf

        raise LegacyKerasError(
            f"tf.keras is Keras 3 ({tf.keras.Model.__module__}) in this process although "
            f"{LEGACY_KERAS_VAR}={os.environ.get(LEGACY_KERAS_VAR)!r}: TensorFlow was imported before the variable "
            "was set, and hub.KerasLayer cannot be used in a Keras 3 model. Fix: set TF_USE_LEGACY_KERAS=1 in the "
            "environment (or import graft) before anything imports tensorflow."
        )


def tensorflow_imported() -> bool:
    return "tensorflow" in sys.modules
