"""Selective int8: full-integer post-training quantization with the network's stem kept in float32.

Why (measured on the shared CIFAR slice, MobileNet V1 ImageNet at 128 px, 1,000 test photos): the full-integer
model agreed with the float32 classifier on only 82.6 % of the photos (accuracy 0.695 vs 0.734). The calibration
set is not the cause: every ReLU6 activation genuinely reaches 6 on these photos, so each quantized range is
[0, 6] whatever is calibrated (300, 1,000 or class-stratified images: 0.695-0.700). The cause, per
``tf.lite.experimental.QuantizationDebugger``'s per-layer figures, is the stem: conv_dw_1 and conv_pw_1 err by
2.5-2.7 quantization steps (RMSE / scale; the other layers 0.3-0.9, rounding alone is 0.29). Their BatchNorm
folds into weights up to 33x larger than elsewhere (channels whose input variance is ~0), so the int8 rounding
of the 64x64 input planes is amplified and carried through the whole network. Keeping conv1 -> conv_pw_1 in
float32 (a few KB of weights, ~10 % latency) lifts agreement to 94 % (test drop 0.039 -> 0.014; val split,
299 photos: 0.030 -> 0.003); more float layers add little (95.6 % with 11; val drop 0.003-0.010 for 5-11).

How: the converter calibrates once (the debugger's converter path), the debugger ranks the layers, and the model
is quantized with the ops from the input through the first ``float_layers`` weighted layers (conv, depthwise,
fully connected) denylisted: one quantize boundary after the float prefix, the rest int8 as before. Input stays
uint8 pixels; output is float32 probabilities (the debugger's models dequantize their output; argmax is the same).
"""

from __future__ import annotations

import csv
import io

import graft  # noqa: F401  (legacy tf.keras before TensorFlow is imported)

# isort: split
import numpy as np
import tensorflow as tf

from graft.components.edge.errors import EdgeExportError

WEIGHTED_OPS = ("CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED", "TRANSPOSE_CONV", "CONV_3D")
DEBUG_EXAMPLES = 16  # images the debugger runs to measure each layer's error (calibration uses all)
WORST_LAYERS = 5
KEY = "edge.int8_float_layers"


def _layer_rows(debugger) -> list[dict]:
    """The debugger's per-layer rows, input -> output: op, tensor name, error in quantization steps."""
    buf = io.StringIO()
    debugger.layer_statistics_dump(buf)
    rows = []
    for r in csv.DictReader(io.StringIO(buf.getvalue())):
        scale = float(r["scale"] or "nan")
        mse = float(r["mean_squared_error"] or "nan")
        steps = float(np.sqrt(mse) / scale) if scale > 0 else float("nan")
        rows.append({"op": r["op_name"], "tensor": r["tensor_name"], "rmse_steps": steps})
    return rows


def short_name(tensor: str) -> str:
    """'net/conv_dw_1_relu/Relu6;net/conv_dw_1_bn/...' -> 'conv_dw_1_relu' (readable in results.json)."""
    first = tensor.split(";")[0]
    parts = first.split("/")
    return parts[1] if len(parts) > 2 else first


def float_prefix(rows: list[dict], float_layers: int) -> list[str]:
    """Tensor names of every op from the input through the ``float_layers``-th weighted op."""
    weighted = [i for i, r in enumerate(rows) if r["op"] in WEIGHTED_OPS]
    if float_layers >= len(weighted):
        raise EdgeExportError(
            f"{KEY}={float_layers} keeps every weighted layer of this model in float (it has {len(weighted)}: "
            f"conv / depthwise / fully connected); use at most {max(len(weighted) - 1, 0)}, or the variant "
            "'float16' / 'dynamic_range' for a model without integer activations"
        )
    if float_layers <= 0:
        return []
    return [r["tensor"] for r in rows[: weighted[float_layers - 1] + 1]]


def quantize(
    loaded, concrete_fn, representative: np.ndarray, float_layers: int, representative_dataset
) -> tuple[bytes, dict]:
    """(flatbuffer, what was done): int8 with the first ``float_layers`` weighted layers in float32.

    ``representative_dataset`` is convert.py's calibration generator factory (passed in: no import circle)."""

    converter = tf.lite.TFLiteConverter.from_concrete_functions([concrete_fn], loaded)
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    converter.representative_dataset = representative_dataset(representative)
    debugger = tf.lite.experimental.QuantizationDebugger(
        converter=converter, debug_dataset=representative_dataset(representative[:DEBUG_EXAMPLES])
    )
    debugger.run()
    rows = _layer_rows(debugger)
    nodes = float_prefix(rows, float_layers)
    debugger.options = tf.lite.experimental.QuantizationDebugOptions(denylisted_nodes=nodes)
    flatbuffer = debugger.get_nondebug_quantized_model()
    worst = sorted(
        (r for r in rows if np.isfinite(r["rmse_steps"])), key=lambda r: r["rmse_steps"], reverse=True
    )
    info = {
        "int8_float_layers": int(float_layers),
        "float_ops": [short_name(n) for n in nodes],
        # the full-integer model's per-layer error (QuantizationDebugger, RMSE in quantization steps)
        "worst_layers_full_int8": [
            {"layer": short_name(r["tensor"]), "op": r["op"], "rmse_steps": round(r["rmse_steps"], 3)}
            for r in worst[:WORST_LAYERS]
        ],
    }
    return flatbuffer, info
