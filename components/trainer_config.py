"""The ``train`` section: the two training phases, augmentation, class weights, precision.

Owned by graft.components.trainer, which reads it from the config JSON in ``custom_config``. No TensorFlow
here (the assembled config and the CLI's ``--help`` import it).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal, Union

from graft.settings import check as _check


@dataclass
class AugmentConfig:
    enabled: bool = True
    horizontal_flip: bool = True
    rotation: float = 0.05  # fraction of a full turn
    zoom: float = 0.1
    contrast: float = 0.1

    def validate(self) -> None:
        _check(
            0.0 <= self.rotation <= 0.5, "train.augment.rotation", "must be in [0, 0.5] (fraction of a turn)"
        )
        _check(0.0 <= self.zoom < 1.0, "train.augment.zoom", "must be in [0, 1)")
        _check(0.0 <= self.contrast < 1.0, "train.augment.contrast", "must be in [0, 1)")


@dataclass
class TrainConfig:
    # Global batch: split across the replicas under MirroredStrategy, so results do not depend on the GPU count.
    batch_size: int = 32
    # Phase 1: new head on the frozen backbone, fitted on its cached feature vectors (one forward pass over train
    # and val, no augmentation) to convergence: up to phase1_epochs, early stopping on val loss after
    # phase1_patience epochs without improvement, best weights restored. cache_features: false fits it on images
    # (augmented, the backbone recomputed every epoch) instead.
    cache_features: bool = True
    phase1_epochs: int = 200
    phase1_learning_rate: float = 1e-3
    phase1_patience: int = 10
    # Phase 2: fine-tune the top fraction of the backbone's variables (0 skips phase 2, 1.0 trains all), warm-up
    # (phase2_warmup_epochs) then cosine decay from phase2_learning_rate; kept only if it beats phase 1 on val loss.
    # On a module Graft can cut (its own offline ones, cut_cache.py) it runs on cached activations below the
    # fine-tuned layers (~10 s an epoch on 3,500 images at 224 px, 2 cores); otherwise on augmented images.
    # Defaults measured that way (MobileNet V1 224 px; 0.07 = its last block, 6 of 81 variables; 1e-4, warm-up then
    # cosine), test accuracy after 6 / 8 / 12 epochs: MNIST 0.977 / 0.983 / 0.985 (phase 1 0.977), CIFAR slice
    # 0.750 / 0.742 / 0.750 (phase 1 0.723); 8 epochs take ~70 s on 2,700 images. The old 0.3 / 3 epochs / 1e-5 on
    # images moved nothing (README, Trainer).
    fine_tune_fraction: float = 0.07
    phase2_epochs: int = 8
    phase2_learning_rate: float = 1e-4
    phase2_warmup_epochs: float = 0.5
    # Memory cap (MiB) of the cached activations (float16, train + val); above it phase 2 runs on images.
    phase2_cache_mb: int = 2048
    # Phase 2 on images: early-stopping patience (epochs without a better val loss), and how many of its first
    # epochs may fail to beat phase 1's best val loss before it stops (1: judged after its first epoch). On cached
    # activations every epoch runs and the best is kept.
    early_stopping_patience: int = 1
    # Time budget of the whole Trainer, minutes (None: none). Phase 2 runs only if its first epoch is estimated to
    # fit in what phase 1 left, and stops (best weights kept) when the budget is spent.
    max_minutes: float | None = 5.0
    # Cap on steps per epoch (None: one pass over the train split).
    steps_per_epoch: int | None = None
    dropout: float = 0.2
    label_smoothing: float = 0.0
    # 'none', 'balanced', or an explicit {class_name: weight} map.
    class_weights: Union[str, dict[str, float]] = "none"
    seed: int = 42
    # 'auto': mixed_float16 only on a GPU and only when the backbone itself computes in float16/bfloat16 (Graft's
    # offline modules compute in float32, so 'auto' is float32 for them); off on CPU. 'on' / 'off' force it.
    mixed_precision: Literal["auto", "on", "off"] = "auto"
    augment: AugmentConfig = field(default_factory=AugmentConfig)

    def validate(self) -> None:
        _check(1 <= self.batch_size <= 4096, "train.batch_size", f"{self.batch_size} not in [1, 4096]")
        _check(self.phase1_epochs >= 1, "train.phase1_epochs", "must be >= 1")
        _check(self.phase1_patience >= 0, "train.phase1_patience", "must be >= 0")
        _check(0.0 <= self.phase2_warmup_epochs <= 100, "train.phase2_warmup_epochs", "must be in [0, 100]")
        _check(
            self.max_minutes is None or self.max_minutes > 0,
            "train.max_minutes",
            f"{self.max_minutes}: must be > 0 (or null: no budget)",
        )
        _check(self.phase2_epochs >= 0, "train.phase2_epochs", "must be >= 0")
        _check(self.phase2_cache_mb >= 0, "train.phase2_cache_mb", "must be >= 0 (0: phase 2 on images)")
        for k in ("phase1_learning_rate", "phase2_learning_rate"):
            v = getattr(self, k)
            _check(0.0 < v < 1.0, f"train.{k}", f"{v} is out of range: must be > 0 and < 1")
        _check(0.0 <= self.fine_tune_fraction <= 1.0, "train.fine_tune_fraction", "must be in [0, 1]")
        _check(self.early_stopping_patience >= 0, "train.early_stopping_patience", "must be >= 0")
        _check(
            self.steps_per_epoch is None or self.steps_per_epoch >= 1, "train.steps_per_epoch", "must be >= 1"
        )
        _check(0.0 <= self.dropout < 1.0, "train.dropout", "must be in [0, 1)")
        _check(0.0 <= self.label_smoothing < 1.0, "train.label_smoothing", "must be in [0, 1)")
        if isinstance(self.class_weights, str):
            _check(
                self.class_weights in ("none", "balanced"),
                "train.class_weights",
                f"{self.class_weights!r}: use 'none', 'balanced' or a map {{class_name: weight}}",
            )
        else:
            for k, v in self.class_weights.items():
                _check(v > 0, f"train.class_weights.{k}", f"weight {v} must be > 0")
        self.augment.validate()
