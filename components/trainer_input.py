"""The Trainer's input: transformed examples -> batches of (uint8 images, int64 labels), label counts, class weights.

Task text: batches of (dict of the encoder's int64 inputs, labels), :func:`text_tfxio_input_fn`, the same reader.

Split from ``trainer.py`` so the reading can change (TFXIO or a plain TFRecord reader) without touching the run.
:func:`make_reader` is what ``run_fn`` uses: TFX's own reader, TFXIO, through
``fn_args.data_accessor.tf_dataset_factory`` as TFX's penguin example does (batched ``parse_example``), or the same
TFXIO class directly when no data accessor is given (tests, benches). :func:`input_fn` is the hand-written GZIP
TFRecord reader it replaced, kept as the reference the bench and the tests compare TFXIO against.
"""

from __future__ import annotations

from collections.abc import Sequence

import graft  # noqa: F401  (legacy tf.keras before TensorFlow is imported)

# isort: split
import numpy as np
import tensorflow as tf

from graft.components import features
from graft.errors import ConfigError


class TrainerError(RuntimeError):
    """A Trainer input that cannot work; the message says which and how to fix it."""


def _expand(file_patterns: str | Sequence[str]) -> list[str]:
    patterns = [file_patterns] if isinstance(file_patterns, str) else list(file_patterns)
    files: list[str] = []
    for p in patterns:
        files.extend(sorted(tf.io.gfile.glob(p)))
    if not files:
        raise TrainerError(
            f"no transformed example files match {patterns}: is the Transform output empty, or the split missing?"
        )
    return files


IMAGE_KEYS = (features.TRANSFORMED_IMAGE_KEY, features.TRANSFORMED_LABEL_KEY)


def _parse_spec(tf_transform_output, keys: Sequence[str] = IMAGE_KEYS) -> dict:
    """The transformed feature spec (of ``keys``) of a TFTransformOutput (or that spec itself, as a mapping)."""
    if isinstance(tf_transform_output, dict):
        spec = tf_transform_output
    else:
        spec = tf_transform_output.transformed_feature_spec()
    missing = [k for k in keys if k not in spec]
    if missing:
        raise TrainerError(
            f"the Transform output has no feature(s) {missing} (it has {sorted(spec)}): the preprocessing_fn must "
            f"emit {', '.join(repr(k) for k in keys)} (components/features.py)"
        )
    return {k: spec[k] for k in keys}


def _label_vector(parsed) -> tf.Tensor:
    return tf.reshape(tf.cast(parsed[features.TRANSFORMED_LABEL_KEY], tf.int64), [-1])


_LABEL_MESSAGE = (
    "transformed example has a label_index outside [0, {num_classes}): its label is not in the train split's label "
    "vocabulary (check the data validation gate and data.classes)"
)


