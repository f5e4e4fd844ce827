"""The local ML Metadata store of ``graft submit --local`` (sqlite), in Vertex ML Metadata's vocabulary.

Artifacts typed by schema title and named like Vertex's, runtime metadata as custom properties, the pipeline and
run contexts, executions with INPUT / OUTPUT events; and the resolver's KFP filter translated to an MLMD query.
The task runner (graft.kubeflow.local_run) writes and queries it; nothing here runs a task.

The local store (``<root>/metadata.sqlite``) uses Vertex ML Metadata's vocabulary: artifacts typed by their schema
title (``tfx.Model``), named ``projects/local/locations/local/metadataStores/default/artifacts/<uuid>``, with the
runtime metadata as custom properties; contexts ``system.Pipeline`` (the pipeline's name) and
``system.PipelineRun`` (the run id); executions ``system.ContainerExecution`` / ``system.ResolverExecution`` /
``system.ImporterExecution`` with ``task_name`` and INPUT / OUTPUT events keyed by the input / output names.
"""

from __future__ import annotations

import re
import uuid
from pathlib import Path
from typing import Any

ARTIFACT_NAME = "projects/local/locations/local/metadataStores/default/artifacts/{}"
PIPELINE_CONTEXT = "system.Pipeline"
RUN_CONTEXT = "system.PipelineRun"
EXECUTION_TYPES = {
    "container": "system.ContainerExecution",
    "resolver": "system.ResolverExecution",
    "importer": "system.ImporterExecution",
}


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
