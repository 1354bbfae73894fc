"""The package layout holds: one way imports flow, no private name across packages, small files.

These tests read the source with :mod:`ast` (nothing is imported but the public API checks), so a
new module that breaks a rule fails here with the offending file and line.
"""

from __future__ import annotations

import ast
import importlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

import pyinfer

SRC = Path(__file__).resolve().parents[1] / "src" / "pyinfer"

#: The hard ceiling of a source file's length (the aim is about 600 lines).
MAX_LINES = 800

#: Old module paths users may import: thin re-exports of the new packages, kept for one release.
OLD_PATHS = {
    "pyinfer.profiler": "pyinfer.profiling",
    "pyinfer.inference_engine": "pyinfer.engine",
    "pyinfer.model_loader": "pyinfer.loading",
    "pyinfer.preprocessors": "pyinfer.preprocess",
    "pyinfer.bench": "pyinfer.suite",
}

#: Each layer's packages, lowest first: a module may import its own layer and the ones below.
LAYERS: tuple[frozenset[str], ...] = (
    frozenset({"pyinfer._core", "pyinfer.errors", "pyinfer.core", "pyinfer.formats"}),
    frozenset({"pyinfer.backends"}),
    frozenset({"pyinfer.loading", "pyinfer.model_loader"}),
    frozenset({"pyinfer.preprocess", "pyinfer.preprocessors"}),
    frozenset({"pyinfer.engine", "pyinfer.inference_engine"}),
    frozenset({"pyinfer.report"}),
    frozenset({"pyinfer.profiling", "pyinfer.profiler"}),
    frozenset({"pyinfer.load", "pyinfer.analysis"}),
    frozenset({"pyinfer.export"}),
    frozenset({"pyinfer.suite", "pyinfer.bench", "pyinfer.testing", "pyinfer.cluster"}),
    frozenset({"pyinfer.cli", "pyinfer.__main__"}),
)


def module_name(path: Path) -> str:
    parts = list(path.relative_to(SRC.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


MODULES: dict[str, Path] = {module_name(p): p for p in sorted(SRC.rglob("*.py"))}


def package_of(module: str) -> str:
    """The package a module belongs to: its folder (``pyinfer`` for the top-level modules)."""
    path = MODULES[module]
    return module_name(path.parent / "__init__.py")


def layer_of(module: str) -> int | None:
    for index, layer in enumerate(LAYERS):
        for root in layer:
            if module == root or module.startswith(root + "."):
                return index
    return None


@dataclass(frozen=True)
class Import:
    source: str
    target: str  # a module of pyinfer
    names: tuple[str, ...]  # what ``from target import ...`` took; empty for ``import target``
    line: int
    lazy: bool  # inside a function


def _is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _walk(node: ast.AST, lazy: bool) -> Iterator[tuple[ast.AST, bool]]:
    for child in ast.iter_child_nodes(node):
        if isinstance(child, ast.If) and _is_type_checking(child):
            continue  # annotations only: never executed
        inner = lazy or isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef)
        yield child, inner
        yield from _walk(child, inner)


def _resolve(source: str, node: ast.ImportFrom) -> str:
    if not node.level:
        return node.module or ""
    base = source.split(".")
    if MODULES[source].name != "__init__.py":
        base = base[:-1]
    base = base[: len(base) - (node.level - 1)]
    return ".".join(base + ([node.module] if node.module else []))


def imports_of(source: str) -> Iterator[Import]:
    tree = ast.parse(MODULES[source].read_text(), str(MODULES[source]))
    for node, lazy in _walk(tree, False):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.startswith("pyinfer"):
                    yield Import(source, alias.name, (), node.lineno, lazy)
        elif isinstance(node, ast.ImportFrom):
            target = _resolve(source, node)
            if not target.startswith("pyinfer"):
                continue
            for alias in node.names:
                submodule = f"{target}.{alias.name}"
                if submodule in MODULES or submodule == "pyinfer._core":
                    yield Import(source, submodule, (), node.lineno, lazy)
                else:
                    yield Import(source, target, (alias.name,), node.lineno, lazy)


ALL_IMPORTS = [i for m in MODULES for i in imports_of(m)]


def test_the_source_tree_is_found() -> None:
    assert "pyinfer" in MODULES
    assert len(MODULES) > 40
    assert ALL_IMPORTS


def test_no_source_file_is_over_the_ceiling() -> None:
    long = {
        str(p.relative_to(SRC)): n
        for p in MODULES.values()
        if (n := len(p.read_text().splitlines())) > MAX_LINES
    }
    assert long == {}


def test_no_import_cycle_among_pyinfer_modules() -> None:
    graph: dict[str, set[str]] = {m: set() for m in MODULES}
    for i in ALL_IMPORTS:
        if i.target in MODULES and i.target != i.source:
            graph[i.source].add(i.target)
    # Tarjan's strongly connected components, iteratively.
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    cycles: list[list[str]] = []
    counter = 0
    for root, children_of_root in graph.items():
        if root in index:
            continue
        work = [(root, iter(sorted(children_of_root)))]
        index[root] = low[root] = counter
        counter += 1
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            for child in children:
                if child not in index:
                    index[child] = low[child] = counter
                    counter += 1
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph[child]))))
                    break
                if child in on_stack:
                    low[node] = min(low[node], index[child])
            else:
                work.pop()
                if work:
                    low[work[-1][0]] = min(low[work[-1][0]], low[node])
                if low[node] == index[node]:
                    component = []
                    while True:
                        member = stack.pop()
                        on_stack.discard(member)
                        component.append(member)
                        if member == node:
                            break
                    if len(component) > 1:
                        cycles.append(sorted(component))
    assert cycles == []


