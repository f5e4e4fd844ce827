"""The ``backbone`` section: which TF Hub module the model grafts its head onto.

Owned by the backbone resolution (graft.components.backbones). No TensorFlow here.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from graft.settings import check as _check


@dataclass
class BackboneConfig:
    # TF Hub handle: https URL (tfhub.dev / Kaggle Models), gs:// path, or a local TF2 SavedModel directory.
    # Also accepts the names of offline modules Graft builds: 'mobilenet_v1_imagenet', 'tiny', and the text
    # encoder 'minilm_l6'.
    handle: str = ""
    # Input size when the module's signature does not fix it (None: read from the module).
    input_size: int | None = None
    # Float range [lo, hi] of the pixels the module expects, for a module that does not declare it (Graft's own
    # modules declare theirs in graft_backbone.json; then this must be unset or equal). None: TF Hub's [0, 1].
    value_range: list[float] | None = None
    # Text backbones: the preprocessing model's sequence length (word pieces per example, [CLS] and [SEP]
    # included; longer texts are truncated). The offline minilm_l6 is built for any length in [8, 512]; a TF Hub
    # preprocessing model packs to its own length (128 for TF Hub's BERT ones), which must then equal this.
    seq_length: int = 128

    def validate(self) -> None:
        _check(8 <= self.seq_length <= 512, "backbone.seq_length", f"{self.seq_length} not in [8, 512]")
        if self.input_size is not None:
            _check(
                16 <= self.input_size <= 1024, "backbone.input_size", f"{self.input_size} not in [16, 1024]"
            )
        if self.value_range is not None:
            vr = self.value_range
            _check(
                isinstance(vr, (list, tuple)) and len(vr) == 2 and all(math.isfinite(float(v)) for v in vr),
                "backbone.value_range",
                f"{vr!r}: give [lo, hi], e.g. [0, 1] or [-1, 1]",
            )
            _check(float(vr[0]) < float(vr[1]), "backbone.value_range", f"{vr!r}: lo must be < hi")
