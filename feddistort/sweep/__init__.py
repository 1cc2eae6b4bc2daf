"""Resumable, checksummed sweeps of the simulator, the theory checks and the experiment.

Modules, bottom up: :mod:`~feddistort.sweep.tasks` (chunk tasks and shard keys),
:mod:`~feddistort.sweep.spec` (the simulator sweep), :mod:`~feddistort.sweep.kinds` (the theory
and experiment sweeps), :mod:`~feddistort.sweep.registry` (the explicit table of kinds),
:mod:`~feddistort.sweep.shards` (Parquet shards bound to their key),
:mod:`~feddistort.sweep.assembly` (the streamed results file), :mod:`~feddistort.sweep.lock`
(one sweep per folder),
:mod:`~feddistort.sweep.backends` (serial, loky, Dask, Ray) and the driver
:mod:`~feddistort.sweep.engine`; :mod:`~feddistort.sweep.cli` is the ``feddistort sweep``
command. Nothing registers itself by being imported.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from feddistort_io import lazy_exports

if TYPE_CHECKING:
    from feddistort.sweep.engine import run_sweep  # noqa: F401
    from feddistort.sweep.registry import job_from_mapping  # noqa: F401
    from feddistort.sweep.spec import SweepSpec, spec_from_mapping  # noqa: F401

# Public name -> the module that defines it (loaded on first use, PEP 562).
_EXPORTS: dict[str, str] = {
    "SweepSpec": "feddistort.sweep.spec",
    "job_from_mapping": "feddistort.sweep.registry",
    "run_sweep": "feddistort.sweep.engine",
    "spec_from_mapping": "feddistort.sweep.spec",
}

__all__ = sorted(_EXPORTS)

__getattr__, __dir__ = lazy_exports(__name__, globals(), _EXPORTS)
