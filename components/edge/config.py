"""The ``edge`` section: which TFLite variants the edge export builds, and how int8 is calibrated.

Owned by graft.components.edge (the TFLiteExport component); its gate's threshold is
``evaluation.max_tflite_accuracy_drop``. No TensorFlow here (the assembled config and the CLI's ``--help`` import it).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from graft.settings import check as _check

EDGE_VARIANTS = ("float32", "float16", "dynamic_range", "int8")  # components/edge/convert.py VARIANTS
DEFAULT_INT8_FLOAT_LAYERS = 3  # conv1, conv_dw_1, conv_pw_1 on MobileNet V1: see components/edge/selective.py


@dataclass
class EdgeConfig:
    # TFLite variants converted after training, scored on the test split and pushed beside the SavedModel
    # (<version>/tflite/) when they hold up (evaluation.max_tflite_accuracy_drop). [] turns the edge export off.
    variants: list[str] = field(default_factory=lambda: ["float16", "int8"])
    # How many of Transform's train images calibrate the int8 variant's activation ranges. 100, not 300: measured
    # (MobileNet V1 224 px, int8_float_layers 3) the int8 test accuracy is the same (MNIST 0.9743 both; CIFAR slice
    # 0.727 vs 0.726) and the conversion takes half the time (25 vs 54 s; 31 vs 54 s on the CIFAR slice).
    representative_examples: int = 100
    # The int8 variant keeps the ops from the input through this many weighted layers (conv / depthwise / dense)
    # in float32: the stem, where full-integer quantization of an ImageNet CNN loses most (MobileNet V1: 2.5-2.7
    # quantization steps of error in conv_dw_1 / conv_pw_1 vs 0.3-0.9 elsewhere). Costs a few KB and the stem's
    # float compute; output becomes float32. 0 = full integer (uint8 in, uint8 out).
    int8_float_layers: int = DEFAULT_INT8_FLOAT_LAYERS

    def validate(self) -> None:
        for i, v in enumerate(self.variants):
            _check(
                v in EDGE_VARIANTS, f"edge.variants[{i}]", f"{v!r} is not one of {', '.join(EDGE_VARIANTS)}"
            )
        _check(len(set(self.variants)) == len(self.variants), "edge.variants", "lists a variant twice")
        _check(
            1 <= self.representative_examples <= 100_000,
            "edge.representative_examples",
            "must be in [1, 100000]",
        )
        _check(
            isinstance(self.int8_float_layers, int)
            and not isinstance(self.int8_float_layers, bool)
            and 0 <= self.int8_float_layers <= 1000,
            "edge.int8_float_layers",
            f"{self.int8_float_layers!r} must be an integer in [0, 1000] (0 = full-integer int8)",
        )
