"""The house stays the house: layers import downward only, no import circle, every package ships, no huge file.

Read with ``ast`` (nothing is imported), so the test is fast and sees lazy imports inside functions too: a lazy
upward import is still an upward dependency. Layers, bottom to top::

    graft root (graft/: env, errors, settings) and graft.schemas (data)
      <- graft.components  <- graft.pipeline  <- graft.kubeflow  <- graft.cli
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
# import-name prefix -> folder at the repository root (pyproject's package-dir)
FOLDERS = {
    "graft.components": "components",
    "graft.pipeline": "pipeline",
    "graft.kubeflow": "kubeflow",
    "graft.schemas": "schemas",
    "graft": "graft",
}
LAYERS = {"graft": 0, "graft.schemas": 0, "graft.components": 1, "graft.pipeline": 2, "graft.kubeflow": 3}
LAYERS_BY_PREFIX = [("graft.cli", 4)] + sorted(LAYERS.items(), key=lambda kv: -len(kv[0]))
MAX_LINES = 500
# Files another change splits; each must leave this list when it lands (the test fails on a stale entry).
PENDING_SPLIT = {}


def layer_of(module: str) -> int:
    for prefix, layer in LAYERS_BY_PREFIX:
        if module == prefix or module.startswith(prefix + "."):
            return layer
    raise AssertionError(f"{module}: not in any layer")  # pragma: no cover


def source_modules() -> dict[str, Path]:
    """import name -> file, for every module of the five folders."""
    out = {}
    for prefix, folder in FOLDERS.items():
        for path in sorted((REPO / folder).rglob("*.py")):
            rel = path.relative_to(REPO / folder).with_suffix("")
            parts = [p for p in rel.parts if p != "__init__"]
            out[".".join([prefix, *parts])] = path
    return out


def imports_of(module: str, path: Path, known: set[str]) -> set[str]:
    """The graft modules ``module`` imports anywhere in its file (resolved to modules, not names in them)."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(anchor + ([base] if base else []))
            for a in node.names:
                sub = f"{base}.{a.name}"
                found.add(sub if sub in known else base)
    return {m for m in found if m == "graft" or m.startswith("graft.")}


def import_graph() -> dict[str, set[str]]:
    mods = source_modules()
    known = set(mods)
    return {m: imports_of(m, p, known) - {m} for m, p in mods.items()}


def test_layers_import_downward_only():
    upward = []
    for mod, deps in import_graph().items():
        for dep in deps:
            if layer_of(dep) > layer_of(mod):
                upward.append(f"{mod} (layer {layer_of(mod)}) imports {dep} (layer {layer_of(dep)})")
    assert not upward, "upward imports:\n" + "\n".join(sorted(upward))


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    out: list[list[str]] = []
    counter = [0]
    sys.setrecursionlimit(max(sys.getrecursionlimit(), 10_000))

    def visit(v: str) -> None:
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on_stack.add(v)
        for w in graph.get(v, ()):
            if w not in graph:
                continue
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return out


def test_no_import_circle():
    graph = import_graph()
    # A package's __init__ importing its own submodules is how a package re-exports; not a circle of design.
    for mod in graph:
        graph[mod] = {d for d in graph[mod] if not mod.startswith(d + ".")}
    assert not _cycles(graph), f"import circles: {_cycles(graph)}"


def test_checker_sees_an_upward_import_and_a_circle(tmp_path):
    """The two checks above can fail: the same functions on a made-up component that imports the pipeline."""
    bad = tmp_path / "bad.py"
    bad.write_text("def f():\n    from graft.pipeline import dag\n    from . import features\n")
    deps = imports_of("graft.components.bad", bad, {"graft.pipeline.dag", "graft.components.features"})
    assert deps == {"graft.pipeline.dag", "graft.components.features"}
    assert layer_of("graft.pipeline.dag") > layer_of("graft.components.bad")
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def _pyproject() -> dict:
    try:
        import tomllib
    except ModuleNotFoundError:  # Python 3.10
        import tomli as tomllib
    return tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))


def test_every_package_is_in_pyprojects_packages_list():
    setuptools = _pyproject()["tool"]["setuptools"]
    listed = set(setuptools["packages"])
    assert setuptools["package-dir"] == {k: v for k, v in FOLDERS.items()}
    missing = []
    for prefix, folder in FOLDERS.items():
        for init in (REPO / folder).rglob("__init__.py"):
            rel = init.parent.relative_to(REPO / folder)
            name = ".".join([prefix, *rel.parts])
            if name not in listed:
                missing.append(f"{name} ({init.parent.relative_to(REPO)}/)")
    assert not missing, "add to [tool.setuptools] packages in pyproject.toml: " + ", ".join(sorted(missing))
    stale = [n for n in listed if not _package_folder(n).joinpath("__init__.py").is_file()]
    assert not stale, f"pyproject lists packages that do not exist: {stale}"


def _package_folder(name: str) -> Path:
    for prefix, folder in FOLDERS.items():
        if name == prefix or name.startswith(prefix + "."):
            return (
                REPO / folder / Path(*name[len(prefix) :].lstrip(".").split("."))
                if name != prefix
                else REPO / folder
            )
    raise AssertionError(name)  # pragma: no cover


@pytest.mark.parametrize("folder", [*FOLDERS.values(), "bench", "tools"])
def test_no_file_over_500_lines(folder):
    too_long, stale = [], []
    for path in sorted((REPO / folder).rglob("*.py")):
        rel = str(path.relative_to(REPO))
        n = len(path.read_text(encoding="utf-8").splitlines())
        if n > MAX_LINES and rel not in PENDING_SPLIT:
            too_long.append(f"{rel}: {n} lines")
        if n <= MAX_LINES and rel in PENDING_SPLIT:
            stale.append(rel)
    assert not too_long, f"split these (at most {MAX_LINES} lines outside tests): {too_long}"
    assert not stale, f"split already: remove {stale} from PENDING_SPLIT in tests/test_house.py"
