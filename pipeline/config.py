"""The one typed config of a Graft run, assembled: the only source of knobs.

Each component owns the dataclass of the section it reads (``data`` -> graft.components.image_example_gen.config,
``backbone``, ``transform``, ``train``, ``evaluation``, ``push`` -> graft.components.*_config); this module adds
the sections only the pipeline and the Kubeflow layer read (``beam``, ``kubeflow``), assembles ``GraftConfig``,
and loads it from files and overrides.

A run's config is built from defaults (and a command's own defaults, e.g. the demo's), then an optional YAML file,
then ``--set section.key=value`` overrides, then the command's dedicated flags (``--data``, ``--backbone``,
``--root``, ``--no-cache``, ...), in that order: the same for every command. Unknown keys (with a did-you-mean),
wrong types and out-of-range values are :class:`ConfigError`s that name the key and say what is allowed; all the
problems of one config are reported together. The effective config travels into the TFX components as JSON (``custom_config``) so that the
Transform and Trainer modules read exactly what the user set, and it is stored with the run.

This module must stay cheap to import (no TensorFlow): the CLI's ``--help`` imports it.
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml

from graft.components.backbone_config import BackboneConfig
from graft.components.edge.config import EdgeConfig
from graft.components.evaluation_config import EvaluationConfig
from graft.components.image_example_gen.config import DataConfig, normalize_data_path
from graft.components.preprocessing_config import TransformConfig
from graft.components.pusher_config import PushConfig
from graft.components.trainer_config import AugmentConfig, TrainConfig
from graft.errors import ConfigError
from graft.settings import (
    SAFE_NAME_RE,
    check_safe_name,
    collecting,
    raise_collected,
    read_config_file,
    yaml_problem,
)
from graft.settings import build as _build
from graft.settings import check as _check

# Re-exported: the assembled config is where callers above the components find every section and the error.
__all__ = [
    "SAFE_NAME_RE",
    "AugmentConfig",
    "BackboneConfig",
    "BeamConfig",
    "ConfigError",
    "DataConfig",
    "DataflowConfig",
    "EdgeConfig",
    "EvaluationConfig",
    "GraftConfig",
    "KubeflowConfig",
    "PortableRunnerConfig",
    "PushConfig",
    "TrainConfig",
    "TransformConfig",
    "check_image",
    "check_safe_name",
    "load_config",
    "normalize_data_path",
    "parse_override",
    "read_config_file",
]


# Container image references: [registry[:port]/]path[:tag][@sha256:digest], lower-case path.
IMAGE_RE = re.compile(
    r"^(?:[a-zA-Z0-9.-]+(?::[0-9]+)?/)?[a-z0-9]+(?:[._-][a-z0-9]+)*(?:/[a-z0-9]+(?:[._-][a-z0-9]+)*)*"
    r"(?::[A-Za-z0-9_][A-Za-z0-9_.-]{0,127})?(?:@sha256:[0-9a-f]{64})?$"
)
GCP_PROJECT_RE = re.compile(r"^[a-z][a-z0-9-]{4,28}[a-z0-9]$")
GCP_REGION_RE = re.compile(r"^[a-z]+-[a-z]+[0-9]+$")


def check_image(value: str, key: str) -> None:
    _check(
        bool(IMAGE_RE.match(value)),
        key,
        f"{value!r} is not a container image reference: expected [registry/]path[:tag][@sha256:digest], e.g. "
        "us-central1-docker.pkg.dev/my-project/graft/graft:1.0",
    )


@dataclass
class DataflowConfig:
    # Used when beam.runner = 'dataflow': ExampleGen, StatisticsGen, Transform and the Evaluator run as Dataflow
    # jobs. Required: project, region, temp_location, sdk_container_image.
    project: str = ""
    region: str = ""
    # gs:// scratch space of the jobs; staging_location defaults to it.
    temp_location: str = ""
    staging_location: str = ""
    machine_type: str = "n1-standard-4"
    max_num_workers: int = 10
    disk_size_gb: int | None = None
    service_account_email: str = ""
    # Full or short subnetwork URL (regions/REGION/subnetworks/NAME); empty: the default network.
    subnetwork: str = ""
    # The workers run Graft's own Beam code (the image ExampleGen's reader), so they need Graft's image: the one
    # built from kubeflow/Dockerfile (its ENTRYPOINT is Beam's SDK boot), usually the same as kubeflow.image.
    sdk_container_image: str = ""

    def validate(self) -> None:
        k = "beam.dataflow"
        _check(
            bool(GCP_PROJECT_RE.match(self.project)),
            f"{k}.project",
            f"{self.project!r}: set the GCP project id",
        )
        _check(
            bool(GCP_REGION_RE.match(self.region)),
            f"{k}.region",
            f"{self.region!r}: set a region, e.g. us-central1",
        )
        for name in ("temp_location", "staging_location"):
            v = getattr(self, name)
            _check(
                v.startswith("gs://") if (v or name == "temp_location") else True,
                f"{k}.{name}",
                f"{v!r}: Dataflow needs a gs:// path, e.g. gs://my-bucket/dataflow/tmp",
            )
        _check(self.max_num_workers >= 1, f"{k}.max_num_workers", "must be >= 1")
        _check(self.disk_size_gb is None or self.disk_size_gb >= 10, f"{k}.disk_size_gb", "must be >= 10")
        _check(bool(self.machine_type.strip()), f"{k}.machine_type", "must not be empty")
        _check(
            bool(self.sdk_container_image),
            f"{k}.sdk_container_image",
            "required: Dataflow workers need Graft's code; set it to the image built from kubeflow/Dockerfile "
            "(the same as kubeflow.image)",
        )
        check_image(self.sdk_container_image, f"{k}.sdk_container_image")

    def args(self) -> list[str]:
        out = [
            "--runner=DataflowRunner",
            f"--project={self.project}",
            f"--region={self.region}",
            f"--temp_location={self.temp_location}",
            f"--staging_location={self.staging_location or self.temp_location}",
            f"--machine_type={self.machine_type}",
            f"--max_num_workers={self.max_num_workers}",
            f"--sdk_container_image={self.sdk_container_image}",
            "--sdk_location=container",
        ]
        if self.disk_size_gb is not None:
            out.append(f"--disk_size_gb={self.disk_size_gb}")
        if self.service_account_email:
            out.append(f"--service_account_email={self.service_account_email}")
        if self.subnetwork:
            out.append(f"--subnetwork={self.subnetwork}")
        return out


@dataclass
class PortableRunnerConfig:
    # Used when beam.runner = 'flink' or 'spark': Beam's PortableRunner submits to a Flink / Spark job server.
    # host:port of the job server (e.g. flink-jobserver.kubeflow:8099). Required.
    job_endpoint: str = ""
    # How the job server starts Python workers: EXTERNAL (a Beam worker pool at environment_config, e.g. a
    # sidecar running Graft's image with --worker_pool), DOCKER (environment_config = Graft's image), PROCESS.
    environment_type: Literal["EXTERNAL", "DOCKER", "PROCESS", "LOOPBACK"] = "EXTERNAL"
    environment_config: str = ""

    def validate(self) -> None:
        k = "beam.portable"
        _check(
            bool(re.match(r"^[A-Za-z0-9.-]+:[0-9]+$", self.job_endpoint)),
            f"{k}.job_endpoint",
            f"{self.job_endpoint!r}: set host:port of the Flink/Spark job server, e.g. flink-jobserver:8099",
        )
        _check(
            bool(self.environment_config) or self.environment_type == "LOOPBACK",
            f"{k}.environment_config",
            f"required with environment_type={self.environment_type} (EXTERNAL: host:port of the worker pool; "
            "DOCKER: Graft's image; PROCESS: the boot command JSON)",
        )

    def args(self) -> list[str]:
        out = [
            "--runner=PortableRunner",
            f"--job_endpoint={self.job_endpoint}",
            f"--environment_type={self.environment_type}",
        ]
        if self.environment_config:
            out.append(f"--environment_config={self.environment_config}")
        return out


@dataclass
class BeamConfig:
    # Beam pipeline args for StatisticsGen, Transform, Evaluator, ExampleGen. Default: DirectRunner in memory
    # (multi_processing was 2x slower on 2 cores). e.g. ['--runner=DataflowRunner', '--project=...'].
    args: list[str] = field(default_factory=list)
    direct_running_mode: Literal["in_memory", "multi_threading", "multi_processing"] = "in_memory"
    direct_num_workers: int = 1
    # Typed runner settings: 'direct' (in the component's own process), 'dataflow' (beam.dataflow.*), 'flink' /
    # 'spark' (beam.portable.*: a job server). beam.args come after the typed args, so they win on a clash.
    runner: Literal["direct", "dataflow", "flink", "spark"] = "direct"
    dataflow: DataflowConfig = field(default_factory=DataflowConfig)
    portable: PortableRunnerConfig = field(default_factory=PortableRunnerConfig)

    def validate(self) -> None:
        _check(self.direct_num_workers >= 0, "beam.direct_num_workers", "must be >= 0 (0: number of cores)")
        for a in self.args:
            _check(a.startswith("--"), "beam.args", f"{a!r}: each Beam arg must look like --name=value")
        if self.runner == "dataflow":
            self.dataflow.validate()
        elif self.runner in ("flink", "spark"):
            self.portable.validate()

    def pipeline_args(self) -> list[str]:
        typed: list[str] = []
        if self.runner == "dataflow":
            typed = self.dataflow.args()
        elif self.runner in ("flink", "spark"):
            typed = self.portable.args()
        args = typed + list(self.args)
        if self.runner == "direct" and (
            not any(a.startswith("--runner") for a in args) or any("DirectRunner" in a for a in args)
        ):
            args += [
                f"--direct_running_mode={self.direct_running_mode}",
                f"--direct_num_workers={self.direct_num_workers}",
            ]
        return args


@dataclass
class KubeflowConfig:
    # Container image holding this project, built from kubeflow/Dockerfile and pushed where the cluster pulls from
    # (e.g. us-central1-docker.pkg.dev/PROJECT/REPO/graft:1.0). `graft compile --image` overrides it.
    image: str = ""
    # Image of the Trainer task only (e.g. a separately built CUDA image). Empty: `image` (tensorflow/tfx, its
    # base, is GPU-capable already).
    trainer_image: str = ""
    # Where the cluster writes the pipeline's artifacts: gs://BUCKET/... (Vertex); gs://, s3:// or minio:// (KFP).
    pipeline_root: str = ""
    # The Trainer task's machine. Vertex accelerator names: NVIDIA_TESLA_T4, NVIDIA_L4, NVIDIA_TESLA_V100,
    # NVIDIA_TESLA_A100, NVIDIA_A100_80GB, NVIDIA_H100_80GB, ... Count 0: CPU only.
    trainer_accelerator_type: str = "NVIDIA_TESLA_T4"
    trainer_accelerator_count: int = 1
    # On a self-hosted KFP the GPUs are requested as this Kubernetes resource (count from above).
    kfp_accelerator_resource: str = "nvidia.com/gpu"
    # vCPU and memory (GB) limits of the Trainer task.
    trainer_cpu: float = 8.0
    trainer_memory_gb: float = 32.0
    # Vertex AI: where `graft submit` / `graft schedule` create pipeline jobs (their --project / --region win),
    # the service account the jobs run as (empty: the project's default compute account), and an optional peered
    # VPC network (projects/NUMBER/global/networks/NAME).
    project: str = ""
    region: str = "us-central1"
    service_account: str = ""
    network: str = ""
    # Self-hosted Kubeflow Pipelines: the API endpoint (e.g. http://localhost:8080 after
    # `kubectl port-forward -n kubeflow svc/ml-pipeline-ui 8080:80`) and the experiment runs are filed under.
    kfp_host: str = ""
    kfp_experiment: str = "graft"

    def validate(self) -> None:
        k = "kubeflow"
        for name in ("image", "trainer_image"):
            if getattr(self, name):
                check_image(getattr(self, name), f"{k}.{name}")
        _check(
            0 <= self.trainer_accelerator_count <= 16, f"{k}.trainer_accelerator_count", "must be in [0, 16]"
        )
        if self.trainer_accelerator_count:
            _check(
                bool(re.match(r"^[A-Z][A-Z0-9_]+$", self.trainer_accelerator_type)),
                f"{k}.trainer_accelerator_type",
                f"{self.trainer_accelerator_type!r}: expected a Vertex accelerator name such as NVIDIA_TESLA_T4, "
                "NVIDIA_L4, NVIDIA_TESLA_A100 (or set kubeflow.trainer_accelerator_count=0 for CPU only)",
            )
        _check(
            bool(
                re.match(
                    r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?/[a-z0-9]([-a-z0-9_.]*[a-z0-9])?$",
                    self.kfp_accelerator_resource,
                )
            ),
            f"{k}.kfp_accelerator_resource",
            f"{self.kfp_accelerator_resource!r}: expected a Kubernetes extended resource name such as nvidia.com/gpu",
        )
        _check(
            0 < self.trainer_cpu <= 416, f"{k}.trainer_cpu", f"{self.trainer_cpu} vCPU: must be in (0, 416]"
        )
        _check(
            0 < self.trainer_memory_gb <= 12_000,
            f"{k}.trainer_memory_gb",
            f"{self.trainer_memory_gb}: must be > 0",
        )
        if self.project:
            _check(
                bool(GCP_PROJECT_RE.match(self.project)),
                f"{k}.project",
                f"{self.project!r} is not a GCP project id (6-30 lower-case letters, digits, '-')",
            )
        _check(
            bool(GCP_REGION_RE.match(self.region)),
            f"{k}.region",
            f"{self.region!r}: expected e.g. us-central1",
        )
        if self.kfp_host:
            _check(
                self.kfp_host.startswith(("http://", "https://")),
                f"{k}.kfp_host",
                f"{self.kfp_host!r}: expected the KFP API URL, e.g. http://localhost:8080",
            )
        check_safe_name(self.kfp_experiment, f"{k}.kfp_experiment")


@dataclass
class GraftConfig:
    # Pipeline name: the MLMD context and the directory under root.
    name: str = "graft"
    # Where runs live: <root>/<name>/{metadata.sqlite, pipeline_root/, serving/}.
    root: str = "graft_runs"
    enable_cache: bool = True
    # What the run classifies: 'image' or 'text'. 'auto' detects it from the backbone (a text encoder such as
    # minilm_l6 or a TF Hub BERT-family URL -> text) and the data (.tsv / .csv / .txt -> text; image files ->
    # image); a contradiction between the two is an error that names both (graft.pipeline.task).
    task: Literal["auto", "image", "text"] = "auto"
    data: DataConfig = field(default_factory=DataConfig)
    backbone: BackboneConfig = field(default_factory=BackboneConfig)
    transform: TransformConfig = field(default_factory=TransformConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    evaluation: EvaluationConfig = field(default_factory=EvaluationConfig)
    push: PushConfig = field(default_factory=PushConfig)
    edge: EdgeConfig = field(default_factory=EdgeConfig)
    beam: BeamConfig = field(default_factory=BeamConfig)
    kubeflow: KubeflowConfig = field(default_factory=KubeflowConfig)

    # ---- derived locations -------------------------------------------------------------------------------
    @property
    def run_root(self) -> Path:
        return Path(self.root).expanduser().absolute() / self.name

    @property
    def metadata_path(self) -> Path:
        return self.run_root / "metadata.sqlite"

    @property
    def pipeline_root(self) -> Path:
        return self.run_root / "pipeline_root"

    @property
    def serving_model_dir(self) -> Path:
        base = (
            Path(self.push.serving_root).expanduser().absolute()
            if self.push.serving_root
            else (self.run_root / "serving")
        )
        return base / self.push.model_name

    def validate(self) -> GraftConfig:
        """Every section's checks and the cross-field ones; all problems in one ConfigError."""
        with collecting() as problems:
            check_safe_name(self.name, "name")
            for f in dataclasses.fields(self):
                v = getattr(self, f.name)
                if dataclasses.is_dataclass(v):
                    v.validate()
            self._check_across_sections()
        raise_collected(problems)
        return self

    def _check_across_sections(self) -> None:
        weights = self.train.class_weights
        if isinstance(weights, dict) and self.data.classes:
            unknown = sorted(set(weights) - set(self.data.classes))
            _check(
                not unknown,
                "train.class_weights",
                f"class(es) {', '.join(unknown)} are not in data.classes ({', '.join(self.data.classes)}); "
                "use the class names exactly as listed there",
            )

    # ---- serialisation -----------------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True)

    def to_yaml(self) -> str:
        return yaml.safe_dump(self.to_dict(), sort_keys=False)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> GraftConfig:
        with collecting() as problems:  # the keys' types and the values' checks, reported together
            cfg = _build(cls, data, "")
            try:
                cfg.validate()
            except ConfigError as e:
                problems.extend(p for p in _split_problems(str(e)) if p not in problems)
        raise_collected(problems)
        return cfg

    @classmethod
    def from_json(cls, text: str) -> GraftConfig:
        return cls.from_dict(json.loads(text))