def test_no_private_name_is_imported_across_packages() -> None:
    crossing = []
    for i in ALL_IMPORTS:
        if i.target == "pyinfer._core" or i.target not in MODULES:
            continue
        if package_of(i.source) == package_of(i.target) or i.source == "pyinfer":
            continue
        private_module = any(part.startswith("_") for part in i.target.split(".")[1:])
        private_names = [n for n in i.names if n.startswith("_") and not n.endswith("__")]
        if private_module or private_names:
            crossing.append(f"{MODULES[i.source].relative_to(SRC)}:{i.line} {i.target} {i.names}")
    assert crossing == []


def test_the_native_module_is_reached_through_its_python_face() -> None:
    """Only ``pyinfer.core`` (and the package's own ``__init__``) import ``pyinfer._core``."""
    users = {i.source for i in ALL_IMPORTS if i.target == "pyinfer._core"}
    assert users <= {"pyinfer", "pyinfer.core"}


def test_no_library_module_imports_the_command_line() -> None:
    offenders = [
        f"{MODULES[i.source].relative_to(SRC)}:{i.line}"
        for i in ALL_IMPORTS
        if (i.target == "pyinfer.cli" or i.target.startswith("pyinfer.cli."))
        and not (i.source.startswith("pyinfer.cli") or i.source == "pyinfer.__main__")
    ]
    assert offenders == []


def test_imports_go_down_the_layers() -> None:
    upward = []
    for i in ALL_IMPORTS:
        src, dst = layer_of(i.source), layer_of(i.target)
        if src is not None and dst is not None and dst > src:
            upward.append(f"{MODULES[i.source].relative_to(SRC)}:{i.line} imports {i.target}")
    assert upward == []


def test_every_module_has_a_layer() -> None:
    loose = [m for m in MODULES if m != "pyinfer" and layer_of(m) is None]
    assert loose == []


def test_every_package_says_what_belongs_in_it() -> None:
    silent = [
        str(p.relative_to(SRC))
        for p in SRC.rglob("__init__.py")
        if not ast.get_docstring(ast.parse(p.read_text()))
    ]
    assert silent == []


@pytest.mark.parametrize(("old", "new"), sorted(OLD_PATHS.items()))
def test_old_module_paths_re_export_the_new_packages(old: str, new: str) -> None:
    old_module = importlib.import_module(old)
    new_module = importlib.import_module(new)
    exported = getattr(old_module, "__all__", None)
    assert exported, f"{old} declares no __all__"
    for name in exported:
        assert getattr(old_module, name) is getattr(new_module, name), (old, name)
    assert "one release" in (old_module.__doc__ or "")


def test_the_public_api_is_unchanged() -> None:
    for name in pyinfer.__all__:
        assert getattr(pyinfer, name) is not None, name
