"""The one typed config of a Graft run: the only source of knobs.

A run's config is built from defaults, then an optional YAML file, then ``--set section.key=value`` overrides, in
that order. Unknown keys, wrong types and out-of-range values are :class:`ConfigError`s that name the key and say
what is allowed. The effective config travels into the TFX components as JSON (``custom_config``) so that the
Transform and Trainer modules read exactly what the user set, and it is stored with the run.

This module must stay cheap to import (no TensorFlow): the CLI's ``--help`` imports it.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import re
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Union

import yaml


class ConfigError(ValueError):
    """A bad config value or key. The message names the key and the fix."""


def _check(ok: bool, key: str, msg: str) -> None:
    if not ok:
        raise ConfigError(f"config key '{key}': {msg}")


# Names that end up as directory names (model name, pipeline name, class names): no path tricks.
SAFE_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$")


def check_safe_name(value: str, key: str) -> None:
    _check(
        bool(SAFE_NAME_RE.match(value)) and ".." not in value,
        key,
        f"{value!r} is not a safe name: use 1-128 letters, digits, '_', '.', '-', starting with a letter or digit, "
        "and no '..'",
    )


@dataclass
class DataConfig:
    # A class-per-folder tree, a pre-split tree ({train,val,test}/<class>/...), a folder of span-N/ subfolders,
    # a CSV manifest (path,label), or a folder / glob of TFRecord files of tf.Examples.
    path: str = ""
    format: Literal["auto", "folders", "presplit", "csv", "tfrecord"] = "auto"
    # Class names in label-index order. Empty: the classes found in the data (sorted).
    classes: list[str] = field(default_factory=list)
    train_fraction: float = 0.8
    val_fraction: float = 0.1
    test_fraction: float = 0.1
    # Stop the run when more than this fraction of files are not decodable images (each is listed).
    max_bad_fraction: float = 0.01
    # Stop the run when a class has fewer train examples than this.
    min_train_examples_per_class: int = 5
    # Refuse images with more pixels than this before decoding them (decompression bombs).
    max_image_pixels: int = 50_000_000
    # Read the newest span-N/ folder (TFX span semantics) when the data folder has span-N/ subfolders.
    use_spans: bool = True
    # Curated schema (tensorflow_metadata Schema, text format) the data is validated against. Empty: the one Graft
    # ships (schemas/image_classification/schema.pbtxt). `graft schema infer --data DIR` writes a starting
    # point. Read when the pipeline is built; its label domain is filled in at run time.
    schema_path: str = ""

    def validate(self) -> None:
        for k in ("train_fraction", "val_fraction", "test_fraction"):
            v = getattr(self, k)
            _check(0.0 < v < 1.0, f"data.{k}", f"{v} is out of range: must be > 0 and < 1")
        total = self.train_fraction + self.val_fraction + self.test_fraction
        _check(
            math.isclose(total, 1.0, abs_tol=1e-6),
            "data.train_fraction",
            f"train/val/test fractions must add up to 1.0, they add up to {total:g}",
        )
        _check(0.0 <= self.max_bad_fraction <= 1.0, "data.max_bad_fraction", "must be between 0 and 1")
        _check(self.min_train_examples_per_class >= 1, "data.min_train_examples_per_class", "must be >= 1")
        _check(self.max_image_pixels >= 1, "data.max_image_pixels", "must be >= 1")
        _check(len(set(self.classes)) == len(self.classes), "data.classes", "class names must be unique")
        _check(
            not self.schema_path or self.schema_path.endswith(".pbtxt"),
            "data.schema_path",
            f"{self.schema_path!r}: expected a text-format schema file ending in .pbtxt",
        )
        for c in self.classes:
            check_safe_name(c, "data.classes")


@dataclass
class BackboneConfig:
    # TF Hub handle: https URL (tfhub.dev / Kaggle Models), gs:// path, or a local TF2 SavedModel directory.
    # Also accepts the names of offline modules Graft builds: 'mobilenet_v1_imagenet', 'tiny'.
    handle: str = ""
    # Input size when the module's signature does not fix it (None: read from the module).
    input_size: int | None = None

    def validate(self) -> None:
        if self.input_size is not None:
            _check(
                16 <= self.input_size <= 1024, "backbone.input_size", f"{self.input_size} not in [16, 1024]"
            )


@dataclass
class TransformConfig:
    resize_method: Literal["bilinear", "nearest", "bicubic", "area", "lanczos3"] = "bilinear"
    antialias: bool = True

    def validate(self) -> None:
        pass


@dataclass
class AugmentConfig:
    enabled: bool = True
    horizontal_flip: bool = True
    rotation: float = 0.05  # fraction of a full turn
    zoom: float = 0.1
    contrast: float = 0.1

    def validate(self) -> None:
        _check(
            0.0 <= self.rotation <= 0.5, "train.augment.rotation", "must be in [0, 0.5] (fraction of a turn)"
        )
        _check(0.0 <= self.zoom < 1.0, "train.augment.zoom", "must be in [0, 1)")
        _check(0.0 <= self.contrast < 1.0, "train.augment.contrast", "must be in [0, 1)")


@dataclass
class TrainConfig:
    # Global batch: split across the replicas under MirroredStrategy, so results do not depend on the GPU count.
    batch_size: int = 32
    # Phase 1: new head on the frozen backbone.
    phase1_epochs: int = 5
    phase1_learning_rate: float = 1e-3
    # Phase 2: fine-tune the top fraction of the backbone's variables (0 skips phase 2, 1.0 trains all).
    fine_tune_fraction: float = 0.3
    phase2_epochs: int = 3
    phase2_learning_rate: float = 1e-5
    early_stopping_patience: int = 2
    # Cap on steps per epoch (None: one pass over the train split).
    steps_per_epoch: int | None = None
    dropout: float = 0.2
    label_smoothing: float = 0.0
    # 'none', 'balanced', or an explicit {class_name: weight} map.
    class_weights: Union[str, dict[str, float]] = "none"
    seed: int = 42
    # 'auto': float16 compute when a GPU is visible; 'on' / 'off' force it.
    mixed_precision: Literal["auto", "on", "off"] = "auto"
    augment: AugmentConfig = field(default_factory=AugmentConfig)

    def validate(self) -> None:
        _check(1 <= self.batch_size <= 4096, "train.batch_size", f"{self.batch_size} not in [1, 4096]")
        _check(self.phase1_epochs >= 1, "train.phase1_epochs", "must be >= 1")
        _check(self.phase2_epochs >= 0, "train.phase2_epochs", "must be >= 0")
        for k in ("phase1_learning_rate", "phase2_learning_rate"):
            v = getattr(self, k)
            _check(0.0 < v < 1.0, f"train.{k}", f"{v} is out of range: must be > 0 and < 1")
        _check(0.0 <= self.fine_tune_fraction <= 1.0, "train.fine_tune_fraction", "must be in [0, 1]")
        _check(self.early_stopping_patience >= 0, "train.early_stopping_patience", "must be >= 0")
        _check(
            self.steps_per_epoch is None or self.steps_per_epoch >= 1, "train.steps_per_epoch", "must be >= 1"
        )
        _check(0.0 <= self.dropout < 1.0, "train.dropout", "must be in [0, 1)")
        _check(0.0 <= self.label_smoothing < 1.0, "train.label_smoothing", "must be in [0, 1)")
        if isinstance(self.class_weights, str):
            _check(
                self.class_weights in ("none", "balanced"),
                "train.class_weights",
                f"{self.class_weights!r}: use 'none', 'balanced' or a map {{class_name: weight}}",
            )
        else:
            for k, v in self.class_weights.items():
                _check(v > 0, f"train.class_weights.{k}", f"weight {v} must be > 0")
        self.augment.validate()


@dataclass
class EvaluationConfig:
    # Blessing needs every threshold below to pass. TFMA writes no blessing without thresholds (tfx#5148), so
    # min_accuracy always exists.
    min_accuracy: float = 0.5
    # Against the last blessed model: the new accuracy may be at most this much lower (absolute). 0 = at least
    # as good; a negative value demands an improvement.
    max_accuracy_drop: float = 0.0
    # Per-class recall floor (sliced by label). 0 disables it.
    min_class_recall: float = 0.0
    # Per TFLite variant (edge.variants): its test accuracy may be at most this much below the SavedModel's, or
    # the variant is not pushed (the SavedModel's own blessing is unaffected).
    max_tflite_accuracy_drop: float = 0.01

    def validate(self) -> None:
        _check(0.0 <= self.min_accuracy <= 1.0, "evaluation.min_accuracy", "must be in [0, 1]")
        _check(
            0.0 <= self.max_tflite_accuracy_drop <= 1.0,
            "evaluation.max_tflite_accuracy_drop",
            "must be in [0, 1]",
        )
        _check(-1.0 <= self.max_accuracy_drop <= 1.0, "evaluation.max_accuracy_drop", "must be in [-1, 1]")
        _check(0.0 <= self.min_class_recall <= 1.0, "evaluation.min_class_recall", "must be in [0, 1]")


EDGE_VARIANTS = ("float32", "float16", "dynamic_range", "int8")  # components/edge/convert.py VARIANTS


@dataclass
class EdgeConfig:
    # TFLite variants converted after training, scored on the test split and pushed beside the SavedModel
    # (<version>/tflite/) when they hold up (evaluation.max_tflite_accuracy_drop). [] turns the edge export off.
    variants: list[str] = field(default_factory=lambda: ["float16", "int8"])
    # How many of Transform's train images calibrate the int8 variant's activation ranges.
    representative_examples: int = 300

    def validate(self) -> None:
        for i, v in enumerate(self.variants):
            _check(
                v in EDGE_VARIANTS, f"edge.variants[{i}]", f"{v!r} is not one of {', '.join(EDGE_VARIANTS)}"
            )
        _check(len(set(self.variants)) == len(self.variants), "edge.variants", "lists a variant twice")
        _check(
            1 <= self.representative_examples <= 100_000,
            "edge.representative_examples",
            "must be in [1, 100000]",
        )


@dataclass
class PushConfig:
    model_name: str = "graft"
    # TF Serving model base directory; models go to <serving_root>/<model_name>/<version>/.
    # Empty: <root>/serving.
    serving_root: str = ""

    def validate(self) -> None:
        check_safe_name(self.model_name, "push.model_name")


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
        check_safe_name(self.name, "name")
        for f in dataclasses.fields(self):
            v = getattr(self, f.name)
            if dataclasses.is_dataclass(v):
                v.validate()
        return self

    # ---- serialisation -----------------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True)

    def to_yaml(self) -> str:
        return yaml.safe_dump(self.to_dict(), sort_keys=False)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> GraftConfig:
        return _build(cls, data, "").validate()

    @classmethod
    def from_json(cls, text: str) -> GraftConfig:
        return cls.from_dict(json.loads(text))


# ---- building dataclasses from plain data, with key-naming errors ---------------------------------------------
def _type_name(tp: Any) -> str:
    origin = typing.get_origin(tp)
    if origin is Literal:
        return " | ".join(repr(a) for a in typing.get_args(tp))
    if origin in (Union, types.UnionType):
        return " or ".join(_type_name(a) for a in typing.get_args(tp))
    if origin in (list, dict):
        return str(tp).replace("typing.", "")
    return getattr(tp, "__name__", str(tp))


def _coerce(tp: Any, value: Any, key: str) -> Any:
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if dataclasses.is_dataclass(tp):
        _check(isinstance(value, dict), key, f"expected a mapping of {tp.__name__} keys, got {value!r}")
        return _build(tp, value, key + ".")
    if origin in (Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        for a in args:
            if a is type(None):
                continue
            try:
                return _coerce(a, value, key)
            except ConfigError:
                continue
        raise ConfigError(f"config key '{key}': {value!r} is not a valid {_type_name(tp)}")
    if origin is Literal:
        _check(value in args, key, f"{value!r} is not allowed; allowed values: {', '.join(map(repr, args))}")
        return value
    if origin is list:
        if isinstance(value, str):  # --set data.classes=a,b,c
            value = [v.strip() for v in value.split(",") if v.strip()]
        _check(isinstance(value, list), key, f"expected a list, got {value!r}")
        return [_coerce(args[0], v, f"{key}[{i}]") for i, v in enumerate(value)]
    if origin is dict:
        _check(isinstance(value, dict), key, f"expected a mapping, got {value!r}")
        return {_coerce(args[0], k, key): _coerce(args[1], v, f"{key}.{k}") for k, v in value.items()}
    if tp is bool:
        _check(isinstance(value, bool), key, f"expected true or false, got {value!r}")
        return value
    if tp is int:
        _check(
            isinstance(value, int) and not isinstance(value, bool), key, f"expected an integer, got {value!r}"
        )
        return value
    if tp is float:
        _check(
            isinstance(value, (int, float)) and not isinstance(value, bool),
            key,
            f"expected a number, got {value!r}",
        )
        _check(math.isfinite(float(value)), key, f"expected a finite number, got {value!r}")
        return float(value)
    if tp is str:
        _check(isinstance(value, str), key, f"expected a string, got {value!r}")
        return value
    raise ConfigError(f"config key '{key}': unsupported type {tp}")  # pragma: no cover


def _build(cls: type, data: dict[str, Any], prefix: str) -> Any:
    hints = typing.get_type_hints(cls)
    names = [f.name for f in dataclasses.fields(cls)]
    for k in data:
        if k not in names:
            raise ConfigError(
                f"unknown config key '{prefix}{k}'; allowed keys{' in ' + prefix.rstrip('.') if prefix else ''}: "
                f"{', '.join(names)}"
            )
    kwargs = {k: _coerce(hints[k], v, prefix + k) for k, v in data.items()}
    return cls(**kwargs)


def _set_path(tree: dict[str, Any], dotted: str, value: Any) -> None:
    parts = dotted.split(".")
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
        raise ConfigError(f"--set {text!r}: empty key")
    try:
        value = yaml.safe_load(raw) if raw.strip() else ""
    except yaml.YAMLError as e:
        raise ConfigError(f"--set {text!r}: value is not valid YAML ({e})") from None
    return key, value


def load_config(
    path: str | os.PathLike | None = None,
    overrides: list[str] | tuple[str, ...] = (),
    base: dict[str, Any] | None = None,
) -> GraftConfig:
    """Defaults <- ``base`` (e.g. CLI flags like --data) <- YAML file <- ``--set`` overrides; validated."""
    tree: dict[str, Any] = {}
    if base:
        for k, v in base.items():
            _set_path(tree, k, v)
    if path:
        p = Path(path)
        if not p.is_file():
            raise ConfigError(
                f"config file {str(p)!r} does not exist (pass an existing YAML file to --config)"
            )
        try:
            loaded = yaml.safe_load(p.read_text()) or {}
        except yaml.YAMLError as e:
            raise ConfigError(f"config file {str(p)!r} is not valid YAML: {e}") from None
        if not isinstance(loaded, dict):
            raise ConfigError(
                f"config file {str(p)!r} must hold a mapping of sections, got {type(loaded).__name__}"
            )
        _merge(tree, loaded)
    for o in overrides:
        k, v = parse_override(o)
        _set_path(tree, k, v)
    return GraftConfig.from_dict(tree)


def _merge(dst: dict[str, Any], src: dict[str, Any]) -> None:
    for k, v in src.items():
        if isinstance(v, dict) and isinstance(dst.get(k), dict):
            _merge(dst[k], v)
        else:
            dst[k] = v
