"""The data report the image ExampleGen writes beside its splits, and how to read it back.

``<examples.uri>/data_report.json``:
  form, data_path, span, num_files (files or records looked at), num_examples, num_skipped, bad_fraction,
  classes (sorted class names found), counts {split: {class: n}}, duplicates [{sha256, labels, paths}],
  carved {split: {"from": "train", "fraction": f}} (splits a pre-split tree lacked, carved out of train/)
``<examples.uri>/skipped_files.json``: [{"path": <relative path>, "reason": <plain words>}, ...] sorted by path.
When the run stops on bad files, TFX deletes the failed execution's outputs, so the list is also kept at
``<pipeline_root>/<ExampleGen id>/skipped_files/<execution id>.json`` (the error message names it).

The same summary is on the Examples artifact as custom properties (``graft_classes``, ``graft_counts``,
``graft_carved`` as JSON strings; ``graft_num_examples``, ``graft_num_skipped`` as ints) for MLMD queries and the
run report; the files are the source of truth (they travel with the artifact on any orchestrator).
"""

from __future__ import annotations

import json
import os

REPORT_FILE = "data_report.json"
SKIPPED_FILE = "skipped_files.json"

PROP_CLASSES = "graft_classes"
PROP_COUNTS = "graft_counts"
PROP_NUM_EXAMPLES = "graft_num_examples"
PROP_NUM_SKIPPED = "graft_num_skipped"
PROP_CARVED = "graft_carved"


def _read_json(path: str):
    if "://" in path:
        import tensorflow as tf

        with tf.io.gfile.GFile(path, "r") as f:
            return json.load(f)
    with open(path, encoding="utf-8") as f:
        return json.load(f)


def read_data_report(examples_uri: str) -> dict:
    path = os.path.join(examples_uri, REPORT_FILE)
    try:
        return _read_json(path)
    except FileNotFoundError:
        raise FileNotFoundError(
            f"{path} is missing: these Examples were not written by Graft's image ExampleGen"
        ) from None


def read_skipped_files(examples_uri: str) -> list[dict]:
    path = os.path.join(examples_uri, SKIPPED_FILE)
    try:
        return _read_json(path)
    except FileNotFoundError:
        return []


def write_json(path: str, value) -> None:
    text = json.dumps(value, indent=1, sort_keys=True, ensure_ascii=False)
    if "://" in path:
        import tensorflow as tf

        with tf.io.gfile.GFile(path, "w") as f:
            f.write(text)
        return
    with open(path, "w", encoding="utf-8") as f:
        f.write(text)
