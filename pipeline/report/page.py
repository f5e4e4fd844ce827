"""Writing one run's page: :func:`write_report` and the builder of its outcome and components sections.

The other sections come from two mixins, split by what they show: data (graft.pipeline.report.data_sections) and
the model (graft.pipeline.report.model_sections).
"""

from __future__ import annotations

import dataclasses
import datetime
import os
from pathlib import Path

from graft.pipeline import runs, tflite_report
from graft.pipeline.report.artifacts import ACCURACY, REPORT_FILE, ReportError, default_out_dir
from graft.pipeline.report.data_sections import DataSections
from graft.pipeline.report.markup import CSS, _img, _num, _table, _td, _when, esc
from graft.pipeline.report.model_sections import ModelSections


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


class _Builder(DataSections, ModelSections):
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
