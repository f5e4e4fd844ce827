"""Feature names and encodings shared by ExampleGen, Transform, Trainer, signatures and Evaluator.

One place, so that serving = training: every component imports these names instead of spelling strings.

Raw tf.Example (ExampleGen output, and what ``serving_tf_example`` accepts):
  image_bytes  bytes   the encoded image file exactly as stored (JPEG / PNG / BMP / GIF)
  label        bytes   the class name (absent at serving time: the schema's SERVING environment)
  source_path  bytes   path relative to the data root (absent at serving time)
  text         bytes   task text: the raw UTF-8 text instead of image_bytes (``source`` instead of source_path)

Transformed tf.Example (Transform output, Trainer input):
  image        bytes   ``tf.io.serialize_tensor`` of a uint8 [H, W, 3] tensor: H, W = the backbone's input size.
                       Kept uint8 (<= 1.2 x H*W*3 bytes per image on disk); the model converts to the backbone's
                       float range itself, identically in training and serving.
  label_index  int64   index of the label in the ``label_vocab`` vocabulary (train split only, kept as asset)
  input_word_ids, input_mask, input_type_ids   task text: int64 [seq_length] each (text_preprocessing.py),
                       plus the per-example checks num_cls, num_sep, num_tokens, num_unk, unk_rate
"""

from __future__ import annotations

IMAGE_KEY = "image_bytes"
# Text classification (task text): the raw text; the transformed encoder inputs are text_preprocessing's.
TEXT_KEY = "text"
LABEL_KEY = "label"
PATH_KEY = "source_path"

TRANSFORMED_IMAGE_KEY = "image"
TRANSFORMED_LABEL_KEY = "label_index"

# tft.vocabulary file name for the label (frequency order is not used: see preprocessing.py).
LABEL_VOCAB_NAME = "label_vocab"

# Split names used everywhere (ExampleGen output splits; Transform analyzes 'train' only).
TRAIN_SPLIT = "train"
VAL_SPLIT = "val"
TEST_SPLIT = "test"
SPLITS = (TRAIN_SPLIT, VAL_SPLIT, TEST_SPLIT)


def decode_transformed_image(serialized, height: int, width: int):
    """Transformed ``image`` feature (scalar string) -> uint8 [H, W, 3]. Works in tf.data maps and signatures."""
    import tensorflow as tf

    image = tf.io.parse_tensor(serialized, out_type=tf.uint8)
    return tf.ensure_shape(image, [height, width, 3])


def encode_transformed_image(image):
    """uint8 [H, W, 3] -> scalar string (the inverse of :func:`decode_transformed_image`)."""
    import tensorflow as tf

    return tf.io.serialize_tensor(tf.cast(image, tf.uint8))
