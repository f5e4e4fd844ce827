"""The ``graft`` command line.

Keep this module light: ``graft --help`` and ``graft --version`` must not import TensorFlow, TFX or Beam (they
take 6-40 s to import). Every command imports what it needs inside its body.
"""

from __future__ import annotations

import contextlib
import sys

import click

import graft  # noqa: F401  (sets TF_USE_LEGACY_KERAS before anything can import TensorFlow)
from graft import __version__

# Exit codes shared by every command (documented in README).
EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_DATA_VALIDATION = 3


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 110})
@click.version_option(__version__, "--version", prog_name="graft")
def main() -> None:
    """Graft: transfer learning on TensorFlow Extended.

    Bring labelled images and a TF Hub backbone; Graft runs a real TFX pipeline (ExampleGen, statistics and a
    schema gate, Transform, two-phase Trainer, TFMA Evaluator with blessing, Pusher to a TF Serving directory).
    """


@main.command()
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


# ---- running the pipeline -----------------------------------------------------------------------------------
def _common_run_options(f):
    f = click.option("--json", "as_json", is_flag=True, help="Print a machine-readable summary last.")(f)
    f = click.option(
        "--no-report", is_flag=True, help="Skip the HTML run report (written by default; see `graft report`)."
    )(f)
    f = click.option("-v", "--verbose", is_flag=True, help="Show TFX/Beam logs.")(f)
    f = click.option("-q", "--quiet", is_flag=True, help="Only the final summary.")(f)
    f = click.option("--no-cache", is_flag=True, help="Re-execute every component (TFX caching off).")(f)
    f = click.option(
        "--set",
        "overrides",
        multiple=True,
        metavar="KEY=VALUE",
        help="Config override, e.g. train.batch_size=16.",
    )(f)
    f = click.option("--config", "config_file", type=click.Path(dir_okay=False), help="YAML config file.")(f)
    f = click.option("--root", type=click.Path(file_okay=False), help="Run root (MLMD, artifacts, serving).")(
        f
    )
    return f


def _chain(exc: BaseException):
    seen = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        yield exc
        exc = exc.__cause__ or exc.__context__


DATA_ERROR_NAMES = {"DataValidationError", "TooManyBadFilesError", "NoImagesFoundError"}


def _write_report(cfg, run_summary) -> str | None:
    """The run's HTML report (graft report); a report that cannot be written never changes the run's outcome."""
    if run_summary is None:
        return None
    from graft.pipeline import report

    try:
        return str(
            report.write_report(
                cfg.metadata_path, run_summary.run_id, cfg.name, cfg.run_root, summary=run_summary
            ).path
        )
    except Exception as e:  # noqa: BLE001
        click.echo(f"graft: warning: could not write the run report: {type(e).__name__}: {e}", err=True)
        return None


def _execute(cfg, as_json: bool, quiet: bool, verbose: bool, make_report: bool = True) -> int:
    """Run the DAG locally, print the outcome, return the exit code."""
    import json

    from graft.pipeline import local_runner, runs, summary

    try:
        result = local_runner.run_pipeline(cfg, quiet=quiet, verbose=verbose)
    except local_runner.RunLockedError as e:
        click.echo(f"graft: {e}", err=True)
        return EXIT_FAILED
    except Exception as e:  # noqa: BLE001 - every failure becomes a clear message and an exit code
        data_error = next((x for x in _chain(e) if type(x).__name__ in DATA_ERROR_NAMES), None)
        usage_error = next(
            (x for x in _chain(e) if type(x).__name__ in ("ConfigError", "BackboneError")), None
        )
        failed = None
        with contextlib.suppress(Exception):  # no run recorded yet
            failed = runs.summarize(cfg.metadata_path, "latest", cfg.name)
        if data_error is not None:
            click.echo(
                f"graft: stopped by data validation, nothing was trained or pushed.\n{data_error}", err=True
            )
            code = EXIT_DATA_VALIDATION
        elif usage_error is not None:
            click.echo(f"graft: {usage_error}", err=True)
            code = EXIT_USAGE
        else:
            click.echo(f"graft: the run failed, nothing was pushed: {type(e).__name__}: {e}", err=True)
            from graft.pipeline import recovery

            hint = recovery.failure_hint(e, cfg)
            if hint:
                click.echo(f"graft: {hint}", err=True)
            if verbose:
                import traceback

                traceback.print_exc()
            else:
                click.echo("graft: rerun with -v for the full traceback.", err=True)
            code = EXIT_FAILED
        report_path = _write_report(cfg, failed) if make_report else None
        if report_path:
            click.echo(f"graft: what happened, in one page: {report_path}", err=True)
        if as_json:
            payload = failed.to_dict() if failed else {}
            payload.update({"ok": False, "exit_code": code, "error": f"{type(e).__name__}: {e}"})
            payload["report"] = report_path
            click.echo(json.dumps(payload, indent=2, default=str))
        return code
    report_path = _write_report(cfg, result) if make_report else None
    click.echo(summary.render(result, cfg, report_path=report_path), err=as_json)
    if as_json:
        payload = result.to_dict()
        payload.update({"ok": True, "exit_code": EXIT_OK, "report": report_path})
        click.echo(json.dumps(payload, indent=2, default=str))
    return EXIT_OK


