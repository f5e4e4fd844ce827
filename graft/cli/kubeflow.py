"""``graft compile`` / ``graft submit`` / ``graft schedule``: Kubeflow Pipelines v2 and Vertex AI.

The work is graft.kubeflow's (compile, local run of a compiled spec, submit, schedule); this module parses, calls
and prints, and maps every failure to its exit code through graft.errors.
"""

from __future__ import annotations

import sys

import click

from graft.cli.common import PRECEDENCE, _echo_json, _load


# ---- Kubeflow Pipelines v2 / Vertex AI ----------------------------------------------------------------------------
def _kubeflow_fail(e: Exception) -> None:
    """Map graft.kubeflow errors to exit codes: usage/config 2, data validation 3, anything else 1."""
    from graft import errors

    click.echo(f"graft: {e}", err=True)
    sys.exit(errors.exit_code(e))


@click.command("compile", epilog=PRECEDENCE)
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
    cfg = _load(config_file, overrides, flags={"data.path": data, "backbone.handle": backbone})
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


@click.command("submit", epilog=PRECEDENCE)
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


@click.command("schedule", epilog=PRECEDENCE)
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
    """Schedule recurring training runs (each reads the newest data span; a model is pushed only when it is at
    least as good as the last blessed one: evaluation.max_accuracy_drop=0; set it negative, e.g. -0.005, to push
    only a real improvement).

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

            cfg = _load(
                config_file, overrides, flags={"data.path": data, "backbone.handle": backbone, "root": root}
            )
            if not cfg.data.path or not cfg.backbone.handle:
                raise ks.UsageError(
                    "local: the scheduled `graft run` needs data.path and backbone.handle (--data, --backbone or --config)"
                )
            args = []
            if config_file:
                args += ["--config", str(Path(config_file).absolute())]
            data_arg = cfg.data.path  # already normalised (absolute) by the config loader
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
