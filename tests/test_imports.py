"""The package's import graph: no cycles (typing-only and function-level imports count), nothing
imports the CLI, the daemon core does not import the session client's host."""

from __future__ import annotations

import ast
from pathlib import Path

PKG = Path(__file__).resolve().parent.parent / "ccc_statusd"


def _module_name(path: Path) -> str:
    rel = path.relative_to(PKG.parent).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _graph() -> dict[str, set[str]]:
    modules = {_module_name(p): p for p in PKG.rglob("*.py")}
    graph: dict[str, set[str]] = {m: set() for m in modules}
    for name, path in modules.items():
        is_pkg = path.name == "__init__.py"
        base = name.split(".") if is_pkg else name.split(".")[:-1]
        for node in ast.walk(ast.parse(path.read_text())):
            targets: list[str] = []
            if isinstance(node, ast.ImportFrom):
                if node.level:
                    anchor = base[: len(base) - (node.level - 1)]
                    mod = ".".join([*anchor, *(node.module.split(".") if node.module else [])])
                else:
                    mod = node.module or ""
                targets.append(mod)
                targets.extend(f"{mod}.{a.name}" for a in node.names)
            elif isinstance(node, ast.Import):
                targets.extend(a.name for a in node.names)
            for t in targets:
                if t in modules and t != name and t != "ccc_statusd":
                    graph[name].add(t)
    return graph


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    found: list[list[str]] = []
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph[node]):
            # A package importing its own submodules (hub/__init__ → hub.delivery) is how a
            # package exposes them, not a cycle; the reverse edge would be one.
            if node and nxt.startswith(node + "."):
                continue
            if state.get(nxt) == 1:
                found.append(stack[stack.index(nxt) :] + [nxt])
            elif nxt not in state:
                visit(nxt)
        stack.pop()
        state[node] = 2

    for node in sorted(graph):
        if node not in state:
            visit(node)
    return found


def test_no_import_cycles() -> None:
    assert _cycles(_graph()) == []


def test_nothing_imports_the_cli() -> None:
    graph = _graph()
    importers = {m for m, deps in graph.items() if "ccc_statusd.cli" in deps}
    assert importers <= {"ccc_statusd.fastcli"}, importers


def test_the_transport_knows_no_sessions() -> None:
    graph = _graph()
    for module in ("ccc_statusd.server", "ccc_statusd.events", "ccc_statusd.reaper"):
        deps = graph[module]
        assert not {d for d in deps if d.startswith(("ccc_statusd.hub", "ccc_statusd.sessions"))}
