"""Import layers (docs/architecture.md): a static scan of every source file of each package.

What counts as an import of a module: ``import x`` and ``from x import y`` (under
``TYPE_CHECKING`` too), a string literal passed to ``importlib.import_module`` or
``__import__``, and a dotted module path held in a table (a string inside a list, tuple, set
or dict literal, such as the ``_EXPORTS`` tables of the lazy namespaces), or any string of a
table whose name ends in ``MODULES`` (``feddistort.cli.COMMAND_MODULES``). Each test of the
scanner itself (negative controls below) checks that every one of these paths is caught.
"""

from __future__ import annotations

import ast
import re
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PROJECT = ("synthetic", "theory", "empirical", "figures", "feddistort", "feddistort_io")

# Package -> the top-level modules it must not import (project packages and plotting).
FORBIDDEN: dict[str, frozenset[str]] = {
    "synthetic": frozenset({"theory", "empirical", "figures", "feddistort", "matplotlib"}),
    "empirical": frozenset({"theory", "synthetic", "figures", "feddistort", "matplotlib"}),
    "theory": frozenset({"empirical", "figures", "feddistort", "matplotlib"}),
    "figures": frozenset({"feddistort"}),
    "feddistort_io": frozenset(PROJECT) - {"feddistort_io"},
}
# Third-party top-level modules a module table could name (besides the project packages).
THIRD_PARTY = ("matplotlib", "torch", "pandas", "scipy", "sympy", "pyarrow", "numpy")
_DOTTED = re.compile(r"^[A-Za-z_]\w*(\.[A-Za-z_]\w*)+$")
_KNOWN_TOP = frozenset(PROJECT) | frozenset(THIRD_PARTY)


def _table_strings(node: ast.AST) -> Iterator[str]:
    """String constants directly held by a list/tuple/set/dict literal (keys and values)."""
    items: list[ast.expr | None] = []
    if isinstance(node, (ast.List, ast.Tuple, ast.Set)):
        items = list(node.elts)
    elif isinstance(node, ast.Dict):
        items = [*node.keys, *node.values]
    for item in items:
        if isinstance(item, ast.Constant) and isinstance(item.value, str):
            yield item.value


def _call_name(node: ast.Call) -> str:
    func = node.func
    if isinstance(func, ast.Attribute):
        return func.attr
    return func.id if isinstance(func, ast.Name) else ""


def imported_modules(source: str) -> set[tuple[int, str]]:
    """(line, module) for every module the source imports, by any of the paths above."""
    tree = ast.parse(source)
    found: set[tuple[int, str]] = set()
    module_tables: set[int] = set()
    for node in ast.walk(tree):
        targets: list[ast.expr] = []
        if isinstance(node, ast.Assign):
            targets = list(node.targets)
        elif isinstance(node, ast.AnnAssign):
            targets = [node.target]
        for target in targets:
            if isinstance(target, ast.Name) and target.id.endswith("MODULES"):
                value = node.value  # type: ignore[union-attr]
                if value is not None:
                    module_tables.add(id(value))
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update((node.lineno, alias.name) for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.add((node.lineno, node.module))
        elif isinstance(node, ast.Call) and _call_name(node) in ("import_module", "__import__"):
            first = node.args[0] if node.args else None
            if isinstance(first, ast.Constant) and isinstance(first.value, str):
                found.add((node.lineno, first.value))
        else:
            for text in _table_strings(node):
                dotted = _DOTTED.match(text) and text.split(".")[0] in _KNOWN_TOP
                if dotted or id(node) in module_tables:
                    found.add((node.lineno, text))  # type: ignore[attr-defined]
    return found


def violations(package: str, source: str, forbidden: frozenset[str]) -> list[str]:
    """``line: module`` for each import of ``source`` whose top-level module is forbidden."""
    return sorted(
        f"{line}: {module}"
        for line, module in imported_modules(source)
        if module.split(".")[0] in forbidden
    )


def _sources(package: str) -> list[Path]:
    return sorted((ROOT / package).rglob("*.py"))


@pytest.mark.parametrize("package", sorted(FORBIDDEN))
def test_package_imports_only_what_its_layer_allows(package: str) -> None:
    files = _sources(package)
    assert files, f"no sources found for {package}"
    bad = {
        str(path.relative_to(ROOT)): found
        for path in files
        if (found := violations(package, path.read_text(encoding="utf-8"), FORBIDDEN[package]))
    }
    assert bad == {}


def test_bottom_layer_imports_the_standard_library_only() -> None:
    for path in _sources("feddistort_io"):
        for line, module in imported_modules(path.read_text(encoding="utf-8")):
            top = module.split(".")[0]
            assert top in sys.stdlib_module_names or top in ("feddistort_io", "__future__"), (
                f"{path.name}:{line} imports {module}"
            )


def test_every_scanned_package_exists_and_nobody_imports_the_application() -> None:
    for package in PROJECT:
        assert (ROOT / package / "__init__.py").is_file(), package
    assert all("feddistort" in FORBIDDEN[p] for p in FORBIDDEN if p != "feddistort_io")


# Negative controls: each path by which a module can be imported is caught.
_CAUGHT = [
    ("import theory.claims", "theory.claims"),
    ("import matplotlib.pyplot as plt", "matplotlib.pyplot"),
    ("from figures import build", "figures"),
    (
        "import typing\nif typing.TYPE_CHECKING:\n    from feddistort import cli",
        "feddistort",
    ),
    ("import importlib\nimportlib.import_module('theory.audit')", "theory.audit"),
    ("from importlib import import_module\nimport_module('empirical')", "empirical"),
    ("mod = __import__('figures.build')", "figures.build"),
    ("_EXPORTS = {'simulate': 'theory.claims'}", "theory.claims"),
    ("KINDS = ('simulate', 'empirical.experiment.runner')", "empirical.experiment.runner"),
    ("COMMAND_MODULES = ('figures',)", "figures"),
    ("def f():\n    from theory import claims\n    return claims", "theory"),
]


@pytest.mark.parametrize(("source", "module"), _CAUGHT)
def test_scanner_catches_every_import_path(source: str, module: str) -> None:
    assert module in {m for _, m in imported_modules(source)}
    forbidden = FORBIDDEN["synthetic"]
    assert violations("synthetic", source, forbidden), source


@pytest.mark.parametrize(
    "source",
    [
        "from . import config",  # relative: inside the package
        "KINDS = ('simulate', 'theory', 'experiment')",  # names, not a module table
        "'''See theory.claims for the claims.'''",  # prose in a docstring
        "import numpy as np\nfrom feddistort_io import atomic_write",
        "path = 'docs/theory.md'",
    ],
)
def test_scanner_ignores_what_is_not_an_import(source: str) -> None:
    assert violations("synthetic", source, FORBIDDEN["synthetic"]) == []
