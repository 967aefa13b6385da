"""The package's shape (issues 10 and 21): data flows one way, so each layer imports only the layers
below it (lazy imports inside functions count: they hide a back-edge, they do not remove it); the config
models are a leaf every part can import; every module is small enough to read in one sitting."""

from __future__ import annotations

import ast
from pathlib import Path

import alertmanager_wecom

PACKAGE = Path(alertmanager_wecom.__file__).parent
NAME = "alertmanager_wecom"
MOST_LINES = 420  # "about 400": a module past this gets split

# The layers, lowest first: a module may import its own layer and the layers before it, never one after.
# A notification flows config → outbox ← ingest → rendering → wecom → channels → delivery; actions act on
# WeCom's callbacks and plug into delivery through the hooks it defines (delivery/context.py); web wires
# the service; cli and the sandbox sit on top.
LAYERS: list[tuple[str, ...]] = [
    # Leaves: no import of the package (but secret for logsetup).
    ("secret", "reasons", "metrics", "repeated", "template_sandbox", "throttled_log", "samples", "logsetup"),
    ("config",),  # the models: typed, a leaf apart from the leaves above
    ("tracing",),  # spans, when tracing is on (OpenTelemetry imported only then)
    ("outbound",),  # HTTP clients for Alertmanager and Prometheus (their config)
    ("outbox",),  # the source of truth; knows nothing of what fills it
    ("oncall",),  # schedules, and the store of overrides and incidents (shared like the outbox)
    ("ingest",),  # webhook payloads, routing → outbox jobs
    ("rendering",),  # what a person reads
    ("loading",),  # a config file, checked by the parts above (matchers, templates)
    ("wecom",),  # the WeCom boundary: API client, tokens, errcodes, crypto, userids
    ("simulator",),  # a WeCom of our own (its inbox draws messages as rendering fits them)
    ("channels",),  # one module per channel, and `check`
    ("delivery",),  # when and how often: dispatcher, stages, pacing, digests, previews
    ("actions",),  # acting on alerts from WeCom (cards), plugged into delivery's hooks
    ("web",),  # the service: webhook, admin, console, callback
    ("sandbox",),  # the service with the simulator in one process
    ("cli", "__main__"),
]


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


def _layer_of(module: str) -> int:
    parts = module.split(".")
    name = parts[1] if len(parts) > 1 else "__init__"
    if name == "__init__":
        return 0  # the package itself: its version
    for index, layer in enumerate(LAYERS):
        if name in layer:
            return index
    raise AssertionError(f"{module}: in no layer of tests/test_layout.py (add its package to LAYERS)")


def _back_edges(graph: dict[str, set[str]]) -> list[str]:
    """Imports that climb: a module importing one in a later layer."""
    return sorted(
        f"{module} → {imported}"
        for module, imports in graph.items()
        for imported in imports
        if _layer_of(imported) > _layer_of(module)
    )


def test_imports_go_down_the_layers_only() -> None:
    assert _back_edges(_imports(_modules())) == []


def test_a_back_edge_is_found(tmp_path: Path) -> None:
    """The check above must be able to fail: a module of the package's that imports a later layer,
    lazily inside a function, is reported."""
    modules = _modules()
    climbing = tmp_path / "climbing.py"
    climbing.write_text(
        "def later() -> None:\n    from alertmanager_wecom.web.relay import Relay\n", encoding="utf-8"
    )
    modules[f"{NAME}.channels.climbing"] = climbing
    graph = _imports(modules)
    assert _back_edges(graph) == [f"{NAME}.channels.climbing → {NAME}.web.relay"]


def test_the_config_models_are_a_leaf() -> None:
    graph = _imports(_modules())
    leaf = {m for m in graph if m == f"{NAME}.config" or m.startswith(f"{NAME}.config.")}
    assert f"{NAME}.config.targets.robot" in leaf  # the channels' target models are in it
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
