"""The run report (``graft report``) and the run history (``graft runs``), read from MLMD and the run's artifacts.

``write_report`` writes one self-contained HTML file (every plot embedded as a base64 PNG, no script, no network)
and the same PNGs beside it, into ``<run_root>/reports/<run id>/`` unless told otherwise:

  outcome      blessed and pushed / not blessed and why / failed or stopped and where, in plain words
  components   each component of the run: state (complete, cached, failed), start and duration
  data         examples per split and class, skipped files with reasons, anomalies against the curated schema,
               per-split statistics from StatisticsGen (and TFDV's Facets view as a side file)
  samples      a grid of train images per class as the model sees them: Transform's output, decoded
  training     loss and accuracy (train and val) of both phases on one epoch axis, the phase boundary marked
  evaluation   test metrics of the candidate and the baseline, confusion matrix, per-class precision / recall
  blessing     the decision, and every threshold with its measured value against the baseline
  push         where the model went and its version
  config       the effective config of the run (from the run record ``graft run`` writes)

Every number comes from MLMD and the artifacts it points at (nothing from logs). Sections that a run never
reached say so and why. matplotlib draws with the Agg canvas (no display, no pyplot state).
"""

from __future__ import annotations

import base64
import dataclasses
import datetime
import html
import io
import json
import math
import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from graft.pipeline import recovery, runs, tflite_report

REPORT_FILE = "report.html"
REPORTS_DIR = "reports"
FACETS_FILE = "statistics_facets.html"
PNG_CURVES = "training_curves.png"
PNG_CONFUSION = "confusion_matrix.png"
PNG_SAMPLES = "samples.png"
PNG_COUNTS = "class_counts.png"

SAMPLES_PER_CLASS = 8
MAX_SAMPLE_CLASSES = 30
MAX_SAMPLE_RECORDS = 5000  # records read at most to find samples (keeps the report fast on big splits)
MAX_SKIPPED_SHOWN = 200

ACCURACY = "sparse_categorical_accuracy"
METRIC_LABELS = {
    "sparse_categorical_accuracy": "accuracy",
    "sparse_categorical_crossentropy": "cross-entropy loss",
    "example_count": "examples",
    "macro_auc": "macro AUC (one-vs-rest)",
}


class ReportError(RuntimeError):
    """No such run, or nothing to report; the message says what exists."""


# ---- where ------------------------------------------------------------------------------------------------------
def default_out_dir(run_root: str | Path, run_id: str) -> Path:
    return Path(run_root) / REPORTS_DIR / runs.record_path(run_root, run_id).stem


# ---- reading the artifacts ------------------------------------------------------------------------------------
def read_history(model_uri: str | None) -> dict[str, Any] | None:
    """The Trainer's training_history.json (beside Format-Serving in the Model artifact)."""
    if not model_uri:
        return None
    path = Path(model_uri) / "training_history.json"
    try:
        history = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return history if isinstance(history, dict) and history.get("epochs") else None


def sample_images(
    transformed_uri: str,
    class_names: list[str],
    per_class: int = SAMPLES_PER_CLASS,
    split: str = "train",
    max_records: int = MAX_SAMPLE_RECORDS,
) -> dict[str, list[Any]]:
    """Up to ``per_class`` transformed images (uint8 [H, W, 3] arrays) per class, in file order.

    Decodes Transform's output exactly as the Trainer's input_fn does (``features.decode_transformed_image``: a
    serialized uint8 tensor at the backbone's size), so these are the pixels the model trains on, before the
    in-model augmentation.
    """
    import tensorflow as tf
    from tensorflow.core.framework import tensor_pb2

    from graft.components import features

    files = sorted(Path(transformed_uri).glob(f"Split-{split}/*.gz"))
    out: dict[str, list[Any]] = {c: [] for c in class_names}
    if not files:
        return out
    wanted = set(class_names[:MAX_SAMPLE_CLASSES])
    seen = 0
    for raw in tf.data.TFRecordDataset([str(f) for f in files], compression_type="GZIP"):
        seen += 1
        if seen > max_records:
            break
        example = tf.train.Example.FromString(raw.numpy())
        feats = example.features.feature
        label = feats[features.TRANSFORMED_LABEL_KEY].int64_list.value
        if not label or not (0 <= label[0] < len(class_names)):
            continue
        name = class_names[label[0]]
        if name not in wanted or len(out[name]) >= per_class:
            continue
        data = feats[features.TRANSFORMED_IMAGE_KEY].bytes_list.value
        if not data:
            continue
        out[name].append(tf.make_ndarray(tensor_pb2.TensorProto.FromString(data[0])))
        if all(len(out[c]) >= per_class for c in wanted):
            break
    return out


def read_statistics(stats_uri: str | None) -> dict[str, Any]:
    """{split: DatasetFeatureStatistics} from StatisticsGen's FeatureStats.pb files."""
    if not stats_uri:
        return {}
    from tensorflow_metadata.proto.v0 import statistics_pb2

    out = {}
    for split_dir in sorted(Path(stats_uri).glob("Split-*")):
        path = split_dir / "FeatureStats.pb"
        if not path.exists():
            continue
        stats = statistics_pb2.DatasetFeatureStatisticsList()
        stats.ParseFromString(path.read_bytes())
        if stats.datasets:
            out[split_dir.name[len("Split-") :]] = stats.datasets[0]
    return out


def read_anomaly_rows(anomalies_uri: str | None) -> list[dict[str, str]]:
    """Every anomaly ExampleValidator found, per split: feature, short and long description."""
    return runs.anomaly_rows(anomalies_uri)


@dataclasses.dataclass
class ThresholdCheck:
    metric: str
    slice: str
    kind: str  # "value" | "change"
    rule: str
    candidate: float | None
    baseline: float | None
    change: float | None
    passed: bool


def _slice_text(slice_key: Iterable) -> str:
    parts = [f"{col}={val.decode() if isinstance(val, bytes) else val}" for col, val in slice_key]
    return ", ".join(parts) or "all test examples"


def _proto_slice_key(slice_key) -> tuple:
    out = []
    for sk in slice_key.single_slice_keys:
        val = getattr(sk, sk.WhichOneof("kind"))
        out.append((sk.column, val.decode("utf-8", "replace") if isinstance(val, bytes) else val))
    return tuple(out)


