"""``graft compile``: the same ``create_pipeline(config)`` as KFP v2 IR, for Vertex AI Pipelines or a self-hosted KFP.

``--target vertex`` writes a Vertex ``PipelineJob`` (JSON, pipeline root in ``runtimeConfig.gcsOutputDirectory``);
``--target kubeflow`` writes a KFP v2 ``PipelineSpec`` (YAML, pipeline root in ``defaultPipelineRoot``). Both come
from TFX's ``KubeflowV2DagRunner`` (pipeline spec schema 2.1, which KFP v2 backends read). What the spec carries:

* one task per component, each ``python -m tfx.orchestration.kubeflow.v2.container.kubeflow_v2_run_executor
  --executor_class_path CLASS`` in the image (``--image`` / ``kubeflow.image``; ``kubeflow.trainer_image`` for the
  Trainer if set). The user functions travel by dotted path (``preprocessing_fn=``, ``run_fn=``): the image holds
  the code, so nothing is packaged into a bucket at compile time;
* the Trainer task's resources: ``kubeflow.trainer_cpu`` / ``trainer_memory_gb`` and
  ``trainer_accelerator_count`` GPUs of ``trainer_accelerator_type`` (Vertex) or ``kfp_accelerator_resource`` (a
  Kubernetes resource, self-hosted KFP), set with TFX's ``with_platform_config(ResourceSpec)``;
* the Beam args of ``config.beam`` (DirectRunner inside each task by default; ``beam.runner=dataflow`` /
  ``flink`` / ``spark`` for scale-out) on every Beam-powered task;
* the baseline as TFX's ``LatestBlessedModelStrategy`` (two resolver tasks: the only resolver policy KFP v2
  compiles), so each scheduled run compares its candidate with the last blessed model.

No path of the compiling machine may reach the spec: ``data.path``, ``kubeflow.pipeline_root``,
``push.serving_root`` (the Pusher writes ``<serving_root>/<model_name>/<version>``) and the backbone must be
remote (gs://, or s3:// / minio:// on KFP), and the compiled document is scanned for local paths before it is
written. ``local_paths=True`` (``--local-paths``) lifts both checks for ``graft submit --target local``, which runs
the compiled spec on this machine.

Backbone metadata (input size, value range, ...) is needed at compile time, without loading a remote module
here when that can be avoided. In order: ``--backbone-info FILE`` (the JSON of ``graft backbone show HANDLE
--json``, produced once wherever the module is reachable: hermetic compiles, e.g. in CI); for a gs:// handle, the
``graft_backbone.json`` beside the module (Graft writes it next to the modules it builds; read with tf.io.gfile,
trusted only while it matches ``saved_model.pb``); otherwise the module is loaded once (a URL is downloaded into
the local hub cache, a gs:// module is read in place). The spec's backbone path is always the handle itself, which
each Trainer task resolves again.

Reading ``data.path`` at compile time is needed too: the layout (folders, pre-split, CSV, TFRecords), the span
pattern (``span-{SPAN}``: each run's ExampleGen driver then picks the newest span) and the class names come from
it, so the compiling machine needs read access to the bucket (``gcloud auth application-default login``).
"""

from __future__ import annotations

import json
import os
import re
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from graft.pipeline.config import ConfigError, GraftConfig, check_image

TARGETS = ("vertex", "kubeflow")
TRAINER_ID = "Trainer"
# Remote URI schemes each target's workers can read.
REMOTE_SCHEMES = {"vertex": ("gs://",), "kubeflow": ("gs://", "s3://", "minio://")}
DEFAULT_OUT = {"vertex": "pipeline.json", "kubeflow": "pipeline.yaml"}


class CompileError(ConfigError):
    """The config cannot be compiled for a cluster. The message names the key and the fix."""


