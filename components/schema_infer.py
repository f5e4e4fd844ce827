"""``graft schema infer``: a starting schema inferred from real data, for users who curate their own.

Reads the data exactly as the image ExampleGen does (same layout detection, listing and per-file checks; the
newest span), up to ``limit`` examples spread over the classes, computes TFDV statistics and infers a schema,
then applies what Graft relies on: TRAINING and SERVING environments, ``label`` and ``source_path`` absent at
serving time, exactly one value of ``image_bytes`` / ``label`` / ``source_path`` in every example (scalar shape),
and the label domain (filled again at run time with ``data.classes`` or the classes found). Edit it, commit it,
and point ``data.schema_path`` at it.
"""

from __future__ import annotations

import os
import tempfile

from graft.components import features
from graft.components.image_example_gen import files, layout
from graft.components.image_example_gen.config import DataConfig

HEADER = """\
# Graft schema inferred by `graft schema infer` from {data_path} ({n} examples, {k} classes).
# A starting point to curate: edit it, commit it, and set data.schema_path to this file.
# The label domain is filled in again at run time (data.classes, or the classes ExampleGen finds).
"""


def _resolve_span(lay: layout.DataLayout) -> dict[str, str]:
    from graft.components.image_example_gen import driver

    if not lay.spans:
        return dict(lay.patterns)
    out = {}
    for name, pattern in lay.patterns.items():
        found = driver.latest_span(lay.input_base, pattern) if not files.is_remote(lay.input_base) else None
        token = found[1] if found else str(lay.span_seen)
        out[name] = driver.SPAN_SPEC_RE.sub(token, pattern)
    return out


def collect_examples(data: DataConfig, limit: int) -> tuple[list[bytes], int]:
    """Serialized tf.Examples (at most ``limit``, round-robin over classes) and the number of bad files seen."""
    from graft.components.image_example_gen import executor

    lay = layout.detect_layout(data)
    patterns = _resolve_span(lay)
    examples: list[bytes] = []
    bad = 0
    if lay.form == "tfrecord":
        import tensorflow as tf

        for pattern in patterns.values():
            fn = executor.ReadTFRecordFileFn(data.max_image_pixels, lay.input_base)
            for path in files.glob_pattern(lay.input_base, pattern):
                for out in fn.process(files.to_bytes(path)):
                    if len(examples) >= limit:
                        break
                    if isinstance(out, tf.train.Example):
                        examples.append(out.SerializeToString())
                    else:
                        bad += 1
        return examples, bad

    candidates = []
    for pattern in patterns.values():
        if lay.form == "csv":
            good, listed_bad = executor.csv_candidates(lay.input_base, pattern, data.allowed_roots)
        else:
            good, listed_bad, _ = executor.folder_candidates(lay.input_base, pattern)
        candidates.extend(good)
        bad += len(listed_bad)
    by_class: dict[str, list] = {}
    for c in candidates:
        by_class.setdefault(c.label, []).append(c)
    order = []
    queues = [list(v) for _, v in sorted(by_class.items())]
    while any(queues) and len(order) < limit:
        for q in queues:
            if q and len(order) < limit:
                order.append(q.pop(0))
    for c in order:
        data_bytes, problem = files.read_file_checked(c.path)
        problem = problem or files.check_image(data_bytes, data.max_image_pixels)
        if problem:
            bad += 1
            continue
        examples.append(executor.make_example(data_bytes, c.label, files.to_bytes(c.rel)).SerializeToString())
    return examples, bad


def curate(schema, classes: list[str]):
    """Apply what Graft's components rely on to an inferred schema."""
    from graft.components import data_gate

    del schema.default_environment[:]
    schema.default_environment.extend(["TRAINING", "SERVING"])
    for f in schema.feature:
        if f.name in (features.IMAGE_KEY, features.LABEL_KEY, features.PATH_KEY):
            f.ClearField("value_count")
            f.shape.Clear()
            f.shape.SetInParent()  # scalar: exactly one value
            f.presence.min_fraction = 1.0
            f.presence.min_count = 1
        if f.name in (features.LABEL_KEY, features.PATH_KEY):
            del f.not_in_environment[:]
            f.not_in_environment.append("SERVING")
        if f.name in (features.IMAGE_KEY, features.PATH_KEY):
            f.ClearField("domain_info")  # a string domain of file contents or paths would reject new data
        if f.name == features.IMAGE_KEY:
            f.image_domain.SetInParent()  # StatisticsGen: byte sizes, not top-k of whole images
    names = {f.name for f in schema.feature}
    for d in [d for d in schema.string_domain if d.name in (features.IMAGE_KEY, features.PATH_KEY)]:
        schema.string_domain.remove(d)
    if features.LABEL_KEY in names:
        data_gate.fill_label_domain(schema, classes)
    return schema


def infer_schema_text(data: DataConfig, limit: int = 2000) -> tuple[str, dict]:
    """(schema text, summary) for the data at ``data.path``."""
    import tensorflow as tf
    import tensorflow_data_validation as tfdv
    from google.protobuf import text_format

    examples, bad = collect_examples(data, limit)
    if not examples:
        from graft.components.data_errors import NoImagesFoundError

        raise NoImagesFoundError(
            f"no usable image found in {data.path} ({bad} bad files): nothing to infer from"
        )
    classes = sorted(
        {
            tf.train.Example.FromString(e).features.feature[features.LABEL_KEY].bytes_list.value[0].decode()
            for e in examples
        }
    )
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "examples.tfrecord")
        with tf.io.TFRecordWriter(path) as w:
            for e in examples:
                w.write(e)
        stats = tfdv.generate_statistics_from_tfrecord(path)
    schema = curate(tfdv.infer_schema(stats, infer_feature_shape=True), classes)
    summary = {"examples": len(examples), "bad_files": bad, "classes": classes}
    text = HEADER.format(data_path=data.path, n=len(examples), k=len(classes)) + text_format.MessageToString(
        schema
    )
    return text, summary
