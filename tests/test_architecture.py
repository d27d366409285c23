"""The shape of the code, checked: which layer may import which, no import cycles (at
module or function level), and modules and functions small enough to read whole."""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("domain", "contract", "application", "consumers", "projections", "envbranch")
SIZED = (*PACKAGES, "bench")
MAX_MODULE_LINES = 450
MAX_FUNCTION_LINES = 80

# What each layer may import of the project (itself included). The data flows one way:
# commands (contract) -> application -> domain events -> consumers -> projections.
MAY_IMPORT = {
    "domain": {"domain"},
    "contract": {"contract", "domain"},
    "application": {"application", "contract", "domain"},
    "consumers": {"consumers", "application", "contract", "domain"},
    "projections": {"projections", "contract", "domain"},
}


def _modules() -> dict[str, Path]:
    found = {}
    for package in (*PACKAGES, "bench"):
        for path in sorted((ROOT / package).rglob("*.py")):
            parts = path.relative_to(ROOT).with_suffix("").parts
            if parts[-1] == "__init__":
                parts = parts[:-1]
            found[".".join(parts)] = path
    return found


MODULES = _modules()


def _imports(name: str, path: Path) -> Iterator[tuple[str, int]]:
    """The project modules ``name`` imports, anywhere in it (functions included)."""
    is_package = path.name == "__init__.py"
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield from _known(alias.name, node.lineno)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # relative: from the package this module is in
                package = name.split(".")
                package = package[: len(package) - node.level + (1 if is_package else 0)]
                base = ".".join([*package, base] if base else package)
            for alias in node.names:
                if f"{base}.{alias.name}" in MODULES:
                    yield f"{base}.{alias.name}", node.lineno
                else:
                    yield from _known(base, node.lineno)


def _known(dotted: str, line: int) -> Iterator[tuple[str, int]]:
    parts = dotted.split(".")
    while parts:
        if ".".join(parts) in MODULES:
            yield ".".join(parts), line
            return
        parts.pop()


GRAPH = {
    name: sorted({target for target, _ in _imports(name, path) if target != name})
    for name, path in MODULES.items()
}


def _cycles() -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for target in GRAPH[node]:
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
                found.append(sorted(component))

    for node in GRAPH:
        if node not in index:
            visit(node)
    return found


def test_no_module_imports_itself_back_through_others() -> None:
    assert _cycles() == []


def test_each_layer_imports_only_the_layers_below_it() -> None:
    breaches = []
    for name, path in MODULES.items():
        layer = name.split(".")[0]
        allowed = MAY_IMPORT.get(layer)
        if allowed is None:
            continue
        for target, line in _imports(name, path):
            if target.split(".")[0] not in allowed:
                breaches.append(f"{path.relative_to(ROOT)}:{line} imports {target}")
    assert breaches == []


def test_the_import_walk_sees_imports_inside_functions() -> None:
    # A function-level import is an edge like any other: the walk must find one.
    imported = {target for target, _ in _imports("envbranch.demo", MODULES["envbranch.demo"])}
    assert "envbranch.replay" in imported


def test_no_module_or_function_is_too_long_to_read_whole() -> None:
    too_long = []
    for package in SIZED:
        for path in sorted((ROOT / package).rglob("*.py")):
            source = path.read_text()
            where = path.relative_to(ROOT)
            if source.count("\n") > MAX_MODULE_LINES:
                too_long.append(f"{where}: {source.count(chr(10))} lines")
            for node in ast.walk(ast.parse(source)):
                if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                    assert node.end_lineno is not None
                    lines = node.end_lineno - node.lineno + 1
                    if lines > MAX_FUNCTION_LINES:
                        too_long.append(f"{where}:{node.lineno} {node.name}: {lines} lines")
    assert too_long == []


def test_the_installed_packages_are_every_package_of_the_source_tree() -> None:
    # A subpackage the wheel leaves out fails only where the project is installed
    # (the Docker image), never in an editable checkout: check what setuptools finds.
    import tomllib

    from setuptools import find_packages

    config = tomllib.loads((ROOT / "pyproject.toml").read_text())
    include = config["tool"]["setuptools"]["packages"]["find"]["include"]
    found = set(find_packages(str(ROOT), include=include))
    on_disk = {
        ".".join(path.parent.relative_to(ROOT).parts)
        for package in PACKAGES
        for path in (ROOT / package).rglob("*.py")
    }
    assert found == on_disk
