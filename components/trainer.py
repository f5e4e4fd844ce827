"""TFX Trainer module: ``run_fn(fn_args)`` trains the classifier of ``model.py`` in two phases and exports it.

Given to TFX by dotted path (``run_fn='graft.components.trainer.run_fn'``), with
``custom_config={"graft_config": GraftConfig JSON, "backbone": BackboneInfo JSON}``, the transformed train split in
``fn_args.train_files`` and the 'val' split in ``fn_args.eval_files`` (the test split belongs to the Evaluator).

1. Input through TFX's own reader, TFXIO (``trainer_input.py``; ``fn_args.data_accessor.tf_dataset_factory``).
2. The backbone's input range: the module's declaration, else ``backbone.value_range``, else TF Hub's [0, 1]
   (``backbones.effective_value_range``). One batch goes through the backbone before anything trains; non-finite or
   degenerate features fail the run with the range used and where it came from (``feature_cache.sanity_check``).
3. Phase 1 on cached features (``feature_cache.py``): train and val go through the frozen backbone once and the
   head is fitted on the vectors to convergence. Phase 2 fine-tunes the top of the backbone within
   ``train.max_minutes`` and is kept only if it beats phase 1 on val (``training_loop.py``): on Graft's own modules
   on cached activations below the fine-tuned layers (``cut_cache.py``; the same single forward pass also gives
   phase 1's features), else on augmented images.
4. ``training_history.json`` (per epoch: phase, loss, accuracy, val_loss, val_accuracy, learning_rate; per phase:
   what it ran on, epochs, best epoch, seconds; the feature cache; why phase 2 was skipped; the selected weights)
   is written to ``model_run_dir`` and next to the exported model (the Model artifact's root).
5. Export: one SavedModel, uint8 -> backbone -> head, with the Transform graph inside (``signatures.py``).

Task text (a TextBackboneInfo in ``custom_config["backbone"]``): the same steps on token ids -- no value range,
``model.build_text_classifier`` (encoder -> sentence embedding -> head), phase 1 on the cached embeddings (one
forward pass of the encoder), phase 2 fine-tuning the encoder's top blocks; no augmentation exists for text; the
export's ``serving_default`` takes raw strings. TF Text's ops are registered first (the Transform graph uses them).

Devices: MirroredStrategy when more than one GPU is visible. Mixed precision per ``train.mixed_precision``
(:func:`choose_device`): 'auto' is float32 on CPU, and on a GPU too unless the backbone itself computes in
float16/bfloat16; the log and the history name each part's dtype. ``train.batch_size`` is the global batch.

AutoGraph: TF 2.16's AutoGraph skip-list names ``keras`` but not ``tf_keras``, so the first ``fit()`` of every
process converted tf-keras's own training loop (train_step, compiled loss and metrics, optimizer) source to source.
:func:`disable_autograph_for_tf_keras` adds ``tf_keras`` and ``tensorflow_hub`` to the do-not-convert rules before
training, the rule Keras 2 always had when it shipped as ``keras`` (its code is written for graph mode; it never
relied on conversion).
"""

from __future__ import annotations

import contextlib
import json
import os
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import graft  # noqa: F401  (legacy tf.keras before TensorFlow is imported)

# isort: split
import tensorflow as tf
from absl import logging

from graft.components import feature_cache, features, training_loop
from graft.components import model as model_lib
from graft.components.backbone_config import BackboneConfig
from graft.components.trainer_config import TrainConfig
from graft.components.trainer_input import (  # noqa: F401  (re-exported: the Trainer's input API)
    TrainerError,
    class_weights,
    input_fn,
    label_counts,
    make_reader,
    tfxio_input_fn,
)
from graft.components.training_loop import train_two_phases  # noqa: F401  (re-exported)
from graft.settings import section_from_json

HISTORY_FILE = "training_history.json"
NO_AUTOGRAPH_MODULES = ("tf_keras", "tensorflow_hub")


# ---- AutoGraph -------------------------------------------------------------------------------------------------
def disable_autograph_for_tf_keras() -> bool:
    """Add DoNotConvert rules for tf_keras and tensorflow_hub to AutoGraph (idempotent). False if impossible."""
    try:
        from tensorflow.python.autograph.core import config as ag_config
    except ImportError:  # pragma: no cover (TF internals moved)
        logging.warning(
            "Graft: AutoGraph config not found; tf-keras's training loop will be converted (slower)"
        )
        return False
    present = {getattr(r, "_prefix", None) for r in ag_config.CONVERSION_RULES}
    new = tuple(ag_config.DoNotConvert(m) for m in NO_AUTOGRAPH_MODULES if m not in present)
    if new:
        ag_config.CONVERSION_RULES = new + tuple(ag_config.CONVERSION_RULES)
    return True


