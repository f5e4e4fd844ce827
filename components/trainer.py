"""TFX Trainer module: ``run_fn(fn_args)`` trains the classifier of ``model.py`` in two phases and exports it.

Given to TFX by dotted path (``run_fn='graft.components.trainer.run_fn'``), with
``custom_config={"graft_config": GraftConfig JSON, "backbone": BackboneInfo JSON}``, the transformed train split in
``fn_args.train_files`` and the 'val' split in ``fn_args.eval_files`` (the test split belongs to the Evaluator).

1. Phase 1, feature extraction: backbone frozen, Adam at ``train.phase1_learning_rate``, up to
   ``train.phase1_epochs`` epochs, early stopping on val loss, best weights restored.
2. Phase 2, fine-tuning (skipped when ``train.fine_tune_fraction`` is 0 or ``train.phase2_epochs`` is 0): the top
   fraction of the backbone's variables trains (``model.py`` says how they are chosen), BatchNorm stays in inference
   mode, a fresh Adam at ``train.phase2_learning_rate``, early stopping, best weights restored. If no phase-2 epoch
   beats phase 1's best val loss, phase 1's weights are kept. Epochs are numbered on across phases, so TensorBoard
   (``fn_args.model_run_dir``) shows one curve per metric, with ``phase`` and ``learning_rate`` logged beside them.
3. ``training_history.json`` (per epoch: phase, loss, accuracy, val_loss, val_accuracy, learning_rate; per phase:
   epochs run, best epoch, seconds; the selected weights) is written to ``model_run_dir`` and next to the exported
   model (the Model artifact's root, beside ``Format-Serving``).
4. Export: a SavedModel with the Transform graph inside (``signatures.py``).

Devices: MirroredStrategy when more than one GPU is visible; with a GPU (or ``train.mixed_precision: on``) the
``mixed_float16`` policy for the layers Graft owns, logits in float32; plain CPU otherwise. The log says which.
``train.batch_size`` is the global batch (split across replicas), so results do not depend on the GPU count.

AutoGraph: TF 2.16's AutoGraph skip-list names ``keras`` but not ``tf_keras``, so the first ``fit()`` of every
process converted tf-keras's own training loop (train_step, compiled loss and metrics, optimizer) source to source.
:func:`disable_autograph_for_tf_keras` adds ``tf_keras`` and ``tensorflow_hub`` to the do-not-convert rules before
training, the rule Keras 2 always had when it shipped as ``keras`` (its code is written for graph mode; it never
relied on conversion).
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import graft  # noqa: F401  (legacy tf.keras before TensorFlow is imported)

# isort: split
import numpy as np
import tensorflow as tf
from absl import logging

from graft.components import features
from graft.components import model as model_lib
from graft.components.trainer_config import TrainConfig
from graft.errors import ConfigError
from graft.settings import section_from_json

HISTORY_FILE = "training_history.json"
NO_AUTOGRAPH_MODULES = ("tf_keras", "tensorflow_hub")


class TrainerError(RuntimeError):
    """A Trainer input that cannot work; the message says which and how to fix it."""


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


def choose_device(mixed_precision: str = "auto") -> DeviceSetup:
    """MirroredStrategy for >1 GPU, default strategy otherwise; mixed precision per ``train.mixed_precision``."""
    gpus = tf.config.list_physical_devices("GPU")
    use_mp = mixed_precision == "on" or (mixed_precision == "auto" and bool(gpus))
    if len(gpus) > 1:
        strategy = tf.distribute.MirroredStrategy()
        where = f"MirroredStrategy over {strategy.num_replicas_in_sync} GPUs"
    elif gpus:
        strategy = tf.distribute.get_strategy()
        where = "1 GPU"
    else:
        strategy = tf.distribute.get_strategy()
        where = "CPU (no GPU visible to TensorFlow)"
    precision = (
        "mixed_float16 (float32 logits; the backbone computes in its SavedModel's dtype)"
        if use_mp
        else "float32"
    )
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


# ---- input -----------------------------------------------------------------------------------------------------
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


def _parse_spec(tf_transform_output) -> dict:
    """The transformed feature spec of a TFTransformOutput (or that spec itself, as a mapping)."""
    if isinstance(tf_transform_output, dict):
        spec = tf_transform_output
    else:
        spec = tf_transform_output.transformed_feature_spec()
    missing = [k for k in (features.TRANSFORMED_IMAGE_KEY, features.TRANSFORMED_LABEL_KEY) if k not in spec]
    if missing:
        raise TrainerError(
            f"the Transform output has no feature(s) {missing} (it has {sorted(spec)}): the preprocessing_fn must "
            f"emit '{features.TRANSFORMED_IMAGE_KEY}' and '{features.TRANSFORMED_LABEL_KEY}' (components/features.py)"
        )
    return {k: spec[k] for k in (features.TRANSFORMED_IMAGE_KEY, features.TRANSFORMED_LABEL_KEY)}


def _label_vector(parsed) -> tf.Tensor:
    return tf.reshape(tf.cast(parsed[features.TRANSFORMED_LABEL_KEY], tf.int64), [-1])


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
            message=(
                f"transformed example has a label_index outside [0, {num_classes}): its label is not in the "
                "train split's label vocabulary (check the data validation gate and data.classes)"
            ),
        )
        with tf.control_dependencies([check]):
            return image, tf.identity(label)

    ds = ds.map(parse, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    ds = ds.batch(batch_size)
    return ds.prefetch(tf.data.AUTOTUNE)


def label_counts(file_patterns: str | Sequence[str], tf_transform_output, num_classes: int) -> np.ndarray:
    """Examples per class index in the given split (reads only the labels)."""
    spec = {features.TRANSFORMED_LABEL_KEY: _parse_spec(tf_transform_output)[features.TRANSFORMED_LABEL_KEY]}
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


# ---- training --------------------------------------------------------------------------------------------------
class _PhaseLogger(tf.keras.callbacks.Callback):
    """Adds phase and learning rate to each epoch's logs (History and TensorBoard see them)."""

    def __init__(self, phase: int):
        super().__init__()
        self.phase = phase

    def on_epoch_end(self, epoch, logs=None):
        if logs is not None:
            logs["phase"] = float(self.phase)
            logs["learning_rate"] = float(tf.keras.backend.get_value(self.model.optimizer.learning_rate))


