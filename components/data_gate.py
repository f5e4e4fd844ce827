"""The validation gate: the curated schema with its label domain, and the component that stops a run on bad data.

Two small TFX components (Python function components, so they run as ordinary TFX executors on LocalDagRunner and
in the Kubeflow V2 container; their code ships in the image, nothing is written at pipeline-build time):

``CuratedSchemaGen``  the committed schema (its text is an exec property, so editing the file re-runs it and
                      nothing is read from the client's disk at run time) with the label domain filled in: the
                      configured ``data.classes``, or the classes ExampleGen found.
``DataGate``          reads ExampleValidator's anomalies for every split and ExampleGen's counts, and raises
                      :class:`DataValidationError` listing every problem in plain words: anomalies (feature, what is
                      wrong, which split), a split with no examples, fewer than 2 classes, a class with fewer than
                      ``data.min_train_examples_per_class`` train examples, labels outside ``data.classes``.
                      When the data passes it emits the schema again as ``validated_schema``: Transform consumes that
                      artifact, so Transform cannot run unless the gate passed, on every orchestrator.
"""

# No `from __future__ import annotations`: TFX's @component reads the annotations as real types.
import graft  # noqa: F401, I001  (legacy Keras before TensorFlow)

import json  # noqa: E402, I001
import os  # noqa: E402

from absl import logging  # noqa: E402
from tfx.dsl.component.experimental.annotations import InputArtifact, OutputArtifact, Parameter  # noqa: E402
from tfx.dsl.component.experimental.decorators import component  # noqa: E402
from tfx.types import artifact_utils, standard_artifacts  # noqa: E402

from graft.components import features  # noqa: E402
from graft.components.data_errors import DataValidationError  # noqa: E402,F401  (re-exported)
from graft.components.image_example_gen import report as report_mod  # noqa: E402

SCHEMA_FILE = "schema.pbtxt"  # the name TFX's SchemaGen / ImportSchemaGen write
ANOMALIES_FILE = "SchemaDiff.pb"  # ExampleValidator's per-split output
LABEL_DOMAIN = "label"
PROP_CLASSES = "graft_classes"


# ---- schema ---------------------------------------------------------------------------------------------------
def default_schema_path(task: str = "image") -> str:
    """The committed, curated schema of ``task`` ('image' or 'text'; shipped inside the package)."""
    from graft import schemas

    return schemas.schema_path("text_classification" if task == "text" else "image_classification")


def parse_schema(text: str, where: str = "the schema"):
    from google.protobuf import text_format
    from tensorflow_metadata.proto.v0 import schema_pb2

    schema = schema_pb2.Schema()
    try:
        text_format.Parse(text, schema)
    except text_format.ParseError as e:
        raise ValueError(f"{where} is not a valid tensorflow_metadata Schema in text format: {e}") from None
    names = {f.name for f in schema.feature}
    if features.LABEL_KEY not in names:
        raise ValueError(f"{where} has no feature '{features.LABEL_KEY}' (it has {sorted(names)})")
    if features.IMAGE_KEY not in names and features.TEXT_KEY not in names:
        raise ValueError(
            f"{where} has neither '{features.IMAGE_KEY}' (images) nor '{features.TEXT_KEY}' (text) (it has "
            f"{sorted(names)})"
        )
    return schema


def fill_label_domain(schema, classes: list[str]):
    """Set the label's string domain to exactly ``classes`` (in order). Returns the schema."""
    label = next(f for f in schema.feature if f.name == features.LABEL_KEY)
    if label.HasField("string_domain"):
        domain = label.string_domain
    else:
        name = label.domain or LABEL_DOMAIN
        label.domain = name
        domain = next((d for d in schema.string_domain if d.name == name), None)
        if domain is None:
            domain = schema.string_domain.add(name=name)
    del domain.value[:]
    domain.value.extend(classes)
    return schema


def label_domain(schema) -> list[str]:
    label = next(f for f in schema.feature if f.name == features.LABEL_KEY)
    if label.HasField("string_domain"):
        return list(label.string_domain.value)
    d = next((d for d in schema.string_domain if d.name == label.domain), None)
    return list(d.value) if d is not None else []


def _write_schema(schema, uri: str) -> str:
    from tfx.utils import io_utils

    path = os.path.join(uri, SCHEMA_FILE)
    io_utils.write_pbtxt_file(path, schema)
    return path


def _read_schema(uri: str):
    from tfx.utils import io_utils

    return io_utils.SchemaReader().read(io_utils.get_only_uri_in_dir(uri))


