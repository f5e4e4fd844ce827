"""What the local runner prints while a run goes: TFX's bare "Execution N failed." becomes the component's name."""

from __future__ import annotations

import io
import logging

from graft.pipeline.local_runner import ProgressHandler


def _record(level: int, msg: str, *args) -> logging.LogRecord:
    return logging.LogRecord("absl", level, __file__, 1, msg, args, None)


def test_execution_failed_line_names_the_component_not_the_mlmd_id():
    out = io.StringIO()
    handler = ProgressHandler(stream=out)
    handler.emit(_record(logging.INFO, "Component %s is running.", "Trainer"))
    handler.emit(_record(logging.ERROR, "Execution %d failed.", 5))
    handler.emit(_record(logging.WARNING, "something else: %s", "kept"))
    text = out.getvalue()
    assert "Execution 5 failed" not in text
    assert "[graft] Trainer failed" in text and "[graft] warning: something else: kept" in text
