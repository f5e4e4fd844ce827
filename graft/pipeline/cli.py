"""The ``graft`` command line.

Keep this module light: ``graft --help`` and ``graft --version`` must not import TensorFlow, TFX or Beam (they
take 6-40 s to import). Every command imports what it needs inside its body.
"""

from __future__ import annotations

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


if __name__ == "__main__":  # pragma: no cover
    main()
