"""The import graph of ``bitstore/``: every import (top-level, lazy or type-only) read with ``ast``, each module
placed on its layer, and the two things the house forbids reported: circles and imports of a higher layer.

Run ``python -m tests.tools.import_graph`` for a report (exit status 1 if either is found).
"""
from __future__ import annotations

import ast
import sys
from dataclasses import dataclass, field
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[2] / "bitstore"

#: Layers from the ground up; a module may import its own layer (without a circle) and the layers below.
LAYERS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("ground", ("bitstore.ground",)),
    ("engine", ("bitstore.engine",)),
    ("core", ("bitstore.core",)),
    ("backends", ("bitstore.backends",)),
    ("spec", ("bitstore.spec",)),
    ("integrations", ("bitstore.integrations", "bitstore.serve")),
    ("cli", ("bitstore.cli",)),
    ("facades", ("bitstore", "bitstore.arrow", "bitstore.spark", "bitstore.ray", "bitstore.exc", "bitstore.aws",
                 "bitstore.gcp", "bitstore.sha1", "bitstore.store", "bitstore.composite")),
)


def layer_of(module: str) -> int:
    """The index in ``LAYERS`` of the longest prefix that names ``module``'s layer."""
    best, best_len = None, -1
    for index, (_name, prefixes) in enumerate(LAYERS):
        for prefix in prefixes:
            if (module == prefix or module.startswith(prefix + ".")) and len(prefix) > best_len:
                best, best_len = index, len(prefix)
    if best is None:
        raise ValueError(f"{module} is on no layer: add it to tests/tools/import_graph.LAYERS")
    return best


def module_name(path: Path, root: Path = PACKAGE) -> str:
    parts = list(path.relative_to(root.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


@dataclass
class Graph:
    edges: dict[str, set[str]] = field(default_factory=dict)

    @classmethod
    def read(cls, root: Path = PACKAGE) -> Graph:
        paths = {module_name(p, root): p for p in sorted(root.rglob("*.py"))}
        graph = cls({name: set() for name in paths})
        for name, path in paths.items():
            package = name if path.name == "__init__.py" else name.rpartition(".")[0]
            for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
                for target in _targets(node, package):
                    graph.edges[name].add(_known(target, paths))
        for deps in graph.edges.values():
            deps.discard(None)
        return graph

    def upward(self) -> list[tuple[str, str]]:
        return sorted((a, b) for a, deps in self.edges.items() for b in deps if layer_of(b) > layer_of(a))

    def circles(self) -> list[list[str]]:
        """The strongly connected components of more than one module (or a module importing itself)."""
        index: dict[str, int] = {}
        low: dict[str, int] = {}
        stack: list[str] = []
        on_stack: set[str] = set()
        found: list[list[str]] = []

        def visit(node: str) -> None:  # Tarjan's algorithm; the graph is small enough to recurse
            index[node] = low[node] = len(index)
            stack.append(node)
            on_stack.add(node)
            for dep in self.edges.get(node, ()):
                if dep not in index:
                    visit(dep)
                    low[node] = min(low[node], low[dep])
                elif dep in on_stack:
                    low[node] = min(low[node], index[dep])
            if low[node] == index[node]:
                component = []
                while True:
                    top = stack.pop()
                    on_stack.discard(top)
                    component.append(top)
                    if top == node:
                        break
                if len(component) > 1 or node in self.edges.get(node, ()):
                    found.append(sorted(component))

        for node in sorted(self.edges):
            if node not in index:
                visit(node)
        return found


def _targets(node: ast.AST, package: str) -> list[str]:
    if isinstance(node, ast.Import):
        return [alias.name for alias in node.names if alias.name.split(".")[0] == "bitstore"]
    if not isinstance(node, ast.ImportFrom):
        return []
    if node.level:
        parts = package.split(".")
        base = ".".join(parts[: len(parts) - node.level + 1])
        module = f"{base}.{node.module}" if node.module else base
    else:
        module = node.module or ""
    if module.split(".")[0] != "bitstore":
        return []
    return [f"{module}.{alias.name}" for alias in node.names] + [module]


def _known(target: str, modules: dict[str, Path]) -> str | None:
    """``target`` if it is a module, else the module it names a member of (``pkg.mod.name`` -> ``pkg.mod``)."""
    while target and target not in modules:
        target = target.rpartition(".")[0]
    return target or None


def report(graph: Graph) -> tuple[int, str]:
    circles, upward = graph.circles(), graph.upward()
    lines = [f"{len(graph.edges)} modules, {sum(map(len, graph.edges.values()))} imports; "
             f"{len(circles)} circles, {len(upward)} upward imports"]
    lines += [f"circle: {' -> '.join(c)}" for c in circles]
    lines += [f"upward: {a} ({LAYERS[layer_of(a)][0]}) imports {b} ({LAYERS[layer_of(b)][0]})" for a, b in upward]
    return (1 if circles or upward else 0), "\n".join(lines)


if __name__ == "__main__":
    status, text = report(Graph.read())
    print(text)
    sys.exit(status)
