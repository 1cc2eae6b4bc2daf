"""Package namespaces: every lazily exported name resolves, and no submodule can shadow one."""

from __future__ import annotations

import importlib
import pkgutil
import subprocess
import sys

import pytest

PACKAGES = (
    "feddistort",
    "feddistort.sweep",
    "synthetic",
    "theory",
    "empirical",
    "empirical.experiment",
)


@pytest.mark.parametrize("name", PACKAGES)
def test_exports_resolve_and_are_not_submodule_names(name):
    package = importlib.import_module(name)
    exports = package._EXPORTS
    submodules = {info.name for info in pkgutil.iter_modules(package.__path__)}
    # The import system binds a loaded submodule as an attribute of its package, which would
    # replace a lazily exported function of the same name.
    assert not set(exports) & submodules
    assert sorted(package.__all__) == sorted(exports)
    for export in exports:
        value = getattr(package, export)
        assert not isinstance(value, type(sys)), (name, export)


def test_unknown_attribute_is_an_attribute_error():
    import synthetic

    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        synthetic.nope  # noqa: B018


def test_importing_a_domain_package_is_light():
    code = (
        "import sys, synthetic, theory, empirical, feddistort, feddistort.sweep; "
        "heavy = {'torch', 'pandas', 'sympy', 'matplotlib', 'scipy'} & set(sys.modules); "
        "print(sorted(heavy))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout
    assert out.strip() == "[]"
