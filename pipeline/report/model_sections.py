"""The report's model sections: training curves, evaluation, blessing, push, config and artifact list."""

from __future__ import annotations

from pathlib import Path

from graft.pipeline.report.artifacts import (
    METRIC_LABELS,
    PNG_CONFUSION,
    PNG_CURVES,
    producing_run,
    read_history,
    threshold_checks,
)
from graft.pipeline.report.markup import _num, _table, _td, esc
from graft.pipeline.report.plots import plot_confusion_matrix, plot_training_curves


class ModelSections:
    """Mixin of the report builder (graft.pipeline.report.page._Builder): the model sections."""

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
                        (
                            "head on the frozen backbone"
                            if p.get("phase") == 1
                            else "fine-tune the top of the backbone"
                        )
                        + (f", on {p['on']}" if p.get("on") else "")
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
        if history.get("feature_cache"):
            fc = history["feature_cache"]
            body += (
                f"<p class='muted'>Phase 1 ran on cached features: {esc(fc.get('train_examples'))} train + "
                f"{esc(fc.get('val_examples'))} val vectors computed once in {esc(fc.get('seconds'))} s.</p>"
            )
        if len(history.get("phases", [])) < 2:
            why = history.get("phase2_skipped") or "train.fine_tune_fraction or train.phase2_epochs is 0"
            body += f"<p class='muted'>Phase 2 (fine-tuning) did not run: {esc(why)}.</p>"
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
