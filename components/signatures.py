"""Serving signatures: the exported SavedModel carries the Transform graph, so serving = training.

``export_model`` saves the trained classifier with the Transform output's graph (``transform_features_layer``) and
the label vocabulary (an asset) tracked on it, and three signatures:

``serving_default``     ``image_bytes``: tf.string [None], encoded image files (JPEG/PNG/BMP/GIF). TF Serving's REST
                        API accepts ``{"instances": [{"b64": "<base64 of the file>"}]}`` for it (a single string
                        input, binary values wrapped in ``b64``).
``serving_tf_example``  ``examples``: tf.string [None], serialized raw tf.Examples (``image_bytes``; any ``label`` /
                        ``source_path`` in them is ignored). What the Evaluator calls (evaluation.py).
``transform_features``  ``examples``: serialized raw tf.Examples *with* their label -> the transformed features
                        (``image``, ``label_index``), for TFMA's ``preprocessing_function_names``.

Outputs of the two serving signatures: ``probabilities`` float32 [None, C] (softmax of the float32 logits),
``class_index`` int64 [None] (argmax) and ``class_name`` string [None] (looked up in the ``label_vocab`` asset).

Task text (``text=True``): ``serving_default`` takes ``text``: tf.string [None] of raw UTF-8 strings (TF Serving REST
``{"instances": ["a review", ...]}``); the Transform graph tokenizes them with the module's WordPiece vocabulary (TF
Text ops: see the README for the TF Serving build that has them) and the model gets the encoder inputs.

At serving time the raw examples have no label. The Transform graph is applied to the features present only
(TFT prunes the outputs that need missing inputs), so the label's vocabulary lookup is not needed to serve.
"""

from __future__ import annotations

import graft  # noqa: F401  (legacy tf.keras before TensorFlow is imported)

# isort: split
import tensorflow as tf

from graft.components import features

SERVING_DEFAULT = "serving_default"
SERVING_TF_EXAMPLE = "serving_tf_example"
TRANSFORM_FEATURES = "transform_features"
PROBABILITIES = "probabilities"
CLASS_INDEX = "class_index"
CLASS_NAME = "class_name"
# Raw features a client sends; the rest (label, source_path) exist only in training data.
SERVING_RAW_KEYS = (features.IMAGE_KEY,)


class SignatureError(ValueError):
    pass


def class_names(tf_transform_output) -> list[str]:
    """Class names in label-index order, from the Transform output's ``label_vocab``."""
    try:
        vocab = tf_transform_output.vocabulary_by_name(features.LABEL_VOCAB_NAME)
    except (ValueError, tf.errors.NotFoundError) as e:
        raise SignatureError(
            f"the Transform output has no '{features.LABEL_VOCAB_NAME}' vocabulary ({e}): the preprocessing_fn must "
            f"compute it with tft.vocabulary(..., vocab_filename='{features.LABEL_VOCAB_NAME}')"
        ) from None
    return [v.decode("utf-8") if isinstance(v, bytes) else str(v) for v in vocab]


def _raw_spec(tf_transform_output, keys=None, raw_key: str = features.IMAGE_KEY) -> dict:
    spec = dict(tf_transform_output.raw_feature_spec())
    if raw_key not in spec:
        raise SignatureError(
            f"the Transform output's raw schema has no '{raw_key}' feature (it has {sorted(spec)})"
        )
    if keys is not None:
        spec = {k: v for k, v in spec.items() if k in keys}
    return spec


def _as_raw_feature(values: tf.Tensor, spec, raw_key: str = features.IMAGE_KEY) -> tf.Tensor:
    """[None] strings -> the dense or sparse shape the raw feature spec declares (what parse_example would give)."""
    if isinstance(spec, tf.io.FixedLenFeature):
        return tf.reshape(values, [-1, *spec.shape])
    if isinstance(spec, tf.io.VarLenFeature):
        return tf.sparse.from_dense(tf.reshape(values, [-1, 1]))
    raise SignatureError(f"unsupported raw feature spec for '{raw_key}': {spec!r}")


