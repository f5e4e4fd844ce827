"""SavedModel -> TFLite, per variant, from the model's uint8 image path (its preprocessing inside).

The exported SavedModel's serving signatures take encoded files / tf.Examples and run the Transform graph
(DecodeImage, resize, ParseExample, a vocabulary lookup): ops that TFLite's builtins do not have and that a phone
app does itself (camera frames are already decoded pixels). What the TFLite model needs is the classifier proper:
``uint8 [1, H, W, 3]`` (the transformed ``image`` feature: decoded, resized, uint8, exactly what the Trainer
fed) -> ``probabilities [1, C]``. The Keras model saved inside the SavedModel is that function, with its
float conversion and the backbone's value range inside, so the edge models preprocess exactly like the SavedModel.

Why ``tf.lite.TFLiteConverter`` directly and not TFX's ``TFLiteRewriter``: the rewriter converts one *signature*
of a SavedModel directory (``from_saved_model(signature_keys=[...])``), and none of Graft's signatures is the
uint8 path; it would need a second SavedModel written only to feed it. ``from_concrete_functions`` on the
restored model's call is the same converter with the same options the rewriter sets (``optimizations``,
``target_spec.supported_types``, ``representative_dataset``) plus the ones it cannot pass cleanly
(``inference_input_type`` / ``inference_output_type``, the builtin op set).

Variants (``edge.variants``):

``float32``        no optimisation: the reference conversion (4 bytes per weight)
``float16``        weights stored as float16 (half the size), computed in float32 on CPU; float32 output
``dynamic_range``  int8 weights, float activations (no representative data)
``int8``           int8 weights and activations calibrated on a representative set of Transform's train images,
                   uint8 input (raw pixels). With ``edge.int8_float_layers`` = 0: full integer, uint8 output
                   (probabilities, scale ~1/256). With N > 0 (default 3): the stem (input through the N-th
                   conv / depthwise / dense layer) stays float32 and the output is float32 (selective.py says why)

Class names travel as ``labels.txt`` (one per line, label-index order) beside the models: TFLite metadata needs
``tflite-support``, whose 0.4.4 wheel installs here but fails at import (``libusb-1.0.so.0`` missing from the
image); a labels file is what MediaPipe / TFLite task libraries also accept.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence

import graft  # noqa: F401  (legacy tf.keras before TensorFlow is imported)

# isort: split
import numpy as np
import tensorflow as tf

from graft.components import features
from graft.components.edge.errors import EdgeExportError  # noqa: F401  (raised here; re-exported)

VARIANTS = ("float32", "float16", "dynamic_range", "int8")
DEFAULT_VARIANTS = ("float16", "int8")
LABELS_FILE = "labels.txt"
PROBABILITIES = "probabilities"


def model_filename(variant: str) -> str:
    return f"model_{variant}.tflite"


def check_variants(variants: Sequence[str]) -> list[str]:
    unknown = [v for v in variants if v not in VARIANTS]
    if unknown:
        raise EdgeExportError(f"unknown TFLite variant(s) {unknown}; allowed: {', '.join(VARIANTS)}")
    return list(dict.fromkeys(variants))


# ---- reading Transform's output --------------------------------------------------------------------------------
def _split_files(examples_uri: str, split: str) -> list[str]:
    files = sorted(tf.io.gfile.glob(os.path.join(examples_uri, f"Split-{split}", "*")))  # gs:// too
    if not files:
        raise EdgeExportError(
            f"no transformed examples for split '{split}' under {examples_uri} (expected Split-{split}/*.gz "
            "from Transform's transformed_examples)"
        )
    return files


def transformed_images(
    examples_uri: str, split: str, height: int, width: int, limit: int | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """(uint8 [N, H, W, 3], int64 [N] label indices, -1 where absent) of one split of Transform's output."""
    spec = {
        features.TRANSFORMED_IMAGE_KEY: tf.io.FixedLenFeature([], tf.string),
        features.TRANSFORMED_LABEL_KEY: tf.io.FixedLenFeature([], tf.int64, default_value=-1),
    }
    ds = tf.data.TFRecordDataset(_split_files(examples_uri, split), compression_type="GZIP")
    if limit is not None:
        ds = ds.take(limit)

    def parse(record):
        ex = tf.io.parse_single_example(record, spec)
        image = features.decode_transformed_image(ex[features.TRANSFORMED_IMAGE_KEY], height, width)
        return image, ex[features.TRANSFORMED_LABEL_KEY]

    images, labels = [], []
    for batch in ds.map(parse).batch(256):
        images.append(batch[0].numpy())
        labels.append(batch[1].numpy())
    if not images:
        raise EdgeExportError(f"split '{split}' of {examples_uri} holds no examples")
    return np.concatenate(images), np.concatenate(labels)


