"""What happened in a run, read back from MLMD (the sqlite store under the run root).

The run summary (`graft run --json`), `graft runs` and the report all read the same facts from here: the run's
executions and their states, the blessing, the pushed version, the evaluation metrics, anomalies and skipped files.
Nothing here trusts log output: MLMD is the record.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

# Re-exported: these lived here before they had their own module.
from graft.pipeline.run_evaluation import (  # noqa: F401  (re-exported: the run's evaluation)
    _finite,
    _fmt,
    _slice_text,
    _threshold_text,
    eval_model_names,
    load_eval_result,
    per_class_metrics,
    read_confusion_matrix,
    read_evaluation,
)
from graft.pipeline.run_records import (  # noqa: F401
    RUNS_DIR,
    _read_json,
    read_run_record,
    record_path,
    update_run_record,
    write_run_record,
)

PIPELINE_RUN_CONTEXT = "pipeline_run"
NODE_CONTEXT = "node"

# Set by Graft's image ExampleGen on its Examples artifact (components/image_example_gen/report.py).
EXAMPLES_COUNTS_PROP = "graft_counts"

STATE_NAMES = {0: "UNKNOWN", 1: "NEW", 2: "RUNNING", 3: "COMPLETE", 4: "FAILED", 5: "CACHED", 6: "CANCELED"}


@dataclasses.dataclass
class ExecutionInfo:
    id: int
    node_id: str
    state: str
    start_ms: int
    end_ms: int

    @property
    def seconds(self) -> float:
        return max(0.0, (self.end_ms - self.start_ms) / 1000.0)


@dataclasses.dataclass
class RunSummary:
    run_id: str
    pipeline_name: str
    start_ms: int = 0
    end_ms: int = 0
    status: str = "UNKNOWN"  # COMPLETE | FAILED | RUNNING (no execution ended) | UNKNOWN
    executions: list[ExecutionInfo] = dataclasses.field(default_factory=list)
    blessed: bool | None = None
    pushed: bool | None = None
    pushed_path: str | None = None
    pushed_version: str | None = None
    test_metrics: dict[str, float] = dataclasses.field(default_factory=dict)
    # From the test split's confusion matrix (argmax predictions): class order = the label vocabulary.
    class_names: list[str] = dataclasses.field(default_factory=list)
    confusion_matrix: list[list[int]] = dataclasses.field(default_factory=list)  # [actual][predicted]
    per_class: dict[str, dict[str, float | None]] = dataclasses.field(default_factory=dict)
    threshold_failures: list[str] = dataclasses.field(default_factory=list)
    anomalies: list[str] = dataclasses.field(default_factory=list)
    skipped_files: list[dict[str, Any]] = dataclasses.field(default_factory=list)
    artifacts: dict[str, str] = dataclasses.field(
        default_factory=dict
    )  # type name -> uri (this run's outputs)
    # "<node id>.<output key>" -> uri of each output of this run's executions (e.g. "ImageExampleGen.examples"); unlike
    # ``artifacts`` it tells the raw Examples from Transform's transformed ones.
    outputs: dict[str, str] = dataclasses.field(default_factory=dict)
    # Examples per split and class, as ExampleGen counted them ({split: {class: n}}).
    example_counts: dict[str, dict[str, int]] = dataclasses.field(default_factory=dict)
    # Splits a pre-split tree lacked, carved out of train/ ({split: {"from": "train", "fraction": f}}).
    carved: dict[str, dict[str, Any]] = dataclasses.field(default_factory=dict)
    # The Evaluator's baseline (the last blessed model before this candidate); None on a first blessing.
    baseline_model_uri: str | None = None
    baseline_metrics: dict[str, float] = dataclasses.field(default_factory=dict)
    # The TFLiteExport's results.json (components/edge): per-variant size, accuracy, drop, latency, blessing.
    tflite: dict[str, Any] = dataclasses.field(default_factory=dict)

    @property
    def pushed_earlier(self) -> bool:
        """This run's Pusher was cached: what serves was pushed by an earlier run, nothing new now."""
        return any(e.node_id == "Pusher" and e.state == "CACHED" for e in self.executions)

    @property
    def seconds(self) -> float:
        return max(0.0, (self.end_ms - self.start_ms) / 1000.0)

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["seconds"] = round(self.seconds, 1)
        for e in d["executions"]:
            e["seconds"] = round((e["end_ms"] - e["start_ms"]) / 1000.0, 1)
        return d


