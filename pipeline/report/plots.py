"""The report's plots: matplotlib on the Agg canvas (no display, no pyplot state), each returned as PNG bytes."""

from __future__ import annotations

import io
from typing import Any

from graft.pipeline.report.artifacts import MAX_SAMPLE_CLASSES


# ---- plots (matplotlib, Agg canvas) ---------------------------------------------------------------------------
def _figure(width: float, height: float):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), dpi=100)
    FigureCanvasAgg(fig)
    return fig


def _png(fig) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", bbox_inches="tight")
    return buf.getvalue()


def phase_boundary(history: dict[str, Any]) -> float | None:
    """x (1-based epochs) of the line between the last phase-1 epoch and the first phase-2 epoch, or None."""
    epochs = history.get("epochs", [])
    p1 = [e["epoch"] + 1 for e in epochs if e.get("phase") == 1]
    p2 = [e["epoch"] + 1 for e in epochs if e.get("phase") == 2]
    if not p1 or not p2:
        return None
    return (max(p1) + min(p2)) / 2.0


def plot_training_curves(history: dict[str, Any]) -> bytes:
    """Loss and accuracy, train and val, both phases on one epoch axis; the phase boundary and the selected epoch
    (the weights that were exported) are marked."""
    epochs = sorted(history.get("epochs", []), key=lambda e: e["epoch"])
    x = [e["epoch"] + 1 for e in epochs]
    boundary = phase_boundary(history)
    selected = (history.get("selected") or {}).get("epoch")
    fig = _figure(11, 4)
    axes = fig.subplots(1, 2)
    for ax, metric, title in ((axes[0], "loss", "loss"), (axes[1], "accuracy", "accuracy")):
        for prefix, style, label in (("", "-", "train"), ("val_", "--", "val")):
            ys = [e.get(prefix + metric) for e in epochs]
            pts = [(a, b) for a, b in zip(x, ys, strict=True) if b is not None]
            if pts:
                ax.plot(
                    [a for a, _ in pts],
                    [b for _, b in pts],
                    style,
                    marker="o",
                    markersize=3,
                    label=f"{label} {title}",
                )
        if boundary is not None:
            ax.axvline(boundary, color="0.4", linestyle=":", linewidth=1.5)
            ax.axvspan(boundary, max(x) + 0.5, color="tab:orange", alpha=0.08)
            where = ("data", "axes fraction")
            kw = dict(xycoords=where, va="bottom", fontsize=9, color="0.25")
            ax.annotate("phase 1: head only ◂ ", (boundary, 1.01), ha="right", **kw)
            ax.annotate(" ▸ phase 2: fine-tune", (boundary, 1.01), ha="left", **kw)
        if selected is not None:
            row = next((e for e in epochs if e["epoch"] == selected), None)
            if row is not None and row.get("val_" + metric) is not None:
                ax.plot(
                    [selected + 1],
                    [row["val_" + metric]],
                    marker="*",
                    markersize=14,
                    color="crimson",
                    linestyle="none",
                    label="exported weights",
                )
        ax.set_xlabel("epoch")
        ax.set_ylabel(title)
        ax.grid(alpha=0.3)
        if x:
            ax.set_xlim(min(x) - 0.5, max(x) + 0.5)
            ax.set_xticks(x if len(x) <= 30 else x[:: max(1, len(x) // 15)])
        ax.legend(fontsize=8, loc="best")
    fig.tight_layout()
    return _png(fig)


def plot_confusion_matrix(grid: list[list[int]], names: list[str]) -> bytes:
    """Counts [actual][predicted]; colour = share of the actual class (row-normalised), so recall reads off it."""
    n = len(grid)
    labels = [names[i] if i < len(names) else str(i) for i in range(n)]
    size = max(3.5, min(16.0, 0.6 * n + 2.5))
    fig = _figure(size + 1.0, size)
    ax = fig.subplots()
    shares = [[(c / sum(row)) if sum(row) else 0.0 for c in row] for row in grid]
    image = ax.imshow(shares, cmap="Blues", vmin=0.0, vmax=1.0)
    fig.colorbar(image, ax=ax, fraction=0.046, pad=0.04, label="share of the actual class")
    if n <= 30:
        for a in range(n):
            for p in range(n):
                ax.text(
                    p,
                    a,
                    str(grid[a][p]),
                    ha="center",
                    va="center",
                    fontsize=9 if n <= 12 else 6,
                    color="white" if shares[a][p] > 0.6 else "black",
                )
    ax.set_xticks(range(n))
    ax.set_yticks(range(n))
    ax.set_xticklabels(labels, rotation=45 if n > 3 else 0, ha="right" if n > 3 else "center", fontsize=8)
    ax.set_yticklabels(labels, fontsize=8)
    ax.set_xlabel("predicted")
    ax.set_ylabel("actual")
    ax.set_title("test split")
    fig.tight_layout()
    return _png(fig)


SAMPLE_TILE_MAX = 112  # pixels per tile in the grid (larger images are shown downscaled)


def sample_mosaic(samples: dict[str, list[Any]]) -> tuple[Any, list[str], int]:
    """One uint8 image: a row of tiles per class (white gaps), tiles downscaled to <= SAMPLE_TILE_MAX pixels."""
    import numpy as np
    from PIL import Image

    rows = [(name, imgs) for name, imgs in samples.items() if imgs][:MAX_SAMPLE_CLASSES]
    cols = max((len(imgs) for _, imgs in rows), default=1)
    h, w = rows[0][1][0].shape[:2] if rows else (1, 1)
    scale = min(1.0, SAMPLE_TILE_MAX / max(h, w))
    th, tw = max(1, round(h * scale)), max(1, round(w * scale))
    gap = 2
    mosaic = np.full((len(rows) * (th + gap), cols * (tw + gap), 3), 255, dtype=np.uint8)
    for r, (_, imgs) in enumerate(rows):
        for c, img in enumerate(imgs):
            tile = np.asarray(img, dtype=np.uint8)
            if tile.shape[:2] != (th, tw):
                tile = np.asarray(Image.fromarray(tile).resize((tw, th), Image.BILINEAR))
            y, x = r * (th + gap), c * (tw + gap)
            mosaic[y : y + th, x : x + tw] = tile[:, :, :3]
    return mosaic, [name for name, _ in rows], th + gap


def plot_samples(samples: dict[str, list[Any]]) -> bytes:
    """A grid of images per class (one row each), drawn as one mosaic: fast for many classes and big images."""
    mosaic, names, row_h = sample_mosaic(samples)
    height, width = mosaic.shape[:2]
    inches_w = min(14.0, max(4.0, width / 60.0)) + 1.6
    fig = _figure(inches_w, max(1.2, (inches_w - 1.6) * height / max(1, width)))
    ax = fig.subplots()
    ax.imshow(mosaic, interpolation="nearest")
    ax.set_xticks([])
    ax.set_yticks([row_h * i + (row_h - 2) / 2 for i in range(len(names))])
    ax.set_yticklabels(names, fontsize=9)
    for spine in ax.spines.values():
        spine.set_visible(False)
    ax.tick_params(left=False)
    return _png(fig)


def plot_class_counts(counts: dict[str, dict[str, int]], classes: list[str]) -> bytes:
    splits = [s for s in ("train", "val", "test") if s in counts] + sorted(
        set(counts) - {"train", "val", "test"}
    )
    fig = _figure(max(5.0, min(16.0, 0.5 * len(classes) * len(splits) / 2 + 3)), 3.2)
    ax = fig.subplots()
    width = 0.8 / max(1, len(splits))
    for i, split in enumerate(splits):
        xs = [k + (i - (len(splits) - 1) / 2) * width for k in range(len(classes))]
        ax.bar(xs, [counts[split].get(c, 0) for c in classes], width=width, label=split)
    ax.set_xticks(range(len(classes)))
    ax.set_xticklabels(
        classes, rotation=45 if len(classes) > 4 else 0, ha="right" if len(classes) > 4 else "center"
    )
    ax.set_ylabel("examples")
    ax.legend(fontsize=8)
    ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    return _png(fig)