def compile_for_phase(
    model, phase: int, learning_rate: float, num_classes: int, label_smoothing: float
) -> None:
    model_lib.set_phase(model, phase)
    model.compile(
        optimizer=tf.keras.optimizers.Adam(learning_rate),
        loss=model_lib.make_loss(num_classes, label_smoothing),
        metrics=model_lib.make_metrics(),
    )


@dataclass
class PhaseResult:
    phase: int
    epochs: list[dict]
    best_epoch: int | None
    best_val_loss: float
    stopped_early: bool
    seconds: float
    trainable_backbone_variables: int
    learning_rate: float


def _fit_phase(
    model,
    phase: int,
    train_ds,
    val_ds,
    *,
    epochs: int,
    initial_epoch: int,
    learning_rate: float,
    train_cfg,
    num_classes: int,
    class_weight: dict | None,
    tensorboard_dir: str | None,
    steps_per_epoch: int | None,
    strategy,
) -> PhaseResult:
    with strategy.scope():
        compile_for_phase(model, phase, learning_rate, num_classes, train_cfg.label_smoothing)
    n_backbone = len(model_lib.backbone_layer(model).trainable_weights)
    early = tf.keras.callbacks.EarlyStopping(
        monitor="val_loss", patience=train_cfg.early_stopping_patience, restore_best_weights=True
    )
    callbacks: list = [_PhaseLogger(phase), early]
    if tensorboard_dir:
        callbacks.append(
            tf.keras.callbacks.TensorBoard(
                log_dir=tensorboard_dir, update_freq="epoch", write_graph=False, profile_batch=0
            )
        )
    logging.info(
        "Graft Trainer: phase %d: %d backbone variable(s) trainable, lr %g, up to %d epoch(s)",
        phase,
        n_backbone,
        learning_rate,
        epochs,
    )
    start = time.monotonic()
    hist = model.fit(
        train_ds,
        validation_data=val_ds,
        epochs=initial_epoch + epochs,
        initial_epoch=initial_epoch,
        steps_per_epoch=steps_per_epoch,
        class_weight=class_weight,
        callbacks=callbacks,
        verbose=2,
    )
    seconds = time.monotonic() - start
    rows = []
    for i, epoch in enumerate(hist.epoch):
        row = {"phase": phase, "epoch": int(epoch)}
        for k, values in hist.history.items():
            if k != "phase":
                row[k] = float(values[i])
        rows.append(row)
    val = [r.get("val_loss", math.inf) for r in rows]
    best = int(np.argmin(val)) if rows else None
    return PhaseResult(
        phase=phase,
        epochs=rows,
        best_epoch=rows[best]["epoch"] if best is not None else None,
        best_val_loss=float(val[best]) if best is not None else math.inf,
        stopped_early=bool(early.stopped_epoch),
        seconds=seconds,
        trainable_backbone_variables=n_backbone,
        learning_rate=learning_rate,
    )


