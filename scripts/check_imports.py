#!/usr/bin/env python3
"""Fail on an import cycle, or an import inside a function, between a package's modules.

    python scripts/check_imports.py [PACKAGE_DIR ...]     (default: flask_session)

Layers point one way: a module imports the ones below it at its top, and a circle of
imports (however long) means two layers lean on each other. Imports under ``if
TYPE_CHECKING:`` are for the type checker only and do not count. An import statement of
the package's own modules inside a function hides such a circle, so it is refused too;
the one lazy load allowed is a registry naming a module by string (``importlib``), as
``flask_session.stores`` does so that a store's client library is imported only when
that store is chosen. Imports of other packages inside functions are fine.

Exit status 0 when clean; 1 with one line per problem otherwise.
"""

from __future__ import annotations

import ast
import sys
from collections.abc import Iterator
from pathlib import Path


def module_name(root: Path, path: Path) -> str:
    parts = [root.name, *path.relative_to(root).with_suffix("").parts]
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def resolve(current: str, is_package: bool, node: ast.ImportFrom) -> str:
    """The absolute module an ``ImportFrom`` names (its ``from`` part)."""
    if not node.level:
        return node.module or ""
    base = current.split(".")
    if not is_package:
        base.pop()
    if node.level > 1:
        base = base[: len(base) - (node.level - 1)]
    return ".".join([*base, node.module] if node.module else base)


def is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


Found = tuple[ast.Import | ast.ImportFrom, bool]


def imports(tree: ast.AST) -> Iterator[Found]:
    """Every import statement with whether it runs at import time (module level, not
    under TYPE_CHECKING) or later (inside a function)."""

    def walk(node: ast.AST, in_function: bool) -> Iterator[Found]:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.If) and is_type_checking(child.test):
                for item in child.orelse:
                    yield from walk(item, in_function)
                continue
            if isinstance(child, (ast.Import, ast.ImportFrom)):
                yield child, in_function
            inside = in_function or isinstance(
                child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)
            )
            yield from walk(child, inside)

    yield from walk(tree, False)


def targets(
    node: ast.Import | ast.ImportFrom, current: str, is_package: bool, known: set[str]
) -> list[str]:
    """The package's own modules an import statement loads."""
    if isinstance(node, ast.Import):
        return [alias.name for alias in node.names if alias.name in known]
    base = resolve(current, is_package, node)
    found = [f"{base}.{alias.name}" for alias in node.names if f"{base}.{alias.name}" in known]
    if base in known and len(found) < len(node.names):  # names defined in ``base`` itself
        found.append(base)
    return found


def import_graph(root: Path) -> tuple[dict[str, set[str]], list[str]]:
    """Module -> the package's modules it imports (deferred ones included), and the
    in-function imports found, one line each."""
    paths = sorted(root.rglob("*.py"))
    names = {module_name(root, path): path for path in paths}
    known = set(names)
    graph: dict[str, set[str]] = {name: set() for name in names}
    deferred = []
    for name, path in names.items():
        tree = ast.parse(path.read_text(), str(path))
        for node, in_function in imports(tree):
            for target in targets(node, name, path.name == "__init__.py", known):
                if target == name:
                    continue
                graph[name].add(target)  # a cycle counts whether or not it is deferred
                if in_function:
                    deferred.append(
                        f"{path}:{node.lineno}: {name} imports {target} inside a function"
                        " (import it at the top, or load it through a registry)"
                    )
    return graph, deferred


def check(root: Path) -> list[str]:
    graph, problems = import_graph(root)
    for members, path in cycles(graph):
        problems.append(
            f"import cycle among {len(members)} modules ({', '.join(members)}),"
            f" e.g. {' -> '.join([*path, path[0]])}"
        )
    return problems


def cycles(graph: dict[str, set[str]]) -> list[tuple[list[str], list[str]]]:
    """Each strongly connected component of more than one module (Tarjan's algorithm),
    sorted, with one cycle through it."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    components: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for target in sorted(graph[node]):
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                components.append(component)

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return [(sorted(c), _one_cycle(graph, set(c))) for c in components]


def _one_cycle(graph: dict[str, set[str]], members: set[str]) -> list[str]:
    """A path around the component, starting from its first member by name."""
    start = min(members)
    path, seen = [start], {start}
    while True:
        here = path[-1]
        following = sorted(graph[here] & members)
        if start in following and len(path) > 1:
            return path
        step = next((node for node in following if node not in seen), None)
        if step is None:
            return path
        path.append(step)
        seen.add(step)


def main(argv: list[str]) -> int:
    roots = [Path(arg) for arg in argv] or [Path(__file__).resolve().parents[1] / "flask_session"]
    problems = [problem for root in roots for problem in check(root.resolve())]
    for problem in problems:
        print(problem)
    if not problems:
        print(f"imports: no cycle and no in-function import in {', '.join(map(str, roots))}")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