# ---- the classifier as a concrete function ---------------------------------------------------------------------
def load_classifier(saved_model_dir: str, height: int, width: int):
    """(restored object, concrete fn uint8 [1, H, W, 3] -> {'probabilities': float32 [1, C]}).

    The restored Keras model's call (traced at export with the uint8 image input) with the softmax of
    ``signatures.py`` on top, so both models output the same probabilities.
    """
    loaded = tf.saved_model.load(saved_model_dir)
    if not callable(loaded):
        raise EdgeExportError(
            f"{saved_model_dir}: the SavedModel has no callable Keras model inside (was it exported by Graft's "
            "Trainer with signatures.export_model?)"
        )

    @tf.function(input_signature=[tf.TensorSpec([1, height, width, 3], tf.uint8, name="image")])
    def classify(image):
        logits = loaded(image, training=False)
        return {PROBABILITIES: tf.nn.softmax(tf.cast(logits, tf.float32), axis=-1)}

    try:
        return loaded, classify.get_concrete_function()
    except (ValueError, TypeError) as e:
        raise EdgeExportError(
            f"{saved_model_dir}: the model inside does not accept uint8 [1, {height}, {width}, 3] images: {e}"
        ) from None


def representative_dataset(images: np.ndarray):
    """The converter's calibration input: one uint8 image per step, shaped like the model input."""

    def gen() -> Iterator[list[np.ndarray]]:
        for image in images:
            yield [image[np.newaxis].astype(np.uint8)]

    return gen


def convert(
    loaded,
    concrete_fn,
    variant: str,
    representative: np.ndarray | None = None,
    *,
    int8_float_layers: int = 0,
    info: dict | None = None,
) -> bytes:
    """One variant's TFLite flatbuffer; ``info`` (if given) receives what the conversion did (selective int8).

    ``int8_float_layers`` > 0 (``edge.int8_float_layers``): the int8 variant keeps the ops from the input through
    that many weighted layers in float32 (selective.py); 0 is full integer, uint8 in and out.
    """
    if variant == "int8" and int8_float_layers > 0 and representative is not None and len(representative):
        from graft.components.edge import selective

        try:
            flatbuffer, done = selective.quantize(
                loaded, concrete_fn, representative, int8_float_layers, representative_dataset
            )
        except EdgeExportError:
            raise
        except Exception as e:  # noqa: BLE001 - converter / debugger errors of every kind
            raise EdgeExportError(
                f"TFLite conversion of variant 'int8' ({selective.KEY}={int8_float_layers}) failed: "
                f"{type(e).__name__}: {e}"
            ) from e
        if info is not None:
            info.update(done)
        return flatbuffer
    converter = tf.lite.TFLiteConverter.from_concrete_functions([concrete_fn], loaded)
    if variant == "float16":
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.target_spec.supported_types = [tf.float16]
    elif variant == "dynamic_range":
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
    elif variant == "int8":
        if representative is None or len(representative) == 0:
            raise EdgeExportError("variant 'int8' needs a representative set of images (none were given)")
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.representative_dataset = representative_dataset(representative)
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
        converter.inference_input_type = tf.uint8
        converter.inference_output_type = tf.uint8
    elif variant != "float32":
        check_variants([variant])
    try:
        return converter.convert()
    except Exception as e:  # noqa: BLE001 - the converter raises ConverterError, RuntimeError, ValueError ...
        raise EdgeExportError(
            f"TFLite conversion of variant '{variant}' failed: {type(e).__name__}: {e}"
        ) from e


def write_labels(path: str, class_names: Sequence[str]) -> str:
    """labels.txt: one class name per line, in label-index order (the model's output order)."""
    with tf.io.gfile.GFile(path, "w") as f:
        f.write("".join(f"{c}\n" for c in class_names))
    return path


def read_labels(path: str) -> list[str]:
    with tf.io.gfile.GFile(path) as f:
        return [line.rstrip("\n") for line in f if line.strip()]
