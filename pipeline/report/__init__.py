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

A package split by what changes together: reading the artifacts (``artifacts``), the plots (``plots``), the HTML
building blocks (``markup``), the sections (``page``: outcome, components; ``data_sections``; ``model_sections``)
and the history (``history``). This module re-exports their public names: ``graft.pipeline.report.X`` as before.
"""

from __future__ import annotations

from graft.pipeline.report.artifacts import (
    ACCURACY,
    FACETS_FILE,
    MAX_SAMPLE_CLASSES,
    MAX_SAMPLE_RECORDS,
    MAX_SKIPPED_SHOWN,
    METRIC_LABELS,
    PNG_CONFUSION,
    PNG_COUNTS,
    PNG_CURVES,
    PNG_SAMPLES,
    REPORT_FILE,
    REPORTS_DIR,
    SAMPLES_PER_CLASS,
    ReportError,
    ThresholdCheck,
    default_out_dir,
    producing_run,
    read_anomaly_rows,
    read_history,
    read_statistics,
    sample_images,
    threshold_checks,
)
from graft.pipeline.report.history import HistoryRow, format_history, run_history
from graft.pipeline.report.markup import CSS, esc
from graft.pipeline.report.page import Report, write_report
from graft.pipeline.report.plots import (
    SAMPLE_TILE_MAX,
    phase_boundary,
    plot_class_counts,
    plot_confusion_matrix,
    plot_samples,
    plot_training_curves,
    sample_mosaic,
)

__all__ = [
    "ACCURACY",
    "CSS",
    "FACETS_FILE",
    "MAX_SAMPLE_CLASSES",
    "MAX_SAMPLE_RECORDS",
    "MAX_SKIPPED_SHOWN",
    "METRIC_LABELS",
    "PNG_CONFUSION",
    "PNG_COUNTS",
    "PNG_CURVES",
    "PNG_SAMPLES",
    "REPORTS_DIR",
    "REPORT_FILE",
    "SAMPLES_PER_CLASS",
    "SAMPLE_TILE_MAX",
    "HistoryRow",
    "Report",
    "ReportError",
    "ThresholdCheck",
    "default_out_dir",
    "esc",
    "format_history",
    "phase_boundary",
    "plot_class_counts",
    "plot_confusion_matrix",
    "plot_samples",
    "plot_training_curves",
    "producing_run",
    "read_anomaly_rows",
    "read_history",
    "read_statistics",
    "run_history",
    "sample_images",
    "sample_mosaic",
    "threshold_checks",
    "write_report",
]
