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

The store is graft.kubeflow.local_mlmd, the returned results graft.kubeflow.local_results; both are re-exported
here (``local_run.LocalRunError``, ``local_run.translate_filter``, ...), this module runs the tasks.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from graft import errors
from graft.kubeflow import spec as spec_mod

# Re-exported: the store and the results were part of this module before they had their own.
from graft.kubeflow.local_mlmd import (  # noqa: F401
    ARTIFACT_NAME,
    EXECUTION_TYPES,
    PIPELINE_CONTEXT,
    RUN_CONTEXT,
    LocalMetadata,
    LocalRunError,
    _struct_to_dict,
    translate_filter,
    type_title,
)
from graft.kubeflow.local_results import LocalRunResult, TaskResult

_PYTHON_NAMES = ("python", "python3", "python3.10")


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
