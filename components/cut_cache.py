"""Phase 2 on cached activations: the frozen part of the backbone computed once, its fine-tuned top trained on that.

Why: fine-tuning on images recomputes the whole backbone (forward and backward) every step, so on a CPU one epoch
of MobileNet V1 at 224 px over 3,500 images takes ~250 s and the time budget allows none (phase 2 stepped aside on
every benchmark set; the head alone ties a linear probe). Only the top is trained, and BatchNorm runs in inference
mode, so everything below the first fine-tuned layer is a fixed function of the image: cache its output once (the
same single forward pass the feature cache makes) and phase 2's epochs run the top alone. Measured on 2 cores,
MobileNet V1 224 px, its last block fine-tuned (``train.fine_tune_fraction`` 0.07), Adam 1e-4 cosine: an epoch over
3,516 MNIST images ~9 s, over the 2,712 CIFAR-slice images ~8 s; test accuracy after 8 epochs MNIST 0.977 -> 0.983,
CIFAR slice 0.723 -> 0.742 (12 epochs: 0.985, 0.750). No augmentation reaches these epochs (the activations are fixed);
val decides, as on images: phase 2's weights are kept only if they beat phase 1's val loss.

How:

* A module can be cut when Graft can rebuild its Keras graph (:data:`REBUILDERS`: Graft's own offline modules,
  named in their ``graft_backbone.json``) and the rebuilt variables match the module's, name for name and shape for
  shape (they are copied from the module: no weights file is read). A URL / gs:// module cannot: phase 2 runs on
  images there, as before. The graph must be a chain (each layer reads the previous one) from the cut up.
* The cut is the input of the lowest layer holding one of the fine-tuned variables (``model.BackboneLayer``'s
  choice, rounded to whole layers). ``bottom``: the classifier's own pixel layers then the rebuilt layers below
  the cut (uint8 image -> activation); ``top``: the rebuilt layers from the cut up (activation -> feature vector),
  BatchNorm in inference mode. Phase 1's feature vectors are ``top(activation)``, so phase 1 costs what it did.
* Activations are kept in memory as float16 (MobileNet V1 224 px: 7 x 7 x 1024 = 98 KiB per image). Above
  ``train.phase2_cache_mb`` the cut is not used (phase 2 on images), with the reason in the history.
* After phase 2, when its weights are kept, the top's variables are copied into the module's own variables: the
  exported model is the one end-to-end graph as always (``write_back``).
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

import graft  # noqa: F401  (legacy tf.keras before TensorFlow is imported)

# isort: split
import numpy as np
import tensorflow as tf

from graft.components import feature_cache
from graft.components import model as model_lib


def _mobilenet(size: int):
    return tf.keras.applications.MobileNet(
        alpha=1.0, weights=None, include_top=False, input_shape=(size, size, 3), pooling="avg"
    )


def _tiny(size: int):
    from graft.components.backbones.image_builds import tiny_keras_model

    return tiny_keras_model(size)


# graft_backbone.json "name" -> (Keras graph builder(size), the range the module maps its [0, 1] input to).
REBUILDERS = {
    "mobilenet_v1_imagenet": (_mobilenet, (-1.0, 1.0)),
    "tiny": (_tiny, (-1.0, 1.0)),
}


@dataclass
class Cut:
    bottom: tf.keras.Model  # uint8 image -> activation below the cut
    top: tf.keras.Model  # activation -> feature vector
    layer: str  # the first layer above the cut
    pairs: list  # (top variable, module variable), top -> module on write-back
    trainable_variables: int

    def record(self) -> dict:
        return {
            "cut_below": self.layer,
            "activation_shape": [int(d) for d in self.top.input.shape[1:]],
            "trainable_backbone_variables": self.trainable_variables,
        }


def _stripped(name: str) -> str:
    return name.split(":")[0]


def plan(model: tf.keras.Model, module_meta: dict | None, height: int, width: int) -> tuple[Cut | None, str]:
    """(the cut, '') or (None, why not) for the classifier ``model`` whose backbone is the module ``module_meta``
    describes (its graft_backbone.json, None for a module without one)."""
    name = (module_meta or {}).get("name")
    if name not in REBUILDERS or (module_meta or {}).get("variant") != "feature_vector":
        return None, "the module is not one Graft can rebuild (a URL or foreign module): phase 2 on images"
    if height != width:
        return None, f"non-square input {height}x{width}: phase 2 on images"
    builder, (lo, hi) = REBUILDERS[name]
    layer = model_lib.backbone_layer(model)
    chosen = {_stripped(v.name) for v in layer.fine_tune_variables}
    if not chosen:
        return None, "nothing to fine-tune"
    rebuilt = builder(height)
    module_vars = list(layer._func.variables)  # noqa: SLF001 - the module's own variables, Keras order
    keras_vars = list(rebuilt.variables)
    if len(module_vars) != len(keras_vars) or any(
        _stripped(a.name) != _stripped(b.name) or tuple(a.shape) != tuple(b.shape)
        for a, b in zip(keras_vars, module_vars, strict=True)
    ):
        return None, f"the rebuilt {name} graph does not match the module's variables: phase 2 on images"
    for kv, mv in zip(keras_vars, module_vars, strict=True):
        kv.assign(mv)
    layers = [lyr for lyr in rebuilt.layers if not isinstance(lyr, tf.keras.layers.InputLayer)]
    first = next(
        (i for i, lyr in enumerate(layers) if any(_stripped(v.name) in chosen for v in lyr.weights)), None
    )
    if first is None or first == 0:
        return None, "the fine-tuned variables start at the module's first layer: nothing to cache below them"
    for i in range(first, len(layers)):  # a chain from the cut up: each layer reads the one before
        if layers[i].input is not layers[i - 1].output:
            return None, f"layer {layers[i].name!r} does not read only the layer below it: phase 2 on images"
    by_name = {_stripped(v.name): v for v in module_vars}
    act = tf.keras.Input(shape=layers[first - 1].output.shape[1:], dtype=tf.float32, name="activation")
    x = act
    pairs, trainable = [], 0
    for lyr in layers[first:]:
        lyr.trainable = any(_stripped(v.name) in chosen for v in lyr.weights)
        trainable += len(lyr.trainable_weights)
        x = lyr(x, training=False) if isinstance(lyr, tf.keras.layers.BatchNormalization) else lyr(x)
        pairs += [(v, by_name[_stripped(v.name)]) for v in lyr.weights]
    top = tf.keras.Model(act, x, name="backbone_top")
    # The classifier's own pixel layers (augmentation skipped: inference), then the module's range mapping.
    images = model.input
    y = model.get_layer("to_backbone_range")(model.get_layer("to_float")(images))
    y = tf.keras.layers.Rescaling(hi - lo, offset=lo, name="to_module_range")(y)
    below = tf.keras.Model(rebuilt.input, layers[first - 1].output)
    bottom = tf.keras.Model(images, below(y, training=False), name="backbone_bottom")
    return Cut(bottom, top, layers[first].name, pairs, trainable), ""


def activation_bytes(cut: Cut, examples: int) -> int:
    return int(examples * np.prod(cut.top.input.shape[1:]) * 2)


def extract(cut: Cut, dataset: tf.data.Dataset) -> feature_cache.Features:
    """One inference pass of ``bottom`` over (images, labels) batches; activations kept as float16."""
    return feature_cache.extract(cut.bottom, dataset, dtype=np.float16)


def features(cut: Cut, acts: feature_cache.Features, batch_size: int = 256) -> feature_cache.Features:
    """Phase 1's feature vectors: ``top`` on the cached activations (inference); seconds = the whole extraction."""
    step = tf.function(lambda a: cut.top(tf.cast(a, tf.float32), training=False))
    start = time.monotonic()
    out = [step(acts.x[i : i + batch_size]).numpy() for i in range(0, acts.count, batch_size)]
    top_seconds = time.monotonic() - start
    x = np.concatenate(out).astype(np.float32)
    return feature_cache.Features(x, acts.y, acts.seconds + top_seconds, top_seconds=top_seconds)


