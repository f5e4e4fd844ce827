"""Evaluator hook for task text: TF Text's ops registered before TFMA loads the model (``module_path`` of the Evaluator).

Why: the exported text model's signatures hold the Transform graph, which tokenizes with TF Text ops (WordPiece,
normalisation). TensorFlow can load such a SavedModel only in a process that imported ``tensorflow_text``. TFX's
Evaluator executor imports nothing of Graft; given ``module_path='graft.components.text_eval'`` it imports this
module and calls :func:`custom_eval_shared_model` (TFX's documented hook, ``udf_utils.try_get_fn``) instead of
``tfma.default_eval_shared_model``: the same model, loaded after the ops are registered. This works in the
Kubeflow container too (the module ships in Graft's image; a dotted path, nothing is packaged).
"""

from __future__ import annotations

import graft  # noqa: F401  (legacy Keras before TensorFlow)
from graft.components.backbones import text_ops

MODULE_PATH = "graft.components.text_eval"


def custom_eval_shared_model(eval_saved_model_path, model_name, eval_config, **kwargs):
    """``tfma.default_eval_shared_model`` with TF Text's ops registered first (see the module docstring)."""
    import tensorflow_model_analysis as tfma

    text_ops.register_ops()
    return tfma.default_eval_shared_model(
        eval_saved_model_path=eval_saved_model_path, model_name=model_name, eval_config=eval_config, **kwargs
    )
