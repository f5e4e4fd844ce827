"""Run a compiled KFP v2 / Vertex pipeline file on this machine, task by task, as the cluster would.

No cluster is needed to find out whether a compiled spec runs: this module plays the part of the KFP v2 launcher.
For each task of the root DAG, in dependency order:

* **container tasks** run the spec's exact ``command`` + ``args`` as a subprocess (``python -m
  tfx.orchestration.kubeflow.v2.container.kubeflow_v2_run_executor --executor_class_path CLASS
  --json_serialized_invocation_args {{$}} --json_serialized_inputs_spec_args ... <beam args>``), with ``{{$}}``
  (and any other placeholder) replaced by the task's ``ExecutorInput`` as the launcher builds it: input artifacts
  (name, type, uri, metadata) from the upstream tasks' outputs, parameter values from the spec, fresh output
  artifacts under ``<pipeline_root>/<run_id>/<task>_<execution>/<output key>``, and ``outputs.output_file``. A
  ``lifecycle.preCacheCheck`` hook (FileBasedExampleGen's driver: newest span, fingerprint) runs first with the
  same input; its ``ExecutorOutput`` updates the task's parameters and output artifact before the executor runs,
  as the service does. After the executor, its ``ExecutorOutput`` (artifact metadata such as ``span`` or
  ``blessed``) becomes what downstream tasks receive;
* **resolver tasks** (the two halves of TFX's ``LatestBlessedModelStrategy``) evaluate the spec's
  ``outputArtifactQueries`` (``schema_title="tfx.ModelBlessing" AND state=LIVE AND metadata.blessed.number_value=1``,
  then ``name="{{$.inputs.artifacts['input'].metadata['current_model_id']}}"``) against a local ML Metadata store
  (sqlite) that records every artifact and execution of every local run, scoped to the pipeline's context. On a
  first run nothing matches and the Evaluator gets no baseline;
* **importer tasks** register their URI as an artifact (reused unless ``reimport``).

Deliberate differences from a cluster: the command's ``python`` is this interpreter (``sys.executable``, whose
environment must hold what the image holds; ``graft.kubeflow.image.check`` says whether it does) and the image's
ENV (``graft.kubeflow.image.IMAGE_ENV``) is set; tasks run one at a time; nothing is cached (every task executes).
The spec must have been compiled with ``--local-paths`` (a gs:// pipeline root cannot be written here).

The local store (``<root>/metadata.sqlite``) uses Vertex ML Metadata's vocabulary: artifacts typed by their schema
title (``tfx.Model``), named ``projects/local/locations/local/metadataStores/default/artifacts/<uuid>``, with the
runtime metadata as custom properties; contexts ``system.Pipeline`` (the pipeline's name) and
``system.PipelineRun`` (the run id); executions ``system.ContainerExecution`` / ``system.ResolverExecution`` /
``system.ImporterExecution`` with ``task_name`` and INPUT / OUTPUT events keyed by the input / output names.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from graft import errors
from graft.kubeflow import spec as spec_mod

ARTIFACT_NAME = "projects/local/locations/local/metadataStores/default/artifacts/{}"
PIPELINE_CONTEXT = "system.Pipeline"
RUN_CONTEXT = "system.PipelineRun"
EXECUTION_TYPES = {
    "container": "system.ContainerExecution",
    "resolver": "system.ResolverExecution",
    "importer": "system.ImporterExecution",
}
_PYTHON_NAMES = ("python", "python3", "python3.10")


class LocalRunError(RuntimeError):
    """A task of the local run failed, or the spec uses something this runner does not do."""

    def __init__(self, message: str, task: str | None = None, data_validation: bool = False):
        super().__init__(message)
        self.task = task
        self.data_validation = data_validation


# ---- artifacts as runtime protos and as MLMD records -----------------------------------------------------------
def type_title(type_schema) -> str:
    """'tfx.Examples' for an ArtifactTypeSchema (schema_title, or the title of an instance_schema)."""
    kind = type_schema.WhichOneof("kind")
    if kind == "schema_title":
        return type_schema.schema_title
    if kind == "instance_schema":
        m = re.search(r"^title:\s*(\S+)", type_schema.instance_schema, re.M)
        if m:
            return m.group(1)
    raise LocalRunError(f"cannot tell the artifact type of {type_schema}")


def _struct_to_dict(struct) -> dict[str, Any]:
    from google.protobuf import json_format

    return json_format.MessageToDict(struct)


def _to_mlmd_value(target, value: Any) -> None:
    if isinstance(value, bool):
        target.bool_value = value
    elif isinstance(value, (int, float)):
        target.double_value = float(value)
    elif isinstance(value, str):
        target.string_value = value
    else:
        from google.protobuf import struct_pb2

        s = struct_pb2.Struct()
        s.update({"value": value} if not isinstance(value, dict) else value)
        target.struct_value.CopyFrom(s)


def _from_mlmd_value(v) -> Any:
    from google.protobuf import json_format

    which = v.WhichOneof("value")
    if which in ("int_value", "double_value"):
        return float(getattr(v, which))
    if which == "struct_value":
        d = json_format.MessageToDict(v.struct_value)
        return d["value"] if set(d) == {"value"} else d
    return getattr(v, which) if which else None


class LocalMetadata:
    """The local stand-in for Vertex ML Metadata (see the module docstring)."""

    def __init__(self, path: str | Path):
        from ml_metadata import metadata_store
        from ml_metadata.proto import metadata_store_pb2 as mpb

        self.path = str(path)
        cfg = mpb.ConnectionConfig()
        cfg.sqlite.filename_uri = self.path
        cfg.sqlite.connection_mode = mpb.SqliteMetadataSourceConfig.READWRITE_OPENCREATE
        self.store = metadata_store.MetadataStore(cfg)
        self._mpb = mpb
        self._ms = metadata_store
        self._types: dict[tuple[str, str], int] = {}
        self._ids: dict[str, int] = {}

    def id_of(self, name: str) -> int:
        """The MLMD id of an artifact from its runtime name."""
        if name not in self._ids:
            opts = self._ms.ListOptions(filter_query=f"name = {_quote(name, 'artifact')}")
            found = self.store.get_artifacts(list_options=opts)
            if len(found) != 1:
                raise LocalRunError(f"no artifact named {name!r} in {self.path}")
            self._ids[name] = found[0].id
        return self._ids[name]

    def _type_id(self, kind: str, name: str) -> int:
        key = (kind, name)
        if key not in self._types:
            mpb = self._mpb
            if kind == "artifact":
                self._types[key] = self.store.put_artifact_type(mpb.ArtifactType(name=name))
            elif kind == "execution":
                self._types[key] = self.store.put_execution_type(mpb.ExecutionType(name=name))
            else:
                self._types[key] = self.store.put_context_type(mpb.ContextType(name=name))
        return self._types[key]

    def context(self, type_name: str, name: str) -> int:
        existing = (
            self.store.get_context_by_type_and_name(type_name, name) if self._has_type(type_name) else None
        )
        if existing is not None:
            return existing.id
        [cid] = self.store.put_contexts(
            [self._mpb.Context(type_id=self._type_id("context", type_name), name=name)]
        )
        return cid

    def _has_type(self, context_type: str) -> bool:
        try:
            self.store.get_context_type(context_type)
            return True
        except Exception:  # noqa: BLE001 - NotFoundError: not registered yet
            return False

    def new_artifact(
        self, title: str, uri: str, metadata: dict, state: str, contexts: list[int]
    ) -> tuple[int, str]:
        """Record an artifact in the pipeline's and the run's contexts; returns (id, runtime name)."""
        mpb = self._mpb
        # MLMD fixes a name once written, so it is chosen before the id is known (Vertex's are opaque too).
        name = ARTIFACT_NAME.format(uuid.uuid4().hex)
        a = mpb.Artifact(
            type_id=self._type_id("artifact", title), uri=uri, name=name, state=getattr(mpb.Artifact, state)
        )
        for k, v in metadata.items():
            _to_mlmd_value(a.custom_properties[k], v)
        [aid] = self.store.put_artifacts([a])
        self._ids[name] = aid
        self.store.put_attributions_and_associations(
            [mpb.Attribution(context_id=c, artifact_id=aid) for c in contexts], []
        )
        return aid, name

    def update_artifact(self, aid: int, uri: str | None, metadata: dict, state: str) -> None:
        [a] = self.store.get_artifacts_by_id([aid])
        if uri is not None:
            a.uri = uri
        a.state = getattr(self._mpb.Artifact, state)
        for k, v in metadata.items():
            _to_mlmd_value(a.custom_properties[k], v)
        self.store.put_artifacts([a])

    def runtime_artifact(self, aid: int):
        """The RuntimeArtifact a task receives for a stored artifact (without a type: the consumer sets it)."""
        from kfp.pipeline_spec import pipeline_spec_pb2 as pb

        [a] = self.store.get_artifacts_by_id([aid])
        ra = pb.RuntimeArtifact(name=a.name, uri=a.uri)
        ra.metadata.update({k: _from_mlmd_value(v) for k, v in a.custom_properties.items()})
        return ra

    def query(self, filter_query: str, limit: int = 1) -> list[int]:
        """Artifact ids matching an MLMD filter, newest first."""
        opts = self._ms.ListOptions(
            limit=limit, order_by=self._ms.OrderByField.ID, is_asc=False, filter_query=filter_query
        )
        return [a.id for a in self.store.get_artifacts(list_options=opts)]

    def start_execution(self, kind: str, task: str, run_id: str, contexts: list[int], props: dict) -> int:
        mpb = self._mpb
        e = mpb.Execution(
            type_id=self._type_id("execution", EXECUTION_TYPES[kind]),
            name=f"{run_id}/{task}",
            last_known_state=mpb.Execution.RUNNING,
        )
        e.custom_properties["task_name"].string_value = task
        e.custom_properties["run_id"].string_value = run_id
        for k, v in props.items():
            e.custom_properties[k].string_value = str(v)
        [eid] = self.store.put_executions([e])
        self.store.put_attributions_and_associations(
            [], [mpb.Association(context_id=c, execution_id=eid) for c in contexts]
        )
        return eid

    def finish_execution(
        self, eid: int, state: str, inputs: dict[str, list[int]], outputs: dict[str, list[int]]
    ) -> None:
        mpb = self._mpb
        [e] = self.store.get_executions_by_id([eid])
        e.last_known_state = getattr(mpb.Execution, state)
        self.store.put_executions([e])
        events = []
        for kind, mapping in ((mpb.Event.INPUT, inputs), (mpb.Event.OUTPUT, outputs)):
            for key, ids in mapping.items():
                for i, aid in enumerate(ids):
                    ev = mpb.Event(artifact_id=aid, execution_id=eid, type=kind)
                    ev.path.steps.add().key = key
                    ev.path.steps.add().index = i
                    events.append(ev)
        if events:
            self.store.put_events(events)


# ---- resolver queries ------------------------------------------------------------------------------------------
def _quote(value: str, where: str) -> str:
    if "'" in value:
        raise LocalRunError(f"{where}: cannot query for a value with a quote: {value!r}")
    return f"'{value}'"


_CLAUSES = (
    (re.compile(r'^schema_title\s*=\s*"([^"]*)"$'), lambda m, w: f"type = {_quote(m[1], w)}"),
    (re.compile(r"^state\s*=\s*([A-Z_]+)$"), lambda m, w: f"state = {m[1]}"),
    (
        re.compile(r"^metadata\.([A-Za-z0-9_]+)\.number_value\s*=\s*(-?[0-9][0-9.eE+-]*)$"),
        lambda m, w: f"custom_properties.{m[1]}.double_value = {float(m[2])!r}",
    ),
    (
        re.compile(r'^metadata\.([A-Za-z0-9_]+)\.string_value\s*=\s*"([^"]*)"$'),
        lambda m, w: f"custom_properties.{m[1]}.string_value = {_quote(m[2], w)}",
    ),
    (re.compile(r'^name\s*=\s*"([^"]*)"$'), lambda m, w: f"name = {_quote(m[1], w)}"),
    (re.compile(r'^uri\s*=\s*"([^"]*)"$'), lambda m, w: f"uri = {_quote(m[1], w)}"),
)


def translate_filter(kfp_filter: str, pipeline_name: str, where: str = "resolver") -> str:
    """A resolver's artifact filter (Vertex ML Metadata syntax) as an MLMD filter query in the pipeline's context."""
    out = []
    for clause in re.split(r"\s+AND\s+", kfp_filter.strip()):
        for pattern, build in _CLAUSES:
            m = pattern.match(clause.strip())
            if m:
                out.append(build(m, where))
                break
        else:
            raise LocalRunError(f"{where}: this local runner cannot evaluate the filter clause {clause!r}")
    out.append(f"contexts_a.type = '{PIPELINE_CONTEXT}' AND contexts_a.name = {_quote(pipeline_name, where)}")
    return " AND ".join(out)


# ---- results ---------------------------------------------------------------------------------------------------
@dataclass
class TaskResult:
    task: str
    kind: str
    state: str
    seconds: float = 0.0
    execution_id: int | None = None
    executor_class: str | None = None
    # output key -> [{name, type, uri, metadata}]
    outputs: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    log: str | None = None


@dataclass
class LocalRunResult:
    run_id: str
    pipeline: str
    status: str
    pipeline_root: str
    metadata_path: str
    tasks: list[TaskResult]
    seconds: float
    error: str | None = None

    def _outputs_of_type(self, title: str) -> list[dict[str, Any]]:
        """Artifacts of a type that container tasks produced (resolvers hand out older ones)."""
        return [
            a
            for t in self.tasks
            if t.kind == "container"
            for arts in t.outputs.values()
            for a in arts
            if a["type"] == title
        ]

    @property
    def blessed(self) -> bool | None:
        b = self._outputs_of_type("tfx.ModelBlessing")
        return None if not b else b[-1]["metadata"].get("blessed") == 1

    @property
    def pushed(self) -> bool | None:
        p = self._outputs_of_type("tfx.PushedModel")
        return None if not p else p[-1]["metadata"].get("pushed") == 1

    @property
    def pushed_destination(self) -> str | None:
        p = self._outputs_of_type("tfx.PushedModel")
        return p[-1]["metadata"].get("pushed_destination") if p and self.pushed else None

    def task(self, name: str) -> TaskResult:
        return next(t for t in self.tasks if t.task == name)

    def to_dict(self) -> dict[str, Any]:
        d = {k: v for k, v in self.__dict__.items() if k != "tasks"}
        d["tasks"] = [t.__dict__ for t in self.tasks]
        d.update(blessed=self.blessed, pushed=self.pushed, pushed_destination=self.pushed_destination)
        return d

    def render(self) -> str:
        lines = [f"[graft] local run {self.run_id} of {self.pipeline}: {self.status} in {self.seconds:.0f} s"]
        if self.error:
            lines.append(f"[graft] {self.error}")
        if self.blessed is not None:
            lines.append(f"[graft] blessed: {'yes' if self.blessed else 'NO'}")
        if self.pushed:
            lines.append(f"[graft] pushed to {self.pushed_destination}")
        elif self.pushed is False:
            lines.append("[graft] nothing pushed")
        lines.append(f"[graft] metadata: {self.metadata_path}")
        return "\n".join(lines)


# ---- the runner ------------------------------------------------------------------------------------------------
def _check_supported(c: spec_mod.CompiledPipeline) -> None:
    for name, t in c.tasks.items():
        if t.trigger_policy.condition:
            raise LocalRunError(
                f"task {name!r} has a trigger condition; this local runner does not evaluate them"
            )
        if t.WhichOneof("iterator"):
            raise LocalRunError(f"task {name!r} is a loop; this local runner does not run loops")
        kind = c.executor_kind(name)
        if kind not in EXECUTION_TYPES:
            raise LocalRunError(
                f"task {name!r} is a {kind} task; this local runner runs container/resolver/importer"
            )
        if kind == "container" and not c.executor(name).container.command:
            raise LocalRunError(
                f"task {name!r} relies on its image's ENTRYPOINT (no command in the spec); it cannot run here"
            )


def _root_parameter(c: spec_mod.CompiledPipeline, name: str):
    """(kind, value) of a pipeline-level parameter: from the PipelineJob's runtimeConfig, else the default."""
    if c.job is not None:
        rc = c.job.runtime_config
        if name in rc.parameter_values:
            return "struct", rc.parameter_values[name]
        if name in rc.parameters:
            return "legacy", rc.parameters[name]
    defs = c.spec.root.input_definitions.parameters
    if name in defs and defs[name].HasField("default_value"):
        return "struct", defs[name].default_value
    raise LocalRunError(f"pipeline parameter {name!r} has no value (set it in runtimeConfig)")


