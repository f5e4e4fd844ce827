"""A compiled pipeline file as ``kfp.pipeline_spec`` protos.

Two files come out of ``graft compile``: a Vertex AI ``PipelineJob`` (JSON: ``displayName``, ``labels``,
``pipelineSpec``, ``runtimeConfig.gcsOutputDirectory``) and a KFP v2 ``PipelineSpec`` (YAML, with
``defaultPipelineRoot``). :func:`load` parses either one strictly (an unknown field is an error, as it is for the
services) and gives the pieces a runner needs: the tasks of the root DAG, each task's component and executor, and
a dependency order.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

EXECUTOR_CLASS_FLAG = "--executor_class_path"
# Flags of TFX's container entrypoints that are not Beam args.
_ENTRYPOINT_FLAGS = (
    EXECUTOR_CLASS_FLAG,
    "--json_serialized_invocation_args",
    "--json_serialized_inputs_spec_args",
)


class SpecError(ValueError):
    """A compiled pipeline file that cannot be read or run. The message names the file and the problem."""


@dataclass
class CompiledPipeline:
    path: str
    spec: Any  # pipeline_spec_pb2.PipelineSpec
    deployment: Any  # pipeline_spec_pb2.PipelineDeploymentConfig
    job: Any | None = None  # pipeline_spec_pb2.PipelineJob (Vertex JSON only)

    @property
    def kind(self) -> str:
        return "vertex" if self.job is not None else "kubeflow"

    @property
    def name(self) -> str:
        return self.spec.pipeline_info.name

    @property
    def pipeline_root(self) -> str:
        if self.job is not None and self.job.runtime_config.gcs_output_directory:
            return self.job.runtime_config.gcs_output_directory
        return self.spec.default_pipeline_root

    @property
    def tasks(self) -> dict[str, Any]:
        return dict(self.spec.root.dag.tasks)

    def component(self, task: str):
        ref = self.spec.root.dag.tasks[task].component_ref.name
        if ref not in self.spec.components:
            raise SpecError(f"{self.path}: task {task!r} refers to the unknown component {ref!r}")
        return self.spec.components[ref]

    def executor(self, task: str):
        comp = self.component(task)
        if comp.WhichOneof("implementation") == "dag":
            raise SpecError(f"{self.path}: task {task!r} is a sub-DAG; Graft's pipelines have none")
        label = comp.executor_label
        if label not in self.deployment.executors:
            raise SpecError(f"{self.path}: task {task!r} refers to the unknown executor {label!r}")
        return self.deployment.executors[label]

    def executor_kind(self, task: str) -> str:
        """'container', 'resolver', 'importer' or 'custom_job'."""
        return self.executor(task).WhichOneof("spec")

    def executor_class(self, task: str) -> str | None:
        """The ``--executor_class_path`` of a TFX container task."""
        ex = self.executor(task)
        if ex.WhichOneof("spec") != "container":
            return None
        args = list(ex.container.args)
        if EXECUTOR_CLASS_FLAG in args:
            i = args.index(EXECUTOR_CLASS_FLAG)
            return args[i + 1] if i + 1 < len(args) else None
        return None

    def beam_args(self, task: str) -> list[str]:
        """The args of a TFX container task after its entrypoint's own flags (TFX passes Beam args there)."""
        ex = self.executor(task)
        if ex.WhichOneof("spec") != "container":
            return []
        args = list(ex.container.args)
        out, i = [], 0
        while i < len(args):
            if args[i] in _ENTRYPOINT_FLAGS:
                i += 2
                continue
            out.append(args[i])
            i += 1
        return out

    def dependencies(self, task: str) -> set[str]:
        """Upstream tasks: ``dependentTasks`` plus every producer of an input artifact or parameter."""
        t = self.spec.root.dag.tasks[task]
        deps = set(t.dependent_tasks)
        for a in t.inputs.artifacts.values():
            if a.WhichOneof("kind") == "task_output_artifact":
                deps.add(a.task_output_artifact.producer_task)
        for p in t.inputs.parameters.values():
            if p.WhichOneof("kind") == "task_output_parameter":
                deps.add(p.task_output_parameter.producer_task)
        return deps

    def order(self) -> list[str]:
        """Tasks in dependency order (Kahn; ties by name, so the order is stable)."""
        tasks = self.tasks
        deps = {t: self.dependencies(t) for t in tasks}
        for t, ds in deps.items():
            unknown = sorted(ds - set(tasks))
            if unknown:
                raise SpecError(f"{self.path}: task {t!r} depends on unknown task(s) {unknown}")
        done: list[str] = []
        ready = sorted(t for t, ds in deps.items() if not ds)
        remaining = {t: set(ds) for t, ds in deps.items() if ds}
        while ready:
            t = ready.pop(0)
            done.append(t)
            for other in sorted(remaining):
                remaining[other].discard(t)
                if not remaining[other]:
                    del remaining[other]
                    ready.append(other)
            ready.sort()
        if remaining:
            raise SpecError(f"{self.path}: dependency cycle among {sorted(remaining)}")
        return done

    def images(self) -> dict[str, str]:
        """task -> container image (container tasks only)."""
        out = {}
        for t in self.tasks:
            ex = self.executor(t)
            if ex.WhichOneof("spec") == "container":
                out[t] = ex.container.image
        return out

    def as_dict(self) -> dict:
        """The file's content as plain data (the PipelineJob for Vertex, the PipelineSpec for KFP)."""
        from google.protobuf import json_format

        if self.job is not None:
            return json_format.MessageToDict(self.job)
        return json_format.MessageToDict(self.spec)


