"""Run records: what MLMD does not keep about a run (the effective config, the backbone, how it ended).

``<run_root>/runs/<run id>.json``, written by ``graft run`` (graft.pipeline.local_runner) and read by the report
and ``graft runs``. Re-exported by graft.pipeline.runs.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any


def _read_json(path: str, default):
    try:
        return json.loads(Path(path).read_text())
    except (OSError, ValueError):
        return default


# ---- run records: what MLMD does not keep (the effective config, how the run ended) --------------------------------
RUNS_DIR = "runs"


def record_path(run_root: str | Path, run_id: str) -> Path:
    """<run_root>/runs/<run id>.json; the run id (an ISO timestamp) with ':' and other odd characters as '_'."""
    safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in run_id)
    return Path(run_root) / RUNS_DIR / f"{safe}.json"


def write_run_record(run_root: str | Path, run_id: str, record: dict[str, Any]) -> Path:
    path = record_path(run_root, run_id)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(record, indent=1, sort_keys=True, default=str), encoding="utf-8")
    tmp.replace(path)
    return path


def read_run_record(run_root: str | Path, run_id: str) -> dict[str, Any] | None:
    """The record ``graft run`` wrote for this run, or None (a run made by other means, or an older Graft)."""
    record = _read_json(str(record_path(run_root, run_id)), None)
    return record if isinstance(record, dict) and record.get("run_id") == run_id else None


def update_run_record(run_root: str | Path, run_id: str, **fields: Any) -> None:
    record = read_run_record(run_root, run_id)
    if record is not None:
        record.update(fields)
        write_run_record(run_root, run_id, record)
