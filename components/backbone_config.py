"""The ``backbone`` section: which TF Hub module the model grafts its head onto.

Owned by the backbone resolution (graft.components.backbones). No TensorFlow here.
"""

from __future__ import annotations

from dataclasses import dataclass

from graft.settings import check as _check


@dataclass
class BackboneConfig:
    # TF Hub handle: https URL (tfhub.dev / Kaggle Models), gs:// path, or a local TF2 SavedModel directory.
    # Also accepts the names of offline modules Graft builds: 'mobilenet_v1_imagenet', 'tiny'.
    handle: str = ""
    # Input size when the module's signature does not fix it (None: read from the module).
    input_size: int | None = None

    def validate(self) -> None:
        if self.input_size is not None:
            _check(
                16 <= self.input_size <= 1024, "backbone.input_size", f"{self.input_size} not in [16, 1024]"
            )
