"""The short, plain summary printed at the end of `graft run` / `graft demo`."""

from __future__ import annotations

from graft.pipeline import tflite_report
from graft.pipeline.config import GraftConfig
from graft.pipeline.runs import RunSummary


def render(s: RunSummary, cfg: GraftConfig, report_path: str | None = None) -> str:
    lines = [f"[graft] run {s.run_id}: {s.status.lower()} in {s.seconds:.0f} s"]
    components = [e for e in s.executions if not e.node_id.endswith("_resolver")]
    cached = [e.node_id for e in components if e.state == "CACHED"]
    if cached and len(cached) == len(components):
        lines.append("[graft] every component was cached: nothing changed since the last run")
    elif cached:
        lines.append(f"[graft] cached: {', '.join(cached)}")
    if s.test_metrics:
        acc = s.test_metrics.get("sparse_categorical_accuracy")
        n = s.test_metrics.get("example_count")
        if acc is not None:
            lines.append(f"[graft] test accuracy {acc:.4f}" + (f" on {int(n)} examples" if n else ""))
    for split, c in s.carved.items():
        lines.append(
            f"[graft] no {split}/ folder: {split} is {100 * c['fraction']:.0f}% of {c['from']}/'s files, carved by a "
            f"stable hash of the file path (data.{split}_fraction)"
            + ("" if "test" in s.carved else "; test/ is used as given")
        )
    if s.skipped_files:
        where = "listed in the report" if report_path else "`graft report` lists them"
        lines.append(f"[graft] {len(s.skipped_files)} file(s) skipped, each with its reason ({where})")
    if s.blessed:
        if s.pushed_earlier and s.pushed:
            lines.append(
                f"[graft] blessed earlier; nothing new pushed: version {s.pushed_version} already serves at "
                f"{s.pushed_path}"
            )
        elif s.pushed and s.pushed_path:
            lines.append(f"[graft] blessed and pushed: {s.pushed_path} (version {s.pushed_version})")
            what = (
                "--text 'a sentence'" if "TextExampleGen" in {e.node_id for e in s.executions} else "IMAGE..."
            )
            lines.append(f"[graft] query it:  graft predict --model {cfg.serving_model_dir} {what}")
            lines.append(
                "[graft] or serve it: docker run -p 8501:8501 "
                f"-v {cfg.serving_model_dir}:/models/{cfg.push.model_name} -e MODEL_NAME={cfg.push.model_name} "
                "tensorflow/serving"
            )
        else:
            lines.append("[graft] blessed, but the Pusher did not push")
    elif s.blessed is False:
        lines.append(
            f"[graft] NOT blessed: nothing was pushed; {cfg.serving_model_dir} is untouched. Failed thresholds:"
        )
        for f in s.threshold_failures or ["(no detail recorded)"]:
            lines.append(f"[graft]   - {f}")
    lines += tflite_report.summary_lines(s)  # edge export: each TFLite variant, pushed or why not
    if report_path:
        lines.append(f"[graft] report (plots, data, blessing, config): {report_path}")
    return "\n".join(lines)
