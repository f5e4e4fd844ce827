"""The two training phases of the Trainer, on one epoch axis, within a time budget.

Split from ``trainer.py`` (the TFX entry point, input and devices) because this is what changes when the recipe
changes: how each phase fits, its schedule, its stopping rules, and which weights are kept.

1. Phase 1, the head on the frozen backbone. By default on cached feature vectors (``feature_cache.py``): Adam at
   ``train.phase1_learning_rate``, up to ``train.phase1_epochs`` epochs over the features, early stopping on val
   loss (``train.phase1_patience``), best weights restored. With ``train.cache_features: false`` (or no cache given)
   the same fit runs on images (augmented, the backbone recomputed every step).
2. Phase 2, fine-tuning (skipped when ``train.fine_tune_fraction`` or ``train.phase2_epochs`` is 0, or when the
   time budget cannot hold one epoch): the top fraction of the backbone's variables trains (BatchNorm in inference
   mode, ``model.py``), a fresh Adam with a linear warm-up over ``train.phase2_warmup_epochs`` then cosine decay
   from ``train.phase2_learning_rate`` to 0 at the last epoch, best weights restored. On a module Graft can cut
   (``cut_cache.py``) it runs on the cached activations below the fine-tuned layers: every epoch runs (they cost
   seconds) and the trained top is written back into the module when kept. Otherwise on augmented images, with early
   stopping on val loss, and judged against phase 1 from its start: if none of its first
   ``train.early_stopping_patience`` epochs (default 1) beats phase 1's best val loss it stops there, so fine-tuning
   that does not help costs one epoch, not the budget. Either way phase 2's weights are kept only if its best val
   loss beats phase 1's; otherwise phase 1's weights are put back.
3. ``train.max_minutes`` bounds the whole Trainer: phase 2 starts only if its first epoch is estimated to fit in
   what is left (from the measured per-image forward time: an epoch is ~3 forward passes over train plus one over
   val), and stops at the end of the batch that spends the budget (validation still runs; the best epoch is kept).

Epochs are numbered on across phases so TensorBoard shows one curve per metric, with ``phase`` and
``learning_rate`` logged beside them; the history record says what each phase ran on and for how long.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

import graft  # noqa: F401  (legacy tf.keras before TensorFlow is imported)

# isort: split
import numpy as np
import tensorflow as tf
from absl import logging

from graft.components import feature_cache
from graft.components import model as model_lib

# Cost of one fine-tuning step relative to a forward pass (forward + backward through the trained top; backward
# through the frozen part is still needed to reach it): used only to decide whether phase 2 fits the budget.
FINE_TUNE_COST_FACTOR = 3.0


class WarmupCosine(tf.keras.optimizers.schedules.LearningRateSchedule):
    """Linear warm-up from 0 to ``peak`` over ``warmup_steps``, then cosine decay to 0 at ``total_steps``."""

    def __init__(self, peak: float, warmup_steps: int, total_steps: int):
        super().__init__()
        self.peak = float(peak)
        self.warmup_steps = int(max(warmup_steps, 0))
        self.total_steps = int(max(total_steps, self.warmup_steps + 1))

    def __call__(self, step):
        step = tf.cast(step, tf.float32)
        warm = float(max(self.warmup_steps, 1))
        warmup = self.peak * tf.minimum(1.0, (step + 1.0) / warm)
        span = float(self.total_steps - self.warmup_steps)
        progress = tf.clip_by_value((step - self.warmup_steps) / span, 0.0, 1.0)
        cosine = 0.5 * self.peak * (1.0 + tf.cos(math.pi * progress))
        return tf.where(step < self.warmup_steps, warmup, cosine)

    def get_config(self):
        return {"peak": self.peak, "warmup_steps": self.warmup_steps, "total_steps": self.total_steps}


def current_learning_rate(optimizer) -> float:
    lr = optimizer.learning_rate
    if isinstance(lr, tf.keras.optimizers.schedules.LearningRateSchedule):
        lr = lr(optimizer.iterations)
    return float(tf.keras.backend.get_value(lr))


class _PhaseLogger(tf.keras.callbacks.Callback):
    """Adds phase and learning rate to each epoch's logs (History and TensorBoard see them)."""

    def __init__(self, phase: int):
        super().__init__()
        self.phase = phase

    def on_epoch_end(self, epoch, logs=None):
        if logs is not None:
            logs["phase"] = float(self.phase)
            logs["learning_rate"] = current_learning_rate(self.model.optimizer)


