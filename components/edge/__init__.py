"""Edge export: the trained classifier as TFLite models, scored on the test split, gated against the SavedModel.

Why a package of its own, after the Trainer: conversion and its quality check change together and apart from
training. ``run_fn`` stays untouched; the TFLite models are derived from the exported SavedModel (its uint8 image
path, the model's own preprocessing inside) and must earn their push like the SavedModel does.

  convert.py     SavedModel -> TFLite bytes per variant (float16, int8 with a representative set, ...), labels
  selective.py   int8 with the stem kept float32 (edge.int8_float_layers), via TF Lite's QuantizationDebugger
  evaluate.py    each variant through the TFLite interpreter on Transform's test split; TFMA-readable metrics;
                 the per-variant gate (accuracy within ``max_accuracy_drop`` of the SavedModel's)
  component.py   the TFX component (``TFLiteExport``) and its artifact type, read by the Pusher
"""
