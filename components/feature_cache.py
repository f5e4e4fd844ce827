"""Phase 1 on cached features: the frozen backbone's output computed once, the head fitted on it to convergence.

Why: while the backbone is frozen its feature vector depends only on the image, so recomputing it every epoch
(the old phase 1) spent nearly all of phase 1's time in the backbone and left the head too few steps to converge;
a linear probe on the same features beat it. This is TF Hub's retrain-script bottleneck cache, inside the Trainer:

* :func:`feature_extractor` is the classifier's own graph from its uint8 input to the backbone's output (the
  augmentation layers in it are inactive at inference), so the features are exactly what phase 1 on images
  would see with augmentation off, and the exported model stays one end-to-end graph.
* :func:`extract` runs it once over a split (batched, in the split's order) and keeps the vectors in memory
  (train + val of 10,000 images x 1,024 float32 features = 41 MB).
* :func:`head_model` is the classifier's own Dropout and logits layers on a feature input: training it trains the
  classifier's head variables in place (shared layers, nothing to copy back).
* :func:`sanity_check` looks at one batch before anything trains: non-finite or degenerate (all-equal) features
  mean the pixels reach the module in the wrong range (``backbone.value_range``) or the module is broken; the run
  fails with that message instead of training a head on noise.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import graft  # noqa: F401  (legacy tf.keras before TensorFlow is imported)

# isort: split
import numpy as np
import tensorflow as tf

from graft.components import model as model_lib

# Below this spread across a batch (relative to the features' magnitude) the features carry no information about
# the image. Measured here on 32 CIFAR-10 photos with the offline MobileNet V1 (128 px): 1.22 fed its range
# [0, 1], 1.25 fed [-1, 1], 0.83 fed [0, 255], 0.049 fed [0, 1/255]. So this check catches a range that makes the
# module collapse or overflow (a saturating module, a near-zero input), not every wrong range: a module that
# declares its range (graft_backbone.json) is protected by the declaration instead.
MIN_RELATIVE_SPREAD = 1e-3


class FeatureCheckError(RuntimeError):
    """The backbone's output on real transformed images is unusable; the message says why and what to check."""


@dataclass
class Features:
    x: np.ndarray  # float32 [N, F]
    y: np.ndarray  # int64 [N]
    seconds: float
    # cut_cache.py: the part of ``seconds`` the backbone's top took on cached activations (phase 2's estimate)
    top_seconds: float | None = None

    @property
    def count(self) -> int:
        return int(self.y.shape[0])

    def seconds_per_example(self) -> float:
        return self.seconds / max(self.count, 1)


def feature_extractor(model: tf.keras.Model) -> tf.keras.Model:
    """uint8 images -> the backbone's feature vectors, through the classifier's own layers (no copy)."""
    # model.input: the image tensor, or the text model's dict of encoder inputs (batches arrive as that dict).
    return tf.keras.Model(model.input, model_lib.backbone_layer(model).output, name="feature_extractor")


def extract(extractor: tf.keras.Model, dataset: tf.data.Dataset, dtype=np.float32) -> Features:
    """One forward pass (inference mode: no augmentation, BatchNorm statistics) over ``dataset`` (images, labels);
    outputs kept as ``dtype`` batch by batch (cut_cache.py keeps activations as float16)."""
    # reduce_retracing: text batches come in a few lengths (cut to their longest row).
    step = tf.function(lambda images: extractor(images, training=False), reduce_retracing=True)
    xs, ys = [], []
    start = time.monotonic()
    for images, labels in dataset:
        xs.append(step(images).numpy().astype(dtype, copy=False))
        ys.append(labels.numpy())
    seconds = time.monotonic() - start
    if not xs:
        return Features(np.zeros((0, *extractor.output_shape[1:]), dtype), np.zeros(0, np.int64), seconds)
    return Features(np.concatenate(xs), np.concatenate(ys).astype(np.int64), seconds)


def feature_dataset(feats: Features, batch_size: int, *, shuffle: bool, seed: int) -> tf.data.Dataset:
    ds = tf.data.Dataset.from_tensor_slices((feats.x, feats.y))
    if shuffle:
        ds = ds.shuffle(feats.count, seed=seed, reshuffle_each_iteration=True)
    return ds.batch(batch_size).prefetch(tf.data.AUTOTUNE)


def head_model(model: tf.keras.Model) -> tf.keras.Model:
    """The classifier's Dropout + logits layers on a feature-vector input (shared layers: same variables)."""
    dim = int(model_lib.backbone_layer(model).output.shape[-1])
    inputs = tf.keras.Input(shape=(dim,), dtype=tf.float32, name="features")
    x = model.get_layer(model_lib.DROPOUT_LAYER_NAME)(inputs)
    logits = model.get_layer(model_lib.LOGITS_LAYER_NAME)(x)
    return tf.keras.Model(inputs, logits, name="head")


def relative_spread(x: np.ndarray) -> float:
    """Mean over features of the std across the batch, over the mean magnitude (0 when every row is equal)."""
    x = np.asarray(x, np.float64)
    magnitude = float(np.mean(np.abs(x)))
    if magnitude == 0.0:
        return 0.0
    return float(np.mean(np.std(x, axis=0)) / magnitude)


def sanity_check(x: np.ndarray, *, value_range, range_source: str, handle: str, text: bool = False) -> dict:
    """Raise :class:`FeatureCheckError` when one batch's features are non-finite or degenerate; else a summary.

    ``text``: the batch is tokenized text (no pixel range); the same checks on the sentence embeddings."""
    x = np.asarray(x)
    if text:
        lo, hi = float("nan"), float("nan")
        where = f"text encoder {handle!r} on one batch of {x.shape[0]} tokenized train texts"
        fix = (
            "Check that the encoder is a BERT-contract text encoder matching its preprocessing model (vocabulary) "
            "and that the texts are not all alike."
        )
    else:
        lo, hi = (float(v) for v in value_range)
        where = (
            f"backbone {handle!r} on one batch of {x.shape[0]} transformed train images (pixels given to it in "
            f"[{lo:g}, {hi:g}], {range_source})"
        )
        fix = (
            "Check backbone.value_range (the range the module expects, e.g. [0, 1] for TF Hub image modules, "
            "[-1, 1] for some), transform.crop_fraction, and that the module is an image feature-vector model."
        )
    bad = int(np.size(x) - np.count_nonzero(np.isfinite(x)))
    if bad:
        raise FeatureCheckError(f"{where}: {bad} of {x.size} feature values are NaN or infinite. {fix}")
    if x.shape[0] >= 2:
        spread = relative_spread(x)
        if spread < MIN_RELATIVE_SPREAD:
            raise FeatureCheckError(
                f"{where}: the feature vectors are (nearly) the same for every image (relative spread "
                f"{spread:.2g} < {MIN_RELATIVE_SPREAD:g}), so a head cannot learn from them. {fix}"
            )
    else:
        spread = float("nan")
    return {
        "images": int(x.shape[0]),
        "relative_spread": spread,
        "value_range": None if text else [lo, hi],
        "source": range_source,
    }
