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


# What building the command's parser (and importing a package) must not load.
HEAVY = ("torch", "pandas", "scipy", "sympy", "matplotlib", "pyarrow", "hypothesis", "numba")


def _fresh(code: str) -> str:
    """Run ``code`` in a fresh interpreter; its stdout (stripped)."""
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


def _heavy_loaded(statements: str) -> str:
    return _fresh(
        f"import sys\n{statements}\n"
        f"print(sorted({{m.split('.')[0] for m in sys.modules}} & set({HEAVY!r})))"
    )


def test_importing_a_domain_package_is_light():
    packages = "import synthetic, theory, empirical, figures, feddistort, feddistort.sweep"
    assert _heavy_loaded(packages) == "[]"


def test_building_the_parser_imports_no_heavy_module():
    # The parser of every subcommand is built, as `feddistort --help` does.
    code = "from feddistort.cli import build_parser\nbuild_parser().format_help()"
    assert _heavy_loaded(code) == "[]"


def test_control_heavy_modules_are_detected():
    # Negative control: the same check does see a heavy import.
    assert _heavy_loaded("import pyarrow") == "['pyarrow']"


def test_kind_registry_works_in_a_fresh_interpreter():
    # Nothing but the registry is imported first: no kind needs to have registered itself.
    code = (
        "from feddistort.sweep.registry import job_from_mapping\n"
        "spec = {'kind': 'theory', 'claims': ['thm-4.4'], 'grid': {'eta': [0.1]}}\n"
        "job = job_from_mapping(spec)\n"
        "print(type(job).__name__, job.claims, len(job.tasks(None)))\n"
        "spec = {'kind': 'experiment', 'presets': ['digits-iid'], 'quick': True}\n"
        "job = job_from_mapping(spec)\n"
        "print(type(job).__name__, job.presets)"
    )
    assert _fresh(code).splitlines() == [
        "TheorySweep ('thm-4.4',) 1",
        "ExperimentSweep ('digits-iid',)",
    ]
