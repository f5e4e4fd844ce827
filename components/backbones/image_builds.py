"""Offline image builds: Graft's own TF Hub reusable SavedModels (MobileNet V1 ImageNet from a PyPI wheel, tiny).

Built and downloaded modules live in ONE cache directory (:func:`cache_dir`); Graft's builds go to
``<cache>/graft/<name>_<size>[_classifier]``, each with a ``graft_backbone.json`` beside its ``saved_model.pb``.
Built in a temporary sibling directory and renamed into place (a crash never leaves half a module).
"""

from __future__ import annotations

import functools
import json
import os
import shutil
import uuid
from pathlib import Path

from graft.components.backbones.metadata import (
    BUILDER_VERSION,
    METADATA_FILE,
    METADATA_FORMAT,
    MOBILENET,
    MOBILENET_SIZES,
    TINY,
    TINY_DEFAULT_SIZE,
    TINY_SEED,
    TINY_SIZE_RANGE,
    BackboneError,
    _sha256_of,
    offline_module_dir,
    read_module_metadata,
)


def _build_key(name: str, variant: str, size: int, source_sha256: str) -> dict:
    return {
        "name": name,
        "variant": variant,
        "size": size,
        "source_sha256": source_sha256,
        "builder_version": BUILDER_VERSION,
    }


def _up_to_date(module_dir: Path, key: dict) -> bool:
    if not (module_dir / "saved_model.pb").is_file():
        return False
    meta = read_module_metadata(str(module_dir))
    return meta is not None and meta.get("build_key") == key


def _export(
    model,
    out: Path,
    *,
    size: int,
    key: dict,
    meta: dict,
    to_range: tuple[float, float],
    output_name: str,
    labels: list[str] | None = None,
    force: bool = False,
) -> Path:
    """Save ``model`` (a tf.keras model on ``to_range`` inputs) as a TF Hub reusable SavedModel at ``out``.

    Built in a temporary sibling directory and renamed into place, so a crash never leaves half a module and a
    reader never sees one. If an identical build appeared meanwhile (another process), it is kept as is.
    """
    import tensorflow as tf

    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.parent / f".{out.name}.tmp-{uuid.uuid4().hex[:8]}"
    scratch = out.parent / f".{out.name}.scratch-{uuid.uuid4().hex[:8]}"
    try:
        labels_file = None
        if labels:
            scratch.mkdir()
            labels_file = scratch / "labels.txt"  # saved as assets/labels.txt: one class name per logit
            labels_file.write_text("\n".join(labels) + "\n")
        module = _hub_module_class()(model, to_range, labels_file, name=out.name)
        spec = tf.TensorSpec([None, size, size, 3], tf.float32, name="images")
        serving = module.__call__.get_concrete_function(spec, training=False)
        # Both variants traced (TF Hub reusable format): hub.KerasLayer picks one with a Python bool.
        module.__call__.get_concrete_function(spec, training=True)

        @tf.function(input_signature=[spec])
        def serve(images):
            return {output_name: serving(images)}

        tf.saved_model.save(module, str(tmp), signatures={"serving_default": serve.get_concrete_function()})
        variables = list(model.variables)
        trainable = list(model.trainable_variables)
        full = {
            "graft_backbone_format": METADATA_FORMAT,
            **meta,
            "height": size,
            "width": size,
            "channels": 3,
            "value_range": [0.0, 1.0],
            "num_variables": len(variables),
            "num_trainable_variables": len(trainable),
            "num_parameters": int(sum(v.shape.num_elements() for v in variables)),
            # Input -> output by depth: the Trainer fine-tunes the top fraction of this list.
            "trainable_variable_names": [v.name for v in trainable],
            "build_key": key,
            "saved_model_sha256": _sha256_of(str(tmp / "saved_model.pb")),
        }
        (tmp / METADATA_FILE).write_text(json.dumps(full, indent=2) + "\n")
        install(tmp, out, key, force)
    finally:
        for d in (tmp, scratch):
            if d.exists():
                shutil.rmtree(d, ignore_errors=True)
    return out


def install(tmp: Path, out: Path, key: dict, force: bool = False) -> None:
    """Rename a finished build ``tmp`` (with its graft_backbone.json) into place at ``out``.

    If an identical build appeared meanwhile (another process), it is kept as is for its readers.
    """
    if not force and _up_to_date(out, key):
        return  # an identical module appeared while this one was built: leave it for its readers
    if out.exists():
        shutil.rmtree(out)
    try:
        os.rename(tmp, out)
    except OSError:
        if not _up_to_date(out, key):  # another process won the race with an identical build: keep it
            raise


@functools.cache
def _hub_module_class():
    """The tf.Module class Graft exports (defined on first use: TensorFlow is not imported with this module)."""
    import tensorflow as tf

    class HubImageModule(tf.Module):
        """TF Hub reusable SavedModel: ``__call__(images, training=False)`` on float32 [B, H, W, 3] in [0, 1].

        ``variables`` and ``trainable_variables`` are saved as attributes in the Keras model's order (input ->
        output by depth); a plain tf.Module would derive them by crawling attributes in alphabetical order, so
        they are shadowed here. The Keras model is captured by the traced functions, not tracked: only its
        variables are saved (no per-layer Keras serialization).
        """

        variables = None
        trainable_variables = None

        def __init__(self, model, to_range, labels_file, name):
            super().__init__(name=name.replace("-", "_"))
            self.variables = list(model.variables)
            self.trainable_variables = list(model.trainable_variables)
            self.regularization_losses = []
            lo, hi = float(to_range[0]), float(to_range[1])
            keras_model = model

            @tf.function
            def call(images, training=False):
                images = tf.convert_to_tensor(images, tf.float32)
                # TF Hub's [0, 1] -> the range the weights were trained on.
                return keras_model(images * (hi - lo) + lo, training=training)

            self.__call__ = call
            if labels_file is not None:
                self.labels_file = tf.saved_model.Asset(str(labels_file))

    return HubImageModule