@dataclass
class CompileResult:
    path: str
    target: str
    image: str
    trainer_image: str
    pipeline_root: str
    serving_dir: str
    tasks: list[str]
    backbone: dict[str, Any]
    beam_args: list[str]
    trainer_resources: dict[str, Any]
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)

    def describe(self) -> str:
        acc = self.trainer_resources.get("accelerator")
        rows = [
            (
                "wrote",
                f"{self.path} ({'Vertex PipelineJob' if self.target == 'vertex' else 'KFP PipelineSpec'})",
            ),
            ("tasks", f"{len(self.tasks)}: {', '.join(self.tasks)}"),
            (
                "image",
                self.image
                + (f" (Trainer: {self.trainer_image})" if self.trainer_image != self.image else ""),
            ),
            (
                "Trainer",
                f"{self.trainer_resources['cpu']:g} vCPU, {self.trainer_resources['memory_gb']:g} GB"
                + (f", {acc['count']} x {acc['type']}" if acc else ", no accelerator"),
            ),
            ("beam args", " ".join(self.beam_args) or "-"),
            ("pipeline root", self.pipeline_root),
            ("pushes to", self.serving_dir + "/<version>"),
            (
                "backbone",
                f"{self.backbone['path']} ("
                + (
                    f"text, seq_length {self.backbone['seq_length']}"
                    if self.backbone.get("task") == "text"
                    else f"{self.backbone['height']}x{self.backbone['width']}"
                )
                + f", metadata from {self.backbone['metadata_from']})",
            ),
        ]
        text = "\n".join(f"{k + ':':<15}{v}" for k, v in rows)
        return text + "".join(f"\nnote: {n}" for n in self.notes)


# ---- where things live ---------------------------------------------------------------------------------------
_PIPELINE_NAME = re.compile(r"[a-z0-9][a-z0-9-]{0,127}")  # KubeflowV2DagRunner's pipeline-name rule


def is_remote(path: str) -> bool:
    return bool(re.match(r"^[a-z][a-z0-9+.-]*://", path or "")) and not path.startswith("file://")


def _require_remote(value: str, key: str, target: str, local_paths: bool, example: str) -> None:
    if local_paths:
        return
    schemes = REMOTE_SCHEMES[target]
    if not value:
        raise CompileError(f"config key '{key}': required to compile for {target} (e.g. {example})")
    if not value.startswith(schemes):
        where = "a path on this machine" if not is_remote(value) else f"not readable by {target} workers"
        raise CompileError(
            f"config key '{key}': {value!r} is {where}; the cluster's tasks cannot reach it. Use "
            f"{' or '.join(s + '...' for s in schemes)} (e.g. {example}). To run the compiled spec on this machine "
            "instead, compile with --local-paths and use `graft submit --target local`."
        )


def join_uri(base: str, *parts: str) -> str:
    if is_remote(base):
        return "/".join([base.rstrip("/"), *parts])
    return str(Path(base).expanduser().absolute().joinpath(*parts))


# ---- the backbone at compile time ------------------------------------------------------------------------------
def cluster_backbone(
    cfg: GraftConfig, backbone_info: str | os.PathLike | dict | None = None, *, local_paths: bool = False
):
    """The BackboneInfo the compiled spec carries (see the module docstring for where it comes from)."""
    from graft.components import backbones as bb

    handle = cfg.backbone.handle
    kind = bb.handle_kind(handle)  # empty handle -> BackboneError naming the fix
    remote = kind in ("url", "gcs")
    if not remote and not local_paths:
        where = (
            "an offline module built on this machine" if kind == "offline" else "a directory on this machine"
        )
        raise CompileError(
            f"config key 'backbone.handle': {handle!r} is {where}; the cluster's Trainer cannot read it. Copy the "
            'module directory to a bucket (e.g. `gsutil -m cp -r "$(graft backbone tiny | tail -1)" '
            "gs://BUCKET/hub/tiny_32`; graft_backbone.json travels with it) and set backbone.handle to that gs:// "
            "path, or use a TF Hub URL."
        )
    from graft.components.backbones.text_resolve import TextBackboneInfo
    from graft.pipeline import task as task_mod

    text = task_mod.detect_task(cfg) == task_mod.TEXT
    info_class = TextBackboneInfo if text else bb.BackboneInfo
    if backbone_info is not None:
        if isinstance(backbone_info, dict):
            info = info_class.from_dict(dict(backbone_info))
        else:
            p = Path(backbone_info)
            try:
                info = info_class.from_json(p.read_text(encoding="utf-8"))
            except OSError as e:
                raise CompileError(f"--backbone-info {p}: cannot read it: {e.strerror or e}") from None
            except bb.BackboneError as e:
                raise CompileError(
                    f"--backbone-info {p}: {e}. Write it with `graft backbone show HANDLE --json`."
                ) from None
        size = None if text else cfg.backbone.input_size
        if text and info.seq_length != cfg.backbone.seq_length:
            raise CompileError(
                f"config key 'backbone.seq_length': {cfg.backbone.seq_length}, but the backbone metadata says "
                f"{info.seq_length}; set backbone.seq_length to it or describe the preprocessing model built for it"
            )
        if size is not None and (info.height, info.width) != (size, size):
            raise CompileError(
                f"config key 'backbone.input_size': {size}, but the backbone metadata says "
                f"{info.height}x{info.width}; remove backbone.input_size or fix the metadata file"
            )
        info.metadata_from = f"{info.metadata_from or 'metadata file'} (via --backbone-info)"
        if info.handle != handle:
            info.metadata_from += f", described {info.handle!r}"
        info.handle = handle
    else:
        try:
            info = task_mod.resolve_backbone_for(cfg)
        except bb.BackboneError as e:
            if not remote:
                raise
            raise bb.BackboneError(
                f"{e} To compile without reading the module here, pass --backbone-info FILE: the JSON of "
                f"`graft backbone show {handle} --json`, run once wherever the module is reachable."
            ) from None
    if remote:
        # The Trainer task resolves the handle itself; this machine's hub cache must not reach the spec.
        info.path = handle
        info.resolved_path = ""
        info.source = kind
        if text and bb.handle_kind(info.preprocess_handle) in ("url", "gcs"):
            info.preprocess_path = info.preprocess_handle
    return info


