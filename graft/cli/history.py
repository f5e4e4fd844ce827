"""``graft report`` / ``graft runs``: what happened, read back from MLMD and the run records."""

from __future__ import annotations

import sys

import click

from graft.cli.common import PRECEDENCE, _load
from graft.errors import EXIT_USAGE


# ---- what happened: graft report / graft runs -------------------------------------------------------------------
def _locate_options(f):
    f = click.option(
        "--set",
        "overrides",
        multiple=True,
        metavar="KEY=VALUE",
        help="Config override, e.g. name=my_pipeline.",
    )(f)
    f = click.option(
        "--config", "config_file", type=click.Path(dir_okay=False), help="The YAML config the runs used."
    )(f)
    f = click.option(
        "--root",
        type=click.Path(file_okay=False),
        help="Run root, as given to `graft run` (default: graft_runs).",
    )(f)
    return f


def _locate(root, config_file, overrides):
    """The config that says where the runs live (root and pipeline name); exits 2 when no run was ever made there."""
    cfg = _load(config_file, overrides, flags={"root": root})
    if not cfg.metadata_path.exists():
        click.echo(
            f"graft: no runs under {cfg.run_root} (no {cfg.metadata_path.name} there). Pass the --root (and "
            "--set name=...) that `graft run` used.",
            err=True,
        )
        sys.exit(EXIT_USAGE)
    return cfg


@click.command(epilog=PRECEDENCE)
@click.argument("run_id", default="latest")
@_locate_options
@click.option(
    "--out",
    "out_dir",
    type=click.Path(file_okay=False),
    help="Output folder (default: <root>/<name>/reports/<run id>/).",
)
def report(run_id, root, config_file, overrides, out_dir):
    """Write the HTML report of a run (RUN_ID from `graft runs`, default: the latest) and print its path.

    One self-contained HTML file (plots embedded) plus the PNGs: data per split and class, skipped files, anomalies,
    sample images after Transform, training curves of both phases, confusion matrix, per-class precision / recall,
    each threshold of the blessing against the baseline, the pushed version, and the effective config.
    """
    cfg = _locate(root, config_file, overrides)
    from graft.pipeline import report as report_mod

    try:
        written = report_mod.write_report(cfg.metadata_path, run_id, cfg.name, cfg.run_root, out_dir=out_dir)
    except report_mod.ReportError as e:
        click.echo(f"graft: {e}", err=True)
        sys.exit(EXIT_USAGE)
    click.echo(str(written.path))


@click.command(epilog=PRECEDENCE)
@_locate_options
@click.option(
    "--limit", default=20, show_default=True, type=click.IntRange(0), help="Newest runs to show (0: all)."
)
@click.option("--json", "as_json", is_flag=True, help="Print a JSON list.")
def runs(root, config_file, overrides, limit, as_json):
    """One line per run, oldest first, from MLMD: id, start, duration, status, test accuracy, blessed, pushed."""
    import json

    cfg = _locate(root, config_file, overrides)
    from graft.pipeline import report as report_mod

    rows = report_mod.run_history(cfg.metadata_path, cfg.name, cfg.run_root)
    hidden = max(0, len(rows) - limit) if limit else 0
    rows = rows[hidden:]
    if as_json:
        click.echo(json.dumps([r.to_dict() for r in rows], indent=2))
        return
    if not rows:
        click.echo(f"no runs of pipeline '{cfg.name}' under {cfg.run_root}")
        return
    click.echo(report_mod.format_history(rows))
    if hidden:
        click.echo(f"({hidden} older run(s) not shown; --limit 0 shows all)")