def _norm_key(slice_key: Iterable) -> tuple:
    return tuple(
        (str(c), v.decode("utf-8", "replace") if isinstance(v, bytes) else str(v)) for c, v in slice_key
    )


def _double(v) -> float | None:
    if isinstance(v, dict) and "doubleValue" in v:
        x = float(v["doubleValue"])
        return None if math.isnan(x) or math.isinf(x) else x
    return None


def _rule_text(threshold) -> tuple[str, str]:
    from tensorflow_model_analysis.proto import config_pb2

    if isinstance(threshold, config_pb2.GenericValueThreshold):
        bits = []
        if threshold.HasField("lower_bound"):
            bits.append(f"≥ {threshold.lower_bound.value:.4f}")
        if threshold.HasField("upper_bound"):
            bits.append(f"≤ {threshold.upper_bound.value:.4f}")
        return "value", "value " + " and ".join(bits)
    higher = threshold.direction == config_pb2.MetricDirection.HIGHER_IS_BETTER
    op = "≥" if higher else "≤"
    bits = []
    if threshold.HasField("absolute"):
        bits.append(f"candidate − baseline {op} {threshold.absolute.value + 0.0:+.4f}")
    if threshold.HasField("relative"):
        bits.append(f"(candidate − baseline) / baseline {op} {threshold.relative.value + 0.0:+.4f}")
    return "change", " and ".join(bits) or "change vs baseline"


def threshold_checks(eval_uri: str) -> list[ThresholdCheck]:
    """Every threshold of the evaluation, on every slice it applies to, with the measured values.

    Which thresholds exist and where they apply come from TFMA itself (the EvalConfig stored with the result and
    ``metric_thresholds_from_metrics_specs``, the function its validator uses); pass / fail comes from TFMA's
    validation result, so this table and the blessing cannot disagree.
    """
    import tensorflow_model_analysis as tfma
    from tensorflow_model_analysis.metrics import metric_specs
    from tensorflow_model_analysis.proto import config_pb2
    from tensorflow_model_analysis.slicer import slicer_lib

    names = runs.eval_model_names(eval_uri)
    candidate = runs.load_eval_result(eval_uri, "candidate")
    baseline = runs.load_eval_result(eval_uri, "baseline") if names["baseline"] else None
    baseline_by_slice = {_norm_key(k): v for k, v in (baseline.slicing_metrics if baseline else [])}
    failed: set[tuple] = set()
    validation = tfma.load_validation_result(eval_uri)
    for per_slice in validation.metric_validations_per_slice:
        key = _norm_key(_proto_slice_key(per_slice.slice_key))
        for f in per_slice.failures:
            failed.add((key, f.metric_key.name, bool(f.metric_key.is_diff)))

    thresholds = metric_specs.metric_thresholds_from_metrics_specs(
        candidate.config.metrics_specs, candidate.config
    )
    checks: list[ThresholdCheck] = []
    for metric_key, pairs in thresholds.items():
        if names["baseline"] and metric_key.model_name == names["baseline"]:
            continue  # TFMA does not check thresholds on the baseline itself
        if metric_key.sub_key is not None:
            sub = str(metric_key.sub_key).replace(" ", "")
        else:
            sub = ""
        for slice_spec, threshold in pairs:
            for slice_key, per_output in candidate.slicing_metrics:
                if slice_spec is not None and (
                    not isinstance(slice_spec, config_pb2.SlicingSpec)
                    or not slicer_lib.SingleSliceSpec(spec=slice_spec).is_slice_applicable(slice_key)
                ):
                    continue
                values = per_output.get(metric_key.output_name or "", {}).get(sub, {})
                if metric_key.name not in values:
                    continue
                base_values = (
                    baseline_by_slice.get(_norm_key(slice_key), {})
                    .get(metric_key.output_name or "", {})
                    .get(sub, {})
                )
                kind, rule = _rule_text(threshold)
                norm = _norm_key(slice_key)
                checks.append(
                    ThresholdCheck(
                        metric=metric_key.name,
                        slice=_slice_text(slice_key),
                        kind=kind,
                        rule=rule,
                        candidate=_double(values.get(metric_key.name)),
                        baseline=_double(base_values.get(metric_key.name)),
                        change=_double(values.get(f"{metric_key.name}_diff")),
                        passed=(norm, metric_key.name, kind == "change") not in failed,
                    )
                )
    checks.sort(key=lambda c: (c.slice != "all test examples", c.slice, c.metric, c.kind))
    return checks


def producing_run(metadata_path: str | Path, uri: str | None) -> str | None:
    """The run id whose execution produced the artifact at ``uri`` (e.g. the baseline model)."""
    if not uri:
        return None
    from ml_metadata.proto import metadata_store_pb2

    store = runs.connect(metadata_path)
    for artifact in store.get_artifacts_by_uri(uri):
        for ev in store.get_events_by_artifact_ids([artifact.id]):
            if ev.type != metadata_store_pb2.Event.OUTPUT:
                continue
            for ctx in store.get_contexts_by_execution(ev.execution_id):
                if store.get_context_type(runs.PIPELINE_RUN_CONTEXT).id == ctx.type_id:
                    return ctx.name
    return None


# ---- plots (matplotlib, Agg canvas) ---------------------------------------------------------------------------
def _figure(width: float, height: float):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), dpi=100)
    FigureCanvasAgg(fig)
    return fig


def _png(fig) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", bbox_inches="tight")
    return buf.getvalue()


def phase_boundary(history: dict[str, Any]) -> float | None:
    """x (1-based epochs) of the line between the last phase-1 epoch and the first phase-2 epoch, or None."""
    epochs = history.get("epochs", [])
    p1 = [e["epoch"] + 1 for e in epochs if e.get("phase") == 1]
    p2 = [e["epoch"] + 1 for e in epochs if e.get("phase") == 2]
    if not p1 or not p2:
        return None
    return (max(p1) + min(p2)) / 2.0


