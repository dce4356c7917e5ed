"""Find import cycles among the modules of packages, reading the source only (never importing).

Every ``import`` and ``from … import`` counts wherever it stands: at module level, inside a
function or method, under ``if TYPE_CHECKING:`` or in a ``try``. A deferred import still ties
the two modules together (neither can be understood, moved or tested without the other), so
hiding a cycle in a function does not break it.

``from pkg import name`` is an edge to ``pkg.name`` when that is a module of the package, else
to ``pkg`` itself (its ``__init__``). The implicit import of a parent package that Python does
before a submodule is not counted: otherwise every ``__init__`` that re-exports its submodules
would be in a cycle with each of them.
"""

from __future__ import annotations

import ast
from collections.abc import Iterable
from pathlib import Path

Graph = dict[str, set[str]]


def package_modules(root: Path) -> dict[str, Path]:
    """Dotted module name -> file, for every ``.py`` file under the package directory ``root``."""
    modules: dict[str, Path] = {}
    for path in sorted(root.rglob("*.py")):
        parts = list(path.relative_to(root.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        modules[".".join(parts)] = path
    return modules


def _absolute(module: str, is_package: bool, level: int, target: str | None) -> str:
    """The absolute name a (possibly relative) ``from`` import refers to."""
    if level == 0:
        return target or ""
    base = module.split(".")
    if not is_package:
        base = base[:-1]
    base = base[: len(base) - (level - 1)]
    return ".".join(base + ([target] if target else []))


def _inside(name: str, modules: Iterable[str]) -> str | None:
    """The longest module of the package that ``name`` is or lies within, or None."""
    best = None
    for module in modules:
        if (name == module or name.startswith(module + ".")) and (
                best is None or len(module) > len(best)):
            best = module
    return best


def import_graph(*roots: Path) -> Graph:
    """Module -> the modules of the given packages it imports (anywhere in its source).

    Several roots make one graph, so a cycle that crosses packages (``broker`` -> ``workers``
    -> ``broker``) is found too.
    """
    modules: dict[str, Path] = {}
    for root in roots:
        modules.update(package_modules(root))
    graph: Graph = {name: set() for name in modules}
    for name, path in modules.items():
        is_package = path.name == "__init__.py"
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        for node in ast.walk(tree):
            targets: list[str] = []
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                source = _absolute(name, is_package, node.level, node.module)
                for alias in node.names:
                    child = f"{source}.{alias.name}"
                    targets.append(child if child in modules else source)
            for target in targets:
                found = _inside(target, modules)
                if found is not None and found != name:
                    graph[name].add(found)
    return graph


def _components(graph: Graph) -> list[list[str]]:
    """Strongly connected components (Tarjan's algorithm, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    on_stack: set[str] = set()
    stack: list[str] = []
    found: list[list[str]] = []
    counter = 0
    for start in sorted(graph):
        if start in index:
            continue
        work: list[tuple[str, list[str]]] = [(start, sorted(graph[start]))]
        index[start] = low[start] = counter
        counter += 1
        stack.append(start)
        on_stack.add(start)
        while work:
            node, pending = work[-1]
            if pending:
                child = pending.pop(0)
                if child not in index:
                    index[child] = low[child] = counter
                    counter += 1
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, sorted(graph[child])))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                parent = work[-1][0]
                low[parent] = min(low[parent], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1:
                    found.append(sorted(component))
    return sorted(found)


def _shortest_cycle(graph: Graph, members: list[str]) -> list[str]:
    """One shortest cycle through the first member, staying inside the component."""
    inside = set(members)
    start = members[0]
    previous: dict[str, str] = {}
    frontier = [start]
    while frontier:
        following = []
        for node in frontier:
            for child in sorted(graph[node] & inside):
                if child == start:
                    path = [node]
                    while path[-1] != start:
                        path.append(previous[path[-1]])
                    return [start, *reversed(path[:-1]), start]
                if child not in previous:
                    previous[child] = node
                    following.append(child)
        frontier = following
    return members  # unreachable for a real component


def find_cycles(*roots: Path) -> list[list[str]]:
    """Each import cycle of the package at ``root``, as ``[a, b, …, a]``, one per component.

    A component (modules that all reach each other through imports) is reported once, by a
    shortest cycle through its alphabetically first module; the other members are in
    ``cycle_components``.
    """
    graph = import_graph(*roots)
    return [_shortest_cycle(graph, members) for members in _components(graph)]


def cycle_components(*roots: Path) -> list[list[str]]:
    """The modules of each component that contains a cycle, sorted."""
    return _components(import_graph(*roots))


def describe(*roots: Path) -> str:
    """Lines naming every cycle and the modules caught in it, or an empty string."""
    graph = import_graph(*roots)
    lines = []
    for members in _components(graph):
        lines.append(" -> ".join(_shortest_cycle(graph, members))
                     + f"   (component: {', '.join(members)})")
    return "\n".join(lines)