# ---- local paths in a compiled document ------------------------------------------------------------------------
def machine_paths(extra: tuple[str, ...] = ()) -> list[str]:
    """Absolute directories of this machine that must never appear in a cluster spec."""
    from graft.components import backbones as bb

    cands = [
        os.getcwd(),
        str(Path.home()),
        tempfile.gettempdir(),
        sys.prefix,
        sys.base_prefix,
        str(bb.cache_dir()),
        *extra,
    ]
    out = set()
    for c in cands:
        if c and c not in ("/",):
            out.add(os.path.abspath(c))
            out.add(os.path.realpath(c))
    return sorted(out, key=len, reverse=True)


_LOCAL_RE = re.compile(r"^(?:/(?!/)|~|file:|[A-Za-z]:\\)")


def find_local_paths(doc: Any, extra: tuple[str, ...] = ()) -> list[tuple[str, str]]:
    """(location, string) of every string in ``doc`` that is or contains a local path.

    JSON text inside strings (TFX exec properties such as ``custom_config``) is searched too.
    """
    # A machine path counts where a path can start: at the start, after white space, '=', ',' or a quote.
    marker_re = re.compile(
        r"(?:^|[\s=,'\"])(?:" + "|".join(re.escape(m) for m in machine_paths(extra)) + r")(?:$|[/\s,'\"])"
    )
    found: list[tuple[str, str]] = []

    def visit(node: Any, where: str) -> None:
        if isinstance(node, dict):
            for k, v in node.items():
                visit(v, f"{where}.{k}" if where else str(k))
        elif isinstance(node, list):
            for i, v in enumerate(node):
                visit(v, f"{where}[{i}]")
        elif isinstance(node, str):
            s = node.strip()
            if s[:1] in "{[":
                try:
                    inner = json.loads(s)
                except ValueError:
                    inner = None
                if isinstance(inner, (dict, list)):
                    visit(inner, where + "<json>")
                    return
            if _LOCAL_RE.match(s) or marker_re.search(s):
                found.append((where, node))

    visit(doc, "")
    return found


# ---- Trainer resources -----------------------------------------------------------------------------------------
def trainer_resource_spec(cfg: GraftConfig, target: str):
    from kfp.pipeline_spec import pipeline_spec_pb2 as pb

    kf = cfg.kubeflow
    rs = pb.PipelineDeploymentConfig.PipelineContainerSpec.ResourceSpec(
        cpu_limit=float(kf.trainer_cpu), memory_limit=float(kf.trainer_memory_gb)
    )
    if kf.trainer_accelerator_count:
        rs.accelerator.type = (
            kf.trainer_accelerator_type if target == "vertex" else kf.kfp_accelerator_resource
        )
        rs.accelerator.count = kf.trainer_accelerator_count
    return rs


