"""One vectorized batch: the global model, every method, every metric, of G configurations.

Methods that compute the same fit share it: in population mode the soup (one ingredient) is
FT; at one step from the anchor the proximal and alignment penalties have zero gradient, so
proximal FT and feature alignment are FT too; LP-FT starts from LP's probe. One-step methods
without a mask take the closed-form rank-one step of :mod:`synthetic.one_step`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from synthetic.config import SimConfig
from synthetic.fedavg import distance_to_ideal, fedavg, ideal_global_model
from synthetic.hyper import Hyper, for_method
from synthetic.methods import gradient_descent, linear_probe, run_method
from synthetic.metrics import run_metrics
from synthetic.names import DEFAULT_METRICS, GLOBAL_METHOD
from synthetic.one_step import RankOneStep, one_step, rank_one_metrics, sparse_one_step
from synthetic.problem import Objective, Problem, client_objectives, draw_problem, stack_problems

Array = NDArray[np.float64]

FEDAVG_METRICS: tuple[str, ...] = (
    "fed_angle_max",
    "fed_angle_identifiable",
    "fed_predictor_error",
    "fed_head_error",
)
_DIVERGENCE_BOUND = 1e100  # a parameter beyond this magnitude counts as diverged
_MC_METRICS = ("delta_l2_mc", "delta_l2_se")


def clients_of(config: SimConfig) -> NDArray[np.int_]:
    """The fine-tuning clients of a configuration: all, or the one in ``config.client``."""
    return np.arange(config.C) if config.client is None else np.array([config.client])


def _field(configs: Sequence[SimConfig], name: str) -> Array:
    values = [getattr(c, name) for c in configs]
    return np.array([np.nan if v is None else v for v in values], dtype=float)


def hyper_of(configs: Sequence[SimConfig]) -> Hyper:
    """Hyperparameters of a batch of configurations, shaped (G, 1) to broadcast over clients."""
    first = configs[0]

    def col(name: str) -> Array:
        return _field(configs, name)[:, None]

    return Hyper(
        eta=col("eta"),
        steps=first.steps,
        loss_scale=first.loss_scale,
        ridge=col("ridge"),
        mu=col("mu"),
        sparsity=col("sparsity"),
        beta=col("beta"),
        flood=col("flood"),
    )


def global_model_of(configs: Sequence[SimConfig], problem: Problem) -> tuple[Array, Array]:
    """The global model (V0, B0) of a batch: idealized or trained by FedAvg."""
    first = configs[0]
    if first.global_model == "ideal":
        return ideal_global_model(problem)
    return fedavg(
        problem,
        lr=_field(configs, "fed_lr"),
        local_steps=first.fed_local_steps,
        loss_scale=first.loss_scale,
        sigma=_field(configs, "sigma"),
    )


@dataclass(frozen=True)
class BatchResult:
    """Metrics of one batch of configurations.

    Parameters
    ----------
    clients : ndarray of int, shape (P,)
    values : dict of method to dict of metric to ndarray of shape (G, P)
    diverged : dict of method to bool ndarray of shape (G, P)
    """

    clients: NDArray[np.int_]
    values: dict[str, dict[str, Array]]
    diverged: dict[str, NDArray[np.bool_]]


def shared_fit(method: str, config: SimConfig, hp: Hyper) -> str:
    """The name of the computation ``method`` shares with others in this batch (see above)."""
    plain = method == "ft" and not bool(np.any(~np.isnan(np.asarray(hp.flood, dtype=float))))
    if plain or (method == "soup" and config.n is None):
        return "gd"
    if method in ("proximal", "align") and config.steps == 1:
        return "gd"
    return method


class _Batch:
    """The shared state of one batch and the fits computed so far."""

    def __init__(self, configs: Sequence[SimConfig], problem: Problem | None, mc: bool) -> None:
        self.first = configs[0]
        self.problem = problem or stack_problems([draw_problem(c) for c in configs], mc=mc)
        self.clients = clients_of(self.first)
        self.v0, self.b0 = global_model_of(configs, self.problem)
        self.hp = hyper_of(configs)
        sigma = _field(configs, "sigma")
        self.objective: Objective = client_objectives(self.problem, self.clients, sigma)
        self.sigma = sigma
        self._probe: Array | None = None

    def probe(self) -> Array:
        """LP's head, computed once for lp and lpft."""
        if self._probe is None:
            obj = self.objective
            self._probe = linear_probe(self.b0[:, None], obj, self.hp.ridge)
        return self._probe

    def fit(self, method: str) -> RankOneStep | tuple[Array, Array]:
        """A rank-one step where one applies, else the fine-tuned (V, B)."""
        v0, b0, first = self.v0[:, None, :], self.b0[:, None], self.first
        unmasked = method in ("ft", "lpft", "proximal", "align") or (
            method == "soup" and first.n is None
        )
        if method == GLOBAL_METHOD:
            shape = (len(self.v0), len(self.clients), self.v0.shape[-1])
            zero_a, zero_b = np.zeros(shape), np.zeros((*shape[:2], self.b0.shape[-1]))
            return RankOneStep(np.broadcast_to(v0, shape).copy(), zero_a, zero_b)
        if method == "lp":
            v_lp = self.probe()
            zero_b = np.zeros((*v_lp.shape[:2], self.b0.shape[-1]))
            return RankOneStep(v_lp, np.zeros(v_lp.shape), zero_b)
        hp = for_method(method, self.hp)
        start = self.probe() if method == "lpft" else v0
        if first.steps == 1 and unmasked:
            return one_step(start, self.b0, self.objective, hp)
        if first.steps == 1 and method == "sparse":
            return sparse_one_step(v0, self.b0, self.objective, hp)
        if method == "lpft":
            b_lp = np.broadcast_to(b0, (*start.shape[:-1], *b0.shape[-2:]))
            fit = gradient_descent(start, b_lp, self.objective, hp)
            return fit.V, fit.B
        soup = None
        if method == "soup" and self.problem.x is not None:
            soup = client_objectives(self.problem, self.clients, self.sigma, soup=True)
        fit = run_method(method, v0, b0, self.objective, hp, soup_objective=soup)
        return fit.V, fit.B


