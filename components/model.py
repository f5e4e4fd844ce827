"""The classifier Graft trains: a TF Hub image feature-vector module (or, for task text, a TF Hub BERT-contract
text encoder: :func:`build_text_classifier`) with a new softmax head.

Layout (one ``tf.keras.Model``, the same graph in training and serving)::

    image uint8 [B, H, W, 3]            (the transformed ``image`` feature, see features.py)
      -> float32 in [0, 255]
      -> augmentation                    (training only: flip, rotation, zoom, contrast; train.augment)
      -> float32 in the backbone's value_range (TF Hub convention [0, 1])
      -> BackboneLayer (hub.KerasLayer)  -> feature vector [B, F]
      -> Dropout(train.dropout)
      -> Dense(num_classes, float32)     -> logits (float32 even under a mixed_float16 policy)

Which backbone variables train, and why it needs a mechanism
-------------------------------------------------------------
``hub.KerasLayer(trainable=True)`` registers *every* trainable variable of the module as a trainable weight, and
Keras's ``layer.trainable`` is all-or-nothing per layer: there is no way to say "the top 30 % of this module".
:class:`BackboneLayer` replaces the hub layer's weight registration instead of working around it in the training
loop:

1. **Depth order.** The module's ``trainable_variables`` list has no guaranteed order (a ``tf.Module`` sorts by
   attribute name, for instance). The order in which the module's ``__call__`` *reads* its variables does: a
   traced ``tf.function`` captures each variable at its first use, so the ``captured_inputs`` of the module's
   inference concrete function list the variables input-to-output, and that order is kept in the SavedModel.
   :func:`variables_by_depth` sorts the trainable variables by that position (variables the call never reads come
   first, i.e. count as shallowest; when nothing can be matched it falls back to the list order and says so).
2. **Top fraction.** :func:`top_fraction` takes the deepest ``ceil(fraction * n)`` of them (0 -> none, 1.0 -> all).
3. **Registration.** :class:`BackboneLayer` registers only those as *trainable* weights and every other module
   variable (the rest of the trainable ones, BatchNorm moving statistics) as *non-trainable* weights. So Keras's
   own switch does the rest: ``layer.trainable = False`` (phase 1) freezes the whole backbone, ``True`` (phase 2)
   exposes exactly the chosen variables to the optimizer, ``model.trainable_weights`` tells the truth, and plain
   ``fit()`` works unchanged under any distribution strategy and with a LossScaleOptimizer. No custom train_step.
4. **BatchNorm stays in inference mode.** ``hub.KerasLayer`` calls the module with ``training=True`` whenever the
   layer is trainable and the model trains, which makes BatchNorm normalise with batch statistics and update its
   moving averages: on a small dataset that wrecks the pre-trained statistics. :meth:`BackboneLayer.call` always
   calls the module with ``training=False`` (the module's inference graph: moving statistics used and never
   assigned; any dropout inside the module off). Gradients still flow to the chosen variables, BatchNorm's
   gamma/beta included when they are among them.

The head's loss is a from-logits cross-entropy on integer labels; with label smoothing it is computed on the
one-hot form (``SparseCategoricalCrossentropy`` has no smoothing), see :class:`SparseCrossentropyWithSmoothing`.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Sequence
from typing import Any, Protocol

import graft  # noqa: F401  (legacy tf.keras before TensorFlow is imported)

# isort: split
import tensorflow as tf
import tensorflow_hub as hub
from absl import logging

from graft.components import features

BACKBONE_LAYER_NAME = "backbone"
LOGITS_LAYER_NAME = "logits"
DROPOUT_LAYER_NAME = "dropout"


class BackboneSpec(Protocol):
    """What the model needs from ``backbones.BackboneInfo``."""

    path: str
    height: int
    width: int
    value_range: Sequence[float]


class ModelBuildError(ValueError):
    pass


# ---- which variables fine-tuning trains ------------------------------------------------------------------------
def _concrete_functions(module: Any) -> list:
    if not callable(module):
        return []
    call = module.__call__
    cfs = getattr(call, "concrete_functions", None)  # a function restored from a SavedModel
    if cfs is None and hasattr(call, "_list_all_concrete_functions_for_serialization"):  # a live tf.function
        cfs = call._list_all_concrete_functions_for_serialization()
    cfs = list(cfs or [])

    def is_training(cf) -> bool:
        args, kwargs = cf.structured_input_signature
        return any(a is True for a in [*args, *kwargs.values()])

    # The inference function first: its order is the one serving uses.
    return sorted(cfs, key=is_training)


def _handle_ids(variable: tf.Variable) -> list[int]:
    # A concrete function captures a variable's handle tensor, or (under a distribution strategy) the
    # distributed variable itself.
    ids = [id(variable)]
    for v in [variable, *getattr(variable, "values", ())]:  # distributed variables: every component
        with contextlib.suppress(AttributeError, ValueError):
            ids.append(id(v.handle))
    return ids


def variables_by_depth(module: Any) -> list[tf.Variable]:
    """The module's trainable variables ordered input -> output (see the module docstring, point 1)."""
    trainable = list(getattr(module, "trainable_variables", []) or [])
    position: dict[int, int] = {}
    by_handle = {h: i for i, v in enumerate(trainable) for h in _handle_ids(v)}
    rank = 0
    for cf in _concrete_functions(module):
        for t in cf.captured_inputs:
            i = by_handle.get(id(t))
            if i is not None and i not in position:
                position[i] = rank
                rank += 1
    if trainable and not position:
        logging.warning(
            "Graft: could not read the order in which the backbone uses its %d trainable variables (no traced "
            "__call__ captures them); fine-tuning falls back to the order of module.trainable_variables.",
            len(trainable),
        )
        return trainable
    # Never-read variables first (they get no gradient anyway), then by first use; stable for ties.
    order = sorted(range(len(trainable)), key=lambda i: (i in position, position.get(i, -1), i))
    return [trainable[i] for i in order]