def _split_problems(message: str) -> list[str]:
    lines = message.splitlines()
    if len(lines) > 1 and lines[0].endswith("problems in the config:"):
        return [line.removeprefix("  - ") for line in lines[1:]]
    return [message]


def _set_path(tree: dict[str, Any], dotted: str, value: Any) -> None:
    parts = dotted.split(".")
    if not all(p.strip() for p in parts):
        raise ConfigError(f"config key '{dotted}': empty key part; write section.key, e.g. train.batch_size")
    node = tree
    for p in parts[:-1]:
        child = node.setdefault(p, {})
        if not isinstance(child, dict):
            raise ConfigError(f"config key '{dotted}': '{p}' is not a section")
        node = child
    node[parts[-1]] = value


def parse_override(text: str) -> tuple[str, Any]:
    """'train.batch_size=16' -> ('train.batch_size', 16). Values are parsed as YAML scalars/lists/maps."""
    if "=" not in text:
        raise ConfigError(f"--set {text!r}: expected key=value, e.g. --set train.batch_size=16")
    key, raw = text.split("=", 1)
    key = key.strip()
    if not key:
        raise ConfigError(
            f"--set {text!r}: empty key; write --set section.key=value, e.g. train.batch_size=16"
        )
    try:
        value = yaml.safe_load(raw) if raw.strip() else ""
    except yaml.YAMLError as e:
        raise ConfigError(
            f"--set {text!r}: the value is not valid YAML ({yaml_problem(e)}); quote it"
        ) from None
    return key, value


