"""The package's shape (issue 10): data flows one way, so no module imports one that imports it back
(lazy imports inside functions count: they hide a cycle, they do not remove it); the config models are
a leaf every part can import; every module is small enough to read in one sitting."""

from __future__ import annotations

import ast
from pathlib import Path

import alertmanager_wecom

PACKAGE = Path(alertmanager_wecom.__file__).parent
NAME = "alertmanager_wecom"
MOST_LINES = 420  # "about 400": a module past this gets split


def _modules() -> dict[str, Path]:
    modules = {}
    for path in PACKAGE.rglob("*.py"):
        parts = [NAME, *path.relative_to(PACKAGE).with_suffix("").parts]
        if parts[-1] == "__init__":
            parts.pop()
        modules[".".join(parts)] = path
    return modules


def _imports(modules: dict[str, Path]) -> dict[str, set[str]]:
    def resolve(name: str) -> str | None:
        while name and name not in modules:
            name = name.rpartition(".")[0]
        return name or None

    graph: dict[str, set[str]] = {}
    for module, path in modules.items():
        found: set[str | None] = set()
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom) and node.level == 0 and (node.module or "").startswith(NAME):
                assert node.module is not None
                for alias in node.names:
                    full = f"{node.module}.{alias.name}"
                    found.add(full if full in modules else resolve(node.module))
            elif isinstance(node, ast.Import):
                found.update(resolve(a.name) for a in node.names if a.name.startswith(NAME))
        graph[module] = {m for m in found if m is not None and m != module}
    return graph


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    cycles: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        for w in sorted(graph[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                cycles.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return cycles


def test_no_import_cycles() -> None:
    assert _cycles(_imports(_modules())) == []


def test_the_cycle_finder_finds_a_cycle() -> None:
    # The check above must be able to fail.
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_the_config_models_are_a_leaf() -> None:
    graph = _imports(_modules())
    leaf = {f"{NAME}.config", f"{NAME}.config.fields", f"{NAME}.config.models", f"{NAME}.config.targets"}
    leaf |= {f"{NAME}.config.apis", f"{NAME}.config.tracing"}
    for module in leaf:
        assert graph[module] <= leaf | {f"{NAME}.secret"}, module
    assert graph[f"{NAME}.secret"] == set()
    assert graph[f"{NAME}.reasons"] == set()


def test_every_module_is_small() -> None:
    long = {
        m: n
        for m, p in _modules().items()
        if (n := len(p.read_text(encoding="utf-8").splitlines())) > MOST_LINES
    }
    assert long == {}
