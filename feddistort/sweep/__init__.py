"""Resumable, checksummed sweeps of the simulator, the theory checks and the experiment.

Backends: serial, loky (joblib), Dask and Ray (:mod:`feddistort.sweep.backends`); kinds:
``simulate`` (:mod:`feddistort.sweep.engine`), ``theory`` and ``experiment``
(:mod:`feddistort.sweep.kinds`), chosen by an explicit table, not by import side effects.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from feddistort.sweep.engine import SweepSpec, job_from_mapping, run_sweep, spec_from_mapping  # noqa: F401

# Public name -> the module that defines it (loaded on first use, PEP 562).
_EXPORTS: dict[str, str] = {
    "SweepSpec": "feddistort.sweep.engine",
    "job_from_mapping": "feddistort.sweep.engine",
    "run_sweep": "feddistort.sweep.engine",
    "spec_from_mapping": "feddistort.sweep.engine",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_EXPORTS})