def connect(metadata_path: str | Path):
    from ml_metadata.metadata_store import metadata_store
    from ml_metadata.proto import metadata_store_pb2

    path = Path(metadata_path)
    if not path.exists():
        raise FileNotFoundError(f"no MLMD store at {path}: no run has happened under this root yet")
    config = metadata_store_pb2.ConnectionConfig()
    config.sqlite.filename_uri = str(path)
    config.sqlite.connection_mode = metadata_store_pb2.SqliteMetadataSourceConfig.READONLY
    return metadata_store.MetadataStore(config)


def _prop(obj, name: str, default=None):
    for props in (obj.custom_properties, obj.properties):
        if name in props:
            v = props[name]
            kind = v.WhichOneof("value")
            if kind == "int_value":
                return v.int_value
            if kind == "string_value":
                return v.string_value
            if kind == "double_value":
                return v.double_value
            if kind == "bool_value":
                return v.bool_value
            if kind == "proto_value":
                return v.proto_value
    return default


def list_run_ids(store, pipeline_name: str | None = None) -> list[str]:
    """Run ids, oldest first (by context creation time)."""
    contexts = store.get_contexts_by_type(PIPELINE_RUN_CONTEXT)
    if pipeline_name:
        pipeline_ctx = store.get_context_by_type_and_name("pipeline", pipeline_name)
        if pipeline_ctx is None:
            return []
        # pipeline_run contexts are children of the pipeline context in TFX >= 1.x; fall back to all when absent.
        try:
            children = store.get_children_contexts_by_context(pipeline_ctx.id)
            if children:
                contexts = [c for c in children if c.type_id == contexts[0].type_id] if contexts else []
        except Exception:  # noqa: BLE001 - older stores lack parent links; every run context then counts
            pass
    contexts.sort(key=lambda c: (c.create_time_since_epoch, c.id))
    return [c.name for c in contexts]


def summarize(
    metadata_path: str | Path,
    run_id: str | None = None,
    pipeline_name: str | None = None,
    with_evaluation: bool = True,
) -> RunSummary:
    """One run, read back from MLMD. ``with_evaluation=False`` skips the TFMA results (no TFMA import: fast)."""
    store = connect(metadata_path)
    ids = list_run_ids(store, pipeline_name)
    if not ids:
        raise LookupError(f"no runs recorded in {metadata_path}")
    if run_id in (None, "latest"):
        run_id = ids[-1]
    ctx = store.get_context_by_type_and_name(PIPELINE_RUN_CONTEXT, run_id)
    if ctx is None:
        raise LookupError(f"no run {run_id!r} in {metadata_path}; known runs: {', '.join(ids[-5:])}")
    # Graft's local layout: <run_root>/{metadata.sqlite, pipeline_root/}.
    return _summarize_context(
        store, ctx, pipeline_name or "", Path(metadata_path).parent / "pipeline_root", with_evaluation
    )


def _node_id_of(store, execution) -> str:
    node_type = store.get_context_type(NODE_CONTEXT)
    for c in store.get_contexts_by_execution(execution.id):
        if c.type_id == node_type.id:
            return c.name.split(".", 1)[-1]
    return store.get_execution_types_by_id([execution.type_id])[0].name.rsplit(".", 1)[-1]