def _load(config_file, overrides, base) -> object:
    from graft.pipeline.config import ConfigError, load_config

    try:
        return load_config(config_file, list(overrides), base=base)
    except ConfigError as e:
        click.echo(f"graft: {e}", err=True)
        sys.exit(EXIT_USAGE)


@main.command()
@click.option(
    "--data", required=True, help="Images: class folders, pre-split tree, span-N folders, CSV or TFRecords."
)
@click.option(
    "--backbone",
    required=True,
    help="TF Hub handle: URL, gs:// path, local SavedModel dir, or an offline name.",
)
@_common_run_options
def run(data, backbone, root, config_file, overrides, no_cache, quiet, verbose, no_report, as_json):
    """Run the whole pipeline on your images with LocalDagRunner.

    Exit codes: 0 completed (pushed, or not blessed: both said plainly), 1 failed, 2 usage/config error,
    3 stopped by data validation.
    """
    base = {"data.path": data, "backbone.handle": backbone}
    if root:
        base["root"] = root
    if no_cache:
        base["enable_cache"] = False
    cfg = _load(config_file, overrides, base)
    sys.exit(_execute(cfg, as_json, quiet, verbose, make_report=not no_report))


@main.command()
@_common_run_options
def demo(root, config_file, overrides, no_cache, quiet, verbose, no_report, as_json):
    """Run the whole pipeline on the embedded default: 5,000 real MNIST digits + ImageNet MobileNet V1, offline."""
    from graft.pipeline import demo as demo_mod
    from graft.pipeline.config import ConfigError

    extra = list(overrides)
    if no_cache:
        extra.append("enable_cache=false")
    try:
        cfg = demo_mod.demo_config(root, extra)
        if config_file:
            cfg = _load(config_file, extra, {**demo_mod.DEMO_SETTINGS, **({"root": root} if root else {})})
            cfg.data.path = cfg.data.path or str(cfg.run_root / "data" / "mnist_5k")
    except ConfigError as e:
        click.echo(f"graft: {e}", err=True)
        sys.exit(EXIT_USAGE)
    if not quiet:
        click.echo(f"[graft] demo data: {cfg.data.path}", err=True)
    demo_mod.write_mnist_tree(__import__("pathlib").Path(cfg.data.path))
    sys.exit(_execute(cfg, as_json, quiet, verbose, make_report=not no_report))


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
    cfg = _load(config_file, overrides, {"root": root} if root else None)
    if not cfg.metadata_path.exists():
        click.echo(
            f"graft: no runs under {cfg.run_root} (no {cfg.metadata_path.name} there). Pass the --root (and "
            "--set name=...) that `graft run` used.",
            err=True,
        )
        sys.exit(EXIT_USAGE)
    return cfg


@main.command()
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


@main.command()
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


@main.group("config")
def config_group() -> None:
    """Inspect the effective config."""


@config_group.command("show")
@click.option("--config", "config_file", type=click.Path(dir_okay=False), help="YAML config file.")
@click.option("--set", "overrides", multiple=True, metavar="KEY=VALUE", help="Config override.")
def config_show(config_file, overrides):
    """Print the effective config (defaults <- file <- --set) as YAML."""
    cfg = _load(config_file, overrides, None)
    click.echo(cfg.to_yaml(), nl=False)


