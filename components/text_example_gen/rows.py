"""Text rows from raw bytes: manifests (CSV / TSV, header detected), single .txt files, TFRecord features.

Pure Python (no TF, no Beam) so that every rule is unit-testable and the Beam executor only maps these functions
over files. A row becomes ``{text, label, source}`` (``source`` = ``file:line`` or the file's relative path: the
stable key the split hash uses) or a bad row ``{path, reason}`` with one specific reason: empty text, undecodable
bytes (not UTF-8), missing label, a text over ``max_text_bytes``, a row with the wrong number of fields.
A manifest whose columns cannot be found is not a bad row but an error naming the columns it has and the fix.
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass

TEXT_KEY = "text"
LABEL_KEY = "label"
SOURCE_KEY = "source"
# Header names recognised when the column names are not configured, first match wins.
TEXT_COLUMNS = ("text", "sentence", "review", "content", "document", "body", "comment", "utterance")
LABEL_COLUMNS = ("label", "labels", "class", "category", "sentiment", "target", "intent")
DEFAULT_MAX_TEXT_BYTES = 100_000
MANIFEST_SUFFIXES = (".csv", ".tsv")


class ManifestError(ValueError):
    """A manifest Graft cannot read at all (columns not found): the message names the file and the fix."""


@dataclass(frozen=True)
class Row:
    text: str
    label: str
    source: str


def bad(source: str, reason: str) -> dict[str, str]:
    return {"path": source, "reason": reason}


def delimiter_of(name: str, first_line: str) -> str:
    if name.lower().endswith(".tsv"):
        return "\t"
    if name.lower().endswith(".csv"):
        return ","
    return "\t" if "\t" in first_line else ","


def check_text(text: str | None, source: str, max_text_bytes: int) -> str | None:
    """The reason a text is unusable, or None."""
    if text is None or not text.strip():
        return "empty text"
    if any("\udc80" <= c <= "\udcff" for c in text):
        return "undecodable bytes (the text is not UTF-8): re-save the file as UTF-8"
    size = len(text.encode("utf-8", "surrogateescape"))
    if size > max_text_bytes:
        return f"text too long ({size} bytes > data.max_text_bytes={max_text_bytes}): split or shorten it"
    return None


def _find(header: list[str], wanted: str | None, known: tuple[str, ...]) -> int | None:
    lowered = [h.strip().lower() for h in header]
    if wanted:
        return lowered.index(wanted.lower()) if wanted.lower() in lowered else None
    for name in known:
        if name in lowered:
            return lowered.index(name)
    return None


def parse_manifest(
    data: bytes,
    name: str,
    text_column: str | None = None,
    label_column: str | None = None,
    max_text_bytes: int = DEFAULT_MAX_TEXT_BYTES,
) -> tuple[list[Row], list[dict]]:
    """Rows of a CSV / TSV manifest. Header detected (a known or the configured column names); without one, two
    columns: the one with fewer distinct values is the label. TSV is read without quoting (GLUE's form)."""
    content = data.decode("utf-8-sig", errors="surrogateescape")
    first = content.split("\n", 1)[0]
    delim = delimiter_of(name, first)
    reader = csv.reader(io.StringIO(content, newline=""), delimiter=delim, quoting=csv.QUOTE_NONE if delim == "\t" else csv.QUOTE_MINIMAL)  # fmt: skip
    try:
        records = [(reader.line_num, r) for r in reader]
    except csv.Error as e:
        raise ManifestError(
            f"{name}: not a readable {'TSV' if delim == chr(9) else 'CSV'} file ({e})"
        ) from None
    records = [(n, r) for n, r in records if r and any(c.strip() for c in r)]
    if not records:
        return [], []
    header = records[0][1]
    ti, li = _find(header, text_column, TEXT_COLUMNS), _find(header, label_column, LABEL_COLUMNS)
    if ti is not None and li is not None and ti != li:
        body, width = records[1:], len(header)
    elif text_column or label_column or ti is not None or li is not None:
        raise ManifestError(
            f"{name}: cannot find the text and label columns in the header {header}: set data.text_column and "
            f"data.label_column to two of these names (recognised by default: text {list(TEXT_COLUMNS)}, label "
            f"{list(LABEL_COLUMNS)})"
        )
    else:
        if len(header) != 2:
            raise ManifestError(
                f"{name}: no header and {len(header)} columns; a manifest without a header must have exactly two "
                f"columns (text and label). Add a header row naming them, e.g. text{delim}label."
            )
        body, width = records, 2
        distinct = [len({r[i] for _, r in body if len(r) == 2}) for i in (0, 1)]
        li = 0 if distinct[0] < distinct[1] else 1
        ti = 1 - li
    rows, bads = [], []
    for line, r in body:
        source = f"{name}:{line}"
        if len(r) != width:
            bads.append(bad(source, f"row has {len(r)} fields, expected {width} (delimiter {delim!r}); quote the text"))  # fmt: skip
            continue
        text, label = r[ti], r[li].strip()
        reason = check_text(text, source, max_text_bytes)
        if reason is None and not label:
            reason = "missing label"
        if reason is None and any("\udc80" <= c <= "\udcff" for c in label):
            reason = "undecodable bytes in the label (not UTF-8)"
        if reason:
            bads.append(bad(source, reason))
        else:
            rows.append(Row(text.strip(), label, source))
    return rows, bads


def parse_text_file(data: bytes, rel: str, label: str, max_text_bytes: int = DEFAULT_MAX_TEXT_BYTES):
    """One example from a ``<class>/<name>.txt`` file: (Row, None) or (None, bad)."""
    text = data.decode("utf-8-sig", errors="surrogateescape")
    reason = check_text(text, rel, max_text_bytes)
    return (None, bad(rel, reason)) if reason else (Row(text.strip(), label, rel), None)


def value_of(feature) -> str | None:
    """A tf.train.Feature's first value as text (bytes decoded strictly; ints as decimal), or None."""
    kind = feature.WhichOneof("kind")
    if kind == "bytes_list" and feature.bytes_list.value:
        return feature.bytes_list.value[0].decode("utf-8", errors="surrogateescape")
    if kind == "int64_list" and feature.int64_list.value:
        return str(feature.int64_list.value[0])
    return None
