"""The ``graft`` command line: the top layer, thin (parse, call, print), one module per command group.

graft.cli.run (run, demo), .history (report, runs), .tools (doctor, config show, predict), .backbone, .schema,
.kubeflow (compile, submit, schedule). Each command group is defined in its module and added to ``main`` here.

Keep this module light: ``graft --help`` and ``graft --version`` must not import TensorFlow, TFX or Beam (they
take 6-40 s to import). Every command imports what it needs inside its body.
"""

from __future__ import annotations

import sys

import click

import graft  # noqa: F401  (sets TF_USE_LEGACY_KERAS before anything can import TensorFlow)
from graft import __version__, env
from graft.cli import backbone, history, kubeflow, run, schema, tools


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 110})
@click.version_option(__version__, "--version", prog_name="graft")
def main() -> None:
    """Graft: transfer learning on TensorFlow Extended.

    Bring labelled images and a TF Hub backbone; Graft runs a real TFX pipeline (ExampleGen, statistics and a
    schema gate, Transform, two-phase Trainer, TFMA Evaluator with blessing, Pusher to a TF Serving directory).
    """


# TensorFlow's C++ start-up noise stays off the screen unless -v (read before any command imports TensorFlow).
env.tensorflow_log_level(verbose=any(a in ("-v", "--verbose") for a in sys.argv[1:]))

for _command in (
    tools.doctor,
    run.run,
    run.demo,
    history.report,
    history.runs,
    tools.config_group,
    tools.predict,
    backbone.backbone_group,
    schema.schema_group,
    kubeflow.compile_cmd,
    kubeflow.submit_cmd,
    kubeflow.schedule_cmd,
):
    main.add_command(_command)