@main.command()
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
    """Print the predicted class and its probability for each IMAGE, using a pushed model."""
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
        else:
            click.echo(f"{r['image']}\t{r['class_name']}\t{r['probability']:.4f}")


# ---- graft backbone ... -----------------------------------------------------------------------------------------
@main.group("backbone")
def backbone_group() -> None:
    """Backbones: build offline TF Hub modules, show what Graft reads from a handle."""


def _backbone_fail(e: Exception) -> None:
    from graft.components.backbones import WeightsMissingError

    click.echo(f"graft: {e}", err=True)
    sys.exit(EXIT_FAILED if isinstance(e, WeightsMissingError) else EXIT_USAGE)


@backbone_group.command("import")
@click.argument("name", type=click.Choice(["mobilenet_v1_imagenet"]))
@click.option(
    "--size",
    type=click.Choice(["224", "192", "160", "128"]),
    default="224",
    show_default=True,
    help="Input size.",
)
@click.option(
    "--out",
    "out_dir",
    type=click.Path(file_okay=False),
    help="Parent directory for the modules (default: the cache, $TFHUB_CACHE_DIR or ~/.cache/graft/hub).",
)
@click.option("--force", is_flag=True, help="Rebuild even if an identical build exists.")
def backbone_import(name, size, out_dir, force):
    """Build the ImageNet MobileNet V1 1.0 feature-vector module (and its classifier) offline.

    Prints the feature-vector module's path last. Building again is a no-op.
    """
    from graft.components import backbones

    try:
        fv, cls = backbones.import_mobilenet_v1(int(size), out_dir=out_dir, force=force)
    except backbones.BackboneError as e:
        _backbone_fail(e)
    click.echo(f"classifier (1000 ImageNet logits): {cls}")
    click.echo(f"feature vector ({backbones.MOBILENET}, backbone.handle={backbones.MOBILENET}):")
    click.echo(str(fv))


@backbone_group.command("tiny")
@click.option("--size", type=int, default=32, show_default=True, help="Input size (16-1024).")
@click.option(
    "--out", "out_dir", type=click.Path(file_okay=False), help="Parent directory (default: the cache)."
)
@click.option("--force", is_flag=True, help="Rebuild even if an identical build exists.")
def backbone_tiny(size, out_dir, force):
    """Build a small random-init CNN module (seeded, seconds) for tests. Prints its path last."""
    from graft.components import backbones

    try:
        path = backbones.build_tiny(size, out_dir=out_dir, force=force)
    except backbones.BackboneError as e:
        _backbone_fail(e)
    click.echo(str(path))


@backbone_group.command("show")
@click.argument("handle")
@click.option(
    "--input-size", type=int, default=None, help="For modules that accept any size (backbone.input_size)."
)
@click.option("--json", "as_json", is_flag=True, help="Print the metadata as JSON.")
def backbone_show(handle, input_size, as_json):
    """Print what Graft reads from HANDLE: input size and range, feature size, variables, path.

    HANDLE: a TF Hub URL, a gs:// path, a local SavedModel directory, or mobilenet_v1_imagenet / tiny.
    """
    import json

    from graft.components import backbones

    try:
        info = backbones.resolve_backbone(handle, input_size)
    except backbones.BackboneError as e:
        _backbone_fail(e)
    click.echo(json.dumps(info.to_dict(), indent=2) if as_json else info.describe())


# ---- graft schema ... -------------------------------------------------------------------------------------------
@main.group("schema")
def schema_group() -> None:
    """The curated schema the data is validated against."""


@schema_group.command("infer")
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

    cfg = _load(config_file, overrides, {"data.path": data})
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


# ---- Kubeflow Pipelines v2 / Vertex AI ----------------------------------------------------------------------------
def _kubeflow_fail(e: Exception) -> None:
    """Map graft.kubeflow errors to exit codes: usage/config 2, data validation 3, anything else 1."""
    from graft.components.backbones import BackboneError
    from graft.kubeflow.local_run import LocalRunError
    from graft.kubeflow.spec import SpecError
    from graft.kubeflow.submit import UsageError
    from graft.pipeline.config import ConfigError

    click.echo(f"graft: {e}", err=True)
    if isinstance(e, LocalRunError) and e.data_validation:
        sys.exit(EXIT_DATA_VALIDATION)
    if isinstance(e, (ConfigError, BackboneError, SpecError, UsageError)):
        sys.exit(EXIT_USAGE)
    sys.exit(EXIT_FAILED)