def _parse(message, data: dict, what: str, path: str):
    from google.protobuf import json_format

    try:
        json_format.ParseDict(data, message)
    except json_format.ParseError as e:
        raise SpecError(f"{path}: not a valid {what}: {e}") from None
    return message


def read_document(path: str | Path) -> dict:
    """The JSON (Vertex PipelineJob) or YAML (KFP PipelineSpec) document of a compiled file."""
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except OSError as e:
        raise SpecError(f"cannot read the compiled pipeline {p}: {e.strerror or e}") from None
    try:
        if p.suffix.lower() in (".yaml", ".yml"):
            import yaml

            doc = yaml.safe_load(text)
        else:
            doc = json.loads(text)
    except Exception as e:  # noqa: BLE001 - any parse error is a bad file
        raise SpecError(f"{p}: not a JSON/YAML pipeline file ({type(e).__name__}: {e})") from None
    if not isinstance(doc, dict):
        raise SpecError(f"{p}: expected a mapping at the top level, got {type(doc).__name__}")
    return doc


def load(path: str | Path) -> CompiledPipeline:
    """Parse a compiled pipeline file into protos (strict: unknown fields are errors)."""
    from kfp.pipeline_spec import pipeline_spec_pb2 as pb

    path = str(path)
    doc = read_document(path)
    job = None
    if "pipelineSpec" in doc:  # a PipelineJob (Vertex)
        job = _parse(pb.PipelineJob(), doc, "PipelineJob", path)
        spec_dict = doc["pipelineSpec"]
    elif "root" in doc and "pipelineInfo" in doc:  # a PipelineSpec (KFP YAML)
        spec_dict = doc
    else:
        raise SpecError(
            f"{path}: neither a Vertex PipelineJob (pipelineSpec + runtimeConfig) nor a KFP PipelineSpec (root + "
            "pipelineInfo); compile one with `graft compile`"
        )
    spec = _parse(pb.PipelineSpec(), spec_dict, "PipelineSpec", path)
    deployment = _parse(
        pb.PipelineDeploymentConfig(), spec_dict.get("deploymentSpec", {}), "deploymentSpec", path
    )
    if not spec.root.dag.tasks:
        raise SpecError(f"{path}: the pipeline has no tasks")
    return CompiledPipeline(path=path, spec=spec, deployment=deployment, job=job)


_PLACEHOLDER_RE = re.compile(r"\{\{\$[^}]*\}\}")


def placeholders(text: str) -> list[str]:
    """KFP runtime placeholders in a string, e.g. ``{{$}}``, ``{{$.inputs.artifacts['x'].uri}}``."""
    return _PLACEHOLDER_RE.findall(text)
