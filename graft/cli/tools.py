"""The small standalone commands: ``graft doctor``, ``graft config show``, ``graft predict``."""

from __future__ import annotations

import sys

import click

from graft.cli.common import PRECEDENCE, _load
from graft.errors import EXIT_DATA_VALIDATION, EXIT_FAILED, EXIT_OK, EXIT_USAGE


@click.command()
@click.option(
    "--root",
    default="graft_runs",
    show_default=True,
    type=click.Path(file_okay=False),
    help="Output root whose free disk space is checked.",
)
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
def doctor(root: str, as_json: bool) -> None:
    """Check the environment: versions, legacy Keras, GPUs, disk. Exits 1 with a fix for each problem."""
    from graft.pipeline import doctor as doctor_mod

    report = doctor_mod.run_checks(root)
    if as_json:
        import json

        click.echo(json.dumps(report.to_dict(), indent=2))
    else:
        click.echo(report.render())
    sys.exit(EXIT_OK if report.ok else EXIT_FAILED)


@click.group("config")
def config_group() -> None:
    """Inspect the effective config."""


@config_group.command("show", epilog=PRECEDENCE)
@click.option("--config", "config_file", type=click.Path(dir_okay=False), help="YAML config file.")
@click.option("--set", "overrides", multiple=True, metavar="KEY=VALUE", help="Config override.")
def config_show(config_file, overrides):
    """Print the effective config (defaults < --config file < --set) as YAML."""
    cfg = _load(config_file, overrides)
    click.echo(cfg.to_yaml(), nl=False)


@click.command()
@click.option(
    "--model",
    "model_dir",
    required=True,
    type=click.Path(exists=True, file_okay=False),
    help="A pushed model: <serving_root>/<model_name> (newest version) or one version directory.",
)
@click.option("--json", "as_json", is_flag=True, help="Print JSON lines.")
@click.option("--tflite", is_flag=True, help="Use a pushed TFLite variant in the TFLite interpreter.")
@click.option("--tflite-variant", default=None, help="int8, float16, ... (implies --tflite; default int8).")
@click.argument("images", nargs=-1, required=True, type=click.Path(exists=True, dir_okay=False))
def predict(model_dir, as_json, tflite, tflite_variant, images):
    """Print the predicted class and its probability for each IMAGE, using a pushed model.

    An unreadable IMAGE is named with the reason (in --json: an "error" field) and the others are still answered;
    the exit code is then 3."""
    import json

    from graft.pipeline import predict as predict_mod

    try:
        if tflite or tflite_variant:  # edge export (components/edge)
            results = predict_mod.predict_files_tflite(model_dir, list(images), tflite_variant)
        else:
            results = predict_mod.predict_files(model_dir, list(images))
    except predict_mod.PredictError as e:
        click.echo(f"graft: {e}", err=True)
        sys.exit(EXIT_USAGE)
    for r in results:
        if as_json:
            click.echo(json.dumps(r))
        elif "error" in r:
            click.echo(f"graft: {r['image']}: {r['error']}", err=True)
        else:
            click.echo(f"{r['image']}\t{r['class_name']}\t{r['probability']:.4f}")
    if any("error" in r for r in results):
        sys.exit(EXIT_DATA_VALIDATION)  # every readable image was answered; the unreadable ones are named