def _summarize_context(
    store, ctx, pipeline_name: str, pipeline_root: Path | None = None, with_evaluation: bool = True
) -> RunSummary:
    from ml_metadata.proto import metadata_store_pb2

    summary = RunSummary(run_id=ctx.name, pipeline_name=pipeline_name)
    executions = store.get_executions_by_context(ctx.id)
    summary.start_ms = ctx.create_time_since_epoch
    if not executions:
        return summary
    for e in sorted(executions, key=lambda e: (e.create_time_since_epoch, e.id)):
        summary.executions.append(
            ExecutionInfo(
                id=e.id,
                node_id=_node_id_of(store, e),
                state=STATE_NAMES.get(e.last_known_state, str(e.last_known_state)),
                start_ms=e.create_time_since_epoch,
                end_ms=e.last_update_time_since_epoch,
            )
        )
    summary.start_ms = min(x.start_ms for x in summary.executions)
    summary.end_ms = max(x.end_ms for x in summary.executions)
    states = {x.state for x in summary.executions}
    if "FAILED" in states:
        summary.status = "FAILED"
    elif states <= {"COMPLETE", "CACHED"}:
        summary.status = "COMPLETE"
    else:
        summary.status = "RUNNING"

    # Output artifacts of this run's executions (cached executions point at the reused artifacts).
    exec_ids = [e.id for e in executions]
    events = store.get_events_by_execution_ids(exec_ids)
    out_ids = [ev.artifact_id for ev in events if ev.type == metadata_store_pb2.Event.OUTPUT]
    artifacts = store.get_artifacts_by_id(out_ids) if out_ids else []
    type_names = {t.id: t.name for t in store.get_artifact_types_by_id(list({a.type_id for a in artifacts}))}
    node_of = {x.id: x.node_id for x in summary.executions}
    uri_of = {a.id: a.uri for a in artifacts}
    for ev in events:
        key = ev.path.steps[0].key if ev.path.steps else ""
        if ev.type == metadata_store_pb2.Event.OUTPUT and ev.artifact_id in uri_of:
            summary.outputs[f"{node_of.get(ev.execution_id, '?')}.{key}"] = uri_of[ev.artifact_id]
        elif ev.type == metadata_store_pb2.Event.INPUT and key == "baseline_model":
            baseline = store.get_artifacts_by_id([ev.artifact_id])
            summary.baseline_model_uri = baseline[0].uri if baseline else None
    for a in artifacts:
        tname = type_names.get(a.type_id, "?")
        summary.artifacts[tname] = a.uri
        if tname == "ModelBlessing":
            summary.blessed = bool(_prop(a, "blessed", 0))
        elif tname == "PushedModel":
            summary.pushed = bool(_prop(a, "pushed", 0))
            if summary.pushed:
                summary.pushed_path = _prop(a, "pushed_destination")
                summary.pushed_version = str(_prop(a, "pushed_version", "")) or None
        elif tname == "ModelEvaluation" and with_evaluation:
            summary.test_metrics, summary.threshold_failures = read_evaluation(a.uri)
            summary.confusion_matrix = read_confusion_matrix(a.uri)
            if summary.baseline_model_uri:
                summary.baseline_metrics = read_evaluation(a.uri, model="baseline")[0]
        elif tname == "graft.TFLiteModels":  # edge export (pipeline/tflite_report.py)
            from graft.pipeline import tflite_report

            summary.tflite = tflite_report.read_variants(a.uri)
        elif tname == "ExampleAnomalies":
            summary.anomalies = read_anomalies(a.uri)
        elif tname == "Examples" and _prop(a, EXAMPLES_COUNTS_PROP) is not None:
            # ExampleGen's own Examples (Transform's carry no counts): its data report and skipped-file list.
            report = _read_json(str(Path(a.uri) / "data_report.json"), {})
            summary.example_counts = report.get("counts") or json.loads(
                _prop(a, EXAMPLES_COUNTS_PROP) or "{}"
            )
            summary.skipped_files = _read_json(str(Path(a.uri) / "skipped_files.json"), [])
            summary.carved = report.get("carved") or {}
    if not summary.example_counts:
        summary.skipped_files = _failed_example_gen_skipped(summary, pipeline_root)
    if "TransformGraph" in summary.artifacts:
        summary.class_names = read_class_names(summary.artifacts["TransformGraph"])
    if summary.confusion_matrix:
        summary.per_class = per_class_metrics(summary.confusion_matrix, summary.class_names)
    if summary.pushed is None and summary.blessed is False:
        summary.pushed = False
    return summary