class _Runner:
    def __init__(
        self, compiled, root: Path, pipeline_root: str, run_id: str, python: str, env: dict, quiet: bool
    ):
        self.c = compiled
        self.root = root
        self.pipeline_root = pipeline_root
        self.run_id = run_id
        self.python = python
        self.env = env
        self.quiet = quiet
        self.md = LocalMetadata(root / "metadata.sqlite")
        self.contexts = [
            self.md.context(PIPELINE_CONTEXT, compiled.name),
            self.md.context(RUN_CONTEXT, run_id),
        ]
        self.error: LocalRunError | None = None
        self.logs = root / "runs" / run_id / "logs"
        self.logs.mkdir(parents=True, exist_ok=True)
        # task -> output key -> [RuntimeArtifact]; task -> output parameter -> google.protobuf.Value
        self.outputs: dict[str, dict[str, list]] = {}
        self.out_params: dict[str, dict[str, Any]] = {}
        self.pending: dict[str, list[int]] = {}  # task -> output artifacts registered before it ran

    def say(self, text: str) -> None:
        if not self.quiet:
            print(f"[graft] {text}", file=sys.stderr, flush=True)

    # -- inputs ---------------------------------------------------------------------------------------------------
    def _input_artifacts(self, task: str) -> dict[str, list]:
        comp = self.c.component(task)
        t = self.c.spec.root.dag.tasks[task]
        out = {}
        for key, a in t.inputs.artifacts.items():
            if a.WhichOneof("kind") != "task_output_artifact":
                raise LocalRunError(
                    f"task {task!r}: input {key!r} comes from the pipeline's inputs; not supported"
                )
            src = a.task_output_artifact
            arts = []
            for ra in self.outputs.get(src.producer_task, {}).get(src.output_artifact_key, []):
                copy = type(ra)()
                copy.CopyFrom(ra)
                copy.type.CopyFrom(comp.input_definitions.artifacts[key].artifact_type)
                arts.append(copy)
            out[key] = arts
        return out

    def _executor_input(self, task: str, out_dir: str) -> tuple[Any, dict[str, list[int]]]:
        from kfp.pipeline_spec import pipeline_spec_pb2 as pb

        comp = self.c.component(task)
        t = self.c.spec.root.dag.tasks[task]
        ei = pb.ExecutorInput()
        for key, arts in self._input_artifacts(task).items():
            lst = ei.inputs.artifacts[key]
            for ra in arts:
                lst.artifacts.add().CopyFrom(ra)
        for key, p in t.inputs.parameters.items():
            kind = p.WhichOneof("kind")
            if kind == "runtime_value":
                which = p.runtime_value.WhichOneof("value")
                if which == "constant":
                    ei.inputs.parameter_values[key].CopyFrom(p.runtime_value.constant)
                elif which == "constant_value":
                    ei.inputs.parameters[key].CopyFrom(p.runtime_value.constant_value)
                else:
                    vk, v = _root_parameter(self.c, p.runtime_value.runtime_parameter)
                    (ei.inputs.parameter_values if vk == "struct" else ei.inputs.parameters)[key].CopyFrom(v)
            elif kind == "component_input_parameter":
                vk, v = _root_parameter(self.c, p.component_input_parameter)
                (ei.inputs.parameter_values if vk == "struct" else ei.inputs.parameters)[key].CopyFrom(v)
            elif kind == "task_output_parameter":
                src = p.task_output_parameter
                producer = src.producer_task
                if producer not in self.out_params and producer.endswith("_task"):
                    producer = producer[: -len("_task")]  # TFX names the producer '<id>_task'
                value = self.out_params.get(producer, {}).get(src.output_parameter_key)
                if value is None:
                    raise LocalRunError(
                        f"task {task!r}: no output parameter {src.output_parameter_key!r} of {producer!r}"
                    )
                ei.inputs.parameter_values[key].CopyFrom(value)
            else:
                raise LocalRunError(f"task {task!r}: parameter {key!r} of kind {kind} is not supported here")
        out_ids: dict[str, list[int]] = {}
        for key, od in comp.output_definitions.artifacts.items():
            uri = f"{out_dir}/{key}"
            aid, name = self.md.new_artifact(type_title(od.artifact_type), uri, {}, "PENDING", self.contexts)
            ra = ei.outputs.artifacts[key].artifacts.add(name=name, uri=uri)
            ra.type.CopyFrom(od.artifact_type)
            out_ids[key] = [aid]
            self.pending.setdefault(task, []).append(aid)
        for key in comp.output_definitions.parameters:
            ei.outputs.parameters[key].output_file = f"{out_dir}/parameters/{key}"
        ei.outputs.output_file = f"{out_dir}/executor_output.json"
        return ei, out_ids

    # -- placeholders ---------------------------------------------------------------------------------------------
    def _resolve_arg(self, arg: str, ei, ei_json: str, task: str) -> str:
        from google.protobuf import json_format

        def value(ph: str) -> str:
            if ph == "{{$}}":
                return ei_json
            m = re.fullmatch(r"\{\{\$\.inputs\.parameters\['([^']+)'\]\}\}", ph)
            if m:
                k = m[1]
                if k in ei.inputs.parameter_values:
                    v = json_format.MessageToDict(ei.inputs.parameter_values[k])
                else:
                    pv = ei.inputs.parameters[k]
                    v = getattr(pv, pv.WhichOneof("value"))
                return v if isinstance(v, str) else json.dumps(v)
            m = re.fullmatch(r"\{\{\$\.(inputs|outputs)\.artifacts\['([^']+)'\]\.uri\}\}", ph)
            if m:
                arts = getattr(ei, m[1]).artifacts[m[2]].artifacts
                if not arts:
                    raise LocalRunError(f"task {task!r}: {ph} has no artifact")
                return arts[0].uri
            m = re.fullmatch(r"\{\{\$\.outputs\.parameters\['([^']+)'\]\.output_file\}\}", ph)
            if m:
                return ei.outputs.parameters[m[1]].output_file
            if ph == "{{$.outputs.output_file}}":
                return ei.outputs.output_file
            raise LocalRunError(f"task {task!r}: this local runner cannot fill the placeholder {ph}")

        if arg == "{{$}}":
            return ei_json
        return re.sub(r"\{\{\$[^}]*\}\}", lambda m: value(m.group(0)), arg)

    def _command(self, command, args, ei, task: str) -> list[str]:
        from google.protobuf import json_format

        ei_json = json_format.MessageToJson(
            ei, sort_keys=True, indent=None
        )  # compact, as the launcher passes it
        argv = [self._resolve_arg(a, ei, ei_json, task) for a in [*command, *args]]
        if argv and argv[0] in _PYTHON_NAMES:
            argv[0] = self.python
        return argv

    def _exec(self, argv: list[str], log_path: Path, cwd: Path, task: str, what: str) -> None:
        cwd.mkdir(parents=True, exist_ok=True)
        with open(log_path, "ab") as log:
            log.write(f"$ {json.dumps(argv)}\n".encode())  # the exact argv, one line
            log.flush()
            proc = subprocess.run(
                argv, stdout=log, stderr=subprocess.STDOUT, cwd=cwd, env=self.env, check=False
            )
        if proc.returncode != 0:
            text = log_path.read_text(errors="replace")
            tail = "\n".join(text.splitlines()[-40:])
            data = errors.mentions_data_error(text)
            raise LocalRunError(
                f"task {task!r} ({what}) exited with {proc.returncode}; log: {log_path}\n{tail}",
                task=task,
                data_validation=data,
            )

    # -- task kinds -----------------------------------------------------------------------------------------------
    def run_container(self, task: str, result: TaskResult) -> tuple[dict, dict]:
        from google.protobuf import json_format
        from kfp.pipeline_spec import pipeline_spec_pb2 as pb

        ex = self.c.executor(task).container
        eid = result.execution_id
        out_dir = f"{self.pipeline_root.rstrip('/')}/{self.run_id}/{task}_{eid}"
        ei, out_ids = self._executor_input(task, out_dir)
        in_ids = {k: [self.md.id_of(a.name) for a in v.artifacts] for k, v in ei.inputs.artifacts.items()}
        log_path = self.logs / f"{task}.log"
        result.log = str(log_path)
        cwd = self.root / "runs" / self.run_id / "work" / task
        Path(out_dir).mkdir(parents=True, exist_ok=True)
        if ex.lifecycle.HasField("pre_cache_check"):
            hook = ex.lifecycle.pre_cache_check
            self._exec(
                self._command(hook.command, hook.args, ei, task), log_path, cwd, task, "preCacheCheck hook"
            )
            driver_out = pb.ExecutorOutput()
            json_format.Parse(
                Path(ei.outputs.output_file).read_text(), driver_out, ignore_unknown_fields=True
            )
            for k, v in driver_out.parameter_values.items():
                ei.inputs.parameter_values[k].CopyFrom(v)
            for k, v in driver_out.parameters.items():
                ei.inputs.parameters[k].CopyFrom(v)
            for k, lst in driver_out.artifacts.items():
                for mine, theirs in zip(ei.outputs.artifacts[k].artifacts, lst.artifacts, strict=False):
                    mine.metadata.update(_struct_to_dict(theirs.metadata))
        self._exec(self._command(ex.command, ex.args, ei, task), log_path, cwd, task, "executor")
        out = pb.ExecutorOutput()
        json_format.Parse(Path(ei.outputs.output_file).read_text(), out, ignore_unknown_fields=True)
        produced: dict[str, list] = {}
        for key, lst in ei.outputs.artifacts.items():
            written = list(out.artifacts[key].artifacts) if key in out.artifacts else []
            arts = []
            for i, mine in enumerate(lst.artifacts):
                final = type(mine)()
                final.CopyFrom(mine)
                theirs = next(
                    (w for w in written if w.name == mine.name), written[i] if i < len(written) else None
                )
                if theirs is not None:
                    final.uri = theirs.uri or mine.uri
                    final.metadata.Clear()
                    final.metadata.update(_struct_to_dict(mine.metadata))
                    final.metadata.update(_struct_to_dict(theirs.metadata))
                self.md.update_artifact(
                    self.md.id_of(final.name), final.uri, _struct_to_dict(final.metadata), "LIVE"
                )
                arts.append(final)
            produced[key] = arts
        self.out_params[task] = dict(out.parameter_values)
        return produced, {"in": in_ids, "out": out_ids}

    def run_resolver(self, task: str, result: TaskResult) -> tuple[dict, dict]:
        from google.protobuf import json_format

        inputs = self._input_artifacts(task)
        comp = self.c.component(task)
        produced: dict[str, list] = {}
        for key, q in self.c.executor(task).resolver.output_artifact_queries.items():
            flt = q.filter
            empty = False

            def fill(m, flt=flt):
                nonlocal empty
                k, meta = m[1], m[2]
                arts = inputs.get(k, [])
                if not arts:
                    empty = True
                    return '""'
                v = json_format.MessageToDict(arts[0].metadata).get(meta)
                if v is None:
                    empty = True
                    return '""'
                return str(v)

            flt = re.sub(r"\{\{\$\.inputs\.artifacts\['([^']+)'\]\.metadata\['([^']+)'\]\}\}", fill, flt)
            if spec_mod.placeholders(flt):
                raise LocalRunError(f"task {task!r}: cannot fill {spec_mod.placeholders(flt)} in its query")
            ids = [] if empty else self.md.query(translate_filter(flt, self.c.name, task), limit=q.limit or 1)
            arts = []
            for aid in ids:
                ra = self.md.runtime_artifact(aid)
                ra.type.CopyFrom(comp.output_definitions.artifacts[key].artifact_type)
                arts.append(ra)
            produced[key] = arts
        in_ids = {k: [self.md.id_of(a.name) for a in v] for k, v in inputs.items()}
        out_ids = {k: [self.md.id_of(a.name) for a in v] for k, v in produced.items()}
        return produced, {"in": in_ids, "out": out_ids}

    def run_importer(self, task: str, result: TaskResult) -> tuple[dict, dict]:
        from kfp.pipeline_spec import pipeline_spec_pb2 as pb

        imp = self.c.executor(task).importer
        comp = self.c.component(task)
        which = imp.artifact_uri.WhichOneof("value")
        if which == "constant":
            uri = imp.artifact_uri.constant.string_value
        elif which == "constant_value":
            uri = imp.artifact_uri.constant_value.string_value
        else:
            _, v = _root_parameter(self.c, imp.artifact_uri.runtime_parameter)
            uri = v.string_value
        title = type_title(imp.type_schema)
        [key] = list(comp.output_definitions.artifacts)
        ids = (
            []
            if imp.reimport
            else self.md.query(translate_filter(f'schema_title="{title}" AND uri="{uri}"', self.c.name, task))
        )
        aid = (
            ids[0]
            if ids
            else self.md.new_artifact(title, uri, _struct_to_dict(imp.metadata), "LIVE", self.contexts)[0]
        )
        ra = self.md.runtime_artifact(aid)
        ra.type.CopyFrom(comp.output_definitions.artifacts[key].artifact_type or pb.ArtifactTypeSchema())
        return {key: [ra]}, {"in": {}, "out": {key: [aid]}}

    def run(self) -> list[TaskResult]:
        results = []
        order = self.c.order()
        failed: LocalRunError | None = None
        for task in order:
            kind = self.c.executor_kind(task)
            res = TaskResult(
                task=task, kind=kind, state="SKIPPED", executor_class=self.c.executor_class(task)
            )
            results.append(res)
            if failed is not None:
                continue
            res.execution_id = self.md.start_execution(
                kind, task, self.run_id, self.contexts, {"executor_class": res.executor_class or ""}
            )
            self.say(f"{task:<52} running ...")
            t0 = time.perf_counter()
            try:
                produced, ids = getattr(self, f"run_{kind}")(task, res)
            except Exception as e:  # noqa: BLE001 - any failure fails the task, is recorded, and stops the run
                if not isinstance(e, LocalRunError):
                    e = LocalRunError(f"task {task!r}: {type(e).__name__}: {e}", task=task)
                res.state = "FAILED"
                res.seconds = time.perf_counter() - t0
                self.md.finish_execution(res.execution_id, "FAILED", {}, {})
                for aid in self.pending.pop(task, []):  # outputs it never produced
                    self.md.update_artifact(aid, None, {}, "ABANDONED")
                self.say(f"{task:<52} FAILED {res.seconds:6.1f} s")
                failed = e
                continue
            self.pending.pop(task, None)
            res.seconds = time.perf_counter() - t0
            self.outputs[task] = produced
            self.md.finish_execution(res.execution_id, "COMPLETE", ids["in"], ids["out"])
            res.state = "COMPLETE"
            comp = self.c.component(task)
            res.outputs = {
                key: [
                    {
                        "name": a.name,
                        "type": type_title(comp.output_definitions.artifacts[key].artifact_type),
                        "uri": a.uri,
                        "metadata": _struct_to_dict(a.metadata),
                        "producer": task,
                    }
                    for a in arts
                ]
                for key, arts in produced.items()
            }
            self.say(f"{task:<52} done   {res.seconds:6.1f} s")
        if failed is not None:
            self.error = failed
        return results


