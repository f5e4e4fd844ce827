"""Transform module: ``preprocessing_fn(inputs, custom_config)`` (given to TFX by dotted path).

One entry point for both tasks: a text backbone's facts in ``custom_config["backbone"]`` (task 'text') dispatch to
:func:`text_preprocessing_fn` (the module's tokenizer -> token ids, text_preprocessing.py); else the image path
below. The label goes through the same vocabulary either way.

Raw tf.Example {image_bytes, label, source_path} -> transformed {image, label_index} (see ``features``):

image        decode (JPEG / PNG / BMP / GIF first frame; gray and RGBA -> RGB), centre crop to
             ``transform.crop_fraction`` of each side (1.0, the default: no crop), resize to the backbone's H x W
             (``transform.resize_method`` / ``transform.antialias``; default bilinear with antialias), round and
             clip to uint8, ``features.encode_transformed_image``. Stored as uint8: the conversion to the
             backbone's float range happens in the model, identically in training and serving.
label_index  the label's index in the ``label_vocab`` vocabulary asset, computed on the train split only
             (Transform's splits_config analyzes 'train').

Label order. The vocabulary is the class list in index order, one per line, and nothing else (no frequencies):
``data.classes`` as configured, else the classes of the train split sorted by name -- the same order
``data.classes`` documents and that ``image_dataset_from_directory`` would give. ``tft.vocabulary`` orders by
frequency (it changes when a new span shifts the class balance), so the file is written by a small Beam analyzer
(``tft.experimental.ptransform_analyzer``) and applied with ``tft.apply_vocabulary``; it is still an asset named
``label_vocab`` (``TFTransformOutput.vocabulary_by_name('label_vocab')``), which serving uses to map indices back
to names. Labels not in it map to -1 (the gate stops a run before that can happen).

Serving: a request has only ``image_bytes``. TFT prunes the outputs whose inputs are missing, so the Transform
graph (``transform_features_layer``) called with ``image_bytes`` alone returns ``image`` (the label's lookup is
not needed to serve).

The backbone is never loaded here (tensorflow/transform#219): its input size arrives as plain numbers in
``custom_config["backbone"]``, read once outside by ``backbones.resolve_backbone``.
"""

from __future__ import annotations  # noqa: I001  (import graft must stay first)

import graft  # noqa: F401, I001  (legacy Keras before TensorFlow)

import json  # noqa: E402, I001
import os  # noqa: E402

import apache_beam as beam  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
import tensorflow_transform as tft  # noqa: E402
from tensorflow_transform.beam.experimental import analyzer_impls as tft_beam_experimental  # noqa: E402

from graft.components import features  # noqa: E402

RESIZE_METHODS = {
    "bilinear": tf.image.ResizeMethod.BILINEAR,
    "nearest": tf.image.ResizeMethod.NEAREST_NEIGHBOR,
    "bicubic": tf.image.ResizeMethod.BICUBIC,
    "area": tf.image.ResizeMethod.AREA,
    "lanczos3": tf.image.ResizeMethod.LANCZOS3,
}


# ---- settings from custom_config -------------------------------------------------------------------------------
def transform_settings(custom_config: dict) -> dict:
    """The plain values preprocessing_fn needs, from ``custom_config`` {graft_config, backbone} (JSON strings)."""
    if not custom_config or "backbone" not in custom_config or "graft_config" not in custom_config:
        raise ValueError(
            "preprocessing_fn needs custom_config={'graft_config': <GraftConfig JSON>, 'backbone': <BackboneInfo "
            f"JSON>}} (got keys {sorted(custom_config or {})}); build Transform with graft.pipeline.dag"
        )
    from graft.components.image_example_gen.config import DataConfig
    from graft.components.preprocessing_config import TransformConfig
    from graft.settings import section_from_json

    transform = section_from_json(TransformConfig, custom_config["graft_config"], "transform")
    data = section_from_json(DataConfig, custom_config["graft_config"], "data")
    backbone = json.loads(custom_config["backbone"])
    height, width = int(backbone["height"]), int(backbone["width"])
    if height < 1 or width < 1:
        raise ValueError(f"backbone input size must be positive, got {height}x{width}")
    return {
        "height": height,
        "width": width,
        "resize_method": transform.resize_method,
        "antialias": bool(transform.antialias),
        "crop_fraction": float(transform.crop_fraction),
        "classes": list(data.classes),
    }


# ---- images ---------------------------------------------------------------------------------------------------
def decode_image(image_bytes: tf.Tensor) -> tf.Tensor:
    """Scalar string (encoded JPEG/PNG/BMP/GIF) -> uint8 [h, w, 3]; a GIF's first frame; gray/RGBA -> RGB."""
    image = tf.io.decode_image(image_bytes, channels=3, expand_animations=False, dtype=tf.uint8)
    image.set_shape([None, None, 3])
    return image


def resize_to_uint8(
    image: tf.Tensor,
    height: int,
    width: int,
    method: str = "bilinear",
    antialias: bool = True,
    crop_fraction: float = 1.0,
):
    """uint8 [h, w, 3] -> uint8 [height, width, 3]: centre crop (``crop_fraction`` < 1), tf.image.resize, then
    round half to even and clip."""
    if crop_fraction < 1.0:
        image = tf.image.central_crop(image, crop_fraction)
    resized = tf.image.resize(
        tf.cast(image, tf.float32), [height, width], method=RESIZE_METHODS[method], antialias=antialias
    )
    return tf.cast(tf.clip_by_value(tf.round(resized), 0.0, 255.0), tf.uint8)