def top_fraction(ordered: Sequence[tf.Variable], fraction: float) -> list[tf.Variable]:
    """The deepest ``ceil(fraction * n)`` variables of an input->output ordered list (0 -> [], 1 -> all)."""
    if not 0.0 <= fraction <= 1.0:
        raise ValueError(f"fine_tune_fraction {fraction} must be in [0, 1]")
    n = len(ordered)
    k = min(n, math.ceil(fraction * n - 1e-9)) if fraction > 0 else 0
    return list(ordered[n - k :]) if k else []


class _VariableSplit:
    """Plain holder (not trackable) of the depth order and the chosen variables."""

    def __init__(self, ordered: list, chosen: list):
        self.ordered = tuple(ordered)
        self.chosen = tuple(chosen)


class BackboneLayer(hub.KerasLayer):
    """``hub.KerasLayer`` that trains only the top ``fine_tune_fraction`` of the module, BatchNorm frozen.

    Construct it frozen (``trainable=False``, the default); set ``layer.trainable = True`` (and recompile) for the
    fine-tuning phase. :attr:`fine_tune_variables` are the variables phase 2 trains.
    """

    def __init__(self, handle, fine_tune_fraction: float = 0.0, trainable: bool = False, **kwargs):
        self._fine_tune_fraction = float(fine_tune_fraction)
        super().__init__(handle, trainable=trainable, **kwargs)

    def _setup_layer(self, trainable=False, **kwargs):
        # Replaces hub.KerasLayer._setup_layer (which registers every module variable as trainable).
        tf.keras.layers.Layer.__init__(self, trainable=trainable, **kwargs)
        ordered = variables_by_depth(self._func)
        chosen = top_fraction(ordered, self._fine_tune_fraction)
        chosen_ids = {id(v) for v in chosen}
        for v in chosen:
            self._add_existing_weight(v, trainable=True)
        for v in getattr(self._func, "variables", []) or []:
            if id(v) not in chosen_ids:
                self._add_existing_weight(v, trainable=False)
        for loss in getattr(self._func, "regularization_losses", []) or []:
            if not callable(loss):
                raise ValueError("the backbone module's regularization_losses must be callables")
            self.add_loss(self._call_loss_if_trainable(loss))
        # Not a list attribute: Keras would track a list of variables as extra (trainable) weights.
        self._split = _VariableSplit(ordered, chosen)

    @property
    def fine_tune_fraction(self) -> float:
        return self._fine_tune_fraction

    @property
    def fine_tune_variables(self) -> list[tf.Variable]:
        """Module variables that phase 2 trains, input -> output."""
        return list(self._split.chosen)

    @property
    def backbone_trainable_variables(self) -> list[tf.Variable]:
        """All trainable variables of the module, input -> output (whether or not fine-tuning trains them)."""
        return list(self._split.ordered)

    def call(self, inputs, training=None):
        # BatchNorm in inference mode whatever Keras is doing (module docstring, point 4).
        return super().call(inputs, training=False)

    def get_config(self):
        config = super().get_config()
        config["fine_tune_fraction"] = self._fine_tune_fraction
        return config