def attach_transform(model: tf.keras.Model, tf_transform_output) -> None:
    """Track the Transform graph and the label vocabulary on the model (both are saved with it)."""
    model.tft_layer = tf_transform_output.transform_features_layer()
    vocab_file = tf_transform_output.vocabulary_file_by_name(features.LABEL_VOCAB_NAME)
    model.class_name_table = tf.lookup.StaticHashTable(
        tf.lookup.TextFileInitializer(
            vocab_file,
            key_dtype=tf.int64,
            key_index=tf.lookup.TextFileIndex.LINE_NUMBER,
            value_dtype=tf.string,
            value_index=tf.lookup.TextFileIndex.WHOLE_LINE,
        ),
        default_value="",
    )


def build_signatures(
    model: tf.keras.Model, tf_transform_output, height: int = 0, width: int = 0, *, text: bool = False
) -> dict:
    """The three signature functions (concrete); :func:`attach_transform` must have run.

    ``text``: ``serving_default`` takes ``text`` (tf.string [None], raw UTF-8 strings: TF Serving REST
    ``{"instances": ["a review", ...]}``) and the model gets the Transform graph's encoder inputs."""
    raw_key = features.TEXT_KEY if text else features.IMAGE_KEY
    raw_spec = _raw_spec(tf_transform_output, raw_key=raw_key)
    serving_spec = {k: v for k, v in raw_spec.items() if k == raw_key}
    raw_feature_spec = raw_spec[raw_key]

    def model_inputs(transformed: dict):
        if text:
            from graft.components.text_preprocessing import ENCODER_INPUT_KEYS, trim_to_longest

            return trim_to_longest({k: tf.cast(transformed[k], tf.int64) for k in ENCODER_INPUT_KEYS})
        return tf.map_fn(
            lambda s: features.decode_transformed_image(s, height, width),
            tf.reshape(transformed[features.TRANSFORMED_IMAGE_KEY], [-1]),
            fn_output_signature=tf.TensorSpec([height, width, 3], tf.uint8),
        )

    def predict(transformed: dict) -> dict:
        logits = model(model_inputs(transformed), training=False)
        probabilities = tf.nn.softmax(tf.cast(logits, tf.float32), axis=-1)
        index = tf.argmax(probabilities, axis=-1, output_type=tf.int64)
        return {
            PROBABILITIES: probabilities,
            CLASS_INDEX: index,
            CLASS_NAME: model.class_name_table.lookup(index),
        }

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name=raw_key)])
    def serve_raw(values):
        raw = {raw_key: _as_raw_feature(values, raw_feature_spec, raw_key)}
        return predict(model.tft_layer(raw))

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="examples")])
    def serve_tf_example(examples):
        raw = tf.io.parse_example(examples, serving_spec)
        return predict(model.tft_layer(raw))

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="examples")])
    def transform_features(examples):
        raw = tf.io.parse_example(examples, raw_spec)
        return model.tft_layer(raw)

    return {
        SERVING_DEFAULT: serve_raw.get_concrete_function(),
        SERVING_TF_EXAMPLE: serve_tf_example.get_concrete_function(),
        TRANSFORM_FEATURES: transform_features.get_concrete_function(),
    }


def export_model(
    model: tf.keras.Model,
    tf_transform_output,
    export_dir: str,
    height: int = 0,
    width: int = 0,
    *,
    text=False,
) -> str:
    """Save ``model`` with the Transform graph, the vocabulary and the three signatures to ``export_dir``."""
    attach_transform(model, tf_transform_output)
    sigs = build_signatures(model, tf_transform_output, height, width, text=text)
    # include_optimizer=False: the SavedModel serves; it is not a training checkpoint.
    model.save(export_dir, signatures=sigs, include_optimizer=False)
    return export_dir
