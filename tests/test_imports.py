"""The house rules of imports: no cycle anywhere, and the core never reaches up into bulk/, cli/ or testing/.

Every ``import`` counts, including those under ``TYPE_CHECKING`` and inside
functions: a cycle that only a type checker or a late import sees is still a cycle.
"""

import ast
import functools
from pathlib import Path

import pytest

PACKAGE = Path(__file__).parent.parent / "sendkit_async"
UPPER = ("sendkit_async.bulk", "sendkit_async.cli", "sendkit_async.testing")


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports_of(path: Path) -> set[str]:
    name = module_name(path)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = package
            for _ in range(node.level - 1):
                base = base.rpartition(".")[0]
            target = node.module or ""
            if node.level:
                target = f"{base}.{target}" if target else base
            found.add(target)
            found.update(f"{target}.{alias.name}" for alias in node.names)
    return {i for i in found if i.startswith("sendkit_async")}


@functools.cache
def graph() -> dict[str, set[str]]:
    modules = {module_name(p): p for p in PACKAGE.rglob("*.py")}
    return {
        name: {i for i in imports_of(path) if i in modules and i != name} for name, path in modules.items()
    }


def test_there_is_no_import_cycle():
    edges = graph()
    # Importing a submodule runs its package's __init__ first; those edges are
    # implied, so a package importing its own modules is not a cycle.
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> None:
        state[node] = 1
        stack.append(node)
        for target in sorted(edges[node]):
            if node.startswith(target + "."):
                continue  # a module importing its own package: resolved by Python's import order
            if state.get(target) == 1:
                cycle = [*stack[stack.index(target) :], target]
                pytest.fail("import cycle: " + " -> ".join(cycle))
            if target not in state:
                visit(target)
        stack.pop()
        state[node] = 2

    for node in sorted(edges):
        if node not in state:
            visit(node)


# The package, its entry point and the facade sit above bulk/ and cli/ by design.
ABOVE = {"sendkit_async", "sendkit_async.__main__", "sendkit_async.client"}


@pytest.mark.parametrize("module", sorted(n for n in graph() if not n.startswith(UPPER) and n not in ABOVE))
def test_the_core_never_imports_bulk_cli_or_testing(module):
    upward = {i for i in graph()[module] if i.startswith(UPPER)}
    assert not upward, f"{module} imports {sorted(upward)}"
