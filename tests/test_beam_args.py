"""Beam args of the DAG: with the DirectRunner, TFX must not package itself into an sdist per Beam component.

TFX's BaseBeamExecutor calls ``dependency_utils.make_beam_dependency_flags`` when it starts; without a dependency
flag that copies the whole TFX install to a temp dir and runs ``setup.py sdist`` (seconds per component, 48 MB left
under /tmp each time), for workers that, with the DirectRunner, are this very process.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

from data_helpers import make_tree

from graft.pipeline import dag
from graft.pipeline.config import GraftConfig

BACKBONE = {"height": 32, "width": 32, "channels": 3}


def test_direct_runner_args_carry_a_dependency_flag_that_tfx_accepts():
    from tfx.utils import dependency_utils

    args = dag.beam_pipeline_args(GraftConfig())
    assert dag.DIRECT_RUNNER_DEPENDENCY_FLAG in args
    assert any(a.startswith("--direct_running_mode=") for a in args)
    # TFX finds a dependency flag and returns the args as they are: no sdist is built.
    assert dependency_utils.make_beam_dependency_flags(list(args)) == args


def test_other_runners_and_user_dependency_flags_are_left_alone():
    cfg = GraftConfig()
    cfg.beam.args = ["--runner=DataflowRunner", "--project=p", "--temp_location=gs://b/t", "--region=r"]
    assert not any(a.startswith("--sdk_container_image") for a in dag.beam_pipeline_args(cfg))
    cfg = GraftConfig()
    cfg.beam.args = ["--extra_package=/pkgs/mine.tar.gz"]
    args = dag.beam_pipeline_args(cfg)
    assert dag.DIRECT_RUNNER_DEPENDENCY_FLAG not in args and "--extra_package=/pkgs/mine.tar.gz" in args


def test_a_real_run_builds_no_tfx_sdist(tmp_path, monkeypatch):
    """The DAG's own Beam args through LocalDagRunner: ExampleGen and StatisticsGen (Beam components) leave no
    ephemeral TFX package in the temp dir, and still run."""
    from tfx.orchestration import pipeline as tfx_pipeline
    from tfx.orchestration.local.local_dag_runner import LocalDagRunner

    tmp = tmp_path / "tmp"
    tmp.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(tmp))
    data = tmp_path / "data"
    make_tree(data, per_class=6)
    cfg = GraftConfig(name="beamargs", root=str(tmp_path / "runs"))
    cfg.data.path = str(data)
    cfg.validate()
    LocalDagRunner().run(
        dag.create_pipeline(cfg, BACKBONE), run_options=tfx_pipeline.RunOptions(to_nodes=["StatisticsGen"])
    )
    stats = list(Path(cfg.pipeline_root).glob("StatisticsGen/statistics/*/Split-train/*"))
    assert stats, "StatisticsGen wrote no statistics"
    assert not list(tmp.glob("*/build/tfx")), "TFX built its ephemeral sdist"
