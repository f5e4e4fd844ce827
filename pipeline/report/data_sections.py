"""The report's data sections: examples per split and class, skipped files, anomalies, statistics, samples."""

from __future__ import annotations

from typing import Any

from graft.pipeline.report.artifacts import (
    FACETS_FILE,
    MAX_SAMPLE_CLASSES,
    MAX_SKIPPED_SHOWN,
    PNG_COUNTS,
    PNG_SAMPLES,
    read_anomaly_rows,
    read_statistics,
    sample_images,
    sample_texts,
)
from graft.pipeline.report.markup import _table, _td, esc
from graft.pipeline.report.plots import plot_class_counts, plot_samples


class DataSections:
    """Mixin of the report builder (graft.pipeline.report.page._Builder): the data sections."""

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
                for split, c in (report.get("carved") or {}).items():
                    intro += (
                        f"<p data-key='carved/{esc(split)}'>The data has no {esc(split)}/ folder: {esc(split)} is "
                        f"{100 * c['fraction']:.0f}% of {esc(c['from'])}/'s files, carved by a stable hash of the "
                        f"file path (data.{esc(split)}_fraction)"
                        + ("" if "test" in report["carved"] else "; test/ is used as given")
                        + ".</p>"
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

    def text_samples(self, uri: str) -> str:
        """Task text: sample train texts as word pieces (what the encoder reads), two per class."""
        title = "Sample texts"
        try:
            samples = sample_texts(
                uri, self.s.outputs.get("Transform.transform_graph"), self.s.class_names or self.classes
            )
        except Exception as e:  # noqa: BLE001 - one unreadable section must not sink the report
            return self.section("samples", title, f"<p class='fail'>Could not read samples: {esc(e)}</p>")
        rows = "".join(
            f"<tr><td>{esc(c)}</td><td><code>{esc(' '.join(p))}</code></td></tr>"
            for c, ps in samples.items()
            for p in ps
        )
        if not rows:
            return self.section("samples", title, "<p class='muted'>No transformed train texts found.</p>")
        body = (
            "<p>Train texts as the model sees them: Transform's token ids mapped back to the module's word pieces "
            "([CLS] ... [SEP], truncated to the sequence length, padding left out). Two per class.</p>"
            f"<table><tr><th>class</th><th>word pieces</th></tr>{rows}</table>"
        )
        return self.section("samples", title, body)

    def samples(self) -> str:
        uri = self.s.outputs.get("Transform.transformed_examples")
        if uri and "TextExampleGen.examples" in self.s.outputs:
            return self.text_samples(uri)
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
