"""A vectorized simulator of two-layer linear models f(x) = V^T B x across federated clients.

Start with :class:`SimConfig`, :func:`expand_grid` and :func:`simulate`; the building blocks
(generators, methods, metrics, FedAvg) are public too. See ../shared/THEORY.md sections 1-3.
"""

from importlib.metadata import PackageNotFoundError, version

from synthetic.config import COVARIATES, ConfigError, SimConfig, config_from_mapping, parse_value
from synthetic.fedavg import distance_to_ideal, fedavg, ideal_global_model
from synthetic.generators import (
    InputModel,
    apply_inputs,
    client_heads,
    client_means,
    explicit_inputs,
    ground_truth,
    input_model,
    orthonormal_rows,
    overlap_factors,
    quadratic_form,
    sample_inputs,
    second_moment,
)
from synthetic.methods import (
    METHODS,
    Fit,
    Hyper,
    gradient_descent,
    gradients,
    linear_probe,
    predictor,
    run_method,
    snip_mask,
)
from synthetic.metrics import (
    DEFAULT_METRICS,
    METRICS,
    client_losses,
    delta_exact,
    delta_monte_carlo,
    max_principal_angle,
    principal_angles,
    run_metrics,
)
from synthetic.problem import (
    Objective,
    Problem,
    client_objectives,
    draw_problem,
    select_clients,
    stack_problems,
)
from synthetic.simulate import clients_of, expand_grid, simulate, simulate_batch
from synthetic.sweep import SweepSpec, run_sweep, spec_from_mapping

try:
    __version__ = version("feddistort")
except PackageNotFoundError:  # pragma: no cover - running from a source tree
    __version__ = "0.0.0"

__all__ = [
    "COVARIATES",
    "DEFAULT_METRICS",
    "METHODS",
    "METRICS",
    "ConfigError",
    "Fit",
    "Hyper",
    "InputModel",
    "Objective",
    "Problem",
    "SimConfig",
    "SweepSpec",
    "__version__",
    "apply_inputs",
    "client_heads",
    "client_losses",
    "client_means",
    "client_objectives",
    "clients_of",
    "config_from_mapping",
    "delta_exact",
    "delta_monte_carlo",
    "distance_to_ideal",
    "draw_problem",
    "expand_grid",
    "explicit_inputs",
    "fedavg",
    "gradient_descent",
    "gradients",
    "ground_truth",
    "ideal_global_model",
    "input_model",
    "linear_probe",
    "max_principal_angle",
    "orthonormal_rows",
    "overlap_factors",
    "parse_value",
    "predictor",
    "principal_angles",
    "quadratic_form",
    "run_method",
    "run_metrics",
    "run_sweep",
    "sample_inputs",
    "second_moment",
    "select_clients",
    "simulate",
    "simulate_batch",
    "snip_mask",
    "spec_from_mapping",
    "stack_problems",
]
