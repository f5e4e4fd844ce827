"""The run history (``graft runs``): one row per run, from MLMD and the run records."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

from graft.pipeline import recovery, runs
from graft.pipeline.report.artifacts import ACCURACY
from graft.pipeline.report.markup import _when


# ---- run history (`graft runs`) -----------------------------------------------------------------------------------
@dataclasses.dataclass
class HistoryRow:
    run_id: str
    start_ms: int
    seconds: float
    status: str
    test_accuracy: float | None
    blessed: bool | None
    pushed_version: str | None

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["start"] = _when(self.start_ms)
        return d


def _status_text(s: runs.RunSummary, record: dict | None) -> str:
    failed = next((e.node_id for e in s.executions if e.state == "FAILED"), None)
    error = (record or {}).get("error") or {}
    if failed or s.status == "FAILED":
        if error.get("kind") == "data_validation":
            return "stopped: data validation"
        if error.get("kind") == "interrupted":
            return f"interrupted at {failed or '?'}"
        return f"failed at {failed or '?'}"
    if s.status == "RUNNING":
        return "unfinished" if record else "running or interrupted"
    if s.status == "COMPLETE":
        components = [e for e in s.executions if not e.node_id.endswith("_resolver")]
        if components and all(e.state == "CACHED" for e in components):
            return "complete (all cached)"
        return "complete"
    return s.status.lower()


def run_history(
    metadata_path: str | Path, pipeline_name: str | None, run_root: str | Path
) -> list[HistoryRow]:
    """One row per run, oldest first, from MLMD. Test accuracy: from the metrics ``graft run`` cached in its run
    records (keyed by the evaluation artifact MLMD names), else read with TFMA (slower: imports TFMA)."""
    store = runs.connect(metadata_path)
    ids = runs.list_run_ids(store, pipeline_name)
    records = {rid: runs.read_run_record(run_root, rid) for rid in ids}
    cached_metrics: dict[str, dict] = {}
    for rec in records.values():
        ev = (rec or {}).get("evaluation") or {}
        if ev.get("uri"):
            cached_metrics[ev["uri"]] = ev.get("test_metrics") or {}
    rows = []
    live = recovery.run_lock_held(run_root)
    for rid in ids:
        s = runs.summarize(metadata_path, rid, pipeline_name, with_evaluation=False)
        if s.status == "COMPLETE" and rid == ids[-1] and live and records[rid] is None:
            # Every execution recorded so far has ended (cached ones end at once) but the next is not in MLMD yet:
            # `graft run` writes the run's record when it ends, and the run lock is still held.
            s.status = "RUNNING"
        acc = None
        uri = s.artifacts.get("ModelEvaluation")
        if uri:
            if uri not in cached_metrics:
                cached_metrics[uri] = runs.read_evaluation(uri)[0]
            acc = cached_metrics[uri].get(ACCURACY)
        rows.append(
            HistoryRow(
                run_id=rid,
                start_ms=s.start_ms,
                seconds=s.seconds,
                status=(s.status == "RUNNING" and recovery.unfinished_status(s, rid == ids[-1], live))
                or _status_text(s, records[rid]),
                test_accuracy=acc,
                blessed=s.blessed,
                pushed_version=s.pushed_version if s.pushed else None,
            )
        )
    return rows


def format_history(rows: list[HistoryRow]) -> str:
    headers = ("RUN ID", "START", "DURATION", "STATUS", "TEST ACC", "BLESSED", "PUSHED")
    table = [
        (
            r.run_id,
            _when(r.start_ms),
            f"{r.seconds:.1f} s",
            r.status,
            "-" if r.test_accuracy is None else f"{r.test_accuracy:.4f}",
            "-" if r.blessed is None else ("yes" if r.blessed else "no"),
            r.pushed_version or "-",
        )
        for r in rows
    ]
    widths = [max(len(h), *(len(t[i]) for t in table)) if table else len(h) for i, h in enumerate(headers)]
    right = {2, 4}
    lines = []
    for row in [headers, *table]:
        cells = [c.rjust(widths[i]) if i in right else c.ljust(widths[i]) for i, c in enumerate(row)]
        lines.append("  ".join(cells).rstrip())
    return "\n".join(lines)
