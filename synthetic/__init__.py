"""A vectorized simulator of two-layer linear models f(x) = V^T B x across federated clients.

Start with :class:`SimConfig`, :func:`expand_grid` and :func:`simulate`. The building blocks
live in their modules: draws (``generators``, ``problem``), second moments (``moments``),
methods (``hyper``: which hyperparameters each reads; ``methods``, ``solvers``, ``one_step``),
metrics (``metrics``, ``delta``), FedAvg (``fedavg``), and the driver (``batch``: one
vectorized batch; ``tidy``: the result table; ``simulation``); the names below are the ones
users reach for. The science is in ``docs/theory.md``. Names load
lazily, so importing a submodule stays cheap.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from feddistort_io import lazy_exports

if TYPE_CHECKING:
    from feddistort_io import __version__  # noqa: F401
    from synthetic.config import (  # noqa: F401
        COVARIATES,
        ConfigError,
        SimConfig,
        config_from_mapping,
        parse_value,
    )
    from synthetic.delta import delta_exact, delta_monte_carlo, delta_population  # noqa: F401
    from synthetic.fedavg import distance_to_ideal, ideal_global_model  # noqa: F401
    from synthetic.generators import explicit_inputs, sample_inputs  # noqa: F401
    from synthetic.hyper import Hyper  # noqa: F401
    from synthetic.methods import run_method  # noqa: F401
    from synthetic.metrics import client_losses  # noqa: F401
    from synthetic.moments import second_moment  # noqa: F401
    from synthetic.names import DEFAULT_METRICS, METHODS, METRICS  # noqa: F401
    from synthetic.problem import client_objectives, draw_problem  # noqa: F401
    from synthetic.simulation import expand_grid, simulate, simulate_batch  # noqa: F401
    from synthetic.solvers import linear_probe  # noqa: F401

# Public name -> the module that defines it (loaded on first use, PEP 562).
_EXPORTS: dict[str, str] = {
    "COVARIATES": "synthetic.config",
    "ConfigError": "synthetic.config",
    "SimConfig": "synthetic.config",
    "config_from_mapping": "synthetic.config",
    "parse_value": "synthetic.config",
    "distance_to_ideal": "synthetic.fedavg",
    "ideal_global_model": "synthetic.fedavg",
    "explicit_inputs": "synthetic.generators",
    "sample_inputs": "synthetic.generators",
    "second_moment": "synthetic.moments",
    "METHODS": "synthetic.names",
    "Hyper": "synthetic.hyper",
    "linear_probe": "synthetic.solvers",
    "run_method": "synthetic.methods",
    "DEFAULT_METRICS": "synthetic.names",
    "METRICS": "synthetic.names",
    "client_losses": "synthetic.metrics",
    "delta_exact": "synthetic.delta",
    "delta_monte_carlo": "synthetic.delta",
    "delta_population": "synthetic.delta",
    "client_objectives": "synthetic.problem",
    "draw_problem": "synthetic.problem",
    "expand_grid": "synthetic.simulation",
    "simulate": "synthetic.simulation",
    "simulate_batch": "synthetic.simulation",
    "__version__": "feddistort_io",
}

__all__ = sorted(_EXPORTS)

__getattr__, __dir__ = lazy_exports(__name__, globals(), _EXPORTS)