def input_fn(
    file_patterns: str | Sequence[str],
    tf_transform_output,
    batch_size: int,
    height: int,
    width: int,
    num_classes: int,
    *,
    shuffle: bool,
    seed: int = 42,
    repeat: bool = False,
    shuffle_buffer: int = 1024,
) -> tf.data.Dataset:
    """Transformed TFRecords (gzip) -> batches of (uint8 [B, H, W, 3], int64 [B]).

    Files are read in parallel (interleave) and shuffled by file and by record when ``shuffle``; records are parsed
    and decoded in parallel, batched, prefetched. Parallel stages keep a deterministic order, so ``seed`` makes the
    order reproducible. A label outside [0, num_classes) fails with a clear message.
    """
    files = _expand(file_patterns)
    spec = _parse_spec(tf_transform_output)
    ds = tf.data.Dataset.from_tensor_slices(files)
    if shuffle:
        ds = ds.shuffle(len(files), seed=seed, reshuffle_each_iteration=True)
    ds = ds.interleave(
        lambda f: tf.data.TFRecordDataset(f, compression_type="GZIP", buffer_size=1 << 20),
        cycle_length=min(len(files), 8),
        num_parallel_calls=tf.data.AUTOTUNE,
        deterministic=True,  # parallel, but in a fixed order: the seed alone decides the order
    )
    if shuffle:
        ds = ds.shuffle(shuffle_buffer, seed=seed, reshuffle_each_iteration=True)
    if repeat:
        ds = ds.repeat()

    def parse(record):
        parsed = tf.io.parse_single_example(record, spec)
        image = features.decode_transformed_image(
            tf.reshape(parsed[features.TRANSFORMED_IMAGE_KEY], []), height, width
        )
        label = tf.reshape(_label_vector(parsed), [])
        check = tf.debugging.assert_equal(
            tf.logical_and(label >= 0, label < num_classes),
            True,
            message=_LABEL_MESSAGE.format(num_classes=num_classes),
        )
        with tf.control_dependencies([check]):
            return image, tf.identity(label)

    ds = ds.map(parse, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    ds = ds.batch(batch_size)
    return ds.prefetch(tf.data.AUTOTUNE)


def _tfxio_batches(files, schema, batch_size, shuffle, seed, repeat, shuffle_buffer, dataset_factory):
    """TFX's reader (``dataset_factory``, else the TFXIO class TFX picks for tf.Examples) -> dicts of batches."""
    from tfx_bsl.public import tfxio

    options = tfxio.TensorFlowDatasetOptions(
        batch_size=batch_size,
        shuffle=shuffle,
        shuffle_seed=seed,
        shuffle_buffer_size=shuffle_buffer,
        num_epochs=None if repeat else 1,
        # A fixed interleave width: with AUTOTUNE the cycle length (hence the record order) can change between
        # epochs, and the seed alone must decide the order.
        reader_num_threads=min(len(files), 8),
    )
    if dataset_factory is not None:
        return dataset_factory(files, options, schema)
    return tfxio.TFExampleRecord(file_pattern=files, schema=schema).TensorFlowDataset(options)


def _checked_labels(batch, num_classes: int) -> tf.Tensor:
    """The batch's label indices, failing clearly when one is outside [0, num_classes)."""
    labels = _label_vector(batch)
    check = tf.debugging.assert_equal(
        tf.reduce_all(tf.logical_and(labels >= 0, labels < num_classes)),
        True,
        message=_LABEL_MESSAGE.format(num_classes=num_classes),
    )
    with tf.control_dependencies([check]):
        return tf.identity(labels)


def tfxio_input_fn(
    file_patterns: str | Sequence[str],
    tf_transform_output,
    batch_size: int,
    height: int,
    width: int,
    num_classes: int,
    *,
    shuffle: bool,
    seed: int = 42,
    repeat: bool = False,
    shuffle_buffer: int = 1024,
    dataset_factory=None,
) -> tf.data.Dataset:
    """The same batches as :func:`input_fn`, read by TFX's own reader (TFXIO, batched ``parse_example``).

    ``dataset_factory`` is ``fn_args.data_accessor.tf_dataset_factory`` inside TFX (it knows the artifact's payload
    format); without it (tests, benches) the same TFXIO class TFX picks for tf.Examples reads the files.
    """
    files = _expand(file_patterns)
    _parse_spec(tf_transform_output)  # both features present, or a clear error
    schema = tf_transform_output.transformed_metadata.schema
    ds = _tfxio_batches(files, schema, batch_size, shuffle, seed, repeat, shuffle_buffer, dataset_factory)

    def decode(batch):
        images = tf.map_fn(
            lambda s: features.decode_transformed_image(s, height, width),
            tf.reshape(batch[features.TRANSFORMED_IMAGE_KEY], [-1]),
            fn_output_signature=tf.TensorSpec([height, width, 3], tf.uint8),
        )
        return images, _checked_labels(batch, num_classes)

    return ds.map(decode, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True).prefetch(tf.data.AUTOTUNE)


def text_tfxio_input_fn(
    file_patterns: str | Sequence[str],
    tf_transform_output,
    batch_size: int,
    num_classes: int,
    *,
    shuffle: bool,
    seed: int = 42,
    repeat: bool = False,
    shuffle_buffer: int = 1024,
    dataset_factory=None,
) -> tf.data.Dataset:
    """Task text: batches of ({input_word_ids, input_mask, input_type_ids}: int64 [B, seq_length], int64 [B]),
    read by TFXIO as for images (the per-example token checks in the files are not read)."""
    from tensorflow_metadata.proto.v0 import schema_pb2

    from graft.components.text_preprocessing import ENCODER_INPUT_KEYS, trim_to_longest

    files = _expand(file_patterns)
    keys = (*ENCODER_INPUT_KEYS, features.TRANSFORMED_LABEL_KEY)
    _parse_spec(tf_transform_output, keys)
    schema = tf_transform_output.transformed_metadata.schema
    wanted = schema_pb2.Schema()
    wanted.CopyFrom(schema)
    del wanted.feature[:]
    wanted.feature.extend(f for f in schema.feature if f.name in keys)
    ds = _tfxio_batches(files, wanted, batch_size, shuffle, seed, repeat, shuffle_buffer, dataset_factory)

    def split(batch):
        inputs = trim_to_longest({k: tf.cast(batch[k], tf.int64) for k in ENCODER_INPUT_KEYS})
        return inputs, _checked_labels(batch, num_classes)

    return ds.map(split, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True).prefetch(tf.data.AUTOTUNE)


def label_counts(file_patterns: str | Sequence[str], tf_transform_output, num_classes: int) -> np.ndarray:
    """Examples per class index in the given split (reads only the labels)."""
    spec = _parse_spec(tf_transform_output, (features.TRANSFORMED_LABEL_KEY,))
    ds = tf.data.TFRecordDataset(_expand(file_patterns), compression_type="GZIP", num_parallel_reads=4)
    ds = ds.batch(4096).map(lambda r: _label_vector(tf.io.parse_example(r, spec)))
    counts = np.zeros(num_classes, dtype=np.int64)
    for labels in ds.as_numpy_iterator():
        labels = labels[(labels >= 0) & (labels < num_classes)]
        counts += np.bincount(labels, minlength=num_classes)
    return counts


def class_weights(setting: str | dict, class_names: Sequence[str], counts: np.ndarray | None) -> dict | None:
    """``train.class_weights`` -> Keras ``class_weight`` {index: weight}, or None for 'none'.

    'balanced' is n / (C * n_c) (scikit-learn's formula); a map names classes, classes it omits weigh 1.0.
    """
    if setting == "none":
        return None
    if setting == "balanced":
        if counts is None or counts.sum() == 0:
            raise TrainerError("train.class_weights='balanced' needs label counts of a non-empty train split")
        empty = [class_names[i] for i, c in enumerate(counts) if c == 0]
        if empty:
            raise TrainerError(
                f"train.class_weights='balanced': class(es) {empty} have no train examples; remove them from "
                "data.classes or add examples"
            )
        n, c = float(counts.sum()), len(counts)
        return {i: n / (c * float(k)) for i, k in enumerate(counts)}
    assert isinstance(setting, dict)
    unknown = sorted(set(setting) - set(class_names))
    if unknown:
        raise ConfigError(
            f"config key 'train.class_weights': class(es) {unknown} are not in the label vocabulary "
            f"{list(class_names)}; use those names"
        )
    return {i: float(setting.get(name, 1.0)) for i, name in enumerate(class_names)}


class Reader:
    """``reader(files, batch_size, shuffle=, seed=, repeat=)`` -> dataset of (uint8 images, labels); ``kind`` says how."""

    def __init__(
        self, tf_transform_output, height: int, width: int, num_classes: int, dataset_factory=None, text=False
    ):
        self._args = (tf_transform_output, height, width, num_classes)
        self._factory = dataset_factory
        self._text = bool(text)
        self.kind = (
            "TFXIO (fn_args.data_accessor.tf_dataset_factory)"
            if dataset_factory is not None
            else "TFXIO (TFExampleRecord)"
        )

    def __call__(self, files, batch_size: int, *, shuffle: bool, seed: int, repeat: bool) -> tf.data.Dataset:
        tft_output, height, width, num_classes = self._args
        if self._text:
            return text_tfxio_input_fn(
                files,
                tft_output,
                batch_size,
                num_classes,
                shuffle=shuffle,
                seed=seed,
                repeat=repeat,
                dataset_factory=self._factory,
            )
        return tfxio_input_fn(
            files,
            tft_output,
            batch_size,
            height,
            width,
            num_classes,
            shuffle=shuffle,
            seed=seed,
            repeat=repeat,
            dataset_factory=self._factory,
        )


def make_reader(
    fn_args, tf_transform_output, height: int, width: int, num_classes: int, text: bool = False
) -> Reader:
    accessor = getattr(fn_args, "data_accessor", None)
    factory = getattr(accessor, "tf_dataset_factory", None) if accessor is not None else None
    return Reader(tf_transform_output, height, width, num_classes, factory, text=text)
