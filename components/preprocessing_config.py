"""The ``transform`` section: how the Transform resizes images to the backbone's input (and the [UNK] cap for text).

Owned by graft.components.preprocessing (the Transform module file). No TensorFlow here.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from graft.settings import check as _check


@dataclass
class TransformConfig:
    resize_method: Literal["bilinear", "nearest", "bicubic", "area", "lanczos3"] = "bilinear"
    antialias: bool = True
    # Centre crop kept before the resize (1.0: the whole image), for modules trained on centre crops (0.875).
    crop_fraction: float = 1.0
    # Text: stop the run before training when more than this fraction of the train split's word pieces are [UNK]
    # (all of them together, not per example: one emoji-only row must not stop a run). A high rate means the text
    # does not match the module's vocabulary (another language or script, mojibake).
    max_unk_rate: float = 0.05

    def validate(self) -> None:
        _check(
            0.1 <= self.crop_fraction <= 1.0,
            "transform.crop_fraction",
            f"{self.crop_fraction} not in [0.1, 1]",
        )
        _check(0.0 < self.max_unk_rate <= 1.0, "transform.max_unk_rate", f"{self.max_unk_rate} not in (0, 1]")