@component
def CuratedSchemaGen(  # noqa: N802 (TFX component name)
    examples: InputArtifact[standard_artifacts.Examples],
    schema: OutputArtifact[standard_artifacts.Schema],
    schema_text: Parameter[str],
    classes_json: Parameter[str],
) -> None:
    """Committed schema + label domain (``data.classes``, or the classes ExampleGen found) -> Schema artifact."""
    proto = parse_schema(schema_text)
    configured = json.loads(classes_json)
    found = report_mod.read_data_report(examples.uri)["classes"]
    classes = list(configured) or sorted(found)
    fill_label_domain(proto, classes)
    path = _write_schema(proto, schema.uri)
    schema.set_string_custom_property(PROP_CLASSES, json.dumps(classes))
    logging.info(
        "Schema %s: label domain = %s (%s)", path, classes, "data.classes" if configured else "classes found"
    )


# ---- the gate ---------------------------------------------------------------------------------------------------
_MISSING = {
    "FEATURE_TYPE_LOW_FRACTION_PRESENT",
    "FEATURE_TYPE_LOW_NUMBER_PRESENT",
    "FEATURE_TYPE_NOT_PRESENT",
    "SCHEMA_MISSING_COLUMN",
}
_VALUE_COUNT = {
    "INVALID_FEATURE_SHAPE",
    "FEATURE_TYPE_HIGH_NUMBER_VALUES",
    "FEATURE_TYPE_LOW_NUMBER_VALUES",
    "FEATURE_TYPE_NO_VALUES",
    "VALUE_NESTEDNESS_MISMATCH",
}


def _plain(feature: str, type_name: str) -> str:
    if type_name in _MISSING:
        return "is missing from some or all examples"
    if type_name in _VALUE_COUNT:
        if feature == features.LABEL_KEY:
            return "some examples have no label or more than one (every example needs exactly one label)"
        return "some examples do not have exactly one value"
    if type_name == "ENUM_TYPE_UNEXPECTED_STRING_VALUES":
        return "has values outside the allowed list"
    if type_name == "ENUM_TYPE_INVALID_UTF8":
        return "has values that are not valid UTF-8 text"
    if type_name == "SCHEMA_NEW_COLUMN":
        return "is in the data but not in the schema"
    if "NOT_STRING" in type_name or "EXPECTED" in type_name or type_name == "UNEXPECTED_DATA_TYPE":
        return "has the wrong type (the schema expects bytes)"
    if type_name in ("DATASET_LOW_NUM_EXAMPLES", "NO_DATA_IN_SPAN"):
        return "has too few examples"
    return ""


def describe_anomalies(split: str, anomalies) -> list[tuple[str, str]]:
    """Anomalies proto of one split -> [(feature, plain sentence)]."""
    from tensorflow_metadata.proto.v0 import anomalies_pb2

    out = []
    for feature, info in sorted(anomalies.anomaly_info.items()):
        reasons = list(info.reason) or [info]
        seen = set()
        for r in reasons:
            type_name = anomalies_pb2.AnomalyInfo.Type.Name(r.type) if hasattr(r, "type") else ""
            plain = _plain(feature, type_name) or (r.short_description or "is not as the schema says")
            if plain in seen:
                continue
            seen.add(plain)
            detail = (r.description or info.description or "").strip()
            out.append(
                (
                    feature,
                    f"split '{split}', feature '{feature}': {plain}" + (f" ({detail})" if detail else ""),
                )
            )
    if anomalies.HasField("dataset_anomaly_info"):
        info = anomalies.dataset_anomaly_info
        for r in list(info.reason) or [info]:
            out.append(
                ("", f"split '{split}': {r.short_description or 'dataset anomaly'} ({r.description})".strip())
            )
    return out