def _echo_json(payload) -> None:
    import json

    click.echo(json.dumps(payload, indent=2, default=str))


@main.command("compile")
@click.option("--config", "config_file", type=click.Path(dir_okay=False), help="YAML config file.")
@click.option("--set", "overrides", multiple=True, metavar="KEY=VALUE", help="Config override.")
@click.option("--data", default=None, help="data.path (a gs:// folder, CSV or TFRecord glob for a cluster).")
@click.option(
    "--backbone", default=None, help="backbone.handle (a gs:// module or a TF Hub URL for a cluster)."
)
@click.option(
    "--target",
    type=click.Choice(["vertex", "kubeflow"]),
    default="vertex",
    show_default=True,
    help="vertex: a Vertex AI PipelineJob (JSON); kubeflow: a KFP v2 PipelineSpec (YAML).",
)
@click.option(
    "--image", default=None, help="Container image built from kubeflow/Dockerfile (kubeflow.image)."
)
@click.option(
    "--out",
    "out_path",
    type=click.Path(dir_okay=False),
    default=None,
    help="Output file [default: pipeline.json (vertex), pipeline.yaml (kubeflow)].",
)
@click.option(
    "--backbone-info",
    type=click.Path(exists=True, dir_okay=False),
    default=None,
    help="Backbone metadata JSON (`graft backbone show HANDLE --json`): compile without reading the module.",
)
@click.option(
    "--local-paths",
    is_flag=True,
    help="Allow paths of this machine (data, roots, backbone): for `graft submit --target local` only.",
)
@click.option("--json", "as_json", is_flag=True, help="Print what was compiled as JSON.")
def compile_cmd(
    config_file, overrides, data, backbone, target, image, out_path, backbone_info, local_paths, as_json
):
    """Compile the pipeline for Vertex AI Pipelines or a self-hosted Kubeflow Pipelines (v2).

    One task per component in IMAGE; the Trainer requests kubeflow.trainer_accelerator_* GPUs; Beam-powered tasks
    carry config.beam's args. Every path must be remote (gs://): the spec is checked for paths of this machine.
    Exit codes: 0 written, 2 config/usage error, 1 other failure.
    """
    cfg = _load(config_file, overrides, None)
    # The flags win over the config file (they name what this compile is for).
    if data:
        cfg.data.path = data
    if backbone:
        cfg.backbone.handle = backbone
    from graft.kubeflow import compile as kfc

    try:
        result = kfc.compile_pipeline(
            cfg, target, out_path, image=image, backbone_info=backbone_info, local_paths=local_paths
        )
    except Exception as e:  # noqa: BLE001 - every failure becomes a message and an exit code
        _kubeflow_fail(e)
    if as_json:
        _echo_json(result.to_dict())
    else:
        click.echo(result.describe())


def _kubeflow_settings(config_file, overrides):
    """config.kubeflow from --config / --set, or the defaults."""
    from graft.pipeline.config import GraftConfig

    return (_load(config_file, overrides, None) if (config_file or overrides) else GraftConfig()).kubeflow