def train_two_phases(
    model,
    train_ds,
    val_ds,
    train_cfg,
    num_classes: int,
    *,
    class_weight: dict | None = None,
    tensorboard_dir: str | None = None,
    strategy=None,
) -> dict:
    """Phase 1 then (unless disabled) phase 2 on ``model``; returns the history record (see module docstring)."""
    strategy = strategy or tf.distribute.get_strategy()
    common = dict(
        train_cfg=train_cfg,
        num_classes=num_classes,
        class_weight=class_weight,
        tensorboard_dir=tensorboard_dir,
        steps_per_epoch=train_cfg.steps_per_epoch,
        strategy=strategy,
    )
    p1 = _fit_phase(
        model,
        1,
        train_ds,
        val_ds,
        epochs=train_cfg.phase1_epochs,
        initial_epoch=0,
        learning_rate=train_cfg.phase1_learning_rate,
        **common,
    )
    phases = [p1]
    selected = {"phase": 1, "epoch": p1.best_epoch, "val_loss": p1.best_val_loss}
    chosen = model_lib.backbone_layer(model).fine_tune_variables
    if train_cfg.fine_tune_fraction > 0 and train_cfg.phase2_epochs > 0 and chosen:
        phase1_weights = model.get_weights()
        next_epoch = (p1.epochs[-1]["epoch"] + 1) if p1.epochs else 0
        p2 = _fit_phase(
            model,
            2,
            train_ds,
            val_ds,
            epochs=train_cfg.phase2_epochs,
            initial_epoch=next_epoch,
            learning_rate=train_cfg.phase2_learning_rate,
            **common,
        )
        phases.append(p2)
        if p2.best_val_loss < p1.best_val_loss:
            selected = {"phase": 2, "epoch": p2.best_epoch, "val_loss": p2.best_val_loss}
        else:
            logging.info(
                "Graft Trainer: fine-tuning did not beat phase 1's val loss (%.4f >= %.4f): keeping phase 1's weights",
                p2.best_val_loss,
                p1.best_val_loss,
            )
            model.set_weights(phase1_weights)
    else:
        logging.info(
            "Graft Trainer: phase 2 skipped (fine_tune_fraction=0, phase2_epochs=0 or nothing to train)"
        )
    model_lib.set_phase(model, 1)  # the exported model is frozen: no trainable backbone in the SavedModel
    return {
        "epochs": [row for p in phases for row in p.epochs],
        "phases": [
            {
                "phase": p.phase,
                "epochs_run": len(p.epochs),
                "best_epoch": p.best_epoch,
                "best_val_loss": p.best_val_loss,
                "stopped_early": p.stopped_early,
                "learning_rate": p.learning_rate,
                "trainable_backbone_variables": p.trainable_backbone_variables,
                "seconds": round(p.seconds, 3),
            }
            for p in phases
        ],
        "selected": selected,
    }


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

    return BackboneInfo.from_json(text)