def image_to_transformed(
    image_bytes: tf.Tensor, height: int, width: int, method: str, antialias: bool, crop_fraction: float = 1.0
) -> tf.Tensor:
    """Scalar encoded image -> the transformed ``image`` feature (scalar string)."""
    return features.encode_transformed_image(
        resize_to_uint8(decode_image(image_bytes), height, width, method, antialias, crop_fraction)
    )


def transform_images(
    image_bytes: tf.Tensor,
    height: int,
    width: int,
    method: str,
    antialias: bool,
    crop_fraction: float = 1.0,
) -> tf.Tensor:
    """[B] (or [B, 1]) encoded images -> [B] transformed ``image`` strings."""
    flat = tf.reshape(image_bytes, [-1])
    return tf.map_fn(
        lambda b: image_to_transformed(b, height, width, method, antialias, crop_fraction),
        flat,
        fn_output_signature=tf.TensorSpec([], tf.string),
    )


# ---- the label vocabulary -------------------------------------------------------------------------------------
def order_classes(found, configured: list[str]) -> list[str]:
    """Configured classes in their order (then any others, sorted); else the found ones sorted by name."""
    found = sorted({f.decode("utf-8") if isinstance(f, bytes) else str(f) for f in found})
    if not configured:
        return found
    return list(configured) + [c for c in found if c not in set(configured)]


class _WriteLabelVocabulary(tft_beam_experimental.PTransformAnalyzer):
    """Batches of labels -> the path of a text vocabulary: the ordered class list, one per line."""

    def __init__(self, configured: list[str]):
        super().__init__()
        self._configured = list(configured)

    def expand(self, pcoll):
        configured = self._configured
        temp_dir = self.base_temp_dir

        def write(labels: list) -> np.ndarray:
            classes = order_classes(labels, configured)
            path = os.path.join(temp_dir, features.LABEL_VOCAB_NAME)
            tf.io.gfile.makedirs(temp_dir)
            with tf.io.gfile.GFile(path, "w") as f:
                f.write("".join(c + "\n" for c in classes))
            return np.array(path.encode("utf-8"))

        return (
            pcoll
            | "DistinctPerBatch" >> beam.FlatMap(lambda batch: set(np.asarray(batch[0]).reshape(-1).tolist()))
            | "Distinct" >> beam.Distinct()
            | "ToList" >> beam.combiners.ToList()
            | "Write" >> beam.Map(write)
        )


def label_vocabulary(label: tf.Tensor, configured: list[str]) -> tf.Tensor:
    """Analyzer: the ``label_vocab`` asset path (class names in index order)."""
    (path,) = tft.experimental.ptransform_analyzer(
        inputs=[tf.reshape(label, [-1])],
        ptransform=_WriteLabelVocabulary(configured),
        output_dtypes=[tf.string],
        output_shapes=[[]],
        output_asset_default_values=[features.LABEL_VOCAB_NAME.encode()],
        name="label_vocab",
    )
    # The file's own name is 'label_vocab', which is what TFTransformOutput.vocabulary_file_by_name looks up
    # (tft.annotate_asset needs a Python string, not the analyzer's output tensor).
    return path


# ---- preprocessing_fn ---------------------------------------------------------------------------------------------
def is_text(custom_config: dict) -> bool:
    """Task text: custom_config["backbone"] is a text backbone's tokenizer facts (task 'text')."""
    try:
        return json.loads((custom_config or {}).get("backbone") or "{}").get("task") == "text"
    except (TypeError, ValueError):
        return False


def text_preprocessing_fn(inputs: dict, custom_config: dict) -> dict:
    """Task text: the module's own tokenizer -> encoder inputs + checks (text_preprocessing), label as for images."""
    from graft.components import text_preprocessing
    from graft.components.image_example_gen.config import DataConfig
    from graft.settings import section_from_json

    info = json.loads(custom_config["backbone"])
    data = section_from_json(DataConfig, custom_config["graft_config"], "data")
    outputs = text_preprocessing.text_features(inputs[features.TEXT_KEY], info)
    outputs[features.TRANSFORMED_LABEL_KEY] = _label_index(inputs[features.LABEL_KEY], list(data.classes))
    return outputs


def _label_index(label: tf.Tensor, classes: list[str]) -> tf.Tensor:
    label = tf.reshape(label, [-1])
    vocab = label_vocabulary(label, classes)
    return tf.cast(
        tft.apply_vocabulary(label, deferred_vocab_filename_tensor=vocab, default_value=-1), tf.int64
    )


def preprocessing_fn(inputs: dict, custom_config: dict) -> dict:
    if is_text(custom_config):
        return text_preprocessing_fn(inputs, custom_config)
    s = transform_settings(custom_config)
    outputs = {
        features.TRANSFORMED_IMAGE_KEY: transform_images(
            inputs[features.IMAGE_KEY],
            s["height"],
            s["width"],
            s["resize_method"],
            s["antialias"],
            s["crop_fraction"],
        )
    }
    outputs[features.TRANSFORMED_LABEL_KEY] = _label_index(inputs[features.LABEL_KEY], s["classes"])
    return outputs