@main.command("submit")
@click.option(
    "--pipeline",
    "pipeline_path",
    required=True,
    type=click.Path(exists=True, dir_okay=False),
    help="Compiled file.",
)
@click.option(
    "--target",
    type=click.Choice(["vertex", "kubeflow", "local"]),
    default="vertex",
    show_default=True,
    help="vertex: a Vertex AI PipelineJob; kubeflow: a KFP run; local: execute the compiled spec here.",
)
@click.option("--project", default=None, help="GCP project (kubeflow.project).")
@click.option("--region", default=None, help="Vertex AI region (kubeflow.region).")
@click.option(
    "--service-account", default=None, help="Service account the job runs as (kubeflow.service_account)."
)
@click.option("--network", default=None, help="Peered VPC network (kubeflow.network).")
@click.option("--host", default=None, help="KFP API endpoint (kubeflow.kfp_host).")
@click.option("--experiment", default=None, help="KFP experiment (kubeflow.kfp_experiment).")
@click.option("--display-name", default=None, help="Run name (default: the pipeline's name).")
@click.option("--pipeline-root", default=None, help="Override the compiled pipeline root.")
@click.option(
    "--root",
    type=click.Path(file_okay=False),
    default=None,
    help="local: where the local ML Metadata store and task logs live [default: <config root>/<name>/kfp_local].",
)
@click.option("--dry-run", is_flag=True, help="Print the exact request; needs no credentials.")
@click.option(
    "--config", "config_file", type=click.Path(dir_okay=False), help="YAML config (kubeflow.* defaults)."
)
@click.option("--set", "overrides", multiple=True, metavar="KEY=VALUE", help="Config override.")
@click.option("-q", "--quiet", is_flag=True, help="local: only the summary.")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
def submit_cmd(
    pipeline_path,
    target,
    project,
    region,
    service_account,
    network,
    host,
    experiment,
    display_name,
    pipeline_root,
    root,
    dry_run,
    config_file,
    overrides,
    quiet,
    as_json,
):
    """Submit a compiled pipeline: a Vertex AI PipelineJob, a KFP run, or a run of the compiled spec on this machine.

    Exit codes: 0 submitted (local: completed), 1 failed, 2 usage error, 3 (local) stopped by data validation.
    """
    kf = _kubeflow_settings(config_file, overrides)
    from graft.kubeflow import submit as ks

    try:
        if target == "local":
            from pathlib import Path

            from graft.kubeflow import local_run
            from graft.pipeline.config import GraftConfig

            cfg = _load(config_file, overrides, None) if (config_file or overrides) else GraftConfig()
            local_root = root or str(Path(cfg.run_root) / "kfp_local")
            try:
                result = local_run.run_compiled(
                    pipeline_path, local_root, pipeline_root=pipeline_root, quiet=quiet
                )
            except local_run.LocalRunError as e:
                if getattr(e, "result", None) is not None:
                    click.echo(e.result.render(), err=True)
                    if as_json:
                        _echo_json({**e.result.to_dict(), "ok": False})
                raise
            click.echo(result.render(), err=as_json)
            if as_json:
                _echo_json({**result.to_dict(), "ok": True})
            return
        if target == "vertex":
            job = ks.vertex_job(
                pipeline_path,
                project=project or kf.project,
                region=region or kf.region,
                display_name=display_name,
                pipeline_root=pipeline_root,
                dry_run=dry_run,
            )
            out = ks.submit_vertex(
                job, service_account or kf.service_account, network or kf.network, dry_run=dry_run
            )
        else:
            out = ks.submit_kfp(
                pipeline_path,
                host or kf.kfp_host,
                experiment or kf.kfp_experiment,
                display_name=display_name,
                pipeline_root=pipeline_root,
                service_account=service_account or "",
                dry_run=dry_run,
            )
    except Exception as e:  # noqa: BLE001
        _kubeflow_fail(e)
    if dry_run or as_json:
        _echo_json(out)
    else:
        click.echo("\n".join(f"{k}: {v}" for k, v in out.items() if k != "dry_run"))