def _custom_config(fn_args) -> tuple[TrainConfig, Any]:
    cc = fn_args.custom_config or {}
    missing = [k for k in ("graft_config", "backbone") if k not in cc]
    if missing:
        raise TrainerError(
            f"Trainer custom_config lacks {missing}: the DAG must pass custom_config={{'graft_config': "
            "cfg.to_json(), 'backbone': backbone_info.to_json()}"
        )
    return section_from_json(TrainConfig, cc["graft_config"], "train"), _backbone_from_json(cc["backbone"])


def run_fn(fn_args) -> None:
    """TFX Trainer entry point (``run_fn='graft.components.trainer.run_fn'``)."""
    import tensorflow_transform as tft

    from graft import env
    from graft.components import signatures

    env.assert_legacy_keras()
    disable_autograph_for_tf_keras()
    train_cfg, backbone = _custom_config(fn_args)
    tf.keras.utils.set_random_seed(train_cfg.seed)
    tf_transform_output = tft.TFTransformOutput(fn_args.transform_output)
    class_names = signatures.class_names(tf_transform_output)
    num_classes = len(class_names)

    device = choose_device(train_cfg.mixed_precision)
    logging.info(
        "Graft Trainer: %s; backbone %s; %d classes", device.description, backbone.handle, num_classes
    )

    def dataset(files, training: bool):
        return input_fn(
            files,
            tf_transform_output,
            train_cfg.batch_size,
            backbone.height,
            backbone.width,
            num_classes,
            shuffle=training,
            seed=train_cfg.seed,
            repeat=training and train_cfg.steps_per_epoch is not None,
        )

    train_ds = dataset(fn_args.train_files, True)
    val_ds = dataset(fn_args.eval_files, False)
    for name, ds in ((features.TRAIN_SPLIT, train_ds), (features.VAL_SPLIT, val_ds)):
        if next(iter(ds.take(1)), None) is None:
            raise TrainerError(
                f"the transformed '{name}' split has no examples: training needs train examples and early stopping "
                f"needs val examples (check data.{name}_fraction and the data report)"
            )
    counts = None
    if train_cfg.class_weights == "balanced":
        counts = label_counts(fn_args.train_files, tf_transform_output, num_classes)
    weights = class_weights(train_cfg.class_weights, class_names, counts)

    with precision_policy(device.mixed_precision):
        with device.strategy.scope():
            model = model_lib.build_classifier(backbone, num_classes, train_cfg)
        history = train_two_phases(
            model,
            train_ds,
            val_ds,
            train_cfg,
            num_classes,
            class_weight=weights,
            tensorboard_dir=fn_args.model_run_dir,
            strategy=device.strategy,
        )
    history.update(
        {
            "device": device.description,
            "backbone": backbone.handle,
            "num_classes": num_classes,
            "class_names": class_names,
            "fine_tune_fraction": train_cfg.fine_tune_fraction,
            "autograph_tf_keras_disabled": autograph_rules_active(),
        }
    )
    signatures.export_model(
        model, tf_transform_output, fn_args.serving_model_dir, backbone.height, backbone.width
    )
    written = write_history(
        history, fn_args.model_run_dir, os.path.dirname(fn_args.serving_model_dir.rstrip("/"))
    )
    logging.info("Graft Trainer: model exported to %s; history in %s", fn_args.serving_model_dir, written)
