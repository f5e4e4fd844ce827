"""`graft predict`: classify image files (or texts, for a text model) with a pushed model through its
`serving_default` signature."""

from __future__ import annotations

from pathlib import Path


class PredictError(ValueError):
    pass


def resolve_version_dir(model_dir: str | Path) -> Path:
    """<serving_root>/<model_name> -> its newest numeric version; a version dir -> itself."""
    p = Path(model_dir)
    if (p / "saved_model.pb").exists():
        return p
    versions = sorted((d for d in p.iterdir() if d.is_dir() and d.name.isdigit()), key=lambda d: int(d.name))
    versions = [v for v in versions if (v / "saved_model.pb").exists()]
    if not versions:
        raise PredictError(
            f"{p} holds no SavedModel version (expected {p}/<version>/saved_model.pb): pass a pushed model "
            "directory, e.g. graft_runs/demo/serving/digits"
        )
    return versions[-1]


def predict_files(model_dir: str | Path, images: list[str]) -> list[dict]:
    import tensorflow as tf

    import graft  # noqa: F401

    version_dir = resolve_version_dir(model_dir)
    model = tf.saved_model.load(str(version_dir))
    if "serving_default" not in model.signatures:
        raise PredictError(f"{version_dir} has no serving_default signature; is it a Graft model?")
    fn = model.signatures["serving_default"]
    payload = [Path(i).read_bytes() for i in images]
    try:
        out = fn(image_bytes=tf.constant(payload))
        answers = [_answer(out, i) for i in range(len(images))]
    except tf.errors.InvalidArgumentError:
        # One undecodable file fails the whole batch: answer file by file, so every readable image gets its
        # answer and each unreadable one is named with the reason.
        answers = []
        for data in payload:
            try:
                answers.append(_answer(fn(image_bytes=tf.constant([data])), 0))
            except tf.errors.InvalidArgumentError as e:
                answers.append({"error": f"not a readable image: {unreadable_reason(data, e.message)}"})
    return [
        {"image": path, **a, "model_version": version_dir.name}
        for path, a in zip(images, answers, strict=True)
    ]


def unreadable_reason(data: bytes, tf_message: str) -> str:
    """Why the model could not read a file: ExampleGen's own check (the reason a run would record), else the
    decoder's message without TensorFlow's "Graph execution error:" / "Detected at node" framing."""
    from graft.components.image_example_gen import files
    from graft.components.image_example_gen.config import DataConfig

    try:
        problem = files.check_image(data, DataConfig.max_image_pixels)
    except Exception:  # noqa: BLE001 - the reason is a courtesy; the decoder's message follows
        problem = None
    if problem:
        return problem
    framing = ("Graph execution error", "Detected at node", "File ", "[[", "Stack trace")
    lines = [
        ln.strip() for ln in tf_message.splitlines() if ln.strip() and not ln.strip().startswith(framing)
    ]
    return (lines[-1] if lines else tf_message.strip() or "the decoder refused it")[:200]


def predict_texts(model_dir: str | Path, texts: list[str]) -> list[dict]:
    """Task text: raw strings through the pushed model's ``serving_default`` (``text``: tf.string [None])."""
    import tensorflow as tf

    import graft  # noqa: F401
    from graft.components.backbones import text_ops

    version_dir = resolve_version_dir(model_dir)
    text_ops.register_ops()  # the served graph tokenizes with TF Text ops
    model = tf.saved_model.load(str(version_dir))
    fn = model.signatures.get("serving_default")
    if fn is None or "text" not in fn.structured_input_signature[1]:
        raise PredictError(f"{version_dir} is not a Graft text model (its serving_default takes no 'text')")
    out = fn(text=tf.constant(texts))
    return [{"text": t, **_answer(out, i), "model_version": version_dir.name} for i, t in enumerate(texts)]


def _answer(out, i: int) -> dict:
    k = int(out["class_index"].numpy()[i])
    name = out["class_name"].numpy()[i]
    return {
        "class_name": name.decode() if isinstance(name, bytes) else str(name),
        "class_index": k,
        "probability": float(out["probabilities"].numpy()[i][k]),
    }


# ---- graft predict --tflite: one of the pushed TFLite variants in the TFLite interpreter ------------------------
def predict_files_tflite(model_dir: str | Path, images: list[str], variant: str | None = None) -> list[dict]:
    """Like :func:`predict_files`, through ``<version>/tflite/model_<variant>.tflite`` (default: int8 if pushed,
    else the first pushed). Images are decoded and resized by the Transform graph inside the same version's
    SavedModel, so the TFLite model sees exactly the pixels the Trainer and the SavedModel saw."""
    from graft.pipeline import tflite_predict

    return tflite_predict.predict_files(
        resolve_version_dir(model_dir), images, variant, PredictError, unreadable_reason
    )
