"""Listing the input files of one split pattern, in the executor process, before any Beam work.

Class folders (``[span-N/][split/]<class>/<file>``) or a ``path,label`` CSV manifest -> :class:`files.Candidate`
rows plus the files that cannot even be listed (bad name, unreadable, a folder where a file should be), each with
a reason. This changes with the input forms (``layout.py``), not with how files are read or split; ``graft schema
infer`` lists files with the same functions, so it sees exactly what a run would read.
"""

from __future__ import annotations

import csv
import io
import os
import posixpath

from graft.components.data_errors import DataValidationError, NoImagesFoundError
from graft.components.image_example_gen import files, layout
from graft.components.image_example_gen.config import normalize_data_path


def bad_entry(rel: str, reason: str) -> dict[str, str]:
    return {"path": files.display(rel), "reason": reason}


def folder_candidates(input_base: str, pattern: str) -> tuple[list[files.Candidate], list[dict], list[str]]:
    """Class-folder pattern ('[span-N/][split/]*/*') -> (candidates, bad, ignored folders)."""
    data_root = layout.data_root_of(pattern)
    split_root = layout.split_root_and_class_depth(pattern)
    base_for_rel = files.join(input_base, data_root)
    candidates, bad, ignored = [], [], []
    for path in files.glob_pattern(input_base, pattern):
        rel_split = relative(path, files.join(input_base, split_root))
        cls, _, name = rel_split.partition("/")
        rel = relative(path, base_for_rel)
        if files.is_ignored_name(cls) or files.is_ignored_name(name):
            continue
        problem = files.stat_problem(path)
        if problem == "is a directory":
            ignored.append(files.display(rel))
            continue
        problem = problem or files.class_name_problem(cls)
        candidates.append(files.Candidate(path=path, rel=rel, label=cls, problem=problem or ""))
    good = [c for c in candidates if not c.problem]
    bad = [bad_entry(c.rel, c.problem) for c in candidates if c.problem]
    return good, bad, ignored


def relative(path: str, base: str) -> str:
    if files.is_remote(path):
        prefix = base.rstrip("/") + "/"
        return path[len(prefix) :] if path.startswith(prefix) else path
    return os.path.relpath(path, base).replace(os.sep, "/")


def _inside(path: str, root: str) -> bool:
    root = root.rstrip("/")
    return path == root or path.startswith(root + "/")


def csv_candidates(
    input_base: str, pattern: str, allowed_roots: list[str] | tuple[str, ...] = ()
) -> tuple[list[files.Candidate], list[dict]]:
    """A ``path,label`` manifest -> (candidates, bad rows). Paths are relative to the CSV's folder.

    A row must point inside the manifest's folder (``../elsewhere/x.jpg`` and absolute paths elsewhere are bad
    rows, listed with the reason) unless the file lies under one of ``data.allowed_roots``."""
    csv_path = files.join(input_base, pattern)
    csv_dir = posixpath.dirname(csv_path) if files.is_remote(csv_path) else os.path.dirname(csv_path)
    csv_name = files.display(pattern)
    try:
        raw = files.read_bytes(csv_path)
    except FileNotFoundError:
        raise NoImagesFoundError(f"the CSV manifest {files.display(csv_path)} does not exist") from None
    except OSError as e:
        raise DataValidationError(f"cannot read the CSV manifest {files.display(csv_path)}: {e}") from None
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        raise DataValidationError(
            f"the CSV manifest {files.display(csv_path)} is not UTF-8 text ({e}): save it as UTF-8"
        ) from None
    reader = csv.reader(io.StringIO(text, newline=""))
    candidates: list[files.Candidate] = []
    bad: list[dict] = []
    seen: dict[str, int] = {}
    first = True
    for row in reader:
        line = reader.line_num
        if not row or all(not c.strip() for c in row):
            continue
        if first:
            first = False
            if [c.strip().lower() for c in row] == ["path", "label"]:
                continue
        where = f"{csv_name}:{line}"
        if len(row) != 2:
            bad.append(bad_entry(where, f"expected 2 columns 'path,label', got {len(row)}: {row!r}"))
            continue
        rel, label = row[0].strip(), row[1].strip()
        if not rel:
            bad.append(bad_entry(where, "empty path"))
            continue
        rel = rel.replace("\\", "/")
        absolute = files.is_remote(rel) or os.path.isabs(rel)
        full = rel if absolute else files.join(csv_dir, rel)
        if not absolute:
            rel = posixpath.normpath(rel)
        key = posixpath.normpath(full) if not files.is_remote(full) else full
        if not any(_inside(key, r) for r in (csv_dir, *map(normalize_data_path, allowed_roots))):
            bad.append(
                bad_entry(
                    rel,
                    f"line {line} of {csv_name} points outside the manifest's folder {files.display(csv_dir)}; "
                    "move the file there, or allow its folder with data.allowed_roots",
                )
            )
            continue
        if key in seen:
            bad.append(
                bad_entry(rel, f"listed again in line {line} of {csv_name} (first in line {seen[key]})")
            )
            continue
        seen[key] = line
        problem = (
            f"empty label in line {line} of {csv_name}" if not label else files.class_name_problem(label)
        ) or files.stat_problem(full)
        if problem:
            bad.append(bad_entry(rel, problem))
            continue
        candidates.append(files.Candidate(path=full, rel=rel, label=label))
    return candidates, bad
