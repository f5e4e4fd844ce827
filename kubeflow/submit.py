"""``graft submit`` and ``graft schedule``: a compiled pipeline on Vertex AI, a self-hosted KFP, or this machine.

Vertex AI (google-cloud-aiplatform): ``submit`` creates a ``PipelineJob`` from the compiled JSON; ``schedule``
creates a ``PipelineJobSchedule`` (cron, ``max_concurrent_run_count=1``: a run that is still going when the next
one is due makes Vertex skip that one, so runs never overlap). Self-hosted KFP (kfp client): a run, or a recurring
run (KFP's cron has a seconds field: ``0 3 * * *`` becomes ``0 0 3 * * *``; ``max_concurrency=1``, no catch-up).
Locally: ``graft submit --target local`` executes the compiled spec here (``local_run``); ``graft schedule
--target local`` prints a crontab line and a systemd timer that call ``graft run``, whose lock on the run root
makes a second, overlapping run exit with a clear message.

``--dry-run`` prints the exact request body and needs no credentials: for Vertex the SDK's own objects are built
(with anonymous credentials) and the request they would send is printed (``CreatePipelineJobRequest``, or the
SDK's ``CreateScheduleRequest`` taken at the API client); for KFP the ``V2beta1Run`` / ``V2beta1RecurringRun``
body that the client would POST.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import re
import shlex
import sys
from typing import Any

from graft.kubeflow import spec as spec_mod

# Re-exported: these lived here before they had their own module.
from graft.kubeflow.cron import Cron, UsageError, kfp_cron, parse_cron, systemd_on_calendar  # noqa: F401

TARGETS = ("vertex", "kubeflow", "local")


class SubmitError(RuntimeError):
    """A submission that cannot be made; the message says what to do."""


# ---- loading a compiled file for a target ----------------------------------------------------------------------
def load_for(target: str, path: str) -> spec_mod.CompiledPipeline:
    compiled = spec_mod.load(path)
    if target == "vertex" and compiled.kind != "vertex":
        raise UsageError(
            f"{path} is a KFP PipelineSpec (compiled with --target kubeflow: its GPU request is a Kubernetes "
            "resource); compile with --target vertex for Vertex AI"
        )
    if target == "kubeflow" and compiled.kind != "kubeflow":
        raise UsageError(
            f"{path} is a Vertex PipelineJob (compiled with --target vertex: its GPU request uses Vertex accelerator "
            "names); compile with --target kubeflow for a self-hosted KFP"
        )
    return compiled


# ---- Vertex AI -------------------------------------------------------------------------------------------------
def _credentials(dry_run: bool):
    if dry_run:
        from google.auth.credentials import AnonymousCredentials

        return AnonymousCredentials()
    import google.auth
    from google.auth.exceptions import DefaultCredentialsError

    try:
        creds, _ = google.auth.default(scopes=["https://www.googleapis.com/auth/cloud-platform"])
    except DefaultCredentialsError as e:
        raise SubmitError(
            "no Google Cloud credentials on this machine: run `gcloud auth application-default login` (or set "
            f"GOOGLE_APPLICATION_CREDENTIALS to a service-account key). --dry-run prints the request without them. "
            f"({e})"
        ) from None
    return creds


def vertex_job(
    path: str,
    *,
    project: str,
    region: str,
    display_name: str | None = None,
    job_id: str | None = None,
    pipeline_root: str | None = None,
    enable_caching: bool | None = None,
    dry_run: bool = False,
):
    """The SDK's ``aiplatform.PipelineJob`` for a compiled file."""
    from google.cloud import aiplatform

    compiled = load_for("vertex", path)
    if not project:
        raise UsageError("--project (or kubeflow.project) is required for Vertex AI")
    if not region:
        raise UsageError("--region (or kubeflow.region) is required for Vertex AI")
    root = pipeline_root or compiled.pipeline_root
    if not root.startswith("gs://"):
        raise UsageError(
            f"the pipeline root {root!r} is not a gs:// path: Vertex AI writes artifacts to Cloud Storage. Compile "
            "without --local-paths, with kubeflow.pipeline_root=gs://..., or pass --pipeline-root gs://..."
        )
    labels = {k: v for k, v in compiled.job.labels.items()} if compiled.job is not None else {}
    labels["graft-pipeline"] = re.sub(r"[^a-z0-9_-]", "-", compiled.name.lower())[:63]
    try:
        return aiplatform.PipelineJob(
            display_name=display_name or compiled.name,
            template_path=path,
            job_id=job_id,
            pipeline_root=root,
            enable_caching=enable_caching,
            labels=labels,
            project=project,
            location=region,
            credentials=_credentials(dry_run),
        )
    except ValueError as e:
        raise UsageError(str(e)) from None