def load_config(
    path: str | os.PathLike | None = None,
    overrides: list[str] | tuple[str, ...] = (),
    base: dict[str, Any] | None = None,
    flags: dict[str, Any] | None = None,
) -> GraftConfig:
    """Defaults <- ``base`` (a command's own defaults, e.g. the demo's) <- YAML file <- ``--set`` overrides <-
    ``flags`` (the command's dedicated flags: --data, --backbone, --root, --no-cache, ...); validated, with every
    problem reported at once. ``data.path`` comes out normalised (:func:`normalize_data_path`)."""
    tree: dict[str, Any] = {}
    for k, v in (base or {}).items():
        _set_path(tree, k, v)
    if path:
        _merge(tree, read_config_file(path))
    for o in overrides:
        k, v = parse_override(o)
        _set_path(tree, k, v)
    for k, v in (flags or {}).items():
        if v is not None:
            _set_path(tree, k, v)
    cfg = GraftConfig.from_dict(tree)
    cfg.data.path = normalize_data_path(cfg.data.path)
    return cfg


def _merge(dst: dict[str, Any], src: dict[str, Any]) -> None:
    for k, v in src.items():
        if isinstance(v, dict) and isinstance(dst.get(k), dict):
            _merge(dst[k], v)
        else:
            dst[k] = v
