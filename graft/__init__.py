"""Graft: transfer learning on TensorFlow Extended.

Importing ``graft`` (any submodule) pins tf.keras to legacy Keras 2 (tf-keras) *before* TensorFlow can be
imported through us: TF 2.16 binds ``tf.keras`` to Keras 3 at first import, and ``hub.KerasLayer`` only works in
Keras 2 models. See ``graft.env``.
"""

from graft import env as _env

_env.force_legacy_keras()

__version__ = "0.1.0"


def __getattr__(name: str):
    """``graft.TFLiteModels``: the one name the root resolves from a higher layer, lazily, by string.

    KFP v2 containers import a custom artifact type by its schema title, and TFX's compiler allows only
    ``<namespace>.<Name>`` there (one dot), so the edge export's artifact type is titled ``graft.TFLiteModels`` and
    must be reachable as an attribute of this package. Nothing is imported until a container asks for it.
    """
    if name == "TFLiteModels":
        import importlib

        return importlib.import_module("graft.components.edge.component").TFLiteModels
    raise AttributeError(f"module 'graft' has no attribute {name!r}")