def _message_json(msg) -> dict:
    return json.loads(type(msg).to_json(msg))


def vertex_create_job_request(job, service_account: str = "", network: str = "") -> dict:
    """What ``PipelineJob.submit`` sends: the same fields set on the same resource, as a CreatePipelineJobRequest."""
    from google.cloud.aiplatform.compat.types import pipeline_service

    if service_account:
        job._gca_resource.service_account = service_account  # noqa: SLF001 - what submit() sets
    if network:
        job._gca_resource.network = network  # noqa: SLF001
    req = pipeline_service.CreatePipelineJobRequest(
        parent=job._parent,  # noqa: SLF001
        pipeline_job=job._gca_resource,  # noqa: SLF001
        pipeline_job_id=job.job_id,
    )
    return _message_json(req)


def submit_vertex(job, service_account: str = "", network: str = "", dry_run: bool = False) -> dict[str, Any]:
    request = vertex_create_job_request(job, service_account, network)
    if dry_run:
        return {"dry_run": True, "request": request}
    try:
        job.submit(service_account=service_account or None, network=network or None)
    except Exception as e:  # noqa: BLE001 - API errors carry the reason
        raise SubmitError(f"Vertex AI refused the pipeline job: {type(e).__name__}: {e}") from None
    return {"dry_run": False, "job": job.resource_name, "console": job._dashboard_uri()}  # noqa: SLF001


@contextlib.contextmanager
def _sdk_quiet():
    """No INFO records while the SDK builds the request (its loggers print to stdout, where the JSON goes)."""
    previous = logging.root.manager.disable
    logging.disable(logging.INFO)
    try:
        yield
    finally:
        logging.disable(previous)


class _Captured(Exception):  # noqa: N818 - control flow, not an error
    def __init__(self, method: str, kwargs: dict):
        super().__init__(method)
        self.method = method
        self.kwargs = kwargs


class _CapturingClient:
    """Stands where the SDK's API client would: takes the request the SDK makes and stops there (--dry-run)."""

    def __getattr__(self, method: str):
        def capture(**kwargs):
            raise _Captured(method, kwargs)

        return capture


def schedule_vertex(
    job,
    cron: Cron,
    display_name: str,
    service_account: str = "",
    network: str = "",
    dry_run: bool = False,
) -> dict[str, Any]:
    """A PipelineJobSchedule with at most one run at a time."""
    from google.cloud import aiplatform
    from google.cloud.aiplatform.compat.types import schedule_service

    sched = aiplatform.PipelineJobSchedule(
        pipeline_job=job,
        display_name=display_name,
        credentials=job.credentials,
        project=job.project,
        location=job.location,
    )
    kwargs = dict(
        cron=cron.expression,
        max_concurrent_run_count=1,
        allow_queueing=False,
        service_account=service_account or None,
        network=network or None,
    )
    if dry_run:
        sched.api_client = _CapturingClient()
        try:
            with _sdk_quiet():  # the SDK logs "Creating PipelineJobSchedule" to stdout, where the JSON goes
                sched.create(**kwargs)
        except _Captured as c:
            if c.method != "create_schedule":  # pragma: no cover - the SDK's only call in create()
                raise SubmitError(f"unexpected SDK call {c.method}") from None
            req = schedule_service.CreateScheduleRequest(
                parent=c.kwargs["parent"], schedule=c.kwargs["schedule"]
            )
            return {"dry_run": True, "request": _message_json(req)}
        raise SubmitError("the SDK made no request")  # pragma: no cover
    try:
        sched.create(**kwargs)
    except Exception as e:  # noqa: BLE001
        raise SubmitError(f"Vertex AI refused the schedule: {type(e).__name__}: {e}") from None
    return {"dry_run": False, "schedule": sched.resource_name}


