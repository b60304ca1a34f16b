"""Print the import graph of Pilothouse's packages and any import circles.

Run from the repository root: `python tests/house/import_graph.py [--modules]`.
Imports under `if TYPE_CHECKING:` are left out (the TUI's only allowed upward imports);
imports inside functions count, since they run.
"""

from __future__ import annotations

import ast
import sys
from collections import defaultdict
from pathlib import Path

ROOTS = ("console", "store", "widgets")


def module_name(path: Path) -> str:
    parts = list(path.with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def imports_of(path: Path, name: str, known: set[str]) -> set[str]:
    tree = ast.parse(path.read_text(), str(path))
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()

    def resolve(target: str) -> str | None:
        while target and target not in known:
            target = target.rpartition(".")[0]
        return target or None

    def visit(node: ast.AST) -> None:
        if isinstance(node, ast.If) and _is_type_checking(node):
            for child in node.orelse:
                visit(child)
            return
        if isinstance(node, ast.Import):
            for alias in node.names:
                if (hit := resolve(alias.name)) is not None:
                    found.add(hit)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")
                anchor = anchor[: len(anchor) - (node.level - 1)]
                base = ".".join(anchor + ([base] if base else []))
            for alias in node.names:
                hit = resolve(f"{base}.{alias.name}") or resolve(base)
                if hit is not None:
                    found.add(hit)
        for child in ast.iter_child_nodes(node):
            visit(child)

    visit(tree)
    found.discard(name)
    return found


def graph(root: Path) -> dict[str, set[str]]:
    files = {module_name(p.relative_to(root)): p for r in ROOTS for p in (root / r).rglob("*.py")}
    known = set(files)
    return {name: imports_of(path, name, known) for name, path in sorted(files.items())}


def circles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    counter = 0
    sys.setrecursionlimit(10_000)

    def strong(v: str) -> None:
        nonlocal counter
        index[v] = low[v] = counter
        counter += 1
        stack.append(v)
        on_stack.add(v)
        for w in edges.get(v, ()):
            if w not in index:
                strong(w)
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
                found.append(sorted(component))

    for v in edges:
        if v not in index:
            strong(v)
    return found


def package_of(module: str) -> str:
    parts = module.split(".")
    return ".".join(parts[:2]) if parts[0] == "console" and len(parts) > 1 else parts[0]


def main(argv: list[str]) -> int:
    root = Path.cwd()
    edges = graph(root)
    if "--modules" in argv:
        for name, targets in edges.items():
            print(f"{name} -> {', '.join(sorted(targets)) or '-'}")
    else:
        packages: dict[str, set[str]] = defaultdict(set)
        for name, targets in edges.items():
            packages[package_of(name)] |= {package_of(t) for t in targets} - {package_of(name)}
        for name in sorted(packages):
            print(f"{name} -> {', '.join(sorted(packages[name])) or '-'}")
    found = circles(edges)
    print(f"\nimport circles (modules, TYPE_CHECKING imports left out): {len(found)}")
    for component in found:
        print("  " + " <-> ".join(component))
    too_long = sorted(
        (n, p) for r in ROOTS for p in (root / r).rglob("*.py")
        if (n := len(p.read_text().splitlines())) > 500
    )
    print(f"files over 500 lines: {len(too_long)}")
    for n, p in too_long:
        print(f"  {n:5d} {p.relative_to(root)}")
    top = sorted(p.name for p in (root / "console").iterdir() if p.suffix == ".py")
    print(f"modules at console/ top level: {len(top)}: {' '.join(top)}")
    return 1 if found else 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