def _failed_example_gen_skipped(summary: RunSummary, pipeline_root: Path | None) -> list[dict[str, Any]]:
    """When ExampleGen itself failed (too many bad files), TFX deleted its outputs; the skipped-file list is kept
    at <pipeline_root>/<ExampleGen id>/skipped_files/<execution id>.json (image_example_gen/report.py)."""
    for e in summary.executions:
        if e.state != "FAILED":
            continue
        for root in _pipeline_roots(summary) + ([pipeline_root] if pipeline_root else []):
            path = root / e.node_id / "skipped_files" / f"{e.id}.json"
            if path.exists():
                return _read_json(str(path), [])
    return []


def _pipeline_roots(summary: RunSummary) -> list[Path]:
    """The pipeline root, as seen from any output uri (<pipeline_root>/<node>/<key>/<execution id>)."""
    return list(dict.fromkeys(Path(uri).parents[2] for uri in summary.outputs.values() if uri))


def read_class_names(transform_graph_uri: str) -> list[str]:
    """The label vocabulary (index order) kept as an asset by Transform."""
    from graft.components import features

    for path in sorted(Path(transform_graph_uri).glob(f"transform_fn/assets/{features.LABEL_VOCAB_NAME}*")):
        return [line for line in path.read_text(encoding="utf-8").splitlines() if line]
    return []


def anomaly_rows(uri: str | None) -> list[dict[str, str]]:
    """Every anomaly in an ExampleAnomalies artifact (one SchemaDiff.pb per split): split, feature ('(dataset)' for
    dataset-level ones), short and long description."""
    if not uri:
        return []
    from tensorflow_metadata.proto.v0 import anomalies_pb2

    rows: list[dict[str, str]] = []
    for split_dir in sorted(Path(uri).glob("Split-*")):
        path = split_dir / "SchemaDiff.pb"
        if not path.exists():
            continue
        anomalies = anomalies_pb2.Anomalies()
        anomalies.ParseFromString(path.read_bytes())
        split = split_dir.name[len("Split-") :]
        items = sorted(anomalies.anomaly_info.items())
        if anomalies.HasField("dataset_anomaly_info"):
            items.append(("(dataset)", anomalies.dataset_anomaly_info))
        for feature, info in items:
            rows.append(
                {
                    "split": split,
                    "feature": feature,
                    "short": info.short_description,
                    "description": info.description or info.short_description,
                }
            )
    return rows


def read_anomalies(uri: str) -> list[str]:
    """Plain-words anomalies, one line each: "[split] feature 'f': description"."""
    out = []
    for r in anomaly_rows(uri):
        where = "dataset" if r["feature"] == "(dataset)" else f"feature '{r['feature']}'"
        out.append(f"[{r['split']}] {where}: {r['description']}")
    return out


def describe_error(error: BaseException | None) -> dict[str, Any] | None:
    """The failure in plain data: the most telling exception of the chain (a data error if there is one)."""
    if error is None:
        return None
    from graft import errors

    code, main = errors.classify(error)
    data = code == errors.EXIT_DATA_VALIDATION
    main = main if data else error
    kind = (
        "data_validation" if data else ("interrupted" if isinstance(error, KeyboardInterrupt) else "failure")
    )
    return {"type": type(main).__name__, "message": str(main) or type(main).__name__, "kind": kind}


def evaluation_cache_entry(summary: RunSummary) -> dict[str, Any] | None:
    """Test metrics keyed by the evaluation artifact they came from, so `graft runs` need not load TFMA."""
    uri = summary.artifacts.get("ModelEvaluation")
    return {"uri": uri, "test_metrics": summary.test_metrics} if uri else None