# ---- self-hosted KFP -------------------------------------------------------------------------------------------
def _kfp_runtime(compiled, pipeline_root: str | None):
    import kfp_server_api

    return kfp_server_api.V2beta1RuntimeConfig(
        pipeline_root=pipeline_root or compiled.pipeline_root, parameters={}
    )


def kfp_run_body(
    compiled, display_name: str, experiment_id: str, pipeline_root: str | None, service_account: str
):
    import kfp_server_api

    return kfp_server_api.V2beta1Run(
        experiment_id=experiment_id,
        display_name=display_name,
        pipeline_spec=compiled.as_dict(),
        runtime_config=_kfp_runtime(compiled, pipeline_root),
        service_account=service_account or None,
    )


def kfp_recurring_run_body(
    compiled,
    display_name: str,
    experiment_id: str,
    cron: Cron,
    pipeline_root: str | None,
    service_account: str,
):
    import kfp_server_api

    return kfp_server_api.V2beta1RecurringRun(
        experiment_id=experiment_id,
        display_name=display_name,
        mode=kfp_server_api.RecurringRunMode.ENABLE,
        pipeline_spec=compiled.as_dict(),
        runtime_config=_kfp_runtime(compiled, pipeline_root),
        trigger=kfp_server_api.V2beta1Trigger(
            cron_schedule=kfp_server_api.V2beta1CronSchedule(cron=kfp_cron(cron))
        ),
        max_concurrency=1,
        no_catchup=True,
        service_account=service_account or None,
    )


def _kfp_client(host: str):
    if not host:
        raise UsageError(
            "--host (or kubeflow.kfp_host) is required for a self-hosted KFP, e.g. http://localhost:8080"
        )
    import kfp

    try:
        return kfp.Client(host=host)
    except Exception as e:  # noqa: BLE001 - connection errors
        raise SubmitError(f"cannot reach the KFP API at {host}: {type(e).__name__}: {e}") from None


def _body_dict(body) -> dict:
    import kfp_server_api

    return kfp_server_api.ApiClient().sanitize_for_serialization(body)


def submit_kfp(
    path: str,
    host: str,
    experiment: str,
    display_name: str | None = None,
    pipeline_root: str | None = None,
    service_account: str = "",
    dry_run: bool = False,
) -> dict[str, Any]:
    compiled = load_for("kubeflow", path)
    name = display_name or compiled.name
    if dry_run:
        body = kfp_run_body(
            compiled, name, f"<id of experiment {experiment!r}>", pipeline_root, service_account
        )
        return {"dry_run": True, "request": {"POST": "/apis/v2beta1/runs", "body": _body_dict(body)}}
    client = _kfp_client(host)
    with contextlib.redirect_stdout(sys.stderr):  # the kfp client prints links; stdout is for the result
        exp = client.create_experiment(name=experiment)  # returns the existing one when it exists
    body = kfp_run_body(compiled, name, exp.experiment_id, pipeline_root, service_account)
    run = client._run_api.create_run(body=body)  # noqa: SLF001 - the call kfp.Client.run_pipeline makes
    return {"dry_run": False, "run_id": run.run_id, "url": f"{host.rstrip('/')}/#/runs/details/{run.run_id}"}