# ---- loss ------------------------------------------------------------------------------------------------------
@tf.keras.utils.register_keras_serializable(package="graft")
class SparseCrossentropyWithSmoothing(tf.keras.losses.Loss):
    """From-logits cross-entropy on integer labels with label smoothing (computed on the one-hot form).

    ``SparseCategoricalCrossentropy`` has no ``label_smoothing``; this is ``CategoricalCrossentropy(from_logits=
    True, label_smoothing=s)`` applied to ``one_hot(y_true)``, so datasets, metrics and class weights keep integer
    labels.
    """

    def __init__(
        self, num_classes: int, label_smoothing: float = 0.0, name: str = "sparse_xent_smooth", **kw
    ):
        super().__init__(name=name, **kw)
        self.num_classes = int(num_classes)
        self.label_smoothing = float(label_smoothing)

    def call(self, y_true, y_pred):
        labels = tf.cast(tf.reshape(y_true, [-1]), tf.int32)
        one_hot = tf.one_hot(labels, self.num_classes, dtype=y_pred.dtype)
        return tf.keras.losses.categorical_crossentropy(
            one_hot, y_pred, from_logits=True, label_smoothing=self.label_smoothing
        )

    def get_config(self):
        return {
            **super().get_config(),
            "num_classes": self.num_classes,
            "label_smoothing": self.label_smoothing,
        }


def make_loss(num_classes: int, label_smoothing: float = 0.0) -> tf.keras.losses.Loss:
    if label_smoothing > 0:
        return SparseCrossentropyWithSmoothing(num_classes, label_smoothing)
    return tf.keras.losses.SparseCategoricalCrossentropy(from_logits=True)


def make_metrics() -> list:
    # 'accuracy' so that History / TensorBoard read loss, accuracy, val_loss, val_accuracy.
    return [tf.keras.metrics.SparseCategoricalAccuracy(name="accuracy")]


# ---- the model -------------------------------------------------------------------------------------------------
def build_augmentation(augment, seed: int) -> tf.keras.Sequential | None:
    """Random layers on float32 pixels in [0, 255] (RandomContrast clips to that range); None when disabled."""
    if not augment.enabled:
        return None
    # float32 whatever the global policy: pixel ops, and some (AdjustContrastv2) have no float16 CPU kernel.
    kw = {"dtype": "float32"}
    layers = []
    if augment.horizontal_flip:
        layers.append(tf.keras.layers.RandomFlip("horizontal", seed=seed, **kw))
    if augment.rotation > 0:
        layers.append(
            tf.keras.layers.RandomRotation(augment.rotation, fill_mode="reflect", seed=seed + 1, **kw)
        )
    if augment.zoom > 0:
        layers.append(tf.keras.layers.RandomZoom(augment.zoom, fill_mode="reflect", seed=seed + 2, **kw))
    if augment.contrast > 0:
        layers.append(tf.keras.layers.RandomContrast(augment.contrast, seed=seed + 3, **kw))
    if not layers:
        return None
    return tf.keras.Sequential(layers, name="augment")


def _check_classes(num_classes: int) -> None:
    if num_classes < 2:
        raise ModelBuildError(
            f"the label vocabulary has {num_classes} class(es); a classifier needs at least 2 (check the data's "
            "labels and the Transform output's 'label_vocab')"
        )


def _head(x, train_cfg, num_classes: int, seed: int):
    """Dropout -> Dense logits (float32 whatever the policy), on the backbone's feature vector."""
    x = tf.keras.layers.Dropout(train_cfg.dropout, seed=seed + 4, name=DROPOUT_LAYER_NAME)(x)
    return tf.keras.layers.Dense(num_classes, dtype="float32", name=LOGITS_LAYER_NAME)(x)


def build_classifier(
    backbone: BackboneSpec,
    num_classes: int,
    train_cfg,
    *,
    fine_tune_fraction: float | None = None,
    backbone_handle: Any = None,
) -> tf.keras.Model:
    """The classifier of the module docstring, backbone frozen (phase 1). Build it inside the strategy scope.

    ``train_cfg`` is ``GraftConfig.train``. ``backbone_handle`` overrides ``backbone.path`` (tests pass a loaded
    module). Layers take the global mixed-precision policy, except the backbone (a SavedModel computes in the
    dtype it was exported with), the pixel layers and the logits, which are float32.
    """
    _check_classes(num_classes)
    lo, hi = (float(v) for v in backbone.value_range)
    if not hi > lo:
        raise ModelBuildError(
            f"backbone value_range {backbone.value_range!r} is empty: expected (lo, hi), lo < hi"
        )
    fraction = train_cfg.fine_tune_fraction if fine_tune_fraction is None else fine_tune_fraction
    seed = int(train_cfg.seed)

    inputs = tf.keras.Input(
        shape=(backbone.height, backbone.width, 3), dtype=tf.uint8, name=features.TRANSFORMED_IMAGE_KEY
    )
    x = tf.keras.layers.Rescaling(1.0, dtype="float32", name="to_float")(inputs)
    augment = build_augmentation(train_cfg.augment, seed)
    if augment is not None:
        x = augment(x)
    x = tf.keras.layers.Rescaling((hi - lo) / 255.0, offset=lo, dtype="float32", name="to_backbone_range")(x)
    layer = BackboneLayer(
        backbone_handle if backbone_handle is not None else backbone.path,
        fine_tune_fraction=fraction,
        trainable=False,
        dtype="float32",
        name=BACKBONE_LAYER_NAME,
    )
    x = layer(x)
    if x.shape.rank != 2:
        raise ModelBuildError(
            f"backbone {getattr(backbone, 'handle', backbone.path)!r} returns shape {x.shape}, not a feature vector "
            "[batch, features]: use an image feature-vector module (not a classifier or a spatial feature map)"
        )
    logits = _head(x, train_cfg, num_classes, seed)
    return tf.keras.Model(inputs, logits, name="graft_classifier")