def autograph_rules_active() -> bool:
    from tensorflow.python.autograph.core import config as ag_config

    present = {getattr(r, "_prefix", None) for r in ag_config.CONVERSION_RULES}
    return all(m in present for m in NO_AUTOGRAPH_MODULES)


# ---- devices ---------------------------------------------------------------------------------------------------
@dataclass
class DeviceSetup:
    strategy: Any
    mixed_precision: bool
    description: str


HALF_DTYPES = ("float16", "bfloat16")


def module_compute_dtype(module) -> str:
    """The float dtype the backbone's variables hold (what it computes in): 'float32', 'float16' or 'bfloat16'."""
    dtypes = {v.dtype.name for v in getattr(module, "variables", []) or [] if v.dtype.is_floating}
    half = sorted(dtypes & set(HALF_DTYPES))
    return half[0] if half else "float32"


def choose_device(mixed_precision: str = "auto", backbone_dtype: str = "float32") -> DeviceSetup:
    """MirroredStrategy for >1 GPU, default strategy otherwise; the dtype policy per ``train.mixed_precision``.

    'auto' turns mixed_float16 on only where it does work: a GPU and a backbone that computes in float16/bfloat16.
    With a float32 backbone (Graft's offline modules, most TF Hub modules) the only layer that could take the
    policy is the head's Dropout, so 'auto' stays float32 rather than add a loss scaler and casts for nothing.
    'on' forces the policy (head in float16, logits float32, backbone in its own dtype); 'off' never.
    The description names each part's dtype. No GPU speed-up has been measured here (no GPU on these machines).
    """
    gpus = tf.config.list_physical_devices("GPU")
    half_backbone = backbone_dtype in HALF_DTYPES
    use_mp = mixed_precision == "on" or (mixed_precision == "auto" and bool(gpus) and half_backbone)
    if len(gpus) > 1:
        strategy = tf.distribute.MirroredStrategy()
        where = f"MirroredStrategy over {strategy.num_replicas_in_sync} GPUs"
    elif gpus:
        strategy = tf.distribute.get_strategy()
        where = "1 GPU"
    else:
        strategy = tf.distribute.get_strategy()
        where = "CPU (no GPU visible to TensorFlow)"
    if use_mp:
        precision = (
            f"mixed_float16: backbone {backbone_dtype} (its SavedModel), dropout float16, logits float32"
        )
    else:
        why = {
            "off": "train.mixed_precision is 'off'",
            "auto": "auto: no GPU" if not gpus else f"auto: the backbone computes in {backbone_dtype}",
        }.get(mixed_precision, "")
        precision = f"float32: backbone {backbone_dtype}, head float32 (mixed precision off, {why})"
    if use_mp and not gpus:
        logging.warning(
            "Graft: train.mixed_precision is 'on' without a GPU: float16 on CPU is slow, not faster"
        )
    return DeviceSetup(strategy, use_mp, f"{where}, {precision}")


@contextlib.contextmanager
def precision_policy(mixed: bool) -> Iterator[None]:
    """Set the global Keras dtype policy for the model built inside; restore the previous one afterwards."""
    previous = tf.keras.mixed_precision.global_policy()
    tf.keras.mixed_precision.set_global_policy("mixed_float16" if mixed else "float32")
    try:
        yield
    finally:
        tf.keras.mixed_precision.set_global_policy(previous)


# ---- history ---------------------------------------------------------------------------------------------------
def write_history(history: dict, *dirs: str) -> list[str]:
    written = []
    text = json.dumps(history, indent=2, sort_keys=True, default=float)
    for d in dirs:
        if not d:
            continue
        tf.io.gfile.makedirs(d)
        path = os.path.join(d, HISTORY_FILE)
        with tf.io.gfile.GFile(path, "w") as f:
            f.write(text)
        written.append(path)
    return written


# ---- TFX entry point -------------------------------------------------------------------------------------------
def _backbone_from_json(text: str):
    from graft.components.backbones import BackboneInfo

    if json.loads(text).get("task") == "text":
        from graft.components.backbones.text_resolve import TextBackboneInfo

        return TextBackboneInfo.from_json(text)
    return BackboneInfo.from_json(text)


