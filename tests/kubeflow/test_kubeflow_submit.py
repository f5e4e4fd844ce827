"""`graft submit` / `graft schedule`: the exact requests (--dry-run, no credentials), cron handling, local schedules.

Vertex: the request is built by google-cloud-aiplatform's own PipelineJob / PipelineJobSchedule and is parsed back
into the Vertex API's request protos. KFP: the V2beta1 bodies the kfp client posts. Local: the printed crontab line
and systemd timer are checked against cron's own semantics with `systemd-analyze calendar`, and the scheduled
command is run while another run holds the run root, to see it step aside.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import re
import shutil
import subprocess
from http.server import BaseHTTPRequestHandler
from pathlib import Path

import pytest
from click.testing import CliRunner

from graft.cli import main
from graft.kubeflow import compile as kfc
from graft.kubeflow import submit as ks
from graft.pipeline.config import GraftConfig

IMAGE = "europe-west4-docker.pkg.dev/graft-test/graft/graft:1.0"
SA = "graft-runner@graft-test.iam.gserviceaccount.com"
NETWORK = "projects/123456/global/networks/vpc"


@pytest.fixture(scope="module")
def specs(tmp_path_factory):
    from graft.components.backbones import resolve_backbone

    d = tmp_path_factory.mktemp("specs")
    info = resolve_backbone("tiny").to_dict()
    cfg = GraftConfig(name="graft-ct")
    cfg.data.path = "gs://graft-test/examples/*.tfrecord.gz"
    cfg.backbone.handle = "gs://graft-test/hub/tiny_32"
    cfg.kubeflow.pipeline_root = "gs://graft-test/pipeline_root"
    cfg.push.serving_root = "gs://graft-test/serving"
    out = {}
    for target in kfc.TARGETS:
        out[target] = kfc.compile_pipeline(
            cfg, target, d / kfc.DEFAULT_OUT[target], image=IMAGE, backbone_info=info
        ).path
    return out


@pytest.fixture
def no_credentials(monkeypatch, tmp_path):
    monkeypatch.delenv("GOOGLE_APPLICATION_CREDENTIALS", raising=False)
    monkeypatch.setenv("CLOUDSDK_CONFIG", str(tmp_path / "gcloud"))  # no user credentials
    monkeypatch.setenv("NO_GCE_CHECK", "True")  # not on GCE: do not probe the metadata server


def invoke(*args: str):
    return CliRunner(mix_stderr=False).invoke(main, list(args))


# ---- Vertex AI ------------------------------------------------------------------------------------------------------
def test_vertex_submit_dry_run_prints_the_create_pipeline_job_request(specs, no_credentials):
    from google.cloud.aiplatform.compat.types import pipeline_service

    res = invoke(
        "submit",
        "--pipeline",
        specs["vertex"],
        "--project",
        "graft-test",
        "--region",
        "europe-west4",
        "--service-account",
        SA,
        "--network",
        NETWORK,
        "--dry-run",
    )
    assert res.exit_code == 0, res.output
    out = json.loads(res.output)
    assert out["dry_run"] is True
    req = out["request"]
    parsed = pipeline_service.CreatePipelineJobRequest.from_json(json.dumps(req))  # the API's own message
    assert parsed.parent == "projects/graft-test/locations/europe-west4"
    assert re.fullmatch(r"graft-ct-\d{14}", parsed.pipeline_job_id)
    job = req["pipelineJob"]
    assert job["serviceAccount"] == SA and job["network"] == NETWORK
    assert job["runtimeConfig"]["gcsOutputDirectory"] == "gs://graft-test/pipeline_root"
    assert job["labels"]["graft-pipeline"] == "graft-ct" and job["labels"]["tfx_runner"] == "kubeflow_v2"
    compiled = json.loads(Path(specs["vertex"]).read_text())["pipelineSpec"]
    assert job["pipelineSpec"]["root"] == compiled["root"]
    assert job["pipelineSpec"]["deploymentSpec"] == compiled["deploymentSpec"]


def test_vertex_schedule_dry_run_allows_one_run_at_a_time(specs, no_credentials):
    from google.cloud.aiplatform.compat.types import schedule_service

    res = invoke(
        "schedule",
        "--cron",
        "TZ=Europe/Amsterdam 0 3 * * *",
        "--pipeline",
        specs["vertex"],
        "--project",
        "graft-test",
        "--region",
        "europe-west4",
        "--service-account",
        SA,
        "--dry-run",
    )
    assert res.exit_code == 0, res.output
    req = json.loads(res.output)["request"]
    parsed = schedule_service.CreateScheduleRequest.from_json(json.dumps(req))
    assert parsed.parent == "projects/graft-test/locations/europe-west4"
    s = parsed.schedule
    assert s.cron == "TZ=Europe/Amsterdam 0 3 * * *"
    assert s.max_concurrent_run_count == 1 and s.allow_queueing is False
    assert s.display_name == "graft-graft-ct-schedule"
    job_req = s.create_pipeline_job_request
    assert job_req.parent == "projects/graft-test/locations/europe-west4"
    assert job_req.pipeline_job.service_account == SA
    assert job_req.pipeline_job.runtime_config.gcs_output_directory == "gs://graft-test/pipeline_root"
    assert (
        "Trainer"
        in req["schedule"]["createPipelineJobRequest"]["pipelineJob"]["pipelineSpec"]["root"]["dag"]["tasks"]
    )


def test_vertex_without_credentials_says_how_to_get_them(specs, no_credentials):
    res = invoke(
        "submit", "--pipeline", specs["vertex"], "--project", "graft-test", "--region", "europe-west4"
    )
    assert res.exit_code == 1
    assert "gcloud auth application-default login" in res.stderr and "--dry-run" in res.stderr


def test_vertex_refuses_the_wrong_file_and_a_local_pipeline_root(specs, tmp_path, no_credentials):
    res = invoke("submit", "--pipeline", specs["kubeflow"], "--project", "graft-test", "--dry-run")
    assert res.exit_code == 2 and "compile with --target vertex" in res.stderr
    res = invoke(
        "submit",
        "--pipeline",
        specs["vertex"],
        "--project",
        "graft-test",
        "--pipeline-root",
        str(tmp_path),
        "--dry-run",
    )
    assert res.exit_code == 2 and "is not a gs:// path" in res.stderr
    res = invoke("submit", "--pipeline", specs["vertex"], "--dry-run")
    assert res.exit_code == 2 and "--project" in res.stderr
    bad = tmp_path / "x.json"
    bad.write_text("{}")
    res = invoke("submit", "--pipeline", str(bad), "--project", "graft-test", "--dry-run")
    assert res.exit_code == 2 and "neither a Vertex PipelineJob" in res.stderr


# ---- self-hosted KFP ------------------------------------------------------------------------------------------------
def test_kfp_dry_runs_print_the_run_and_recurring_run_bodies(specs):
    import kfp_server_api
    import yaml

    spec = yaml.safe_load(Path(specs["kubeflow"]).read_text())
    res = invoke("submit", "--pipeline", specs["kubeflow"], "--target", "kubeflow", "--dry-run")
    assert res.exit_code == 0, res.output
    req = json.loads(res.output)["request"]
    assert req["POST"] == "/apis/v2beta1/runs"
    body = req["body"]
    assert body["pipeline_spec"] == spec
    assert body["runtime_config"]["pipeline_root"] == "gs://graft-test/pipeline_root"
    assert body["display_name"] == "graft-ct"
    kfp_server_api.V2beta1Run(**body)  # the model the client would post

    res = invoke(
        "schedule",
        "--cron",
        "30 2 * * 1-5",
        "--pipeline",
        specs["kubeflow"],
        "--target",
        "kubeflow",
        "--dry-run",
    )
    assert res.exit_code == 0, res.output
    req = json.loads(res.output)["request"]
    assert req["POST"] == "/apis/v2beta1/recurringruns"
    body = req["body"]
    assert body["trigger"] == {"cron_schedule": {"cron": "0 30 2 * * 1-5"}}  # KFP: seconds first
    assert body["max_concurrency"] == 1 and body["no_catchup"] is True and body["mode"] == "ENABLE"
    assert body["pipeline_spec"] == spec


def test_kfp_errors(specs):
    res = invoke("submit", "--pipeline", specs["vertex"], "--target", "kubeflow", "--dry-run")
    assert res.exit_code == 2 and "compile with --target kubeflow" in res.stderr
    res = invoke("submit", "--pipeline", specs["kubeflow"], "--target", "kubeflow")
    assert res.exit_code == 2 and "--host" in res.stderr
    res = invoke(
        "submit", "--pipeline", specs["kubeflow"], "--target", "kubeflow", "--host", "http://127.0.0.1:9"
    )
    assert res.exit_code == 1 and "cannot reach the KFP API at http://127.0.0.1:9" in res.stderr
    res = invoke(
        "schedule",
        "--cron",
        "TZ=UTC 0 3 * * *",
        "--pipeline",
        specs["kubeflow"],
        "--target",
        "kubeflow",
        "--dry-run",
    )
    assert res.exit_code == 2 and "time zone" in res.stderr


class _KfpApi(BaseHTTPRequestHandler):
    """The few KFP v2beta1 API routes the kfp client calls for a run / recurring run; records what it is sent."""

    calls: list = []

    def _send(self, obj: dict) -> None:
        body = json.dumps(obj).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self):  # noqa: N802
        self.calls.append(("GET", self.path.split("?")[0], None))
        if self.path.startswith("/apis/v2beta1/healthz"):
            return self._send({"multi_user": False})
        return self._send({"experiments": [], "total_size": 0})  # no experiment of that name yet

    def do_POST(self):  # noqa: N802
        body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))) or b"{}")
        self.calls.append(("POST", self.path, body))
        ids = {"experiments": "experiment_id", "runs": "run_id", "recurringruns": "recurring_run_id"}
        key = ids[self.path.rsplit("/", 1)[-1]]
        return self._send({key: f"{key}-1", "display_name": body.get("display_name")})

    def log_message(self, *args):
        pass


@pytest.fixture
def kfp_api():
    import threading
    from http.server import ThreadingHTTPServer

    _KfpApi.calls = []
    srv = ThreadingHTTPServer(("127.0.0.1", 0), _KfpApi)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{srv.server_address[1]}", _KfpApi.calls
    srv.shutdown()
    srv.server_close()


def test_kfp_client_posts_exactly_the_dry_run_bodies(specs, kfp_api):
    """Through the real kfp client to an HTTP endpoint speaking the v2beta1 API: the experiment is created, and the
    run / recurring run bodies are the ones --dry-run printed (the experiment id filled in)."""
    host, calls = kfp_api
    for command, extra, route in (
        ("submit", [], "/apis/v2beta1/runs"),
        ("schedule", ["--cron", "0 3 * * *"], "/apis/v2beta1/recurringruns"),
    ):
        base = [command, "--pipeline", specs["kubeflow"], "--target", "kubeflow", "--host", host, *extra]
        dry = invoke(*base, "--dry-run")
        assert dry.exit_code == 0, dry.output
        expected = json.loads(dry.output)["request"]["body"]
        calls.clear()
        res = invoke(*base, "--json")
        assert res.exit_code == 0, res.output
        assert json.loads(res.stdout)["dry_run"] is False  # stdout holds only the result
        posts = [(path, body) for method, path, body in calls if method == "POST"]
        assert posts[0] == ("/apis/v2beta1/experiments", {"display_name": "graft", "namespace": ""})
        assert posts[1][0] == route
        assert posts[1][1] == {**expected, "experiment_id": "experiment_id-1"}


# ---- cron ------------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "expr, needle",
    [
        ("0 3 * *", "expected 5 fields"),
        ("60 3 * * *", "minute field '60': 60 is outside 0-59"),
        ("0 24 * * *", "hour field '24'"),
        ("0 3 0 * *", "day of month field '0'"),
        ("0 3 * 13 *", "month field '13'"),
        ("0 3 * * 8", "day of week field '8'"),
        ("*/0 3 * * *", "step '0'"),
        ("0 5-3 * * *", "runs backwards"),
        ("0 3 * * funday", "'funday' is not a number or a name"),
        ("@daily", "expected 5 fields"),
    ],
)
def test_bad_cron_expressions_are_usage_errors(expr, needle):
    with pytest.raises(ks.UsageError) as e:
        ks.parse_cron(expr)
    assert needle in str(e.value)


def _cron_times(cron: ks.Cron, start: dt.datetime, n: int) -> list[dt.datetime]:
    """The next n times cron itself would fire (dom/dow: either matches when both are restricted)."""
    minute, hour, dom, month, dow = cron.values
    out = []
    day = start.date()
    while len(out) < n:
        cron_dow = (day.weekday() + 1) % 7
        dom_ok, dow_ok = day.day in dom, cron_dow in dow
        if cron.restricted[2] and cron.restricted[4]:
            day_ok = dom_ok or dow_ok
        else:
            day_ok = dom_ok and dow_ok
        if day.month in month and day_ok:
            for h in hour:
                for m in minute:
                    t = dt.datetime(day.year, day.month, day.day, h, m)
                    if t > start and len(out) < n:  # systemd-analyze: strictly after --base-time
                        out.append(t)
        day += dt.timedelta(days=1)
    return out


def _systemd_times(on_calendar: str, start: dt.datetime, n: int) -> list[dt.datetime]:
    res = subprocess.run(
        [
            "systemd-analyze",
            "calendar",
            f"--iterations={n}",
            f"--base-time={start:%Y-%m-%d %H:%M:%S} UTC",
            on_calendar,
        ],
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
        env={**os.environ, "TZ": "UTC"},
    )
    stamps = re.findall(r"(?:Next elapse|Iter\. #\d+): \w+ (\d{4}-\d\d-\d\d \d\d:\d\d:\d\d) UTC", res.stdout)
    return [dt.datetime.strptime(s, "%Y-%m-%d %H:%M:%S") for s in stamps]


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="systemd-analyze is not installed here")
@pytest.mark.parametrize(
    "expr",
    ["0 3 * * *", "*/15 9-17 * * mon-fri", "0 0 1 */3 *", "5 4 * * sun,7", "0 12 1,15 * *", "59 23 31 * *"],
)
def test_systemd_timer_fires_when_cron_would(expr):
    cron = ks.parse_cron(expr)
    start = dt.datetime(2026, 1, 1, 0, 0)
    assert _systemd_times(ks.systemd_on_calendar(cron), start, 12) == _cron_times(cron, start, 12)


def test_kfp_cron_has_seconds_and_systemd_refuses_day_or_weekday():
    assert ks.kfp_cron(ks.parse_cron("*/10 * * * *")) == "0 */10 * * * *"
    with pytest.raises(ks.UsageError, match="EITHER the day of month OR the day of week"):
        ks.systemd_on_calendar(ks.parse_cron("0 3 1 * mon"))


# ---- local schedule --------------------------------------------------------------------------------------------------
def test_local_schedule_prints_cron_and_systemd_entries_whose_command_steps_aside(tmp_path):
    from graft.pipeline.local_runner import run_lock

    data = tmp_path / "images"
    (data / "span-1" / "cat").mkdir(parents=True)
    cfg = tmp_path / "graft.yaml"
    cfg.write_text(
        f"name: nightly\nroot: {tmp_path / 'runs'}\ndata: {{path: {data}}}\nbackbone: {{handle: tiny}}\n"
    )
    res = invoke("schedule", "--target", "local", "--cron", "30 2 * * *", "--config", str(cfg), "--json")
    assert res.exit_code == 0, res.output
    out = json.loads(res.output)
    graft = shutil.which("graft") or str(Path(os.sys.executable).with_name("graft"))
    line = out["crontab"].splitlines()[-1]
    assert line.startswith(
        f"30 2 * * * cd {os.getcwd()} && mkdir -p {tmp_path / 'runs' / 'nightly'} && {graft} run --config {cfg} "
        f"--data {data} --backbone tiny "
    )
    assert line.endswith(f">> {tmp_path / 'runs' / 'nightly' / 'schedule.log'} 2>&1")
    assert "OnCalendar=*-*-* 02:30:00" in out["timer"] and "Persistent=true" in out["timer"]
    assert f"ExecStart={graft} run --config {cfg}" in out["service"] and "Type=oneshot" in out["service"]
    assert out["unit"] == "graft-nightly"
    text = invoke("schedule", "--target", "local", "--cron", "30 2 * * *", "--config", str(cfg)).output
    assert line in text and "[Timer]" in text

    # The scheduled command, due while another run holds the run root: it exits at once, saying why.
    run_root = tmp_path / "runs" / "nightly"
    with run_lock(run_root):
        proc = subprocess.run(
            out["command"], shell=True, capture_output=True, text=True, timeout=300, check=False
        )
    assert proc.returncode == 1, proc.stderr[-2000:]
    assert f"another graft run is using {run_root}" in proc.stderr


def test_local_schedule_needs_data_and_backbone(tmp_path):
    res = invoke("schedule", "--target", "local", "--cron", "0 3 * * *")
    assert res.exit_code == 2 and "needs data.path and backbone.handle" in res.stderr
    res = invoke("schedule", "--target", "vertex", "--cron", "0 3 * * *")
    assert res.exit_code == 2 and "--pipeline is required" in res.stderr


def test_submit_flags_beat_the_config_file(specs, no_credentials, tmp_path):
    """Precedence: defaults < --config < --set < the command's own flags (--project, --region)."""
    cfg = tmp_path / "k.yaml"
    cfg.write_text("kubeflow: {project: file-project, region: us-east1}\n")
    res = invoke(
        "submit", "--pipeline", specs["vertex"], "--config", str(cfg), "--set", "kubeflow.region=europe-west1",
        "--project", "flag-project", "--dry-run",
    )  # fmt: skip
    assert res.exit_code == 0, res.output
    assert json.loads(res.output)["request"]["parent"] == "projects/flag-project/locations/europe-west1"
    res = invoke(
        "submit", "--pipeline", specs["vertex"], "--config", str(cfg), "--region", "asia-east1", "--dry-run"
    )
    assert json.loads(res.output)["request"]["parent"] == "projects/file-project/locations/asia-east1"