def _finite(x: Array, axes: tuple[int, ...]) -> NDArray[np.bool_]:
    return np.all(np.abs(x) < _DIVERGENCE_BOUND, axis=axes)


def _evaluate(
    batch: _Batch, fit: RankOneStep | tuple[Array, Array], metrics: Sequence[str]
) -> tuple[dict[str, Array], NDArray[np.bool_]]:
    """Metrics of a fit, diverged runs computed on the global model and then masked as NaN."""
    p, v0, b0, scale = batch.problem, batch.v0, batch.b0, batch.first.loss_scale
    wanted = list(dict.fromkeys(["local_loss", "global_loss", *metrics]))
    if isinstance(fit, RankOneStep):
        # |B_ij| <= max|B0| + max|a| max|b|: the step's bound on the formed features.
        size = (
            np.abs(fit.a).max(-1) * np.abs(fit.b).max(-1) + np.abs(b0).max(axis=(-2, -1))[:, None]
        )
        bad = ~(_finite(fit.V, (-1,)) & (size < _DIVERGENCE_BOUND))
        step = RankOneStep(
            np.where(bad[..., None], v0[:, None, :], fit.V),
            np.where(bad[..., None], 0.0, fit.a),
            np.where(bad[..., None], 0.0, fit.b),
        )
        out = rank_one_metrics(p, batch.clients, step, v0, b0, scale, wanted)
    else:
        V, B = fit
        bad = ~(_finite(V, (-1,)) & _finite(B, (-2, -1)))
        V = np.where(bad[..., None], v0[:, None, :], V)
        B = np.where(bad[..., None, None], b0[:, None], B)
        out = run_metrics(p, batch.clients, V, B, v0, b0, scale, wanted)
    bad = bad | ~np.isfinite(out["local_loss"]) | ~np.isfinite(out["global_loss"])
    return out, bad


def simulate_batch(
    configs: Sequence[SimConfig],
    methods: Sequence[str],
    problem: Problem | None = None,
    metrics: Sequence[str] = DEFAULT_METRICS,
) -> BatchResult:
    """Run ``methods`` on a batch of configurations that share every shape-determining field.

    Parameters
    ----------
    configs : sequence of SimConfig
        G configurations (equal :data:`synthetic.simulation.SHAPE_FIELDS`).
    methods : sequence of str
        PFT methods (:data:`synthetic.names.METHODS`) and/or ``global`` (the starting model).
    problem : Problem, optional
        Pre-drawn stacked problem (drawn from the configurations when omitted).
    metrics : sequence of str
        Metric names (:data:`synthetic.names.METRICS`); local and global losses are always
        computed (they decide divergence).

    Returns
    -------
    BatchResult
    """
    batch = _Batch(configs, problem, mc=any(m in metrics for m in _MC_METRICS))
    values: dict[str, dict[str, Array]] = {}
    diverged: dict[str, NDArray[np.bool_]] = {}
    done: dict[str, tuple[dict[str, Array], NDArray[np.bool_]]] = {}
    with np.errstate(over="ignore", invalid="ignore"):
        for method in methods:
            key = shared_fit(method, batch.first, batch.hp)
            if key not in done:
                done[key] = _evaluate(batch, batch.fit(method), metrics)
            out, bad = done[key]
            keep = {name: np.where(bad, np.nan, out[name]) for name in metrics}
            if method == GLOBAL_METHOD and batch.first.global_model == "fedavg":
                for name, arr in distance_to_ideal(batch.problem, batch.v0, batch.b0).items():
                    keep["fed_" + name] = np.where(
                        bad, np.nan, np.broadcast_to(arr[:, None], bad.shape)
                    )
            values[method] = keep
            diverged[method] = bad
    return BatchResult(batch.clients, values, diverged)


__all__ = [
    "FEDAVG_METRICS",
    "BatchResult",
    "clients_of",
    "global_model_of",
    "hyper_of",
    "shared_fit",
    "simulate_batch",
]