def _custom_config(fn_args) -> tuple[TrainConfig, BackboneConfig, Any]:
    cc = fn_args.custom_config or {}
    missing = [k for k in ("graft_config", "backbone") if k not in cc]
    if missing:
        raise TrainerError(
            f"Trainer custom_config lacks {missing}: the DAG must pass custom_config={{'graft_config': "
            "cfg.to_json(), 'backbone': backbone_info.to_json()}"
        )
    return (
        section_from_json(TrainConfig, cc["graft_config"], "train"),
        section_from_json(BackboneConfig, cc["graft_config"], "backbone"),
        _backbone_from_json(cc["backbone"]),
    )


def _plan_cut(model, backbone, train_cfg, examples: int):
    """(cut_cache.Cut, None) when phase 2 can run on cached activations, else (None, why not / None)."""
    if train_cfg.fine_tune_fraction <= 0 or train_cfg.phase2_epochs <= 0:
        return None, None
    from graft.components import cut_cache
    from graft.components.backbones import metadata

    meta = metadata.read_module_metadata(backbone.path) if backbone.source == "offline" else None
    cut, why = cut_cache.plan(model, meta, backbone.height, backbone.width)
    if cut is None:
        logging.info("Graft Trainer: phase 2 on images: %s", why)
        return None, why
    need = cut_cache.activation_bytes(cut, examples)
    if need > train_cfg.phase2_cache_mb * 2**20:
        why = (
            f"the activations below {cut.layer} of {examples} train + val images need {need / 2**20:.0f} MiB, "
            f"over train.phase2_cache_mb={train_cfg.phase2_cache_mb}: phase 2 on images"
        )
        logging.info("Graft Trainer: %s", why)
        return None, why
    return cut, None


