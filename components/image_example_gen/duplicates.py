"""The same picture twice: duplicate groups by content hash, and the quarantine of one picture under two labels.

Works on pass 1's keys ``(sha256, (source_path, label))`` only (see ``readers.py``): the group-by is on a
64-character hash with a short path and label per file, never on image bytes, so its memory is a few hundred bytes
per file whatever the images weigh. Identical bytes under two or more labels are label noise no threshold can see:
every copy goes to the skipped list (counted against data.max_bad_fraction). Identical bytes under one label are
kept and only reported (data_report.json 'duplicates', and a warning): they may sit in different splits.
"""

from __future__ import annotations

import apache_beam as beam

from graft.components.image_example_gen import files
from graft.components.image_example_gen.listing import bad_entry


def _duplicate_group(item):
    """(sha256, [(path, label), ...]) -> one report entry when the same bytes were read more than once."""
    sha, copies = item
    copies = sorted(set(copies))
    if len(copies) > 1:
        yield {
            "sha256": sha,
            "labels": sorted({label for _, label in copies}),
            "paths": [files.display(p) for p, _ in copies],
            "_copies": copies,
        }


def _conflict_reasons(group: dict):
    """A group of identical files under more than one label: every copy is quarantined, with the others named."""
    if len(group["labels"]) < 2:
        return
    copies = group["_copies"]
    for path, label in copies:
        others = [f"'{files.display(p)}' (label '{lab}')" for p, lab in copies if p != path][:3]
        more = len(copies) - 1 - len(others)
        yield (
            path,
            f"the same image (sha256 {group['sha256'][:12]}) is also {', '.join(others)}"
            + (f" and {more} more" if more > 0 else "")
            + f", but here it is labelled '{label}': one picture under {len(group['labels'])} labels is quarantined "
            "(every copy). Keep it under the right label only",
        )


def _public_group(group: dict) -> dict:
    return {k: v for k, v in group.items() if not k.startswith("_")}


@beam.ptransform_fn
def FindDuplicates(keys):  # noqa: N802 (Beam's PTransform naming)
    """``(sha256, (source_path, label))`` keys of every split -> (conflicting source_path keys, bad entries,
    public duplicate groups)."""
    groups = (
        keys | "GroupByContent" >> beam.GroupByKey() | "DuplicateGroups" >> beam.FlatMap(_duplicate_group)
    )
    conflicts = groups | "ConflictReasons" >> beam.FlatMap(_conflict_reasons)
    bad = conflicts | "ConflictsToBad" >> beam.Map(
        lambda kv: bad_entry(kv[0].decode("utf-8", "surrogateescape"), kv[1])
    )
    return (
        conflicts | "ConflictKeys" >> beam.Keys(),
        bad,
        groups | "PublicGroups" >> beam.Map(_public_group),
    )