def gate_problems(
    rep: dict,
    anomalies_by_split: dict,
    classes: list[str],
    configured: list[str],
    min_train: int,
    folder_classes: list[str] = (),
) -> list[str]:
    """Every reason to stop, in plain words. ``rep`` is ExampleGen's data report. ``folder_classes``: the class
    folders seen when the pipeline was built (data.classes unset), which the Evaluator's per-class metrics use."""
    problems: list[str] = []
    counts: dict[str, dict[str, int]] = rep.get("counts", {})
    presplit = rep.get("form") == "presplit"
    for split in features.SPLITS:
        n = sum(counts.get(split, {}).values())
        if n == 0:
            if presplit:
                hint = f"add images under {split}/<class>/ in {rep.get('data_path')}"
            else:
                hint = (
                    f"only {rep.get('num_examples', 0)} usable images in all; the '{split}' share of the hash split "
                    "got none: add images (or change data.*_fraction)"
                )
            problems.append(f"split '{split}' has no examples: {hint}")

    if len(classes) < 2:
        problems.append(
            f"only {len(classes)} class{'es' if len(classes) != 1 else ''} ({', '.join(map(repr, classes)) or 'none'}): "
            "a classifier needs at least 2. Add a folder (or CSV labels) per class, or list them in data.classes"
        )
    train = counts.get(features.TRAIN_SPLIT, {})
    for c in classes:
        n = train.get(c, 0)
        if n < min_train:
            problems.append(
                f"class '{c}' has {n} train example{'s' if n != 1 else ''}, fewer than "
                f"data.min_train_examples_per_class={min_train}: add images of '{c}' (or lower that setting)"
            )

    if folder_classes and not configured:
        found = {label for per in counts.values() for label in per}
        for c in sorted(set(folder_classes) - found):
            problems.append(
                f"class folder '{c}' has no usable images (it is empty, or every file in it was skipped): add "
                f"images of '{c}' or remove the folder"
            )
        for c in sorted(found - set(folder_classes)):
            problems.append(
                f"class '{c}' was not a class folder when the pipeline was built (its per-class evaluation is set "
                f"up for {sorted(folder_classes)}): the data changed; rerun `graft run` (or `graft compile` again "
                "for Kubeflow), or list the classes in data.classes"
            )

    outside: set[str] = set()
    if configured:
        found = {label for per in counts.values() for label in per}
        outside = found - set(configured)
        for label in sorted(outside):
            where = ", ".join(f"{counts.get(s, {}).get(label, 0)} {s}" for s in features.SPLITS)
            problems.append(
                f"label '{label}' ({where} examples) is not in data.classes {configured}: add it to data.classes "
                "or remove those images"
            )

    for split in sorted(anomalies_by_split):
        for feature, sentence in describe_anomalies(split, anomalies_by_split[split]):
            # The precise 'label outside data.classes' lines above already cover TFDV's domain anomaly.
            if outside and feature == features.LABEL_KEY and "outside the allowed list" in sentence:
                continue
            problems.append(sentence)
    return problems


def _load_anomalies(artifact) -> dict:
    from tensorflow_metadata.proto.v0 import anomalies_pb2
    from tfx.utils import io_utils

    out = {}
    for split in artifact_utils.decode_split_names(artifact.split_names):
        path = os.path.join(artifact_utils.get_split_uri([artifact], split), ANOMALIES_FILE)
        a = anomalies_pb2.Anomalies()
        a.ParseFromString(io_utils.read_bytes_file(path))
        out[split] = a
    return out


def format_problems(problems: list[str], rep: dict) -> str:
    head = (
        f"data validation failed for {rep.get('data_path')} with {len(problems)} problem"
        f"{'s' if len(problems) != 1 else ''}; nothing after the gate ran (no Transform, no training):"
    )
    return "\n".join([head, *(f"  {i}. {p}" for i, p in enumerate(problems, 1))])


@component
def DataGate(  # noqa: N802 (TFX component name)
    examples: InputArtifact[standard_artifacts.Examples],
    anomalies: InputArtifact[standard_artifacts.ExampleAnomalies],
    schema: InputArtifact[standard_artifacts.Schema],
    validated_schema: OutputArtifact[standard_artifacts.Schema],
    classes_json: Parameter[str],
    min_train_examples_per_class: Parameter[int],
    folder_classes_json: Parameter[str] = "[]",
) -> None:
    """Stop the run (DataValidationError) on any data problem; else pass the schema on to Transform."""
    rep = report_mod.read_data_report(examples.uri)
    proto = _read_schema(schema.uri)
    classes = label_domain(proto)
    configured = list(json.loads(classes_json))
    problems = gate_problems(
        rep,
        _load_anomalies(anomalies),
        classes,
        configured,
        int(min_train_examples_per_class),
        list(json.loads(folder_classes_json or "[]")),
    )
    if problems:
        message = format_problems(problems, rep)
        # INFO, not ERROR: the exception carries the same text to the user (the CLI prints it once).
        logging.info("%s", message)
        raise DataValidationError(message, problems)
    path = _write_schema(proto, validated_schema.uri)
    validated_schema.set_string_custom_property(PROP_CLASSES, json.dumps(classes))
    counts = rep.get("counts", {})
    logging.info(
        "Data validation passed: %d classes, %s examples (train/val/test); schema %s",
        len(classes),
        "/".join(str(sum(counts.get(s, {}).values())) for s in features.SPLITS),
        path,
    )