def run_fn(fn_args) -> None:
    """TFX Trainer entry point (``run_fn='graft.components.trainer.run_fn'``)."""
    import tensorflow_transform as tft

    from graft import env
    from graft.components import backbones, signatures

    started = time.monotonic()
    env.assert_legacy_keras()
    disable_autograph_for_tf_keras()
    train_cfg, backbone_cfg, backbone = _custom_config(fn_args)
    deadline = started + 60.0 * train_cfg.max_minutes if train_cfg.max_minutes else None
    text = getattr(backbone, "task", "image") == "text"
    if text:  # the Transform graph tokenizes with TF Text ops: registered before it is loaded
        from graft.components.backbones import text_ops

        text_ops.register_ops()
        value_range, range_source = None, "text encoder (token ids)"
        height = width = 0
    else:
        value_range, range_source = backbones.effective_value_range(backbone, backbone_cfg.value_range)
        backbone.value_range = value_range
        height, width = backbone.height, backbone.width
    tf.keras.utils.set_random_seed(train_cfg.seed)
    tf_transform_output = tft.TFTransformOutput(fn_args.transform_output)
    class_names = signatures.class_names(tf_transform_output)
    num_classes = len(class_names)
    build = model_lib.build_text_classifier if text else model_lib.build_classifier

    reader = make_reader(fn_args, tf_transform_output, height, width, num_classes, text=text)

    def dataset(files, training: bool, shuffle: bool | None = None):
        return reader(
            files,
            train_cfg.batch_size,
            shuffle=training if shuffle is None else shuffle,
            seed=train_cfg.seed,
            repeat=training and train_cfg.steps_per_epoch is not None,
        )

    val_ds = dataset(fn_args.eval_files, False)
    first = {}
    for name, ds in (
        (features.TRAIN_SPLIT, dataset(fn_args.train_files, False)),
        (features.VAL_SPLIT, val_ds),
    ):
        first[name] = next(iter(ds.take(1)), None)
        if first[name] is None:
            raise TrainerError(
                f"the transformed '{name}' split has no examples: training needs train examples and early stopping "
                f"needs val examples (check data.{name}_fraction and the data report)"
            )
    counts = label_counts(fn_args.train_files, tf_transform_output, num_classes)  # labels only: cheap
    weights = class_weights(train_cfg.class_weights, class_names, counts)
    train_ds = dataset(fn_args.train_files, True)
    if train_cfg.steps_per_epoch is None:  # a sized epoch (tf-keras handles a stream of unknown length worse)
        batches = -(-int(counts.sum()) // train_cfg.batch_size)
        train_ds = train_ds.apply(tf.data.experimental.assert_cardinality(batches))

    model = build(backbone, num_classes, train_cfg)
    device = choose_device(
        train_cfg.mixed_precision, module_compute_dtype(model_lib.backbone_layer(model).resolved_object)
    )
    if device.mixed_precision or device.strategy is not tf.distribute.get_strategy():
        with precision_policy(device.mixed_precision), device.strategy.scope():
            model = build(backbone, num_classes, train_cfg)
    logging.info(
        "Graft Trainer: %s; backbone %s (input range %s, %s); %d classes",
        device.description,
        backbone.handle,
        list(value_range) if value_range else "-",
        range_source,
        num_classes,
    )
    # One batch through the backbone before anything trains: a wrong input range fails here, with its reason.
    extractor = feature_cache.feature_extractor(model)
    check = feature_cache.sanity_check(
        extractor(first[features.TRAIN_SPLIT][0], training=False).numpy(),
        value_range=value_range,
        range_source=range_source,
        handle=backbone.handle,
        text=text,
    )
    cached, estimate, n_train = None, None, int(counts.sum())
    cut, cut_note = None, None
    if train_cfg.cache_features and not text:
        n_val = int(label_counts(fn_args.eval_files, tf_transform_output, num_classes).sum())
        with device.strategy.scope():
            cut, cut_note = _plan_cut(model, backbone, train_cfg, n_train + n_val)
    if cut is not None:
        from graft.components import cut_cache

        train_a = cut_cache.extract(cut, dataset(fn_args.train_files, False))
        val_a = cut_cache.extract(cut, val_ds)
        train_f, val_f = cut_cache.features(cut, train_a), cut_cache.features(cut, val_a)
        cached = (train_f, val_f)
        estimate = cut_cache.epoch_estimate(train_f, val_f)
        cut_note = {**cut.record(), "bytes": int(train_a.x.nbytes + val_a.x.nbytes)}
        cut = (cut, train_a, val_a)
    elif train_cfg.cache_features:
        train_f = feature_cache.extract(extractor, dataset(fn_args.train_files, False))
        val_f = feature_cache.extract(extractor, val_ds)
        cached = (train_f, val_f)
        estimate = training_loop.phase2_epoch_estimate(train_f, val_f, train_cfg)
        logging.info(
            "Graft Trainer: cached %d train + %d val feature vectors in %.1f s",
            train_f.count,
            val_f.count,
            train_f.seconds + val_f.seconds,
        )
    with precision_policy(device.mixed_precision):
        history = training_loop.train_two_phases(
            model,
            train_ds,
            val_ds,
            train_cfg,
            num_classes,
            class_weight=weights,
            tensorboard_dir=fn_args.model_run_dir,
            strategy=device.strategy,
            cached=cached,
            deadline=deadline,
            phase2_epoch_estimate=estimate,
            n_train=n_train,
            text=text,
            cut=cut,
        )
    if cached is not None:
        history["feature_cache"] = {
            "train_examples": cached[0].count,
            "val_examples": cached[1].count,
            "seconds": round(cached[0].seconds + cached[1].seconds, 3),
            "phase2_epoch_estimate_seconds": round(estimate, 1),
        }
    if cut_note is not None:
        history["phase2_cache"] = cut_note if isinstance(cut_note, dict) else {"not_used": cut_note}
    history.update(
        {
            "device": device.description,
            "backbone": backbone.handle,
            "task": "text" if text else "image",
            "value_range": list(value_range) if value_range else None,
            "value_range_source": range_source,
            "sanity_check": check,
            "input_reader": reader.kind,
            "num_classes": num_classes,
            "class_names": class_names,
            "fine_tune_fraction": train_cfg.fine_tune_fraction,
            "max_minutes": train_cfg.max_minutes,
            "autograph_tf_keras_disabled": autograph_rules_active(),
        }
    )
    signatures.export_model(model, tf_transform_output, fn_args.serving_model_dir, height, width, text=text)
    history["trainer_seconds"] = round(time.monotonic() - started, 3)
    written = write_history(
        history, fn_args.model_run_dir, os.path.dirname(fn_args.serving_model_dir.rstrip("/"))
    )
    logging.info("Graft Trainer: model exported to %s; history in %s", fn_args.serving_model_dir, written)