class TimeBudget(tf.keras.callbacks.Callback):
    """Stops training at the end of the batch that passes ``deadline`` (time.monotonic()); validation still runs."""

    def __init__(self, deadline: float | None):
        super().__init__()
        self.deadline = deadline
        self.hit = False

    def on_train_batch_end(self, batch, logs=None):
        if self.deadline is not None and time.monotonic() >= self.deadline:
            self.hit = True
            self.model.stop_training = True


class MustBeat(tf.keras.callbacks.Callback):
    """Stops a phase whose first ``patience`` (>= 1) epochs all fail to beat ``baseline`` (val loss; None: off)."""

    def __init__(self, baseline: float | None, patience: int):
        super().__init__()
        self.baseline = baseline
        self.patience = max(1, int(patience))
        self.stopped = False
        self._seen = 0

    def on_train_begin(self, logs=None):
        self.stopped, self._seen = False, 0

    def on_epoch_end(self, epoch, logs=None):
        if self.baseline is None:
            return
        self._seen += 1
        current = (logs or {}).get("val_loss")
        if current is not None and current < self.baseline:
            self.baseline = None  # beaten: from here on early stopping alone decides
        elif self._seen >= self.patience:
            self.stopped = True
            self.model.stop_training = True


@dataclass
class PhaseResult:
    phase: int
    on: str
    epochs: list[dict]
    best_epoch: int | None
    best_val_loss: float
    stopped_early: bool
    stopped_by_budget: bool
    seconds: float
    trainable_backbone_variables: int
    learning_rate: float

    def record(self) -> dict:
        return {
            "phase": self.phase,
            "on": self.on,
            "epochs_run": len(self.epochs),
            "best_epoch": self.best_epoch,
            "best_val_loss": self.best_val_loss,
            "stopped_early": self.stopped_early,
            "stopped_by_budget": self.stopped_by_budget,
            "learning_rate": self.learning_rate,
            "trainable_backbone_variables": self.trainable_backbone_variables,
            "seconds": round(self.seconds, 3),
        }


