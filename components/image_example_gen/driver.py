"""ExampleGen driver that survives real folders: TFX span semantics, robust listing, a fingerprint for caching.

TFX's ``FileBasedDriver`` globs and stats the input with ``fileio`` (``tf.io.gfile`` here), which raises on a
non-UTF-8 file name (``UnicodeDecodeError``), a symlink loop (``UnknownError``) and a broken symlink
(``NotFoundError``) -- any of those in the data folder would stop the run before the executor could list the file
as skipped. For local data this driver does the same work with ``glob``/``os.stat`` and never raises for one file:
newest span among files matching the pattern (``{SPAN}`` / ``{SPAN:width}``; all splits must agree), the pattern
filled with it, and TFX's fingerprint (file count, bytes, mtimes) that is part of the cache key. For a CSV manifest
the fingerprint also covers the image files it lists, so editing an image invalidates the cached ExampleGen.

Remote data (``gs://`` ...) and patterns with date/version specs use TFX's own code unchanged. On Kubeflow V2,
TFX compiles every FileBasedExampleGen with its own driver container (same semantics, object stores have no such
names); there the CSV fingerprint covers the CSV only.
"""

from __future__ import annotations

import copy
import csv
import io
import os
import re

from tfx.components.example_gen import driver, input_processor

from graft.components.data_errors import NoImagesFoundError
from graft.components.image_example_gen import files

SPAN_SPEC_RE = re.compile(r"\{SPAN(?::(\d+))?\}")


def _glob_to_regex(pattern: str) -> str:
    out = []
    i = 0
    while i < len(pattern):
        m = SPAN_SPEC_RE.match(pattern, i)
        if m:
            out.append(rf"(?P<span>\d{{{m.group(1)}}})" if m.group(1) else r"(?P<span>\d+)")
            i = m.end()
            continue
        c = pattern[i]
        out.append("[^/]*" if c == "*" else "[^/]" if c == "?" else re.escape(c))
        i += 1
    return "".join(out)


def latest_span(input_base: str, pattern: str) -> tuple[int, str] | None:
    """(span, token as written) of the newest span with a file matching ``pattern``, or None."""
    regex = re.compile(_glob_to_regex(pattern))
    best: tuple[int, str] | None = None
    for path in files.glob_pattern(input_base, SPAN_SPEC_RE.sub("*", pattern)):
        rel = os.path.relpath(path, input_base).replace(os.sep, "/")
        m = regex.fullmatch(rel)
        if not m:
            continue
        token = m.group("span")
        if best is None or int(token) > best[0]:
            best = (int(token), token)
    return best


def fingerprint(split_name: str, input_base: str, pattern: str) -> str:
    """TFX's split fingerprint format, computed without raising on odd files."""
    paths = files.glob_pattern(input_base, pattern)
    extra: list[str] = []
    if pattern.lower().endswith(".csv"):
        for p in paths:
            extra.extend(_csv_listed_files(p))
    total = xor = acc = 0
    for p in [*paths, *extra]:
        size, mtime = files.file_fingerprint(p)
        total += size
        xor ^= mtime
        acc += mtime
    return (
        f"split:{split_name},num_files:{len(paths) + len(extra)},total_bytes:{total},"
        f"xor_checksum:{xor},sum_checksum:{acc}"
    )


def _csv_listed_files(csv_path: str) -> list[str]:
    try:
        with open(csv_path, encoding="utf-8-sig", errors="replace", newline="") as f:
            rows = list(csv.reader(io.StringIO(f.read())))
    except OSError:
        return []
    out = []
    base = os.path.dirname(csv_path)
    for row in rows:
        if row and row[0].strip() and row[0].strip().lower() != "path":
            rel = row[0].strip().replace("\\", "/")
            out.append(rel if os.path.isabs(rel) else os.path.join(base, rel))
    return out


class RobustFileInputProcessor(input_processor.FileBasedInputProcessor):
    def resolve_span_and_version(self):
        base = self._input_base_uri
        static = self._range_config is not None and self._range_config.HasField("static_range")
        if files.is_remote(base) or self._is_match_date or self._is_match_version or static:
            return super().resolve_span_and_version()
        selected: tuple[int, str] | None = None
        prints = []
        for split in [copy.deepcopy(s) for s in self._splits]:
            pattern = split.pattern
            if self._is_match_span:
                found = latest_span(base, pattern)
                if found is None:
                    raise NoImagesFoundError(
                        f"no span folder under {files.display(base)} has files matching {pattern!r} "
                        f"(split {split.name}): add data as {pattern.replace('/*', '/<...>')}"
                    )
                if selected is not None and found[0] != selected[0]:
                    raise NoImagesFoundError(
                        f"the newest span differs between splits under {files.display(base)}: span {selected[0]} "
                        f"for one split, {found[0]} for split {split.name} ({pattern!r}). Every span folder must "
                        "hold all splits."
                    )
                selected = found
                pattern = SPAN_SPEC_RE.sub(found[1], pattern)
            prints.append(fingerprint(split.name, base, pattern))
        self._fingerprint = "\n".join(prints)
        return (selected[0] if selected else 0), None


class ImageFileDriver(driver.FileBasedDriver):
    """``FileBasedDriver`` with :class:`RobustFileInputProcessor` for local data."""

    def get_input_processor(self, splits, range_config=None, input_base_uri=None):
        assert input_base_uri
        return RobustFileInputProcessor(input_base_uri, splits, range_config)