@main.command("schedule")
@click.option(
    "--cron",
    required=True,
    help="5-field cron, e.g. '0 3 * * *'; Vertex also takes 'TZ=Europe/Paris 0 3 * * *'.",
)
@click.option(
    "--target",
    type=click.Choice(["vertex", "kubeflow", "local"]),
    default="vertex",
    show_default=True,
    help="vertex: PipelineJobSchedule; kubeflow: KFP recurring run; local: print a crontab line / systemd timer.",
)
@click.option(
    "--pipeline",
    "pipeline_path",
    type=click.Path(exists=True, dir_okay=False),
    help="Compiled file (vertex/kubeflow).",
)
@click.option("--display-name", default=None, help="Schedule name (default: graft-<pipeline>-schedule).")
@click.option("--project", default=None, help="GCP project (kubeflow.project).")
@click.option("--region", default=None, help="Vertex AI region (kubeflow.region).")
@click.option(
    "--service-account", default=None, help="Service account the runs use (kubeflow.service_account)."
)
@click.option("--network", default=None, help="Peered VPC network (kubeflow.network).")
@click.option("--host", default=None, help="KFP API endpoint (kubeflow.kfp_host).")
@click.option("--experiment", default=None, help="KFP experiment (kubeflow.kfp_experiment).")
@click.option("--pipeline-root", default=None, help="Override the compiled pipeline root.")
@click.option("--dry-run", is_flag=True, help="Print the exact request; needs no credentials.")
@click.option("--config", "config_file", type=click.Path(dir_okay=False), help="YAML config file.")
@click.option("--set", "overrides", multiple=True, metavar="KEY=VALUE", help="Config override.")
@click.option("--data", default=None, help="local: data.path for `graft run` (default: from --config).")
@click.option(
    "--backbone", default=None, help="local: backbone.handle for `graft run` (default: from --config)."
)
@click.option("--root", type=click.Path(file_okay=False), default=None, help="local: `graft run --root`.")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
def schedule_cmd(
    cron,
    target,
    pipeline_path,
    display_name,
    project,
    region,
    service_account,
    network,
    host,
    experiment,
    pipeline_root,
    dry_run,
    config_file,
    overrides,
    data,
    backbone,
    root,
    as_json,
):
    """Schedule recurring training runs (each reads the newest data span; only a better model is pushed).

    At most one run at a time: Vertex max_concurrent_run_count=1, KFP max_concurrency=1, and locally `graft run`
    holds a lock on its run root (an overlapping run exits with a message). Exit codes: 0 ok, 1 failed, 2 usage.
    """
    from graft.kubeflow import submit as ks

    try:
        spec = ks.parse_cron(cron)
        if target == "local":
            import os
            import shutil
            from pathlib import Path

            base = {}
            if data:
                base["data.path"] = data
            if backbone:
                base["backbone.handle"] = backbone
            if root:
                base["root"] = root
            cfg = _load(config_file, overrides, base)
            if not cfg.data.path or not cfg.backbone.handle:
                raise ks.UsageError(
                    "local: the scheduled `graft run` needs data.path and backbone.handle (--data, --backbone or --config)"
                )
            args = []
            if config_file:
                args += ["--config", str(Path(config_file).absolute())]
            data_arg = (
                cfg.data.path if "://" in cfg.data.path else str(Path(cfg.data.path).expanduser().absolute())
            )
            args += [
                "--data",
                data_arg,
                "--backbone",
                cfg.backbone.handle,
                "--root",
                str(Path(cfg.root).expanduser().absolute()),
            ]
            for o in overrides:
                args += ["--set", o]
            args.append("-q")
            exe = shutil.which("graft") or str(Path(sys.executable).with_name("graft"))
            out = ks.local_schedule(
                spec, os.path.abspath(exe), args, cfg.name, str(cfg.run_root / "schedule.log"), os.getcwd()
            )
            if as_json:
                _echo_json(out)
            else:
                click.echo(
                    out["crontab"]
                    + "\n# or, as a systemd user timer:\n"
                    + out["service"]
                    + "\n"
                    + out["timer"],
                    nl=False,
                )
            return
        if not pipeline_path:
            raise ks.UsageError(
                f"--pipeline is required for --target {target} (compile it with `graft compile`)"
            )
        kf = _kubeflow_settings(config_file, overrides)
        from graft.kubeflow import spec as spec_mod

        name = display_name or f"graft-{spec_mod.load(pipeline_path).name}-schedule"
        if target == "vertex":
            job = ks.vertex_job(
                pipeline_path,
                project=project or kf.project,
                region=region or kf.region,
                pipeline_root=pipeline_root,
                dry_run=dry_run,
            )
            out = ks.schedule_vertex(
                job, spec, name, service_account or kf.service_account, network or kf.network, dry_run=dry_run
            )
        else:
            out = ks.schedule_kfp(
                pipeline_path,
                host or kf.kfp_host,
                experiment or kf.kfp_experiment,
                spec,
                name,
                pipeline_root=pipeline_root,
                service_account=service_account or "",
                dry_run=dry_run,
            )
    except Exception as e:  # noqa: BLE001
        _kubeflow_fail(e)
    if dry_run or as_json:
        _echo_json(out)
    else:
        click.echo("\n".join(f"{k}: {v}" for k, v in out.items() if k != "dry_run"))


if __name__ == "__main__":  # pragma: no cover
    main()
