"""What building the DAG needs to know about the data, resolved by the caller: the reads happen here, not in dag.py.

``create_pipeline`` (graft.pipeline.dag) reads nothing; the local runner and the Kubeflow compile call
:func:`resolve` first and pass the result, so each decides what may be read. ``resolve`` reads:

* the data layout (graft.components.image_example_gen.layout): skipped when the config declares it (a TFRecord
  glob, or data.format with data.use_spans=false; see ``declared_layout``);
* the class folders, for the Evaluator's per-class metrics: skipped when data.classes is set;
* the curated schema's text (data.schema_path, or the one Graft ships in graft.schemas), validated.

So a compile with data.format, data.use_spans=false and data.classes (or a TFRecord glob) touches neither the data
location nor the network.
"""

from __future__ import annotations

import dataclasses
import os
from typing import Any

from graft.pipeline.config import ConfigError, GraftConfig


@dataclasses.dataclass(frozen=True)
class DagInputs:
    layout: Any  # image_example_gen.layout.DataLayout, or text_example_gen.layout.TextDataLayout (task text)
    # The class list when known at build time (configured, or the class folders); None: unknown until the run.
    class_names: list[str] | None
    schema_text: str
    task: str = "image"  # graft.pipeline.task: 'image' or 'text'


def declares_layout(config: GraftConfig) -> bool:
    """Whether the config alone says the data layout (then ``resolve(config, read_data=False)`` works)."""
    from graft.components.image_example_gen.layout import declared_layout
    from graft.components.text_example_gen.layout import declared_text_layout
    from graft.pipeline import task as task_mod

    if task_mod.detect_task(config) == task_mod.TEXT:
        return declared_text_layout(config.data.path) is not None
    return declared_layout(config.data) is not None


def resolve(config: GraftConfig, read_data: bool = True, task: str | None = None) -> DagInputs:
    """The layout, the class list and the schema text for ``config``.

    ``read_data=True`` (``graft run``): the data location is looked at (it must exist; spans, forms and class
    folders are found). ``read_data=False`` (a compile whose config declares the layout): nothing under data.path
    is touched; the config must declare the layout (a ConfigError says what to set) and the class list is
    data.classes or unknown."""
    from graft.components.image_example_gen.layout import declared_layout, detect_layout
    from graft.pipeline import task as task_mod

    task = task or task_mod.detect_task(config)
    if task == task_mod.TEXT:
        return _resolve_text(config, read_data)
    if read_data:
        layout = detect_layout(config.data)
    else:
        layout = declared_layout(config.data)
        if layout is None:
            raise ConfigError(
                "config key 'data.format': building this DAG without reading the data needs the layout declared: "
                "a TFRecord glob as data.path, or data.format=folders|tfrecord with data.use_spans=false (or, for "
                "span-N/ folders, data.span_width)"
            )
    if config.data.classes:
        class_names = list(config.data.classes)
    else:
        class_names = class_names_hint(config, layout) if read_data else None
    weights = config.train.class_weights
    if (
        isinstance(weights, dict) and class_names and not config.data.classes
    ):  # data.classes: checked in config
        unknown = sorted(set(weights) - set(class_names))
        if unknown:
            raise ConfigError(
                f"config key 'train.class_weights': class(es) {', '.join(unknown)} are not class folders of "
                f"{config.data.path} ({', '.join(class_names)}); use the folder names"
            )
    return DagInputs(layout=layout, class_names=class_names, schema_text=schema_text(config))


def _resolve_text(config: GraftConfig, read_data: bool) -> DagInputs:
    """Task text: the text layout (text_example_gen.layout), the class list if configured, the text schema."""
    from graft.components.text_example_gen.layout import (
        TextLayoutError,
        declared_text_layout,
        detect_text_layout,
    )

    if not read_data:
        layout = declared_text_layout(config.data.path)
        if layout is None:
            raise ConfigError(
                "config key 'data.path': building a text DAG without reading the data needs the layout named by the "
                "path: one .csv / .tsv manifest file, or a glob of *.tfrecord* files"
            )
    else:
        try:
            layout = detect_text_layout(config.data.path)
        except TextLayoutError as e:
            raise ConfigError(f"config key 'data.path': {e}") from None
    classes = list(config.data.classes) or None
    return DagInputs(layout=layout, class_names=classes, schema_text=schema_text(config, "text"), task="text")


def schema_text(config: GraftConfig, task: str = "image") -> str:
    """The curated schema's text: data.schema_path, or the committed one. Validated here, at build time."""
    from graft.components import data_gate

    path = config.data.schema_path or data_gate.default_schema_path(task)
    try:
        with open(os.path.expanduser(path), encoding="utf-8") as f:
            text = f.read()
    except OSError as e:
        raise ConfigError(f"config key 'data.schema_path': cannot read {path}: {e.strerror or e}") from None
    try:
        data_gate.parse_schema(text, where=path)
    except ValueError as e:
        raise ConfigError(f"config key 'data.schema_path': {e}") from None
    return text


def class_names_hint(config: GraftConfig, layout) -> list[str] | None:
    """The class list when it is cheap to know at build time: configured, or the class folders of a folder tree
    (newest span). TFMA needs it for per-class precision / recall and macro AUC (binarized by class id); without
    it the Evaluator still computes accuracy, the per-label slices and the confusion matrix."""
    if config.data.classes:
        return list(config.data.classes)
    from graft.components.image_example_gen.layout import class_folders

    try:
        names = class_folders(layout.form, layout.input_base)
    except Exception:  # noqa: BLE001 - a hint only; the DAG is correct without it
        return None
    if names is None:
        return None
    return sorted(names) if len(names) >= 2 else None