def fit_phase(
    fit_model,
    phase: int,
    train_ds,
    val_ds,
    *,
    on: str,
    epochs: int,
    initial_epoch: int,
    learning_rate,
    patience: int,
    num_classes: int,
    label_smoothing: float,
    class_weight: dict | None,
    tensorboard_dir: str | None,
    steps_per_epoch: int | None,
    strategy,
    trainable_backbone_variables: int,
    deadline: float | None = None,
    baseline: float | None = None,
) -> PhaseResult:
    """Compile ``fit_model`` with a fresh Adam and fit one phase; the best-val-loss epoch's weights are restored.

    ``baseline`` (a val loss, phase 1's best for phase 2): the phase stops once its first ``patience`` (at least
    one) epochs have run without one beating it (Keras's own ``baseline`` never stops a phase whose val loss still
    falls from epoch to epoch, even far above the baseline); once beaten, early stopping alone decides.
    """
    with strategy.scope():
        model_lib.compile_model(fit_model, learning_rate, num_classes, label_smoothing)
    # tf-keras 2.16 restores the best epoch's weights at the end of fit() whatever stopped it (epochs, budget).
    early = tf.keras.callbacks.EarlyStopping(monitor="val_loss", patience=patience, restore_best_weights=True)
    budget = TimeBudget(deadline)
    judge = MustBeat(baseline, patience)
    callbacks: list = [_PhaseLogger(phase), early, budget, judge]
    if tensorboard_dir:
        callbacks.append(
            tf.keras.callbacks.TensorBoard(
                log_dir=tensorboard_dir, update_freq="epoch", write_graph=False, profile_batch=0
            )
        )
    peak = learning_rate.peak if isinstance(learning_rate, WarmupCosine) else float(learning_rate)
    logging.info(
        "Graft Trainer: phase %d on %s: %d backbone variable(s) trainable, lr %g, up to %d epoch(s)",
        phase,
        on,
        trainable_backbone_variables,
        peak,
        epochs,
    )
    start = time.monotonic()
    hist = fit_model.fit(
        train_ds,
        validation_data=val_ds,
        epochs=initial_epoch + epochs,
        initial_epoch=initial_epoch,
        steps_per_epoch=steps_per_epoch,
        class_weight=class_weight,
        callbacks=callbacks,
        verbose=2 if phase == 2 or on == "images" else 0,
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
    result = PhaseResult(
        phase=phase,
        on=on,
        epochs=rows,
        best_epoch=rows[best]["epoch"] if best is not None else None,
        best_val_loss=float(val[best]) if best is not None else math.inf,
        stopped_early=bool(early.stopped_epoch) or judge.stopped,
        stopped_by_budget=budget.hit,
        seconds=seconds,
        trainable_backbone_variables=trainable_backbone_variables,
        learning_rate=peak,
    )
    logging.info(
        "Graft Trainer: phase %d: %d epoch(s) in %.1f s, best val loss %.4f (epoch %s)%s",
        phase,
        len(rows),
        seconds,
        result.best_val_loss,
        result.best_epoch,
        " (time budget spent)" if budget.hit else "",
    )
    return result


def phase2_skip_reason(
    train_cfg, model, deadline: float | None, estimate_seconds: float | None
) -> str | None:
    """Why phase 2 does not run, or None when it runs."""
    if train_cfg.fine_tune_fraction <= 0 or train_cfg.phase2_epochs <= 0:
        return "train.fine_tune_fraction or train.phase2_epochs is 0"
    if not model_lib.backbone_layer(model).fine_tune_variables:
        return "the backbone has no trainable variables to fine-tune"
    if deadline is not None and estimate_seconds is not None:
        left = deadline - time.monotonic()
        if estimate_seconds > left:
            return (
                f"train.max_minutes: one fine-tuning epoch is estimated at {estimate_seconds:.0f} s and "
                f"{max(left, 0):.0f} s of the budget are left (raise train.max_minutes to fine-tune)"
            )
    return None


def _steps(train_ds, cfg, n_train: int | None) -> int:
    if cfg.steps_per_epoch:
        return int(cfg.steps_per_epoch)
    if n_train:
        return max(1, math.ceil(n_train / cfg.batch_size))
    card = int(tf.data.experimental.cardinality(train_ds).numpy())
    if card > 0:
        return card
    return max(1, int(train_ds.reduce(0, lambda n, _: n + 1).numpy()))  # one pass (callers pass n_train)


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
    cached: tuple | None = None,
    deadline: float | None = None,
    phase2_epoch_estimate: float | None = None,
    n_train: int | None = None,
    shuffle_features: bool = True,
    text: bool = False,
    cut: tuple | None = None,
) -> dict:
    """Phase 1 then (unless it steps aside) phase 2 on ``model``; returns the history record.

    ``cached`` = (train Features, val Features) puts phase 1 on cached features; None fits it on ``train_ds``.
    ``text``: the batches are token ids (the history says so; text has no augmentation).
    ``cut`` = (cut_cache.Cut, train activations, val activations: float16 Features) puts phase 2 on cached activations below the
    fine-tuned top (cut_cache.py): all ``train.phase2_epochs`` run (epochs are cheap there; the best is kept) and
    phase 2 is judged against phase 1 once, at the end.
    """
    strategy = strategy or tf.distribute.get_strategy()
    common = dict(
        num_classes=num_classes,
        label_smoothing=train_cfg.label_smoothing,
        class_weight=class_weight,
        tensorboard_dir=tensorboard_dir,
        strategy=strategy,
    )
    model_lib.set_phase(model, 1)
    if cached is not None:
        train_f, val_f = cached
        seed = int(train_cfg.seed)
        with strategy.scope():
            head = feature_cache.head_model(model)
        p1 = fit_phase(
            head,
            1,
            feature_cache.feature_dataset(train_f, train_cfg.batch_size, shuffle=shuffle_features, seed=seed),
            feature_cache.feature_dataset(val_f, train_cfg.batch_size, shuffle=False, seed=seed),
            on="cached features",
            epochs=train_cfg.phase1_epochs,
            initial_epoch=0,
            learning_rate=train_cfg.phase1_learning_rate,
            patience=train_cfg.phase1_patience,
            steps_per_epoch=None,
            trainable_backbone_variables=0,
            **common,
        )
    else:
        p1 = fit_phase(
            model,
            1,
            train_ds,
            val_ds,
            on="texts (token ids)" if text else "images",
            epochs=train_cfg.phase1_epochs,
            initial_epoch=0,
            learning_rate=train_cfg.phase1_learning_rate,
            patience=train_cfg.phase1_patience,
            steps_per_epoch=train_cfg.steps_per_epoch,
            trainable_backbone_variables=0,
            **common,
        )
    phases = [p1]
    selected = {"phase": 1, "epoch": p1.best_epoch, "val_loss": p1.best_val_loss}
    skipped = phase2_skip_reason(train_cfg, model, deadline, phase2_epoch_estimate)
    if skipped is None:
        phase1_weights = model.get_weights()
        next_epoch = (p1.epochs[-1]["epoch"] + 1) if p1.epochs else 0
        if cut is not None:  # one pass over the cached activations
            steps = max(1, math.ceil(cut[1].count / train_cfg.batch_size))
        else:
            steps = _steps(train_ds, train_cfg, n_train)
        schedule = WarmupCosine(
            train_cfg.phase2_learning_rate,
            round(train_cfg.phase2_warmup_epochs * steps),
            train_cfg.phase2_epochs * steps,
        )
        if cut is not None:
            from graft.components import cut_cache

            the_cut, train_a, val_a = cut
            seed = int(train_cfg.seed)
            with strategy.scope():
                top_model = cut_cache.fit_model(the_cut, model)
            p2 = fit_phase(
                top_model,
                2,
                cut_cache.dataset(train_a, train_cfg.batch_size, shuffle=shuffle_features, seed=seed),
                cut_cache.dataset(val_a, train_cfg.batch_size, shuffle=False, seed=seed),
                on=f"cached activations below {the_cut.layer}",
                epochs=train_cfg.phase2_epochs,
                initial_epoch=next_epoch,
                learning_rate=schedule,
                patience=train_cfg.phase2_epochs,  # every epoch runs; the best one is restored
                steps_per_epoch=None,
                trainable_backbone_variables=the_cut.trainable_variables,
                deadline=deadline,
                baseline=None,
                **common,
            )
        else:
            model_lib.set_phase(model, 2)
            n_backbone = len(model_lib.backbone_layer(model).trainable_weights)
            p2 = fit_phase(
                model,
                2,
                train_ds,
                val_ds,
                on="texts (token ids)" if text else "augmented images",
                epochs=train_cfg.phase2_epochs,
                initial_epoch=next_epoch,
                learning_rate=schedule,
                patience=train_cfg.early_stopping_patience,
                steps_per_epoch=train_cfg.steps_per_epoch,
                trainable_backbone_variables=n_backbone,
                deadline=deadline,
                # Judged against phase 1 from its first epoch(s): weights that do not beat phase 1 are never kept.
                baseline=p1.best_val_loss if math.isfinite(p1.best_val_loss) else None,
                **common,
            )
        phases.append(p2)
        if p2.best_val_loss < p1.best_val_loss:
            if cut is not None:
                cut_cache.write_back(cut[0])  # the exported classifier holds the fine-tuned top
            selected = {"phase": 2, "epoch": p2.best_epoch, "val_loss": p2.best_val_loss}
        else:
            logging.info(
                "Graft Trainer: fine-tuning did not beat phase 1's val loss (%.4f >= %.4f): keeping phase 1's weights",
                p2.best_val_loss,
                p1.best_val_loss,
            )
            model.set_weights(phase1_weights)
    else:
        logging.info("Graft Trainer: phase 2 skipped: %s", skipped)
    model_lib.set_phase(model, 1)  # the exported model is frozen: no trainable backbone in the SavedModel
    return {
        "epochs": [row for p in phases for row in p.epochs],
        "phases": [p.record() for p in phases],
        "selected": selected,
        "phase2_skipped": skipped,
    }


def phase2_epoch_estimate(train: feature_cache.Features, val: feature_cache.Features, cfg) -> float:
    """Seconds one fine-tuning epoch should take, from the measured forward time per image."""
    per_image = train.seconds_per_example()
    n = train.count if not cfg.steps_per_epoch else min(train.count, cfg.steps_per_epoch * cfg.batch_size)
    return FINE_TUNE_COST_FACTOR * per_image * n + val.seconds_per_example() * val.count
