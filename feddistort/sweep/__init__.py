"""Resumable, checksummed sweeps of the simulator, the theory checks and the experiment.

Backends: serial, loky (joblib), Dask and Ray (:mod:`feddistort.sweep.backends`); kinds:
``simulate`` (:mod:`feddistort.sweep.engine`), ``theory`` and ``experiment``
(:mod:`feddistort.sweep.kinds`), chosen by an explicit table, not by import side effects.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from feddistort_io import lazy_exports

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

__getattr__, __dir__ = lazy_exports(__name__, globals(), _EXPORTS)
