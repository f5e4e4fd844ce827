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
@click.option("--text", "texts", multiple=True, help="A text to classify (a text model; repeatable).")
@click.option(
    "--text-file",
    type=click.Path(exists=True, dir_okay=False),
    default=None,
    help="A file of texts to classify, one per line (a text model).",
)
@click.argument("images", nargs=-1, type=click.Path(exists=True, dir_okay=False))
def predict(model_dir, as_json, tflite, tflite_variant, texts, text_file, images):
    """Print the predicted class and its probability for each IMAGE (or --text / --text-file line, for a text
    model), using a pushed model.

    An unreadable IMAGE is named with the reason (in --json: an "error" field) and the others are still answered;
    the exit code is then 3."""
    import json

    from graft.pipeline import predict as predict_mod

    lines = list(texts)
    if text_file:
        with open(text_file, encoding="utf-8") as f:
            lines += [line.rstrip("\n") for line in f if line.strip()]
    if not lines and not images:
        click.echo("graft: predict needs IMAGE files, or --text / --text-file for a text model", err=True)
        sys.exit(EXIT_USAGE)
    try:
        if lines:
            for r in predict_mod.predict_texts(model_dir, lines):
                click.echo(
                    json.dumps(r)
                    if as_json
                    else f"{r['class_name']}\t{r['probability']:.4f}\t{r['text'][:80]}"
                )
            return
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