def tiny_keras_model(size: int):
    """The tiny backbone's Keras graph (seeded init; inputs in [-1, 1]): built here and rebuilt by cut_cache.py."""
    import tensorflow as tf

    k = tf.keras
    inputs = k.Input((size, size, 3), name="images")
    x = inputs
    for i, filters in enumerate((16, 32, 64), start=1):
        x = k.layers.Conv2D(
            filters,
            3,
            strides=2,
            padding="same",
            use_bias=False,
            kernel_initializer=k.initializers.HeNormal(seed=TINY_SEED + i),
            name=f"block{i}_conv",
        )(x)
        x = k.layers.BatchNormalization(name=f"block{i}_bn")(x)
        x = k.layers.ReLU(6.0, name=f"block{i}_relu")(x)
    x = k.layers.GlobalAveragePooling2D(name="pool")(x)
    return k.Model(inputs, x, name="graft_tiny")


def build_tiny(size: int = TINY_DEFAULT_SIZE, out_dir: str | Path | None = None, force: bool = False) -> Path:
    """A small random-init CNN (3 x conv + BatchNorm + ReLU6, global average pool -> 64 features), seeded."""
    lo, hi = TINY_SIZE_RANGE
    if not isinstance(size, int) or not lo <= size <= hi:
        raise BackboneError(f"tiny backbone: size {size!r} must be an integer in [{lo}, {hi}]")
    out = offline_module_dir(TINY, size, out_dir=out_dir)
    key = _build_key(TINY, "feature_vector", size, f"seed:{TINY_SEED}")
    if not force and _up_to_date(out, key):
        return out

    model = tiny_keras_model(size)
    meta = {
        "name": TINY,
        "variant": "feature_vector",
        "output": "features",
        "output_size": 64,
        "description": "random-init CNN for tests: 3 x (conv 3x3 stride 2 + BatchNorm + ReLU6) + average pool",
        "source": f"random init, seed {TINY_SEED}",
    }
    return _export(
        model,
        out,
        size=size,
        key=key,
        meta=meta,
        to_range=(-1.0, 1.0),
        output_name="feature_vector",
        force=force,
    )


def import_mobilenet_v1(
    size: int = 224, out_dir: str | Path | None = None, force: bool = False
) -> tuple[Path, Path]:
    """Build the ImageNet MobileNet V1 1.0 feature-vector and classifier modules; (feature_vector, classifier)."""
    if size not in MOBILENET_SIZES:
        raise BackboneError(
            f"{MOBILENET}: size {size!r} is not available; use one of {', '.join(map(str, MOBILENET_SIZES))}"
        )
    from graft.components import mobilenet_v1 as mv1

    try:
        weights_file = mv1.weights_path()
    except mv1.WeightsNotFoundError as e:
        raise WeightsMissingError(str(e)) from None
    source_sha = mv1.file_sha256(weights_file)
    fv_dir = offline_module_dir(MOBILENET, size, out_dir=out_dir)
    cls_dir = offline_module_dir(MOBILENET, size, classifier=True, out_dir=out_dir)
    fv_key = _build_key(MOBILENET, "feature_vector", size, source_sha)
    cls_key = _build_key(MOBILENET, "classifier", size, source_sha)
    if not force and _up_to_date(fv_dir, fv_key) and _up_to_date(cls_dir, cls_key):
        return fv_dir, cls_dir

    import tensorflow as tf

    weights = mv1.read_slim_weights(weights_file)
    backbone = mv1.build_keras_mobilenet(size, weights)
    source = {"weights": mv1.WEIGHTS_PROVENANCE, "sha256": source_sha}
    base_meta = {"name": MOBILENET, "source": source, "input_range_inside": [-1.0, 1.0]}
    _export(
        backbone,
        fv_dir,
        size=size,
        key=fv_key,
        meta={
            **base_meta,
            "variant": "feature_vector",
            "output": "features",
            "output_size": mv1.FEATURE_SIZE,
        },
        to_range=(-1.0, 1.0),
        output_name="feature_vector",
        force=force,
    )
    dense = tf.keras.layers.Dense(mv1.NUM_CLASSES, name="logits")
    classifier = tf.keras.Model(backbone.input, dense(backbone.output), name="mobilenet_v1_classifier")
    dense.set_weights([weights.logits_kernel, weights.logits_bias])
    classes = mv1.imagenet_classes()
    _export(
        classifier,
        cls_dir,
        size=size,
        key=cls_key,
        meta={
            **base_meta,
            "variant": "classifier",
            "output": "ImageNet-1k logits (TF-slim's 'background' logit dropped)",
            "output_size": mv1.NUM_CLASSES,
            "labels_file": "assets/" + "labels.txt",
            "feature_vector_dir": str(fv_dir),
        },
        to_range=(-1.0, 1.0),
        output_name="logits",
        labels=[name for _synset, name in classes],
        force=force,
    )
    return fv_dir, cls_dir


class WeightsMissingError(BackboneError):
    """The package carrying the offline weights is not installed."""


def classifier_labels(module_dir: str | Path) -> list[str]:
    """Class names of a classifier module Graft built (one per logit)."""
    meta = read_module_metadata(str(module_dir))
    if meta is None or not meta.get("labels_file"):
        raise BackboneError(
            f"{module_dir} is not a classifier module built by Graft (no labels in {METADATA_FILE})"
        )
    return (Path(module_dir) / meta["labels_file"]).read_text().splitlines()