def build_text_classifier(
    backbone,
    num_classes: int,
    train_cfg,
    *,
    fine_tune_fraction: float | None = None,
    backbone_handle: Any = None,
) -> tf.keras.Model:
    """Task text: the encoder inputs -> TF Hub BERT-contract encoder -> sentence embedding -> the same head.

    ``backbone`` is a TextBackboneInfo (or its dict): ``path`` (the encoder), ``seq_length``, ``output_key`` (the
    sentence embedding the module's card names: ``mean_pooled_output`` for all-MiniLM-L6-v2, trained with mean
    pooling over the mask; ``pooled_output`` for TF Hub BERT encoders). Inputs are the transformed int64
    ``input_word_ids`` / ``input_mask`` / ``input_type_ids`` [B, seq_length], cast to the encoder's int32. No
    augmentation. The same BackboneLayer (top ``fine_tune_fraction`` of the encoder's variables in depth order,
    module called in inference mode: its dropout off), Dropout and float32 logits as images.
    """
    from graft.components.text_preprocessing import ENCODER_INPUT_KEYS

    _check_classes(num_classes)
    b = backbone if isinstance(backbone, dict) else backbone.to_dict()
    fraction = train_cfg.fine_tune_fraction if fine_tune_fraction is None else fine_tune_fraction
    seed = int(train_cfg.seed)
    # Any length up to seq_length: batches arrive cut to their longest row (text_preprocessing.trim_to_longest).
    inputs = {k: tf.keras.Input(shape=(None,), dtype=tf.int64, name=k) for k in ENCODER_INPUT_KEYS}
    encoder_inputs = {k: tf.cast(v, tf.int32) for k, v in inputs.items()}
    layer = BackboneLayer(
        backbone_handle if backbone_handle is not None else b["path"],
        fine_tune_fraction=fraction,
        trainable=False,
        output_key=b.get("output_key") or "pooled_output",
        dtype="float32",
        name=BACKBONE_LAYER_NAME,
    )
    x = layer(encoder_inputs)
    if x.shape.rank != 2:
        raise ModelBuildError(
            f"text backbone {b.get('handle')!r} output {b.get('output_key')!r} has shape {x.shape}, not a sentence "
            "embedding [batch, features]"
        )
    logits = _head(x, train_cfg, num_classes, seed)
    return tf.keras.Model(inputs, logits, name="graft_text_classifier")


def backbone_layer(model: tf.keras.Model) -> BackboneLayer:
    return model.get_layer(BACKBONE_LAYER_NAME)


def set_phase(model: tf.keras.Model, phase: int) -> None:
    """Phase 1: backbone frozen. Phase 2: the backbone's chosen top fraction trains. Recompile afterwards."""
    if phase not in (1, 2):
        raise ValueError(f"phase must be 1 or 2, got {phase}")
    backbone_layer(model).trainable = phase == 2


def compile_for_phase(
    model: tf.keras.Model, phase: int, learning_rate, num_classes: int, label_smoothing: float = 0.0
) -> None:
    """Set ``phase`` (:func:`set_phase`) and compile with a fresh Adam, Graft's loss and metrics: a whole model
    trained outside the Trainer's loop the way the Trainer trains it (benches, notebooks)."""
    set_phase(model, phase)
    compile_model(model, learning_rate, num_classes, label_smoothing)


def compile_model(
    model: tf.keras.Model, learning_rate, num_classes: int, label_smoothing: float = 0.0
) -> None:
    """A fresh Adam (a float or a schedule), Graft's loss and metrics: how every phase is compiled."""
    model.compile(
        optimizer=tf.keras.optimizers.Adam(learning_rate),
        loss=make_loss(num_classes, label_smoothing),
        metrics=make_metrics(),
    )


def head_variables(model: tf.keras.Model) -> list[tf.Variable]:
    return list(model.get_layer(LOGITS_LAYER_NAME).trainable_weights)