def plot_training_curves(history: dict[str, Any]) -> bytes:
    """Loss and accuracy, train and val, both phases on one epoch axis; the phase boundary and the selected epoch
    (the weights that were exported) are marked."""
    epochs = sorted(history.get("epochs", []), key=lambda e: e["epoch"])
    x = [e["epoch"] + 1 for e in epochs]
    boundary = phase_boundary(history)
    selected = (history.get("selected") or {}).get("epoch")
    fig = _figure(11, 4)
    axes = fig.subplots(1, 2)
    for ax, metric, title in ((axes[0], "loss", "loss"), (axes[1], "accuracy", "accuracy")):
        for prefix, style, label in (("", "-", "train"), ("val_", "--", "val")):
            ys = [e.get(prefix + metric) for e in epochs]
            pts = [(a, b) for a, b in zip(x, ys, strict=True) if b is not None]
            if pts:
                ax.plot(
                    [a for a, _ in pts],
                    [b for _, b in pts],
                    style,
                    marker="o",
                    markersize=3,
                    label=f"{label} {title}",
                )
        if boundary is not None:
            ax.axvline(boundary, color="0.4", linestyle=":", linewidth=1.5)
            ax.axvspan(boundary, max(x) + 0.5, color="tab:orange", alpha=0.08)
            where = ("data", "axes fraction")
            kw = dict(xycoords=where, va="bottom", fontsize=9, color="0.25")
            ax.annotate("phase 1: head only ◂ ", (boundary, 1.01), ha="right", **kw)
            ax.annotate(" ▸ phase 2: fine-tune", (boundary, 1.01), ha="left", **kw)
        if selected is not None:
            row = next((e for e in epochs if e["epoch"] == selected), None)
            if row is not None and row.get("val_" + metric) is not None:
                ax.plot(
                    [selected + 1],
                    [row["val_" + metric]],
                    marker="*",
                    markersize=14,
                    color="crimson",
                    linestyle="none",
                    label="exported weights",
                )
        ax.set_xlabel("epoch")
        ax.set_ylabel(title)
        ax.grid(alpha=0.3)
        if x:
            ax.set_xlim(min(x) - 0.5, max(x) + 0.5)
            ax.set_xticks(x if len(x) <= 30 else x[:: max(1, len(x) // 15)])
        ax.legend(fontsize=8, loc="best")
    fig.tight_layout()
    return _png(fig)


def plot_confusion_matrix(grid: list[list[int]], names: list[str]) -> bytes:
    """Counts [actual][predicted]; colour = share of the actual class (row-normalised), so recall reads off it."""
    n = len(grid)
    labels = [names[i] if i < len(names) else str(i) for i in range(n)]
    size = max(3.5, min(16.0, 0.6 * n + 2.5))
    fig = _figure(size + 1.0, size)
    ax = fig.subplots()
    shares = [[(c / sum(row)) if sum(row) else 0.0 for c in row] for row in grid]
    image = ax.imshow(shares, cmap="Blues", vmin=0.0, vmax=1.0)
    fig.colorbar(image, ax=ax, fraction=0.046, pad=0.04, label="share of the actual class")
    if n <= 30:
        for a in range(n):
            for p in range(n):
                ax.text(
                    p,
                    a,
                    str(grid[a][p]),
                    ha="center",
                    va="center",
                    fontsize=9 if n <= 12 else 6,
                    color="white" if shares[a][p] > 0.6 else "black",
                )
    ax.set_xticks(range(n))
    ax.set_yticks(range(n))
    ax.set_xticklabels(labels, rotation=45 if n > 3 else 0, ha="right" if n > 3 else "center", fontsize=8)
    ax.set_yticklabels(labels, fontsize=8)
    ax.set_xlabel("predicted")
    ax.set_ylabel("actual")
    ax.set_title("test split")
    fig.tight_layout()
    return _png(fig)


SAMPLE_TILE_MAX = 112  # pixels per tile in the grid (larger images are shown downscaled)


def sample_mosaic(samples: dict[str, list[Any]]) -> tuple[Any, list[str], int]:
    """One uint8 image: a row of tiles per class (white gaps), tiles downscaled to <= SAMPLE_TILE_MAX pixels."""
    import numpy as np
    from PIL import Image

    rows = [(name, imgs) for name, imgs in samples.items() if imgs][:MAX_SAMPLE_CLASSES]
    cols = max((len(imgs) for _, imgs in rows), default=1)
    h, w = rows[0][1][0].shape[:2] if rows else (1, 1)
    scale = min(1.0, SAMPLE_TILE_MAX / max(h, w))
    th, tw = max(1, round(h * scale)), max(1, round(w * scale))
    gap = 2
    mosaic = np.full((len(rows) * (th + gap), cols * (tw + gap), 3), 255, dtype=np.uint8)
    for r, (_, imgs) in enumerate(rows):
        for c, img in enumerate(imgs):
            tile = np.asarray(img, dtype=np.uint8)
            if tile.shape[:2] != (th, tw):
                tile = np.asarray(Image.fromarray(tile).resize((tw, th), Image.BILINEAR))
            y, x = r * (th + gap), c * (tw + gap)
            mosaic[y : y + th, x : x + tw] = tile[:, :, :3]
    return mosaic, [name for name, _ in rows], th + gap


def plot_samples(samples: dict[str, list[Any]]) -> bytes:
    """A grid of images per class (one row each), drawn as one mosaic: fast for many classes and big images."""
    mosaic, names, row_h = sample_mosaic(samples)
    height, width = mosaic.shape[:2]
    inches_w = min(14.0, max(4.0, width / 60.0)) + 1.6
    fig = _figure(inches_w, max(1.2, (inches_w - 1.6) * height / max(1, width)))
    ax = fig.subplots()
    ax.imshow(mosaic, interpolation="nearest")
    ax.set_xticks([])
    ax.set_yticks([row_h * i + (row_h - 2) / 2 for i in range(len(names))])
    ax.set_yticklabels(names, fontsize=9)
    for spine in ax.spines.values():
        spine.set_visible(False)
    ax.tick_params(left=False)
    return _png(fig)


def plot_class_counts(counts: dict[str, dict[str, int]], classes: list[str]) -> bytes:
    splits = [s for s in ("train", "val", "test") if s in counts] + sorted(
        set(counts) - {"train", "val", "test"}
    )
    fig = _figure(max(5.0, min(16.0, 0.5 * len(classes) * len(splits) / 2 + 3)), 3.2)
    ax = fig.subplots()
    width = 0.8 / max(1, len(splits))
    for i, split in enumerate(splits):
        xs = [k + (i - (len(splits) - 1) / 2) * width for k in range(len(classes))]
        ax.bar(xs, [counts[split].get(c, 0) for c in classes], width=width, label=split)
    ax.set_xticks(range(len(classes)))
    ax.set_xticklabels(
        classes, rotation=45 if len(classes) > 4 else 0, ha="right" if len(classes) > 4 else "center"
    )
    ax.set_ylabel("examples")
    ax.legend(fontsize=8)
    ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    return _png(fig)


# ---- HTML -------------------------------------------------------------------------------------------------------
CSS = """
body{font-family:-apple-system,Segoe UI,Roboto,Helvetica,Arial,sans-serif;margin:0 auto;max-width:1100px;padding:0 24px 48px;
color:#1d232a;line-height:1.45}
h1{font-size:1.5em;margin:24px 0 4px} h2{font-size:1.2em;margin:32px 0 8px;border-bottom:1px solid #dde;padding-bottom:4px}
h3{font-size:1em;margin:18px 0 6px} .muted{color:#667} code,pre{font-family:SFMono-Regular,Menlo,Consolas,monospace;font-size:.88em}
pre{background:#f5f6f8;padding:10px;overflow-x:auto;border-radius:4px}
table{border-collapse:collapse;margin:6px 0 12px;font-size:.92em} th,td{border:1px solid #dde;padding:3px 8px;text-align:left}
th{background:#f2f4f7} td.num{text-align:right;font-variant-numeric:tabular-nums}
.verdict{padding:12px 16px;border-radius:6px;margin:12px 0;font-weight:600}
.ok{background:#e6f4ea;border:1px solid #9ccfaa} .bad{background:#fdecea;border:1px solid #f2a7a0}
.warn{background:#fff6e0;border:1px solid #f0d08a} .pass{color:#137333;font-weight:600} .fail{color:#c5221f;font-weight:600}
img{max-width:100%} nav a{margin-right:10px;font-size:.9em} .bar{background:#8ab4f8;height:10px;display:inline-block}
"""


def esc(value: Any) -> str:
    return html.escape(str(value), quote=True)


def _num(v: float | None, digits: int = 4) -> str:
    if v is None:
        return "n/a"
    if isinstance(v, float) and float(v).is_integer() and digits == 0:
        return str(int(v))
    return f"{v:.{digits}f}"


def _table(headers: list[str], rows: list[list[str]], raw: bool = False) -> str:
    """``rows`` are HTML cells (already escaped) when ``raw``; else plain text, escaped here."""
    head = "".join(f"<th>{esc(h)}</th>" for h in headers)
    body = []
    for row in rows:
        cells = []
        for c in row:
            if raw and c.startswith("<td"):
                cells.append(c)
            else:
                cells.append(f"<td>{c if raw else esc(c)}</td>")
        body.append("<tr>" + "".join(cells) + "</tr>")
    return f"<table><tr>{head}</tr>{''.join(body)}</table>"


def _td(value: str, key: str | None = None, num: bool = False, cls: str = "") -> str:
    classes = " ".join(x for x in ("num" if num else "", cls) if x)
    attrs = (f' class="{classes}"' if classes else "") + (f' data-key="{esc(key)}"' if key else "")
    return f"<td{attrs}>{esc(value)}</td>"


def _img(name: str, data: bytes, alt: str) -> str:
    b64 = base64.b64encode(data).decode("ascii")
    return f'<img src="data:image/png;base64,{b64}" alt="{esc(alt)}" data-file="{esc(name)}">'


def _when(ms: int) -> str:
    if not ms:
        return "?"
    return datetime.datetime.fromtimestamp(ms / 1000.0).strftime("%Y-%m-%d %H:%M:%S")


@dataclasses.dataclass
class Report:
    path: Path
    pngs: dict[str, Path]
    sections: list[str]
    seconds: float


def write_report(
    metadata_path: str | Path,
    run_id: str | None = "latest",
    pipeline_name: str | None = None,
    run_root: str | Path | None = None,
    out_dir: str | Path | None = None,
    summary: runs.RunSummary | None = None,
) -> Report:
    """Write the report of one run; returns where it is. Raises ReportError when there is no such run."""
    import time

    t0 = time.perf_counter()
    metadata_path = Path(metadata_path)
    run_root = Path(run_root) if run_root else metadata_path.parent
    if summary is None:
        try:
            summary = runs.summarize(metadata_path, run_id, pipeline_name)
        except FileNotFoundError as e:
            raise ReportError(str(e)) from None
        except LookupError as e:
            raise ReportError(str(e)) from None
    out = Path(out_dir) if out_dir else default_out_dir(run_root, summary.run_id)
    out.mkdir(parents=True, exist_ok=True)
    record = runs.read_run_record(run_root, summary.run_id)
    builder = _Builder(summary, record, metadata_path, out)
    page = builder.build()
    path = out / REPORT_FILE
    tmp = out / (REPORT_FILE + ".tmp")
    tmp.write_text(page, encoding="utf-8")
    os.replace(tmp, path)
    return Report(
        path=path, pngs=builder.pngs, sections=builder.section_ids, seconds=time.perf_counter() - t0
    )


class _Builder:
    def __init__(self, s: runs.RunSummary, record: dict | None, metadata_path: Path, out: Path):
        self.s = s
        self.record = record
        self.metadata_path = metadata_path
        self.out = out
        self.pngs: dict[str, Path] = {}
        self.section_ids: list[str] = []
        self.classes = s.class_names or sorted({c for split in s.example_counts.values() for c in split})
        self.state = {e.node_id: e.state for e in s.executions}

    # ---- helpers ---------------------------------------------------------------------------------------------
    def png(self, name: str, data: bytes, alt: str) -> str:
        path = self.out / name
        path.write_bytes(data)
        self.pngs[name] = path
        return _img(name, data, alt)

    def section(self, sid: str, title: str, body: str) -> str:
        self.section_ids.append(sid)
        return f'<section id="{sid}"><h2>{esc(title)}</h2>{body}</section>'

    def not_reached(self, node: str, what: str) -> str:
        failed = self.failed_node()
        state = self.state.get(node)
        if state == "FAILED":
            why = f"{node} failed in this run"
        elif failed:
            why = f"the run stopped at {failed} before {node} ran"
        elif state is None and self.s.status == "RUNNING":
            why = f"the run has not reached {node} (still running, or interrupted)"
        else:
            why = f"{node} recorded no output in this run"
        return f'<p class="muted">No {esc(what)}: {esc(why)}.</p>'

    def failed_node(self) -> str | None:
        return next((e.node_id for e in self.s.executions if e.state == "FAILED"), None)

    # ---- page ------------------------------------------------------------------------------------------------
    def build(self) -> str:
        s = self.s
        parts = [
            self.outcome(),
            self.components(),
            self.data(),
            self.samples(),
            self.training(),
            self.evaluation(),
            self.blessing(),
            tflite_report.section(self),  # edge export: the TFLite variants table
            self.push(),
            self.config(),
            self.artifacts(),
        ]
        nav = "".join(f'<a href="#{sid}">{sid}</a>' for sid in self.section_ids)
        title = f"Graft run {s.run_id}"
        return (
            "<!DOCTYPE html>\n<html lang='en'><head><meta charset='utf-8'>"
            f"<meta name='viewport' content='width=device-width, initial-scale=1'><title>{esc(title)}</title>"
            f"<style>{CSS}</style></head><body>"
            f"<h1>{esc(title)}</h1>"
            f'<p class="muted">pipeline <code>{esc(s.pipeline_name or "?")}</code> · started {esc(_when(s.start_ms))}'
            f" · {esc(f'{s.seconds:.1f}')} s · status <span data-key='status'>{esc(s.status)}</span> · report written "
            f"{esc(datetime.datetime.now().strftime('%Y-%m-%d %H:%M:%S'))} from MLMD <code>{esc(self.metadata_path)}</code></p>"
            f"<nav>{nav}</nav>" + "".join(parts) + "</body></html>\n"
        )

    # ---- sections --------------------------------------------------------------------------------------------
    def outcome(self) -> str:
        s = self.s
        error = (self.record or {}).get("error")
        failed = self.failed_node()
        items = []
        acc = s.test_metrics.get(ACCURACY)
        if failed or s.status == "FAILED" or error:
            kind = (error or {}).get("kind")
            if kind == "data_validation":
                head = f"Stopped by data validation at {failed or '?'}: nothing was trained or pushed."
            elif kind == "interrupted":
                head = f"Interrupted during {failed or '?'}: nothing was pushed by this run."
            else:
                head = f"Failed at {failed or '?'}: nothing was pushed by this run."
            verdict = f'<div class="verdict bad" data-key="verdict">{esc(head)}</div>'
            if error:
                items.append(
                    f"<p>The error ({esc(error.get('type'))}):</p><pre>{esc(error.get('message'))}</pre>"
                )
            else:
                items.append(
                    "<p class='muted'>MLMD records that the component failed, not why; the run record with the "
                    "error message is missing (the run was not started by <code>graft run</code>, or the process "
                    "was killed). Rerun with <code>-v</code> to see the traceback.</p>"
                )
            after = [e.node_id for e in s.executions if e.state == "FAILED"]
            if after:
                items.append(f"<p>Components after {esc(after[0])} did not run.</p>")
        elif s.status == "RUNNING":
            verdict = (
                '<div class="verdict warn" data-key="verdict">Not finished: no component of this run has failed, '
                "but not all of them completed (still running, or the process was interrupted).</div>"
            )
        elif s.blessed:
            pusher_cached = self.state.get("Pusher") == "CACHED"
            if s.pushed and pusher_cached:
                head = f"Blessed earlier; nothing new pushed: version {s.pushed_version} already serves."
            elif s.pushed:
                head = f"Blessed and pushed: version {s.pushed_version}."
            else:
                head = "Blessed, but the Pusher did not push."
            verdict = f'<div class="verdict ok" data-key="verdict">{esc(head)}</div>'
        elif s.blessed is False:
            verdict = (
                '<div class="verdict bad" data-key="verdict">NOT blessed: nothing was pushed; the serving '
                "directory is untouched.</div>"
            )
            items.append("<p>Failed thresholds:</p><ul>")
            items.extend(f"<li>{esc(f)}</li>" for f in s.threshold_failures or ["(no detail recorded)"])
            items.append("</ul>")
        else:
            verdict = (
                '<div class="verdict warn" data-key="verdict">Completed without a blessing decision.</div>'
            )
        facts = []
        if acc is not None:
            n = s.test_metrics.get("example_count")
            facts.append(
                f"test accuracy <b data-key='outcome/accuracy'>{_num(acc)}</b>"
                + (f" on {int(n)} examples" if n else "")
            )
        if s.skipped_files:
            facts.append(
                f"{len(s.skipped_files)} file(s) skipped, each with its reason (see <a href='#data'>data</a>)"
            )
        cached = [e.node_id for e in s.executions if e.state == "CACHED"]
        if cached:
            facts.append(f"cached (reused from an earlier run): {', '.join(cached)}")
        if self.record and self.record.get("command"):
            facts.append(f"command: <code>{esc(self.record['command'])}</code>")
        body = (
            verdict
            + "".join(items)
            + ("<ul>" + "".join(f"<li>{f}</li>" for f in facts) + "</ul>" if facts else "")
        )
        return self.section("outcome", "Outcome", body)

    def components(self) -> str:
        s = self.s
        if not s.executions:
            return self.section("components", "Components", "<p class='muted'>No component ran.</p>")
        total = max(1.0, s.seconds)
        rows = []
        for e in s.executions:
            offset = (e.start_ms - s.start_ms) / 1000.0
            width = max(1, int(300 * e.seconds / total))
            cls = "fail" if e.state == "FAILED" else ("pass" if e.state == "COMPLETE" else "")
            rows.append(
                [
                    _td(e.node_id),
                    _td(e.state.lower(), key=f"state/{e.node_id}", cls=cls),
                    _td(f"+{offset:.1f} s", num=True),
                    _td(f"{e.seconds:.1f} s", key=f"seconds/{e.node_id}", num=True),
                    f'<td><span class="bar" style="width:{width}px"></span></td>',
                ]
            )
        body = _table(["component", "state", "started", "duration", ""], rows, raw=True)
        body += (
            "<p class='muted'>cached = TFX reused the outputs of an earlier identical execution (same inputs, same "
            "settings).</p>"
        )
        return self.section("components", "Components", body)

    def data(self) -> str:
        s = self.s
        parts = []
        report = {}
        examples_uri = s.outputs.get("ImageExampleGen.examples") or next(
            (u for k, u in s.outputs.items() if k.endswith(".examples") and "Transform" not in k), None
        )
        if examples_uri:
            try:
                from graft.components.image_example_gen import report as report_mod

                report = report_mod.read_data_report(examples_uri)
            except Exception:  # noqa: BLE001 - Examples from another ExampleGen have no data report
                report = {}
        counts = s.example_counts
        if counts:
            splits = [x for x in ("train", "val", "test") if x in counts] + sorted(
                set(counts) - {"train", "val", "test"}
            )
            rows = []
            for c in self.classes:
                rows.append(
                    [_td(c)]
                    + [_td(str(counts[sp].get(c, 0)), key=f"count/{sp}/{c}", num=True) for sp in splits]
                    + [_td(str(sum(counts[sp].get(c, 0) for sp in splits)), num=True)]
                )
            rows.append(
                [_td("all classes")]
                + [_td(str(sum(counts[sp].values())), key=f"count/{sp}", num=True) for sp in splits]
                + [_td(str(sum(sum(v.values()) for v in counts.values())), key="count/all", num=True)]
            )
            intro = ""
            if report:
                intro = (
                    f"<p>{esc(report.get('num_examples'))} examples from {esc(report.get('num_files'))} file(s) "
                    f"at <code>{esc(report.get('data_path'))}</code> (layout: {esc(report.get('form'))}"
                    + (f", span {esc(report.get('span'))}" if report.get("span") else "")
                    + ").</p>"
                )
            parts.append("<h3>Examples per split and class</h3>" + intro)
            parts.append(_table(["class", *splits, "total"], rows, raw=True))
            if self.classes:
                parts.append(
                    self.png(PNG_COUNTS, plot_class_counts(counts, self.classes), "examples per class")
                )
        else:
            parts.append(
                "<h3>Examples per split and class</h3>" + self.not_reached("ImageExampleGen", "examples")
            )

        parts.append("<h3>Skipped files</h3>")
        if s.skipped_files:
            shown = s.skipped_files[:MAX_SKIPPED_SHOWN]
            outcome = (
                "the run stopped: more than data.max_bad_fraction of the files are unusable"
                if self.state.get("ImageExampleGen") == "FAILED"
                else "they were left out, the run went on with the rest"
            )
            parts.append(
                f"<p><span data-key='skipped/count'>{len(s.skipped_files)}</span> file(s) are not usable images "
                f"({esc(outcome)}):</p>"
            )
            parts.append(
                _table(
                    ["file", "reason"],
                    [[_td(f.get("path", "?"), key="skipped/path"), _td(f.get("reason", "?"))] for f in shown],
                    raw=True,
                )
            )
            if len(s.skipped_files) > len(shown):
                parts.append(f"<p class='muted'>… and {len(s.skipped_files) - len(shown)} more.</p>")
        elif counts or s.executions:
            parts.append("<p>None: every file was a readable image.</p>")

        parts.append("<h3>Anomalies (ExampleValidator against the curated schema)</h3>")
        anomalies_uri = s.outputs.get("ExampleValidator.anomalies") or s.artifacts.get("ExampleAnomalies")
        rows = read_anomaly_rows(anomalies_uri)
        if rows:
            parts.append(
                _table(
                    ["split", "feature", "anomaly", "details"],
                    [[r["split"], r["feature"], r["short"], r["description"]] for r in rows],
                )
            )
        elif anomalies_uri:
            parts.append("<p data-key='anomalies/none'>None: every split matches the schema.</p>")
        else:
            parts.append(self.not_reached("ExampleValidator", "anomaly check"))
        gate = self.state.get("DataGate")
        if gate == "FAILED" and self.record and self.record.get("error"):
            parts.append(
                f"<p>The data gate stopped the run:</p><pre>{esc(self.record['error'].get('message'))}</pre>"
            )
        parts.append(self.statistics())
        return self.section("data", "Data", "".join(parts))

    def statistics(self) -> str:
        stats_uri = self.s.outputs.get("StatisticsGen.statistics") or self.s.artifacts.get(
            "ExampleStatistics"
        )
        stats = read_statistics(stats_uri)
        if not stats:
            return "<h3>Statistics (StatisticsGen)</h3>" + self.not_reached("StatisticsGen", "statistics")
        rows = []
        for split in [x for x in ("train", "val", "test") if x in stats] + sorted(
            set(stats) - {"train", "val", "test"}
        ):
            ds = stats[split]
            for f in ds.features:
                name = ".".join(f.path.step) or f.name
                kind = f.WhichOneof("stats")
                common = (
                    getattr(f, kind).common_stats
                    if kind in ("string_stats", "num_stats", "bytes_stats")
                    else None
                )
                present = common.num_non_missing if common is not None else None
                detail = ""
                if kind == "string_stats":
                    st = f.string_stats
                    top = [t.value for t in st.top_values[:3] if t.value != "__BYTES_VALUE__"]
                    detail = f"{st.unique} unique; average {st.avg_length:.0f} bytes"
                    if top:
                        detail += "; most frequent: " + ", ".join(top)
                    if present and st.unique < present and name == "image_bytes":
                        detail += f"; {present - st.unique} duplicate image(s)"
                elif kind == "num_stats":
                    st = f.num_stats
                    detail = f"mean {st.mean:.4g}, min {st.min:.4g}, max {st.max:.4g}"
                rows.append(
                    [
                        split,
                        str(ds.num_examples),
                        name,
                        "n/a" if present is None else f"{present} of {ds.num_examples}",
                        detail,
                    ]
                )
        body = "<h3>Statistics (StatisticsGen)</h3>" + _table(
            ["split", "examples", "feature", "present in", "summary"], rows
        )
        facets = self.facets(stats)
        if facets:
            body += (
                f"<p class='muted'>TFDV's interactive Facets view of these statistics (train vs test): "
                f"<a href='{esc(FACETS_FILE)}'>{esc(FACETS_FILE)}</a> (it loads Facets from the internet).</p>"
            )
        return body

    def facets(self, stats: dict[str, Any]) -> bool:
        """TFDV's Facets Overview HTML as a side file (it needs the Facets scripts from the internet)."""
        try:
            from tensorflow_data_validation.utils import display_util
            from tensorflow_metadata.proto.v0 import statistics_pb2
        except Exception:  # noqa: BLE001 - optional view
            return False

        def as_list(split):
            out = statistics_pb2.DatasetFeatureStatisticsList()
            ds = out.datasets.add()
            ds.CopyFrom(stats[split])
            ds.name = split
            return out

        lhs = "train" if "train" in stats else sorted(stats)[0]
        rhs = "test" if "test" in stats and lhs != "test" else None
        try:
            page = display_util.get_statistics_html(
                as_list(lhs), as_list(rhs) if rhs else None, lhs_name=lhs, rhs_name=rhs or "rhs"
            )
        except Exception:  # noqa: BLE001
            return False
        (self.out / FACETS_FILE).write_text(
            "<!DOCTYPE html><html><head><meta charset='utf-8'><title>TFDV statistics</title></head><body>"
            + page
            + "</body></html>\n",
            encoding="utf-8",
        )
        return True

    def samples(self) -> str:
        uri = self.s.outputs.get("Transform.transformed_examples")
        if not uri:
            return self.section(
                "samples", "Sample images", self.not_reached("Transform", "transformed images")
            )
        try:
            samples = sample_images(uri, self.s.class_names or self.classes)
        except Exception as e:  # noqa: BLE001 - one unreadable section must not sink the report
            return self.section(
                "samples", "Sample images", f"<p class='fail'>Could not read samples: {esc(e)}</p>"
            )
        shown = {k: v for k, v in samples.items() if v}
        if not shown:
            return self.section(
                "samples", "Sample images", "<p class='muted'>No transformed train images found.</p>"
            )
        h, w = next(iter(shown.values()))[0].shape[:2]
        body = (
            f"<p>Train images as the model sees them: Transform's output (uint8, <span data-key='samples/size'>"
            f"{h}×{w}</span>, the backbone's input size), decoded exactly as the Trainer's input pipeline does, "
            "before the in-model augmentation. One row per class.</p>"
        )
        body += self.png(PNG_SAMPLES, plot_samples(shown), "sample images per class")
        if len(samples) > MAX_SAMPLE_CLASSES:
            body += f"<p class='muted'>First {MAX_SAMPLE_CLASSES} of {len(samples)} classes shown.</p>"
        return self.section("samples", "Sample images", body)

    def training(self) -> str:
        history = read_history(self.s.outputs.get("Trainer.model"))
        if history is None:
            return self.section("training", "Training", self.not_reached("Trainer", "training history"))
        body = self.png(PNG_CURVES, plot_training_curves(history), "training curves")
        rows = []
        for p in history.get("phases", []):
            rows.append(
                [
                    _td(str(p.get("phase"))),
                    _td(
                        "head on the frozen backbone"
                        if p.get("phase") == 1
                        else "fine-tune the top of the backbone"
                    ),
                    _td(str(p.get("epochs_run")), key=f"phase{p.get('phase')}/epochs", num=True),
                    _td(
                        str((p.get("best_epoch") or 0) + 1 if p.get("best_epoch") is not None else "n/a"),
                        num=True,
                    ),
                    _td(_num(p.get("best_val_loss"))),
                    _td("yes" if p.get("stopped_early") else "no"),
                    _td(f"{p.get('learning_rate'):g}" if p.get("learning_rate") is not None else "?"),
                    _td(str(p.get("trainable_backbone_variables")), num=True),
                    _td(f"{p.get('seconds', 0):.1f} s", num=True),
                ]
            )
        body += _table(
            [
                "phase",
                "what trains",
                "epochs",
                "best epoch",
                "best val loss",
                "stopped early",
                "learning rate",
                "backbone variables trained",
                "time",
            ],
            rows,
            raw=True,
        )
        sel = history.get("selected") or {}
        if sel:
            body += (
                f"<p>Exported weights: phase {esc(sel.get('phase'))}, epoch {esc((sel.get('epoch') or 0) + 1)} "
                f"(lowest val loss, {_num(sel.get('val_loss'))}).</p>"
            )
        if len(history.get("phases", [])) < 2:
            body += "<p class='muted'>Phase 2 (fine-tuning) did not run (train.fine_tune_fraction or train.phase2_epochs is 0).</p>"
        if history.get("device"):
            body += f"<p class='muted'>Device: {esc(history['device'])}.</p>"
        return self.section("training", "Training", body)

    def evaluation(self) -> str:
        s = self.s
        if not s.test_metrics:
            return self.section(
                "evaluation", "Evaluation (test split)", self.not_reached("Evaluator", "evaluation")
            )
        order = list(METRIC_LABELS)
        names = sorted(s.test_metrics, key=lambda k: (order.index(k) if k in order else len(order), k))
        rows = []
        for k in names:
            if k.endswith("_diff"):
                continue
            cand = s.test_metrics.get(k)
            base = s.baseline_metrics.get(k)
            diff = s.test_metrics.get(f"{k}_diff")
            if diff is None and cand is not None and base is not None:
                diff = cand - base
            digits = 0 if k == "example_count" else 4
            rows.append(
                [
                    _td(METRIC_LABELS.get(k, k)),
                    _td(_num(cand, digits), key=f"test/{k}", num=True),
                    _td(_num(base, digits) if s.baseline_model_uri else "—", key=f"baseline/{k}", num=True),
                    _td(
                        (f"{diff:+.4f}" if diff is not None else "n/a") if s.baseline_model_uri else "—",
                        num=True,
                    ),
                ]
            )
        body = _table(["metric", "this model", "baseline", "change"], rows, raw=True)
        if not s.baseline_model_uri:
            body += "<p class='muted'>No baseline: no model of this pipeline was blessed before this one.</p>"
        if s.confusion_matrix:
            n = len(s.confusion_matrix)
            labels = [s.class_names[i] if i < len(s.class_names) else str(i) for i in range(n)]
            body += "<h3>Confusion matrix</h3>"
            body += self.png(
                PNG_CONFUSION, plot_confusion_matrix(s.confusion_matrix, labels), "confusion matrix"
            )
            cm_rows = [
                [_td(labels[a])]
                + [_td(str(s.confusion_matrix[a][p]), key=f"cm/{a}/{p}", num=True) for p in range(n)]
                for a in range(n)
            ]
            body += "<p class='muted'>Rows: actual class; columns: predicted class (argmax, as served).</p>"
            body += _table(["actual \\ predicted", *labels], cm_rows, raw=True)
        if s.per_class:
            pc_rows = []
            for name, m in s.per_class.items():
                p, r = m.get("precision"), m.get("recall")
                f1 = (2 * p * r / (p + r)) if p is not None and r is not None and (p + r) > 0 else None
                pc_rows.append(
                    [
                        _td(name),
                        _td(_num(p), key=f"precision/{name}", num=True),
                        _td(_num(r), key=f"recall/{name}", num=True),
                        _td(_num(f1), num=True),
                        _td(str(m.get("support")), key=f"support/{name}", num=True),
                    ]
                )
            body += "<h3>Per class</h3>" + _table(
                ["class", "precision", "recall", "F1", "test examples"], pc_rows, raw=True
            )
            body += "<p class='muted'>n/a: the class was never predicted (precision) or has no test example (recall).</p>"
        return self.section("evaluation", "Evaluation (test split)", body)

    def blessing(self) -> str:
        s = self.s
        uri = s.outputs.get("Evaluator.evaluation") or s.artifacts.get("ModelEvaluation")
        if s.blessed is None or not uri:
            return self.section("blessing", "Blessing", self.not_reached("Evaluator", "blessing decision"))
        decision = (
            "<div class='verdict ok' data-key='blessed'>BLESSED: every threshold passed.</div>"
            if s.blessed
            else "<div class='verdict bad' data-key='blessed'>NOT BLESSED: at least one threshold failed.</div>"
        )
        base_run = producing_run(self.metadata_path, s.baseline_model_uri)
        if s.baseline_model_uri:
            baseline = (
                f"<p>Baseline: the last model blessed before this one, trained in run <code>{esc(base_run or '?')}"
                f"</code> (<code>{esc(s.baseline_model_uri)}</code>).</p>"
            )
        else:
            baseline = (
                "<p>Baseline: none (no model of this pipeline was blessed before this one), so the change-vs-baseline "
                "threshold did not apply; only the absolute thresholds decided.</p>"
            )
        try:
            checks = threshold_checks(uri)
        except Exception as e:  # noqa: BLE001 - fall back to the plain-words failures
            checks = []
            baseline += f"<p class='muted'>Could not read the thresholds table: {esc(e)}</p>"
        rows = []
        for i, c in enumerate(checks):
            rows.append(
                [
                    _td(c.metric),
                    _td(c.slice),
                    _td(c.rule, key=f"check/{i}/rule"),
                    _td(_num(c.candidate), key=f"check/{i}/candidate", num=True),
                    _td(_num(c.baseline) if c.kind == "change" or c.baseline is not None else "—", num=True),
                    _td(
                        f"{c.change:+.4f}" if c.change is not None else "—", key=f"check/{i}/change", num=True
                    ),
                    _td(
                        "pass" if c.passed else "FAIL",
                        key=f"check/{i}/result",
                        cls="pass" if c.passed else "fail",
                    ),
                ]
            )
        body = decision + baseline
        if rows:
            body += _table(
                ["metric", "slice", "threshold", "this model", "baseline", "change", "result"], rows, raw=True
            )
        if s.threshold_failures:
            body += (
                "<p>Failed, in words:</p><ul>"
                + "".join(f"<li>{esc(f)}</li>" for f in s.threshold_failures)
                + "</ul>"
            )
        return self.section("blessing", "Blessing", body)

    def push(self) -> str:
        s = self.s
        if s.pushed and s.pushed_path:
            cached = self.state.get("Pusher") == "CACHED"
            body = (
                f"<p>Model version <b data-key='pushed_version'>{esc(s.pushed_version)}</b> at "
                f"<code data-key='pushed_path'>{esc(s.pushed_path)}</code>"
                + (" (pushed by an earlier run: this run's Pusher was cached)" if cached else "")
                + ".</p>"
            )
            model_dir = str(Path(s.pushed_path).parent)
            body += (
                f"<p>Query it: <code>graft predict --model {esc(model_dir)} IMAGE...</code><br>Serve it: "
                f"<code>docker run -p 8501:8501 -v {esc(model_dir)}:/models/{esc(Path(model_dir).name)} -e "
                f"MODEL_NAME={esc(Path(model_dir).name)} tensorflow/serving</code></p>"
            )
        elif s.blessed is False:
            body = "<p data-key='pushed_version'>Nothing was pushed: the model was not blessed.</p>"
        elif self.state.get("Pusher") is None:
            body = self.not_reached("Pusher", "push")
        else:
            body = "<p data-key='pushed_version'>Nothing was pushed.</p>"
        return self.section("push", "Push", body)

    def config(self) -> str:
        if self.record and self.record.get("config"):
            import yaml

            body = (
                "<pre data-key='config'>"
                + esc(yaml.safe_dump(self.record["config"], sort_keys=False))
                + "</pre>"
            )
            if self.record.get("backbone"):
                b = self.record["backbone"]
                body += (
                    f"<p>Backbone: <code>{esc(b.get('handle'))}</code> → {esc(b.get('height'))}×{esc(b.get('width'))}"
                    f", input range {esc(b.get('value_range'))}, {esc(b.get('feature_size'))} features, path "
                    f"<code>{esc(b.get('path'))}</code>.</p>"
                )
        else:
            body = (
                "<p class='muted'>No run record for this run (it was not started by <code>graft run</code> / "
                "<code>graft demo</code>, or by an older Graft), so its effective config is unknown here.</p>"
            )
        return self.section("config", "Effective config", body)

    def artifacts(self) -> str:
        rows = [[k, v] for k, v in sorted(self.s.outputs.items())]
        body = _table(["output", "uri"], rows) if rows else "<p class='muted'>No artifacts.</p>"
        return self.section("artifacts", "Artifacts", body)


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