def run_compiled(
    path: str | os.PathLike,
    root: str | os.PathLike,
    *,
    pipeline_root: str | None = None,
    run_id: str | None = None,
    python: str | None = None,
    quiet: bool = False,
) -> LocalRunResult:
    """Execute a compiled pipeline file here (see the module docstring). Raises :class:`LocalRunError` when a task
    fails (``.task``, ``.data_validation``); the run is recorded in ``<root>/metadata.sqlite`` either way."""
    from graft.kubeflow.compile import is_remote
    from graft.kubeflow.image import IMAGE_ENV
    from graft.pipeline.run_lock import run_lock

    compiled = spec_mod.load(path)
    _check_supported(compiled)
    proot = pipeline_root or compiled.pipeline_root
    if not proot:
        raise LocalRunError(f"{path}: no pipeline root in the spec; pass one")
    if is_remote(proot):
        raise LocalRunError(
            f"{path} writes its artifacts to {proot}, which this machine cannot write. Compile with --local-paths "
            "(and a local kubeflow.pipeline_root), or pass a local pipeline root."
        )
    proot = str(Path(proot).expanduser().absolute())
    root_p = Path(root).expanduser().absolute()
    root_p.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ)
    env.update(IMAGE_ENV)
    with run_lock(root_p):
        rid = (
            run_id
            or f"{re.sub('[^-0-9a-z]+', '-', compiled.name.lower()).strip('-')}-{time.strftime('%Y%m%d%H%M%S')}"
        )
        base, n = rid, 1
        while (root_p / "runs" / rid).exists():
            n += 1
            rid = f"{base}-{n}"
        runner = _Runner(compiled, root_p, proot, rid, python or sys.executable, env, quiet)
        t0 = time.perf_counter()
        tasks = runner.run()
        err = runner.error
        result = LocalRunResult(
            run_id=rid,
            pipeline=compiled.name,
            status="FAILED" if err else "COMPLETE",
            pipeline_root=proot,
            metadata_path=runner.md.path,
            tasks=tasks,
            seconds=time.perf_counter() - t0,
            error=str(err).splitlines()[0] if err else None,
        )
        (root_p / "runs" / rid / "result.json").write_text(
            json.dumps(result.to_dict(), indent=2, default=str)
        )
    if err is not None:
        err.result = result
        raise err
    return result
