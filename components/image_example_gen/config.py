"""The ``data`` section: where the images (or texts) are, how they are split, what counts as bad data.

Owned by the ExampleGen (it reads every key; the DataGate and the schema reader read a few). No TensorFlow:
the assembled config (graft.pipeline.config) and the CLI's ``--help`` import it.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field
from typing import Literal

from graft.settings import check as _check
from graft.settings import check_safe_name


@dataclass
class DataConfig:
    # A class-per-folder tree, a pre-split tree ({train,val,test}/<class>/...), a folder of span-N/ subfolders,
    # a CSV manifest (path,label), or a folder / glob of TFRecord files of tf.Examples.
    path: str = ""
    format: Literal["auto", "folders", "presplit", "csv", "tfrecord"] = "auto"
    # Class names in label-index order. Empty: the classes found in the data (sorted).
    classes: list[str] = field(default_factory=list)
    train_fraction: float = 0.8
    val_fraction: float = 0.1
    test_fraction: float = 0.1
    # Stop the run when more than this fraction of files are not decodable images (each is listed).
    max_bad_fraction: float = 0.01
    # Stop the run when a class has fewer train examples than this.
    min_train_examples_per_class: int = 5
    # Refuse images with more pixels than this before decoding them (decompression bombs).
    max_image_pixels: int = 50_000_000
    # Read the newest span-N/ folder (TFX span semantics) when the data folder has span-N/ subfolders.
    use_spans: bool = True
    # Digits in the span-N/ folder names, so the span pattern is declared, not read from data.path (a hermetic
    # compile): 0 = unpadded (span-7, span-12: TFX's {SPAN}), N = zero-padded to N digits (span-007: {SPAN:3}).
    # null: from the newest span folder's name.
    span_width: int | None = None
    # Curated schema (tensorflow_metadata Schema, text format) the data is validated against. Empty: the one Graft
    # ships (schemas/image_classification/schema.pbtxt). `graft schema infer --data DIR` writes a starting
    # point. Read when the pipeline is built; its label domain is filled in at run time.
    schema_path: str = ""
    # Folders (or gs:// prefixes) outside a CSV manifest's own folder that its rows may point into. Empty: every
    # row must point inside the manifest's folder (a row such as ../elsewhere/x.jpg is a bad row, listed).
    allowed_roots: list[str] = field(default_factory=list)
    # Text data (task text; read by the text ExampleGen): the manifest columns holding the text and the label.
    # Empty: found by header name (text / sentence / review ..., label / class ...), else the GLUE order.
    text_column: str = ""
    label_column: str = ""
    # A text row longer than this (UTF-8 bytes) is quarantined as a bad row (listed with its reason).
    max_text_bytes: int = 100_000

    def validate(self) -> None:
        for k in ("train_fraction", "val_fraction", "test_fraction"):
            v = getattr(self, k)
            _check(0.0 < v < 1.0, f"data.{k}", f"{v} is out of range: must be > 0 and < 1")
        total = self.train_fraction + self.val_fraction + self.test_fraction
        _check(
            math.isclose(total, 1.0, abs_tol=1e-6),
            "data.train_fraction",
            f"train/val/test fractions must add up to 1.0, they add up to {total:g}",
        )
        _check(0.0 <= self.max_bad_fraction <= 1.0, "data.max_bad_fraction", "must be between 0 and 1")
        _check(self.min_train_examples_per_class >= 1, "data.min_train_examples_per_class", "must be >= 1")
        _check(self.max_image_pixels >= 1, "data.max_image_pixels", "must be >= 1")
        _check(self.max_text_bytes >= 1, "data.max_text_bytes", "must be >= 1")
        _check(
            self.span_width is None or 0 <= self.span_width <= 18,
            "data.span_width",
            f"{self.span_width}: use 0 (span-7), the digits of zero-padded names (3 for span-007), or null",
        )
        _check(len(set(self.classes)) == len(self.classes), "data.classes", "class names must be unique")
        _check(
            not self.schema_path or self.schema_path.endswith(".pbtxt"),
            "data.schema_path",
            f"{self.schema_path!r}: expected a text-format schema file ending in .pbtxt",
        )
        for c in self.classes:
            check_safe_name(c, "data.classes")


def normalize_data_path(path: str) -> str:
    """One spelling per location, before the path reaches any cache key: a local path absolute, ``~`` expanded,
    ``.``/``..`` and trailing slashes gone; a URL (gs://, s3://) without trailing slashes."""
    path = (path or "").strip()
    if not path:
        return path
    if "://" in path:
        scheme, _, rest = path.partition("://")
        return f"{scheme}://{rest.rstrip('/')}" if rest.strip("/") else path
    return os.path.normpath(os.path.abspath(os.path.expanduser(path)))
