"""Graft: transfer learning on TensorFlow Extended.

Importing ``graft`` (any submodule) pins tf.keras to legacy Keras 2 (tf-keras) *before* TensorFlow can be
imported through us: TF 2.16 binds ``tf.keras`` to Keras 3 at first import, and ``hub.KerasLayer`` only works in
Keras 2 models. See ``graft.env``.
"""

from graft import env as _env

_env.force_legacy_keras()

__version__ = "0.1.0"