def dataset(acts: feature_cache.Features, batch_size: int, *, shuffle: bool, seed: int) -> tf.data.Dataset:
    cast = lambda a, y: (tf.cast(a, tf.float32), y)  # noqa: E731
    return feature_cache.feature_dataset(acts, batch_size, shuffle=shuffle, seed=seed).map(cast)


def fit_model(cut: Cut, model: tf.keras.Model) -> tf.keras.Model:
    """top + the classifier's own Dropout and logits layers (shared: the head keeps training in place)."""
    x = cut.top(cut.top.input)
    x = model.get_layer(model_lib.DROPOUT_LAYER_NAME)(x)
    return tf.keras.Model(cut.top.input, model.get_layer(model_lib.LOGITS_LAYER_NAME)(x), name="top_and_head")


def epoch_estimate(train_f, val_f, cost_factor: float = 3.0) -> float:
    """Seconds one phase-2 epoch on activations should take: forward + backward through the top over train, one
    forward over val (from the measured top passes)."""
    if train_f.top_seconds is None or val_f.top_seconds is None:
        return math.inf
    return cost_factor * train_f.top_seconds + val_f.top_seconds


def write_back(cut: Cut) -> None:
    """Copy the trained top into the module's variables (what the exported classifier holds)."""
    for top_var, module_var in cut.pairs:
        module_var.assign(top_var)
