"""What a local run of a compiled spec returns: each task's outcome and outputs, blessed / pushed, a summary."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


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
