"""Which form a text data location has, and the TFX input / output configs that read it.

Forms (detected; spans ``span-<N>/`` on top of any of them, the newest read, as for images):

  ``manifest``        one CSV / TSV file with a text and a label column (hash-split into train / val / test)
  ``split_manifests`` a folder with ``train.tsv`` + ``test.tsv`` (or .csv), optionally ``dev`` / ``val`` /
                      ``validation`` (GLUE's form); the splits are kept, val is carved from train downstream when absent
  ``presplit``        ``train/ val/ test/`` folders of ``<class>/*.txt`` (aclImdb's layout)
  ``folders``         ``<class>/*.txt`` (hash-split)
  ``tfrecord``        ``*.tfrecord*`` files of tf.Examples with a text feature (hash-split)

The split hash is TFX's own, on ``source`` (``file:line`` or the file's path), so a row keeps its split when others
are added. Reads no config object: the caller passes the fractions (components import downward only).
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass, field

from graft.components.image_example_gen import files
from graft.components.text_example_gen.rows import MANIFEST_SUFFIXES, SOURCE_KEY

SPAN_DIR_RE = re.compile(r"^span-(\d+)$")
SPAN_PREFIX = "span-{SPAN}"
SINGLE_SPLIT = "single_split"
FORMS = ("manifest", "split_manifests", "presplit", "folders", "tfrecord")
HASH_SPLIT_FORMS = ("manifest", "folders", "tfrecord")
SPLIT_ALIASES = {"train": "train", "test": "test", "val": "val", "dev": "val", "validation": "val"}
BUCKET_RESOLUTION = 1000
LAYOUT_HELP = (
    "Text data is one CSV/TSV manifest with text and label columns, a folder with train.tsv + test.tsv "
    "(optionally dev.tsv), class folders of .txt files (<class>/*.txt), train/ val/ test/ folders of those, "
    "or *.tfrecord files of tf.Examples with a 'text' and a 'label' feature."
)


class TextLayoutError(ValueError):
    """The location is not in any text form: the message says what was found and the forms Graft reads."""


@dataclass
class TextDataLayout:
    form: str
    input_base: str
    patterns: dict[str, str] = field(
        default_factory=dict
    )  # split (or single_split) -> pattern under input_base
    spans: bool = False

    def to_json(self) -> str:
        return json.dumps(self.__dict__, sort_keys=True)

    def input_config(self):
        from tfx.proto import example_gen_pb2

        return example_gen_pb2.Input(
            splits=[example_gen_pb2.Input.Split(name=n, pattern=p) for n, p in self.patterns.items()]
        )

    def carve(self, fractions: dict[str, float]) -> list[list]:
        """[[split, hash buckets], ...] partitioning train when a pre-split form lacks val (and/or test); [] else.

        As for images: with train and test, val is ``fractions['val']`` of train (stable hash of ``source``) and
        train keeps the rest; with train only, train is split by all three fractions. test is never touched."""
        if self.form in HASH_SPLIT_FORMS:
            return []
        missing = [s for s in ("train", "val", "test") if s not in self.patterns]
        if not missing or "train" in missing:
            return []
        buckets = {n: max(1, round(f * BUCKET_RESOLUTION)) for n, f in fractions.items()}
        if len(missing) == 2:
            return [[s, buckets[s]] for s in ("train", "val", "test")]
        carved = buckets[missing[0]]
        return [["train", BUCKET_RESOLUTION - carved], [missing[0], carved]]

    def output_config(self, fractions: dict[str, float]):
        """Hash split on ``source`` for single-split forms (``fractions``: train / val / test); else kept."""
        from tfx.proto import example_gen_pb2

        if self.form not in HASH_SPLIT_FORMS:
            return example_gen_pb2.Output()
        return example_gen_pb2.Output(
            split_config=example_gen_pb2.SplitConfig(
                splits=[
                    example_gen_pb2.SplitConfig.Split(
                        name=n, hash_buckets=max(1, round(f * BUCKET_RESOLUTION))
                    )
                    for n, f in fractions.items()
                ],
                partition_feature_name=SOURCE_KEY,
            )
        )


def _is_manifest(name: str) -> bool:
    return name.lower().endswith(MANIFEST_SUFFIXES)


def _has_txt(d: str) -> bool:
    return any(not is_dir and n.lower().endswith(".txt") for n, is_dir in files.list_dir(d))


def _form_of_dir(root: str) -> tuple[str, dict[str, str]]:
    entries = files.list_dir(root)
    names = {n.lower(): n for n, _ in entries}
    dirs = {n.lower(): n for n, is_dir in entries if is_dir and not files.is_ignored_name(n)}
    manifests = {}
    for stem, split in SPLIT_ALIASES.items():
        for suffix in (".tsv", ".csv"):
            if stem + suffix in names and split not in manifests:
                manifests[split] = names[stem + suffix]
    if "train" in manifests:
        if "test" not in manifests:
            raise TextLayoutError(
                f"{files.display(root)} has {manifests['train']} but no test.tsv / test.csv: add the test split "
                "(or point data.path at the one manifest to hash-split it)"
            )
        return "split_manifests", manifests
    split_dirs = {SPLIT_ALIASES[k]: v for k, v in dirs.items() if k in SPLIT_ALIASES}
    if "train" in split_dirs and "test" in split_dirs:
        return "presplit", {s: f"{d}/*/*.txt" for s, d in sorted(split_dirs.items())}
    if any(n.lower().endswith((".tfrecord", ".tfrecord.gz")) or ".tfrecord" in n.lower() for n in names):
        return "tfrecord", {SINGLE_SPLIT: "*.tfrecord*"}
    class_dirs = [d for d in dirs.values() if _has_txt(os.path.join(root, d))]
    if class_dirs:
        return "folders", {SINGLE_SPLIT: "*/*.txt"}
    single = [n for n, is_dir in entries if not is_dir and _is_manifest(n)]
    if len(single) == 1:
        return "manifest", {SINGLE_SPLIT: single[0]}
    found = ", ".join(sorted(n for n, _ in entries)[:10]) or "nothing"
    raise TextLayoutError(f"no text data in {files.display(root)} (it holds: {found}). {LAYOUT_HELP}")


def declared_text_layout(path: str) -> TextDataLayout | None:
    """The layout a path names by itself, without listing anything (a compile that must not read the data): one
    ``.csv`` / ``.tsv`` manifest file, or a glob of ``*.tfrecord*`` files. None otherwise."""
    path = (path or "").rstrip("/")
    base, name = path.rsplit("/", 1) if "/" in path else ("", path)
    if _is_manifest(name) and not any(c in name for c in "*?["):
        return TextDataLayout("manifest", base, {SINGLE_SPLIT: name})
    if ".tfrecord" in name.lower() and any(c in name for c in "*?["):
        return TextDataLayout("tfrecord", base, {SINGLE_SPLIT: name})
    return None


def detect_text_layout(path: str) -> TextDataLayout:
    """The form of ``path`` (a manifest file or a folder, spans allowed); raises TextLayoutError with the fix."""
    path = os.path.abspath(os.path.expanduser(path)) if not files.is_remote(path) else path.rstrip("/")
    if not os.path.isdir(path):
        if os.path.isfile(path) and _is_manifest(path):
            return TextDataLayout("manifest", os.path.dirname(path), {SINGLE_SPLIT: os.path.basename(path)})
        raise TextLayoutError(
            f"{files.display(path)} is neither a folder nor a .csv / .tsv manifest. {LAYOUT_HELP}"
        )
    spans = sorted(
        (int(m.group(1)), n) for n, is_dir in files.list_dir(path) if is_dir and (m := SPAN_DIR_RE.match(n))
    )
    if spans:
        form, patterns = _form_of_dir(os.path.join(path, spans[-1][1]))
        return TextDataLayout(form, path, {s: f"{SPAN_PREFIX}/{p}" for s, p in patterns.items()}, spans=True)
    form, patterns = _form_of_dir(path)
    return TextDataLayout(form, path, patterns)
