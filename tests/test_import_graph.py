"""The package's import graph, read from the source with ``ast``.

No cycles, ``portal/`` never imports ``trading/``, no borrowed private names.

Every import counts: module level, inside functions, and under
``TYPE_CHECKING`` (typing a module against a class assembled above it is a
cycle too: type against a small Protocol in a lower module instead).
"""

from __future__ import annotations

import ast
from pathlib import Path

import ib_nice_funcs

PACKAGE = Path(ib_nice_funcs.__file__).parent
ROOT = PACKAGE.parent

#: ``(importing module, imported module, name)`` triples allowed to import a
#: private name. Keep it short; each needs a reason.
PRIVATE_ALLOWED: frozenset[tuple[str, str, str]] = frozenset()


def _modules() -> dict[str, tuple[Path, bool]]:
    """Dotted module name -> (file, is a package's ``__init__``)."""
    found = {}
    for path in PACKAGE.rglob("*.py"):
        parts = list(path.relative_to(ROOT).with_suffix("").parts)
        is_package = parts[-1] == "__init__"
        if is_package:
            parts.pop()
        found[".".join(parts)] = (path, is_package)
    return found


MODULES = _modules()


def _absolute(module: str, is_package: bool, node: ast.ImportFrom) -> str:
    if not node.level:
        return node.module or ""
    base = module.split(".")
    if not is_package:
        base.pop()
    if node.level > 1:
        base = base[: len(base) - (node.level - 1)]
    return ".".join(base + ([node.module] if node.module else []))


def _imports(module: str) -> list[tuple[str, str | None, int]]:
    """``(imported module, name or None, line)`` of every import of the package in ``module``."""
    path, is_package = MODULES[module]
    found: list[tuple[str, str | None, int]] = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found += [(a.name, None, node.lineno) for a in node.names
                      if a.name.split(".")[0] == "ib_nice_funcs"]
        elif isinstance(node, ast.ImportFrom):
            target = _absolute(module, is_package, node)
            if target.split(".")[0] != "ib_nice_funcs":
                continue
            for alias in node.names:
                submodule = f"{target}.{alias.name}"
                if submodule in MODULES:
                    found.append((submodule, None, node.lineno))
                else:
                    found.append((target, alias.name, node.lineno))
    return found


def _graph() -> dict[str, set[str]]:
    return {m: {t for t, _, _ in _imports(m) if t in MODULES and t != m} for m in MODULES}


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan), each as a cycle."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    components: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                components.append(component)

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return [_one_cycle(graph, set(c)) for c in components]


def _one_cycle(graph: dict[str, set[str]], component: set[str]) -> list[str]:
    """A shortest cycle through the component's first module (for the failure message)."""
    start = min(component)
    paths = {start: [start]}
    frontier = [start]
    while frontier:
        nxt = []
        for v in frontier:
            for w in sorted(graph[v] & component):
                if w == start:
                    return paths[v] + [start]
                if w not in paths:
                    paths[w] = paths[v] + [w]
                    nxt.append(w)
        frontier = nxt
    return sorted(component)


def test_the_graph_is_read():
    graph = _graph()
    assert "ib_nice_funcs.client" in graph
    assert "ib_nice_funcs.errors" in graph["ib_nice_funcs.client"]
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c", "a"]]


def test_no_import_cycles():
    cycles = _cycles(_graph())
    assert not cycles, "import cycles:\n" + "\n".join(" -> ".join(c) for c in cycles)


def test_portal_does_not_import_trading():
    graph = _graph()
    wrong = sorted(f"{m} -> {t}" for m in graph if m.startswith("ib_nice_funcs.portal")
                   for t in graph[m] if t.startswith("ib_nice_funcs.trading"))
    assert not wrong, wrong


def test_no_private_names_from_sibling_modules():
    """``from .x import _name`` (or ``module._name`` of an imported module) only inside a module."""
    borrowed = []
    for module in MODULES:
        path, _ = MODULES[module]
        aliases: dict[str, str] = {}
        for target, name, line in _imports(module):
            if name is None:
                continue
            if name.startswith("_") and not name.startswith("__") and \
                    (module, target, name) not in PRIVATE_ALLOWED:
                borrowed.append(f"{module}:{line} imports {name} from {target}")
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom):
                target = _absolute(module, MODULES[module][1], node)
                for alias in node.names:
                    if f"{target}.{alias.name}" in MODULES:
                        aliases[alias.asname or alias.name] = f"{target}.{alias.name}"
        for node in ast.walk(tree):
            if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) \
                    and node.value.id in aliases and node.attr.startswith("_") \
                    and not node.attr.startswith("__") \
                    and f"{aliases[node.value.id]}.{node.attr}" not in MODULES:
                borrowed.append(f"{module}:{node.lineno} reads {aliases[node.value.id]}."
                                f"{node.attr}")
    assert not borrowed, "private names used outside their module:\n" + "\n".join(borrowed)
