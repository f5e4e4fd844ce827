"""``graft schema infer``: a starting schema from the images, for the user to curate."""

from __future__ import annotations

import sys

import click

from graft.cli.common import PRECEDENCE, _load
from graft.errors import EXIT_DATA_VALIDATION, EXIT_USAGE


# ---- graft schema ... -------------------------------------------------------------------------------------------
@click.group("schema")
def schema_group() -> None:
    """The curated schema the data is validated against."""


@schema_group.command("infer", epilog=PRECEDENCE)
@click.option(
    "--data", required=True, help="Images: class folders, pre-split tree, span-N folders, CSV or TFRecords."
)
@click.option(
    "--out",
    "out_path",
    default="schema.pbtxt",
    show_default=True,
    type=click.Path(dir_okay=False),
    help="Where to write the schema (text format).",
)
@click.option(
    "--limit", default=2000, show_default=True, type=click.IntRange(1), help="Examples to read at most."
)
@click.option("--force", is_flag=True, help="Overwrite --out if it exists.")
@click.option(
    "--config", "config_file", type=click.Path(dir_okay=False), help="YAML config file (data.* is used)."
)
@click.option(
    "--set", "overrides", multiple=True, metavar="KEY=VALUE", help="Config override, e.g. data.format=csv."
)
def schema_infer(data, out_path, limit, force, config_file, overrides):
    """Write a starting schema inferred from the images at --data, for you to curate.

    Then commit it and run with --set data.schema_path=<file>. Exit codes: 2 bad arguments, 3 no usable images.
    """
    from pathlib import Path

    from graft.pipeline.config import ConfigError

    cfg = _load(config_file, overrides, flags={"data.path": data})
    out = Path(out_path)
    if out.exists() and not force:
        click.echo(f"graft: {out} exists; pass --force to overwrite it", err=True)
        sys.exit(EXIT_USAGE)
    from graft.components.data_errors import DataValidationError
    from graft.components.schema_infer import infer_schema_text

    try:
        text, summary = infer_schema_text(cfg.data, limit=limit)
    except ConfigError as e:
        click.echo(f"graft: {e}", err=True)
        sys.exit(EXIT_USAGE)
    except DataValidationError as e:
        click.echo(f"graft: {e}", err=True)
        sys.exit(EXIT_DATA_VALIDATION)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(text, encoding="utf-8")
    click.echo(
        f"wrote {out}: inferred from {summary['examples']} examples, {len(summary['classes'])} classes "
        f"({summary['bad_files']} bad files skipped). Curate it, then use --set data.schema_path={out}"
    )
