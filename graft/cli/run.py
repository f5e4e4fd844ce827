"""``graft run`` / ``graft demo``: run the DAG locally, print the outcome, map the failure to an exit code.

The work is graft.pipeline.local_runner's; this module parses, calls and prints.
"""

from __future__ import annotations

import contextlib
import os
import sys

import click

from graft.cli.common import PRECEDENCE, _load
from graft.errors import EXIT_DATA_VALIDATION, EXIT_FAILED, EXIT_OK, EXIT_USAGE


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


@contextlib.contextmanager
def _stdout_to_stderr(active: bool):
    """-q / --json: what the pipeline prints while it runs (Keras' per-epoch lines from the Trainer's verbose=2, a
    library's print) goes to stderr, so stdout carries only the summary (-q) or only the JSON (--json). Also at the
    file-descriptor level, for C++ code and child processes that write to fd 1."""
    if not active:
        yield
        return
    sys.stdout.flush()
    saved = os.dup(1)
    try:
        os.dup2(2, 1)
        with contextlib.redirect_stdout(sys.stderr):
            yield
    finally:
        with contextlib.suppress(Exception):
            sys.stdout.flush()
        os.dup2(saved, 1)
        os.close(saved)


def _execute(cfg, as_json: bool, quiet: bool, verbose: bool, make_report: bool = True) -> int:
    """Run the DAG locally, print the outcome, return the exit code."""
    import json

    from graft.pipeline import local_runner, runs, summary

    try:
        with _stdout_to_stderr(quiet or as_json):
            result = local_runner.run_pipeline(cfg, quiet=quiet, verbose=verbose)
    except local_runner.RunLockedError as e:
        click.echo(f"graft: {e}", err=True)
        return EXIT_FAILED
    except Exception as e:  # noqa: BLE001 - every failure becomes a clear message and an exit code
        from graft import errors

        code, telling = errors.classify(e)
        failed = None
        with contextlib.suppress(Exception):  # no run recorded yet
            failed = runs.summarize(cfg.metadata_path, "latest", cfg.name)
        if code == EXIT_DATA_VALIDATION:
            click.echo(
                f"graft: stopped by data validation, nothing was trained or pushed.\n{telling}", err=True
            )
        elif code == EXIT_USAGE:
            click.echo(f"graft: {telling}", err=True)
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
        with _stdout_to_stderr(quiet or as_json):
            report_path = _write_report(cfg, failed) if make_report else None
        if report_path:
            click.echo(f"graft: what happened, in one page: {report_path}", err=True)
        if as_json:
            payload = failed.to_dict() if failed else {}
            payload.update({"ok": False, "exit_code": code, "error": f"{type(e).__name__}: {e}"})
            payload["report"] = report_path
            click.echo(json.dumps(payload, indent=2, default=str))
        return code
    with _stdout_to_stderr(quiet or as_json):
        report_path = _write_report(cfg, result) if make_report else None
    click.echo(summary.render(result, cfg, report_path=report_path), err=as_json)
    if as_json:
        payload = result.to_dict()
        payload.update({"ok": True, "exit_code": EXIT_OK, "report": report_path})
        click.echo(json.dumps(payload, indent=2, default=str))
    return EXIT_OK


def _run_flags(root, no_cache, **more) -> dict:
    """The dedicated flags as config keys; they win over --config and --set (None: not given)."""
    flags = {"root": root, "enable_cache": False if no_cache else None}
    flags.update(more)
    return {k: v for k, v in flags.items() if v is not None}


@click.command(epilog=PRECEDENCE)
@click.option(
    "--data",
    default=None,
    help="data.path: class folders, pre-split tree, span-N folders, CSV or TFRecords; for text also train.tsv + "
    "test.tsv folders, a TSV/CSV manifest, class folders of .txt (or data.path in --config).",
)
@click.option(
    "--backbone",
    default=None,
    help="backbone.handle: TF Hub URL, gs:// path, local SavedModel dir, or an offline name: mobilenet_v1_imagenet, "
    "tiny, minilm_l6 (text) (or in --config).",
)
@click.option(
    "--task",
    type=click.Choice(["auto", "image", "text"]),
    default=None,
    help="task: image or text classification (default auto: from the backbone and the data).",
)
@_common_run_options
def run(data, backbone, task, root, config_file, overrides, no_cache, quiet, verbose, no_report, as_json):
    """Run the whole pipeline on your images or texts with LocalDagRunner.

    Exit codes: 0 completed (pushed, or not blessed: both said plainly), 1 failed, 2 usage/config error,
    3 stopped by data validation.
    """
    cfg = _load(
        config_file,
        overrides,
        flags=_run_flags(root, no_cache, **{"data.path": data, "backbone.handle": backbone, "task": task}),
    )
    missing = [
        f"{flag} (or {key} in --config / --set)"
        for flag, key, value in (
            ("--data", "data.path", cfg.data.path),
            ("--backbone", "backbone.handle", cfg.backbone.handle),
        )
        if not value
    ]
    if missing:
        click.echo(f"graft: run needs {' and '.join(missing)}", err=True)
        sys.exit(EXIT_USAGE)
    sys.exit(_execute(cfg, as_json, quiet, verbose, make_report=not no_report))


@click.command(epilog=PRECEDENCE + " The demo's own settings sit between the defaults and --config.")
@click.option(
    "--task",
    type=click.Choice(["image", "text"]),
    default="image",
    show_default=True,
    help="image: 5,000 MNIST digits + MobileNet V1; text: 2,125 BBC News articles (5 topics) + minilm_l6.",
)
@_common_run_options
def demo(task, root, config_file, overrides, no_cache, quiet, verbose, no_report, as_json):
    """Run the whole pipeline offline on an embedded real data set: MNIST digits (images) or BBC News (text)."""
    from pathlib import Path

    from graft.pipeline import demo as demo_mod
    from graft.pipeline import demo_text
    from graft.pipeline.config import normalize_data_path

    if task == "text":
        base, folder, write = demo_text.DEMO_TEXT_SETTINGS, "bbc_news", demo_text.write_bbc_news
    else:
        base, folder, write = demo_mod.DEMO_SETTINGS, "mnist_5k", demo_mod.write_mnist_tree
    cfg = _load(config_file, overrides, base=base, flags=_run_flags(root, no_cache))
    cfg.data.path = cfg.data.path or normalize_data_path(str(cfg.run_root / "data" / folder))
    if not quiet:
        click.echo(f"[graft] demo data: {cfg.data.path}", err=True)
    try:
        write(Path(cfg.data.path))
    except demo_text.DemoDataMissingError as e:
        click.echo(f"graft: {e}", err=True)
        sys.exit(EXIT_FAILED)
    sys.exit(_execute(cfg, as_json, quiet, verbose, make_report=not no_report))
