"""The ``transform`` section: how the Transform resizes images to the backbone's input.

Owned by graft.components.preprocessing (the Transform module file). No TensorFlow here.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal


@dataclass
class TransformConfig:
    resize_method: Literal["bilinear", "nearest", "bicubic", "area", "lanczos3"] = "bilinear"
    antialias: bool = True

    def validate(self) -> None:
        pass
