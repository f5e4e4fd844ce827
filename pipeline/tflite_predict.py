"""`graft predict --tflite`: classify image files with a pushed TFLite variant in the TFLite interpreter.

The TFLite models take decoded ``uint8 [1, H, W, 3]`` pixels (components/edge/convert.py). Here the files are
decoded and resized by the Transform graph tracked on the version's SavedModel (``tft_layer``, fed the raw
``image_bytes``; any other raw key its traced signature has goes in empty), so the pixels are exactly the ones the model was trained and evaluated
on. An app on a device does this step itself: decode, resize to H x W with the run's ``transform.*`` settings,
keep uint8.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

VARIANT_PREFERENCE = ("int8", "float16", "dynamic_range", "float32")


def pushed_variants(version_dir: Path) -> dict[str, Path]:
    from graft.components.edge import convert

    d = version_dir / "tflite"
    return {
        v: d / convert.model_filename(v) for v in convert.VARIANTS if (d / convert.model_filename(v)).exists()
    }


def predict_files(
    version_dir: Path,
    images: list[str],
    variant: str | None,
    error: type[Exception],
    reason: Callable[[bytes, str], str],
) -> list[dict]:
    """Every readable image gets its answer; each unreadable one an ``error`` naming why (``reason(bytes, tf
    message)``), as the SavedModel path does."""
    import graft  # noqa: F401, I001

    import tensorflow as tf

    from graft import env
    from graft.components import features
    from graft.components.edge import convert, evaluate

    found = pushed_variants(version_dir)
    if not found:
        raise error(
            f"{version_dir} holds no TFLite model (expected {version_dir}/tflite/model_<variant>.tflite): it was "
            "pushed without edge variants (edge.variants empty) or every variant was refused; see the run report"
        )
    if variant is None:
        variant = next(v for v in VARIANT_PREFERENCE if v in found)
    if variant not in found:
        raise error(f"variant '{variant}' was not pushed to {version_dir}/tflite; pushed: {', '.join(found)}")
    labels = convert.read_labels(os.path.join(version_dir, "tflite", convert.LABELS_FILE))
    # the interpreter's XNNPACK banner is written to fd 2 by native code: off unless -v
    with env.quiet_native_stderr():
        model = evaluate.TFLiteClassifier(str(found[variant]))
        _, height, width, _ = model.input_shape
        saved = tf.saved_model.load(str(version_dir))
        # The restored layer keeps only the raw-feature structure it was traced with at export (image_bytes alone, or
        # with label / source_path): feed those keys, the others empty; only ``image`` is read back.
        keys = list(saved.tft_layer.__call__.concrete_functions[0].structured_input_signature[0][0])
        results = []
        for path in images:
            data = Path(path).read_bytes()
            try:
                out = saved.tft_layer(
                    {k: tf.constant([data if k == features.IMAGE_KEY else b""]) for k in keys}
                )
            except tf.errors.InvalidArgumentError as e:
                answer = {"error": f"not a readable image: {reason(data, e.message)}"}
            else:
                image = features.decode_transformed_image(
                    tf.reshape(out[features.TRANSFORMED_IMAGE_KEY], []), height, width
                ).numpy()
                probs = model.predict(image)
                k = int(probs.argmax())
                label = labels[k] if k < len(labels) else str(k)
                answer = {"class_name": label, "class_index": k, "probability": float(probs[k])}
            results.append(
                {"image": path, **answer, "model_version": version_dir.name, "tflite_variant": variant}
            )
    return results
