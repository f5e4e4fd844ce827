"""The TFLite variants of a run, for the end-of-run summary and the HTML report (components/edge).

One row per variant from the ``TFLiteExport`` artifact's ``results.json``: size on disk and its ratio to the
SavedModel, test accuracy, the drop vs the SavedModel's, CPU latency at batch 1 through the interpreter (and the
SavedModel's on the same decoded tensors), and whether it was pushed -- or why not, with both figures.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

TYPE_NAME = "graft.TFLiteModels"  # components/edge/component.py TFLiteModels.TYPE_NAME
RESULTS_FILE = "results.json"  # components/edge/component.py RESULTS_FILE


def read_variants(uri: str) -> dict[str, Any]:
    """results.json of a TFLiteModels artifact ({} when absent or unreadable).

    A local artifact is read with plain file I/O: ``graft runs`` lists runs without importing TFX or TensorFlow
    (importing the component for its reader cost 8-18 s per listing). Remote URIs go through the component's
    ``tf.io.gfile`` reader."""
    try:
        if "://" not in uri:
            path = Path(uri) / RESULTS_FILE
            return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}
        from graft.components.edge import component as edge

        return edge.read_results(uri)
    except Exception:  # noqa: BLE001 - a summary must not crash on a partial artifact
        return {}


def _finite(x) -> float | None:
    return None if x is None or (isinstance(x, float) and math.isnan(x)) else float(x)


def rows(s) -> list[dict[str, Any]]:
    """Per variant: the figures plus ``pushed`` (bool) and ``why`` (plain words)."""
    data = s.tflite or {}
    sm_size = data.get("saved_model_size_bytes") or 0
    out = []
    for r in data.get("variants", []):
        if not r.get("blessed"):
            pushed, why = False, f"refused: {r.get('reason')}"
        elif s.pushed:
            where = f"{s.pushed_path}/tflite/{r.get('file')}"
            pushed, why = (
                True,
                (f"pushed earlier: serves from {where}" if s.pushed_earlier else f"pushed to {where}"),
            )
        elif s.blessed is False:
            pushed, why = False, "passed its gate, but the SavedModel was not blessed: nothing was pushed"
        else:
            pushed, why = False, "passed its gate; the Pusher did not push"
        size = r.get("size_bytes") or 0
        out.append(
            {
                "variant": r.get("variant"),
                "size_bytes": size,
                "size_ratio": size / sm_size if sm_size and size else None,
                "accuracy": _finite(r.get("accuracy")),
                "saved_model_accuracy": _finite(r.get("saved_model_accuracy")),
                "drop": _finite(r.get("drop")),
                "latency_ms": _finite(r.get("latency_ms_batch1")),
                "saved_model_latency_ms": _finite(r.get("saved_model_latency_ms_batch1")),
                "pushed": pushed,
                "why": why,
            }
        )
    return out


def summary_lines(s) -> list[str]:
    lines = []
    for r in rows(s):
        acc = "n/a" if r["accuracy"] is None else f"{r['accuracy']:.4f}"
        head = f"[graft] TFLite {r['variant']}: {r['size_bytes'] / 1e6:.2f} MB, accuracy {acc}"
        lines.append(f"{head}: {'pushed' if r['pushed'] else 'NOT pushed'} ({r['why']})")
    return lines


def section(report) -> str:
    """The report's "TFLite variants" section (``report`` is report.py's page builder)."""
    from graft.pipeline.report.markup import _num, _table, _td, esc

    s = report.s
    data = s.tflite or {}
    if not data:
        if report.state.get("TFLiteExport") is None:
            return report.section(
                "tflite", "TFLite variants", report.not_reached("TFLiteExport", "TFLite variants")
            )
        return report.section("tflite", "TFLite variants", "<p class='muted'>No TFLite results recorded.</p>")
    table_rows = []
    for r in rows(s):
        ratio = "n/a" if r["size_ratio"] is None else f"{r['size_ratio']:.2f}×"
        lat = "n/a" if r["latency_ms"] is None else f"{r['latency_ms']:.2f} ms"
        sm_lat = "n/a" if r["saved_model_latency_ms"] is None else f"{r['saved_model_latency_ms']:.2f} ms"
        table_rows.append(
            [
                _td(r["variant"]),
                _td(f"{r['size_bytes'] / 1e6:.2f} MB ({ratio})", num=True),
                _td(_num(r["accuracy"]), key=f"tflite_{r['variant']}_accuracy", num=True),
                _td(_num(r["drop"]), num=True),
                _td(f"{lat} (SavedModel {sm_lat})", num=True),
                _td(
                    ("pushed: " if r["pushed"] else "not pushed: ") + r["why"],
                    key=f"tflite_{r['variant']}_pushed",
                ),
            ]
        )
    body = _table(
        [
            "variant",
            "size (× SavedModel)",
            "accuracy",
            "drop vs SavedModel",
            "CPU latency, batch 1",
            "pushed",
        ],
        table_rows,
        raw=True,
    )
    body += (
        f"<p class='muted'>Scored on the {esc(data.get('test_examples'))} test examples the Evaluator scores "
        f"(Transform's test split). SavedModel accuracy {_num(_finite((data.get('variants') or [{}])[0].get('saved_model_accuracy')))}; "
        f"int8 calibrated on {esc(data.get('representative_examples'))} train images. Latency: median of "
        f"{esc(data.get('latency_runs'))} single-image calls on this machine's CPU (noisy on a shared machine). "
        f"{_float_stem(data)}Class names: <code>labels.txt</code> beside the models.</p>"
    )
    return report.section("tflite", "TFLite variants", body)


def _float_stem(data: dict) -> str:
    """The int8 variant's float32 stem (edge.int8_float_layers), in one sentence; '' for a full-integer model."""
    from graft.pipeline.report.markup import esc

    for v in data.get("variants") or []:
        ops = (v.get("quantization") or {}).get("float_ops") or []
        if v.get("variant") == "int8" and ops:
            return (
                f"int8 keeps its first {esc(v['quantization'].get('int8_float_layers'))} weighted layers in float32 "
                f"(edge.int8_float_layers: input through <code>{esc(ops[-1])}</code>). "
            )
    return ""
