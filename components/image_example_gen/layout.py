"""Which of the four input forms ``data.path`` holds, as TFX ExampleGen input/output configs.

Runs where the pipeline is built (``create_pipeline``, ``graft schema infer``), before anything executes. The
result is plain TFX configuration: ``input_base`` + split patterns (TFX glob patterns relative to it, with
``{SPAN}`` for span folders) + an output split config (hash buckets on ``source_path``). The executor reads the
same patterns back, resolved to the newest span by the ExampleGen driver, so the two never disagree.

Forms (``data.format``; 'auto' detects them in this order):
  csv       a CSV manifest ``path,label`` (paths relative to the CSV), or a folder holding exactly one .csv file
  tfrecord  TFRecord files of tf.Examples (a file, a glob, or a folder of ``*.tfrecord*`` files)
  presplit  ``root/{train,val,test}/<class>/<image>`` (also ``validation``/``valid``/``dev``, ``testing``);
            a missing val/ (or val/ and test/) is carved out of train/ by the same hash (:meth:`DataLayout.carve`)
  folders   ``root/<class>/<image>``
Any of them may sit in ``root/span-<N>/``: the newest span is read (TFX span semantics), when ``data.use_spans``.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass, field

from graft.components import features
from graft.components.image_example_gen import files
from graft.components.image_example_gen.config import DataConfig
from graft.errors import ConfigError

SPAN_DIR_RE = re.compile(r"^span-(\d+)$")
SPAN_PREFIX = "span-{SPAN}"
# Split folder names accepted in a pre-split tree, first = canonical.
SPLIT_DIR_NAMES = {
    features.TRAIN_SPLIT: ("train", "training"),
    features.VAL_SPLIT: ("val", "validation", "valid", "dev"),
    features.TEST_SPLIT: ("test", "testing"),
}
TFRECORD_PATTERN = "*.tfrecord*"
SINGLE_SPLIT = "single_split"
FORMS = ("folders", "presplit", "csv", "tfrecord")
# Hash buckets per unit fraction: 0.8/0.1/0.1 -> 800/100/100.
BUCKET_RESOLUTION = 1000

_LAYOUT_HELP = (
    "Graft reads: root/<class>/<image> (class per folder), root/{train,val,test}/<class>/<image> (pre-split), "
    "a CSV manifest 'path,label' (paths relative to the CSV), or TFRecord files of tf.Examples with "
    f"'{features.IMAGE_KEY}' and '{features.LABEL_KEY}'; any of them may sit in root/span-<N>/ folders."
)


@dataclass(frozen=True)
class DataLayout:
    form: str
    input_base: str
    # split name (or 'single_split') -> TFX pattern relative to input_base
    patterns: dict[str, str] = field(default_factory=dict)
    spans: bool = False
    # The newest span seen while building the pipeline (the driver resolves it again at run time).
    span_seen: int | None = None

    @property
    def presplit(self) -> bool:
        return self.form == "presplit"

    def to_json(self) -> str:
        return json.dumps(
            {
                "form": self.form,
                "input_base": self.input_base,
                "patterns": self.patterns,
                "spans": self.spans,
            },
            sort_keys=True,
        )

    def input_config(self):
        from tfx.proto import example_gen_pb2

        return example_gen_pb2.Input(
            splits=[example_gen_pb2.Input.Split(name=n, pattern=p) for n, p in self.patterns.items()]
        )

    def carve(self, data: DataConfig) -> list[list]:
        """[[split, hash buckets], ...] partitioning train/ when a pre-split tree lacks val/ and/or test/; [] else.

        The knobs are the ones a class-folder tree uses, with the same meaning -- the share of the files Graft
        splits itself: a tree with train/ only is split data.train/val/test_fraction (80/10/10) like a folder
        tree; with train/ and test/, val is data.val_fraction of train/ (10 %) and train keeps the rest (with
        train/ and val/, test is data.test_fraction of train/). Same stable hash of source_path as every split.
        """
        if not self.presplit:
            return []
        missing = [s for s in features.SPLITS if s not in self.patterns]
        if not missing:
            return []
        buckets = hash_buckets(data)
        if len(missing) == 2:
            return [[s, buckets[s]] for s in features.SPLITS]
        carved = buckets[missing[0]]
        return [[features.TRAIN_SPLIT, BUCKET_RESOLUTION - carved], [missing[0], carved]]

    def output_config(self, data: DataConfig):
        """Hash split on ``source_path`` for single-split forms; a pre-split tree keeps its splits."""
        from tfx.proto import example_gen_pb2

        if self.presplit:
            return example_gen_pb2.Output()
        return example_gen_pb2.Output(
            split_config=example_gen_pb2.SplitConfig(
                splits=[
                    example_gen_pb2.SplitConfig.Split(name=name, hash_buckets=b)
                    for name, b in hash_buckets(data).items()
                ],
                partition_feature_name=features.PATH_KEY,
            )
        )


def hash_buckets(data: DataConfig) -> dict[str, int]:
    fractions = {
        features.TRAIN_SPLIT: data.train_fraction,
        features.VAL_SPLIT: data.val_fraction,
        features.TEST_SPLIT: data.test_fraction,
    }
    return {k: max(1, round(v * BUCKET_RESOLUTION)) for k, v in fractions.items()}


def _has_glob(path: str) -> bool:
    return any(c in path for c in "*?[")


def _spans(base: str) -> list[tuple[int, str]]:
    out = []
    for name, is_dir in files.list_dir(base):
        m = SPAN_DIR_RE.match(name)
        if m and is_dir:
            out.append((int(m.group(1)), name))
    return sorted(out)


def _form_of_dir(root: str) -> tuple[str, dict[str, str]]:
    """Detect the form of one data folder; patterns relative to that folder."""
    entries = files.list_dir(root)
    dirs = [n for n, d in entries if d]
    plain = [n for n, d in entries if not d]
    csvs = [n for n in plain if n.lower().endswith(".csv")]
    records = [n for n in plain if ".tfrecord" in n.lower()]
    lower_dirs = {d.lower(): d for d in dirs}
    split_dirs = {}
    for split, names in SPLIT_DIR_NAMES.items():
        found = [lower_dirs[n] for n in names if n in lower_dirs]
        if found:
            split_dirs[split] = found[0]
    if (
        dirs
        and set(lower_dirs) <= {n for names in SPLIT_DIR_NAMES.values() for n in names}
        and features.TRAIN_SPLIT in split_dirs
    ):
        return "presplit", _presplit_patterns(split_dirs)
    # A manifest next to the image folders announces itself with its 'path,label' header.
    with_header = [c for c in csvs if _csv_has_header(files.join(root, c))]
    if len(with_header) == 1:
        return "csv", {SINGLE_SPLIT: with_header[0]}
    if len(csvs) == 1 and not dirs:
        return "csv", {SINGLE_SPLIT: csvs[0]}
    if len(csvs) > 1 and not dirs:
        raise ConfigError(
            f"config key 'data.path': {files.display(root)} holds several CSV files ({', '.join(csvs[:5])}): "
            "point data.path at the manifest to use"
        )
    if records and not dirs:
        return "tfrecord", {SINGLE_SPLIT: TFRECORD_PATTERN}
    if dirs:
        return "folders", {SINGLE_SPLIT: "*/*"}
    raise ConfigError(
        f"config key 'data.path': no data found in {files.display(root)}"
        + (f" (it holds {', '.join(plain[:5])})" if plain else " (it is empty)")
        + f". {_LAYOUT_HELP}"
    )


def _csv_has_header(path: str) -> bool:
    try:
        if files.is_remote(path):
            import tensorflow as tf

            with tf.io.gfile.GFile(path, "rb") as f:
                raw = f.read(256)
        else:
            with open(path, "rb") as f:
                raw = f.read(256)
    except Exception:  # noqa: BLE001 - unreadable: not a manifest
        return False
    head = raw.decode("utf-8-sig", "replace")
    first = head.splitlines()[0] if head else ""
    return [c.strip().lower() for c in first.split(",")] == ["path", "label"]


def _presplit_patterns(split_dirs: dict[str, str]) -> dict[str, str]:
    # train always gets a pattern (an explicit data.format=presplit without it: the gate says train is empty);
    # a missing val/ or test/ is carved out of train (DataLayout.carve).
    return {
        s: f"{split_dirs.get(s, SPLIT_DIR_NAMES[s][0])}/*/*"
        for s in features.SPLITS
        if s in split_dirs or s == features.TRAIN_SPLIT
    }


def _patterns_for(form: str, root: str) -> dict[str, str]:
    """Patterns for an explicitly configured form (data.format != 'auto')."""
    if form == "folders":
        return {SINGLE_SPLIT: "*/*"}
    if form == "tfrecord":
        return {SINGLE_SPLIT: TFRECORD_PATTERN}
    if form == "presplit":
        lower = {n.lower(): n for n, d in files.list_dir(root) if d}
        split_dirs = {}
        for split, names in SPLIT_DIR_NAMES.items():
            found = [lower[n] for n in names if n in lower]
            if found:
                split_dirs[split] = found[0]
        return _presplit_patterns(split_dirs)
    if form == "csv":
        csvs = [n for n, d in files.list_dir(root) if not d and n.lower().endswith(".csv")]
        if len(csvs) != 1:
            raise ConfigError(
                f"config key 'data.path': data.format=csv needs a CSV file, or a folder with exactly one .csv "
                f"file; {files.display(root)} has {len(csvs)}"
            )
        return {SINGLE_SPLIT: csvs[0]}
    raise ConfigError(f"config key 'data.format': unknown form {form!r}")  # pragma: no cover


def declared_layout(data: DataConfig) -> DataLayout | None:
    """The layout when the config alone says it, without touching storage; None when it must be looked at.

    Declared: a TFRecord glob; a ``.csv`` / ``.tfrecord`` file path with data.format csv / tfrecord; a folder
    with data.format folders / tfrecord and data.use_spans=false (span detection lists the folder), or span folders
    whose names data.span_width declares (the newest is found by ExampleGen's driver at run time). A compile for
    a cluster then needs no access to the data (gs:// from a laptop without credentials).
    """
    path = (data.path or "").strip()
    if not path:
        return None
    if not files.is_remote(path):
        path = os.path.abspath(os.path.expanduser(path))
    if _has_glob(path):
        return detect_layout(data)  # a glob is read by no one until ExampleGen runs
    name = path.rstrip("/").rpartition("/")[2].lower()
    if data.format == "csv" and name.endswith(".csv"):
        base, file_name = _split_file(path)
        return DataLayout("csv", base, {SINGLE_SPLIT: file_name})
    if data.format == "tfrecord" and (".tfrecord" in name or name.endswith(".gz")):
        base, file_name = _split_file(path)
        return DataLayout("tfrecord", base, {SINGLE_SPLIT: file_name})
    if data.format in ("folders", "tfrecord") and not data.use_spans:
        return DataLayout(data.format, path, _patterns_for(data.format, path))
    if data.format in ("folders", "tfrecord") and data.span_width is not None:  # spans, their names declared
        prefix = span_prefix(data.span_width)
        patterns = {k: f"{prefix}/{v}" for k, v in _patterns_for(data.format, path).items()}
        return DataLayout(data.format, path, patterns, spans=True)
    return None


def span_prefix(width: int | None, digits: str = "") -> str:
    """The TFX span folder pattern: ``span-{SPAN}`` for unpadded names, ``span-{SPAN:3}`` for span-007 (TFX
    fills a bare ``{SPAN}`` unpadded). ``width`` None: from a folder name's ``digits``."""
    if width is None:
        width = len(digits) if len(digits) > 1 and digits.startswith("0") else 0
    return f"span-{{SPAN:{width}}}" if width else SPAN_PREFIX


def detect_layout(data: DataConfig) -> DataLayout:
    """Resolve ``data.path`` / ``data.format`` / ``data.use_spans`` into a :class:`DataLayout`."""
    path = (data.path or "").strip()
    if not path:
        raise ConfigError(
            f"config key 'data.path': empty. Set it to your data folder, CSV or TFRecords. {_LAYOUT_HELP}"
        )
    if not files.is_remote(path):
        path = os.path.abspath(os.path.expanduser(path))
    fmt = data.format

    # A glob of TFRecord files, or a single file (CSV or TFRecord).
    if _has_glob(path):
        if fmt not in ("auto", "tfrecord"):
            raise ConfigError(
                f"config key 'data.path': a glob ({path}) is only meaningful for TFRecord files"
            )
        base, pattern = _split_glob(path)
        return DataLayout("tfrecord", base, {SINGLE_SPLIT: pattern})
    if _is_file(path):
        base, name = _split_file(path)
        lower = name.lower()
        form = (
            fmt
            if fmt != "auto"
            else "csv"
            if lower.endswith(".csv")
            else "tfrecord"
            if ".tfrecord" in lower or lower.endswith(".gz")
            else ""
        )
        if form not in ("csv", "tfrecord"):
            raise ConfigError(
                f"config key 'data.path': {files.display(path)} is a file; Graft reads a file only as a CSV "
                f"manifest (.csv) or TFRecords (.tfrecord, .tfrecord.gz). {_LAYOUT_HELP}"
            )
        return DataLayout(form, base, {SINGLE_SPLIT: name})
    if not _is_dir(path):
        raise ConfigError(f"config key 'data.path': {files.display(path)} does not exist")

    spans = _spans(path) if data.use_spans else []
    root = path
    span_seen = None
    span_pattern = SPAN_PREFIX
    if spans:
        span_seen, span_dir = spans[-1]
        root = files.join(path, span_dir)
        span_pattern = span_prefix(data.span_width, SPAN_DIR_RE.match(span_dir).group(1))

    if fmt == "auto":
        form, patterns = _form_of_dir(root)
    else:
        form, patterns = fmt, _patterns_for(fmt, root)
    if spans:
        patterns = {k: f"{span_pattern}/{v}" for k, v in patterns.items()}
    return DataLayout(form, path, patterns, spans=bool(spans), span_seen=span_seen)


def _split_glob(path: str) -> tuple[str, str]:
    parts = path.split("/")
    for i, part in enumerate(parts):
        if _has_glob(part):
            base = "/".join(parts[:i]) or "/"
            return base, "/".join(parts[i:])
    raise AssertionError(path)  # pragma: no cover


def _split_file(path: str) -> tuple[str, str]:
    if files.is_remote(path):
        base, _, name = path.rstrip("/").rpartition("/")
        return base, name
    return os.path.dirname(path), os.path.basename(path)


def _is_file(path: str) -> bool:
    if files.is_remote(path):
        import tensorflow as tf

        return tf.io.gfile.exists(path) and not tf.io.gfile.isdir(path)
    return os.path.isfile(path)


def _is_dir(path: str) -> bool:
    if files.is_remote(path):
        import tensorflow as tf

        return tf.io.gfile.isdir(path)
    return os.path.isdir(path)


def split_root_and_class_depth(pattern: str) -> str:
    """For a folder pattern like 'span-3/train/*/*', the folder holding the class folders ('span-3/train')."""
    if pattern == "*/*":
        return ""
    if pattern.endswith("/*/*"):
        return pattern[: -len("/*/*")]
    raise ValueError(f"not a class-folder pattern: {pattern!r}")


def data_root_of(pattern: str) -> str:
    """The folder source paths are relative to: the span folder for spans ('span-3'), else the input base ('')."""
    first = pattern.split("/", 1)[0]
    return first if SPAN_DIR_RE.match(first) and "/" in pattern else ""


def class_folders(form: str, input_base: str, span: int | None = None) -> set[str] | None:
    """The class folder names of a folder or pre-split tree (the newest span, or ``span``); None for CSV /
    TFRecords. Read at build time (the Evaluator's class list) and by ExampleGen's stop, which names the class
    folders that gave no usable image together with the bad files."""
    if form not in ("folders", "presplit"):
        return None
    root = input_base
    spans = sorted((int(m.group(1)), n) for n, d in files.list_dir(root) if d and (m := SPAN_DIR_RE.match(n)))
    if spans:
        wanted = [n for s, n in spans if s == span] if span is not None else []
        root = files.join(root, (wanted or [spans[-1][1]])[0])
    if form == "folders":
        return {n for n, d in files.list_dir(root) if d}
    return {
        c for split, d in files.list_dir(root) if d for c, cd in files.list_dir(files.join(root, split)) if cd
    }