# ---- compile ---------------------------------------------------------------------------------------------------
def compile_pipeline(
    config: GraftConfig,
    target: str = "vertex",
    out: str | os.PathLike | None = None,
    *,
    image: str | None = None,
    backbone_info: str | os.PathLike | dict | None = None,
    local_paths: bool = False,
) -> CompileResult:
    """Compile ``create_pipeline(config)`` for ``target`` and write it to ``out``. See the module docstring."""
    import graft  # noqa: F401, I001  (legacy Keras before TensorFlow)

    from tfx.orchestration.kubeflow.v2 import kubeflow_v2_dag_runner as kfp_runner
    from tfx.orchestration.kubeflow.v2 import pipeline_builder

    from graft.pipeline import dag, dag_inputs

    if target not in TARGETS:
        raise CompileError(f"--target {target!r}: use one of {', '.join(TARGETS)}")
    cfg = GraftConfig.from_json(config.to_json())  # a private copy
    kf = cfg.kubeflow
    image = image or kf.image
    problems: list[str] = []  # every missing or local key at once, not one per compile

    def collect(check, *args) -> None:
        try:
            check(*args)
        except ConfigError as e:
            problems.append(str(e))

    if not _PIPELINE_NAME.fullmatch(cfg.name):  # TFX's own check says only "pipeline name % is illegal"
        fixed = re.sub(r"[^a-z0-9-]+", "-", cfg.name.lower()).strip("-")[:128] or "graft"
        problems.append(
            f"config key 'name': {cfg.name!r} cannot name a Kubeflow / Vertex pipeline: use lower-case letters, "
            f"digits and '-' (1-128, starting with a letter or digit), e.g. --set name={fixed}"
        )
    if not image:
        problems.append(
            "config key 'kubeflow.image': required (or pass --image): the image built from kubeflow/Dockerfile and "
            "pushed to a registry the cluster pulls from, e.g. us-central1-docker.pkg.dev/PROJECT/REPO/graft:1.0"
        )
    else:
        collect(check_image, image, "kubeflow.image")
    root = kf.pipeline_root
    collect(
        _require_remote,
        root,
        "kubeflow.pipeline_root",
        target,
        local_paths,
        "gs://BUCKET/graft/pipeline_root",
    )
    collect(
        _require_remote,
        cfg.push.serving_root,
        "push.serving_root",
        target,
        local_paths,
        "gs://BUCKET/graft/serving",
    )
    collect(_require_remote, cfg.data.path, "data.path", target, local_paths, "gs://BUCKET/graft/images")
    if len(problems) == 1:
        raise CompileError(problems[0])
    if problems:
        raise CompileError(
            f"{len(problems)} problems stop this compile:\n" + "\n".join(f"  - {p}" for p in problems)
        )
    kf.image = image
    trainer_image = kf.trainer_image or image
    notes: list[str] = []
    if image.endswith(":latest") or (":" not in image.rsplit("/", 1)[-1] and "@" not in image):
        notes.append(
            f"image {image!r} has no fixed tag: scheduled runs pull whatever it points to then; "
            "prefer an immutable tag or @sha256 digest"
        )
    if not root:
        root = str(cfg.pipeline_root)  # --local-paths without one: the local run root's
    serving_dir = (
        join_uri(cfg.push.serving_root, cfg.push.model_name)
        if cfg.push.serving_root
        else str(cfg.serving_model_dir)
    )
    info = cluster_backbone(cfg, backbone_info, local_paths=local_paths)
    if cfg.beam.runner == "direct" and not any(a.startswith("--runner") for a in cfg.beam.args):
        notes.append(
            "Beam runs in each task's own container (DirectRunner"
            + (
                ", in memory: one core; beam.direct_running_mode=multi_processing with beam.direct_num_workers=0 "
                "uses every core of the task's machine"
                if cfg.beam.direct_running_mode == "in_memory"
                else ""
            )
            + "); set beam.runner=dataflow (beam.dataflow.*) to scale ExampleGen, StatisticsGen, Transform and "
            "the Evaluator out"
        )

    # The data is read only when the config does not declare its layout (data.format, a TFRecord glob).
    hermetic = dag_inputs.declares_layout(cfg)
    if not hermetic:
        wanted = [
            "data.format=folders|tfrecord (or a TFRecord glob as data.path)",
            "data.use_spans=false (span-N/ folders: data.span_width)",
        ]
        if not cfg.data.classes:
            wanted.append("data.classes (for the per-class metrics)")
        notes.append(
            f"this compile read {cfg.data.path} to find its layout; to compile without touching the data (no "
            f"network, no credentials) set {', '.join(wanted)}"
        )
    try:
        inputs = dag_inputs.resolve(cfg, read_data=not hermetic)
    except ConfigError:
        raise
    except Exception as e:  # noqa: BLE001 - an unreachable data location: say what and how to avoid reading it
        raise CompileError(
            f"config key 'data.path': cannot read {cfg.data.path} at compile time ({type(e).__name__}: "
            f"{str(e).splitlines()[0][:200] if str(e) else e!r}). Check the path and your credentials "
            "(gcloud auth application-default login), or declare the layout so that the compile reads no data: "
            "data.format=folders|tfrecord with data.use_spans=false and data.classes=a,b,... (span-N/ folders: "
            "data.span_width instead of data.use_spans=false)"
        ) from e
    pipeline = dag.create_pipeline(
        cfg, info, inputs, pipeline_root=root, serving_dir=serving_dir, for_kubeflow=True
    )
    by_id = {c.id: c for c in pipeline.components}
    if TRAINER_ID not in by_id:  # pragma: no cover - dag.py wires it
        raise CompileError(f"the DAG has no {TRAINER_ID} component")
    by_id[TRAINER_ID].with_platform_config(trainer_resource_spec(cfg, target))
    for c in pipeline.components:
        module_file = c.exec_properties.get("module_file") if hasattr(c, "exec_properties") else None
        if module_file:  # pragma: no cover - the DAG uses dotted paths
            raise CompileError(
                f"{c.id} uses module_file={module_file!r}: Graft's image provides dotted paths"
            )

    default_image: Any = image
    if trainer_image != image:
        default_image = {TRAINER_ID: trainer_image, pipeline_builder.DEFAULT_IMAGE_PATH_KEY: image}
    runner = kfp_runner.KubeflowV2DagRunner(
        config=kfp_runner.KubeflowV2DagRunnerConfig(
            display_name=cfg.name, default_image=default_image, use_pipeline_spec_2_1=True
        ),
    )
    job = runner.run(pipeline, write_out=False)
    spec = job["pipelineSpec"]
    if target == "kubeflow":
        spec["defaultPipelineRoot"] = root

    if not local_paths:
        leaks = find_local_paths(job if target == "vertex" else spec, extra=(str(cfg.run_root),))
        if leaks:
            listed = "\n".join(f"  {w}: {s[:160]}" for w, s in leaks[:20])
            raise CompileError(
                f"the compiled spec would carry {len(leaks)} path(s) of this machine, which the cluster cannot "
                f"read:\n{listed}\nMake every path in the config remote (gs://...)."
            )

    out_path = Path(out or DEFAULT_OUT[target]).expanduser().absolute()
    _write(job, target, out_path)
    tasks = sorted(spec["root"]["dag"]["tasks"])
    rs = trainer_resource_spec(cfg, target)
    return CompileResult(
        path=str(out_path),
        target=target,
        image=image,
        trainer_image=trainer_image,
        pipeline_root=root,
        serving_dir=serving_dir,
        tasks=tasks,
        backbone=info.to_dict(),
        beam_args=dag.beam_pipeline_args(cfg),
        trainer_resources={
            "cpu": rs.cpu_limit,
            "memory_gb": rs.memory_limit,
            "accelerator": {"type": rs.accelerator.type, "count": rs.accelerator.count}
            if rs.accelerator.count
            else None,
        },
        notes=notes,
    )


def _write(job: dict, target: str, out: Path) -> None:
    """Vertex: the PipelineJob as JSON. KFP: the PipelineSpec as YAML (what KFP's own compiler writes)."""
    import yaml
    from tfx import version

    out.parent.mkdir(parents=True, exist_ok=True)
    if target == "vertex":
        text = json.dumps(job, indent=2, sort_keys=True) + "\n"
    else:
        spec = job["pipelineSpec"]
        header = (
            "# PIPELINE DEFINITION\n"
            f"# Name: {spec['pipelineInfo']['name']}\n"
            f"# Description: Graft, compiled by `graft compile --target kubeflow` (tfx-{version.__version__})\n"
        )
        text = header + yaml.safe_dump(spec, sort_keys=True)
    tmp = out.with_name(f".{out.name}.tmp{os.getpid()}")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, out)