def schedule_kfp(
    path: str,
    host: str,
    experiment: str,
    cron: Cron,
    display_name: str,
    pipeline_root: str | None = None,
    service_account: str = "",
    dry_run: bool = False,
) -> dict[str, Any]:
    compiled = load_for("kubeflow", path)
    if dry_run:
        body = kfp_recurring_run_body(
            compiled, display_name, f"<id of experiment {experiment!r}>", cron, pipeline_root, service_account
        )
        return {"dry_run": True, "request": {"POST": "/apis/v2beta1/recurringruns", "body": _body_dict(body)}}
    client = _kfp_client(host)
    with contextlib.redirect_stdout(sys.stderr):
        exp = client.create_experiment(name=experiment)
    body = kfp_recurring_run_body(
        compiled, display_name, exp.experiment_id, cron, pipeline_root, service_account
    )
    rr = client._recurring_run_api.create_recurring_run(body=body)  # noqa: SLF001 - kfp.Client's own call
    return {"dry_run": False, "recurring_run_id": rr.recurring_run_id}


# ---- local schedule --------------------------------------------------------------------------------------------
def local_schedule(
    cron: Cron,
    graft_exe: str,
    run_args: list[str],
    name: str,
    log_file: str,
    workdir: str,
) -> dict[str, str]:
    """A crontab line and a systemd service + timer that run ``graft run ARGS``.

    ``graft run`` holds an exclusive lock on the run root, so a run that is due while the previous one is still
    going exits at once with a clear message (exit code 1) instead of interleaving with it.
    """
    if cron.tz:
        raise UsageError(
            f"--cron {cron.expression!r}: a local schedule uses this machine's time zone; drop the TZ= prefix"
        )
    argv = [graft_exe, "run", *run_args]
    command = " ".join(shlex.quote(a) for a in argv)
    # The log's folder (<root>/<name>/) may not exist yet on a fresh root: the shell opens the log before graft
    # runs, so the line creates it first (else "Directory nonexistent" and the run never starts).
    log_dir = os.path.dirname(log_file) or "."
    cron_cmd = f"cd {shlex.quote(workdir)} && mkdir -p {shlex.quote(log_dir)} && {command} >> {shlex.quote(log_file)} 2>&1"
    crontab = (
        f"# Graft: scheduled training of '{name}' (add with `crontab -e`; runs never overlap: graft run takes a "
        "lock on its run root)\n" + f"{cron.five_fields} {cron_cmd.replace('%', chr(92) + '%')}\n"
    )
    unit = f"graft-{re.sub(r'[^A-Za-z0-9_.-]', '-', name)}"

    def sd_quote(a: str) -> str:
        return (
            a
            if re.fullmatch(r"[A-Za-z0-9_@%+=:,./-]+", a)
            else '"' + a.replace("\\", "\\\\").replace('"', '\\"') + '"'
        )

    service = (
        f"# ~/.config/systemd/user/{unit}.service\n"
        "[Unit]\n"
        f"Description=Graft scheduled training run ({name})\n\n"
        "[Service]\n"
        "Type=oneshot\n"
        f"WorkingDirectory={workdir}\n"
        f"ExecStart={' '.join(sd_quote(a) for a in argv)}\n"
    )
    timer = (
        f"# ~/.config/systemd/user/{unit}.timer\n"
        "[Unit]\n"
        f"Description=Schedule of {unit}.service ({cron.five_fields})\n\n"
        "[Timer]\n"
        f"OnCalendar={systemd_on_calendar(cron)}\n"
        "Persistent=true\n\n"
        "[Install]\n"
        "WantedBy=timers.target\n"
        f"# enable: systemctl --user daemon-reload && systemctl --user enable --now {unit}.timer\n"
    )
    return {"crontab": crontab, "service": service, "timer": timer, "command": command, "unit": unit}
