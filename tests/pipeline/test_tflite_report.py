"""pipeline/tflite_report.py reads a local TFLiteModels artifact without importing TFX or TensorFlow, so
``graft runs`` stays a sub-second listing (the README's figure) instead of paying a TensorFlow import."""

from __future__ import annotations

import json
import subprocess
import sys

from graft.pipeline import tflite_report


def test_local_results_are_read_without_importing_tensorflow(tmp_path):
    results = {"variants": [{"variant": "int8", "blessed": True, "file": "model_int8.tflite"}]}
    (tmp_path / tflite_report.RESULTS_FILE).write_text(json.dumps(results), encoding="utf-8")
    code = (
        "import json, sys\n"
        "from graft.pipeline import tflite_report\n"
        f"print(json.dumps(tflite_report.read_variants({str(tmp_path)!r})))\n"
        "heavy = sorted(m for m in ('tensorflow', 'tfx') if m in sys.modules)\n"
        "assert not heavy, heavy\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert json.loads(out) == results


def test_absent_or_partial_results_read_as_empty(tmp_path):
    assert tflite_report.read_variants(str(tmp_path)) == {}
    (tmp_path / tflite_report.RESULTS_FILE).write_text("{not json", encoding="utf-8")
    assert tflite_report.read_variants(str(tmp_path)) == {}


def test_the_file_name_is_the_components():
    from graft.components.edge import component

    assert tflite_report.RESULTS_FILE == component.RESULTS_FILE
    assert tflite_report.TYPE_NAME == component.TFLiteModels.TYPE_NAME


def test_a_cached_rerun_says_the_variants_were_pushed_earlier():
    from graft.pipeline.runs import ExecutionInfo, RunSummary

    s = RunSummary(run_id="r", pipeline_name="p", blessed=True, pushed=True, pushed_path="/srv/m/7")
    s.tflite = {
        "variants": [{"variant": "int8", "blessed": True, "file": "model_int8.tflite", "size_bytes": 1e6}]
    }
    s.executions = [ExecutionInfo(1, "Pusher", "COMPLETE", 0, 1)]
    assert tflite_report.rows(s)[0]["why"] == "pushed to /srv/m/7/tflite/model_int8.tflite"
    s.executions = [ExecutionInfo(1, "Pusher", "CACHED", 0, 1)]
    [line] = tflite_report.summary_lines(s)
    assert "pushed earlier: serves from /srv/m/7/tflite/model_int8.tflite" in line and "pushed to" not in line
