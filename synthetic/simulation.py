"""Run configurations through the vectorized simulator and collect a tidy table.

Configurations that share every shape-determining field are batched (and chunked to bound
memory); numeric fields such as ``lam``, ``eta`` or ``seed`` vary along the batch axis.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
from numpy.typing import NDArray

from synthetic.config import ConfigError, SimConfig, field_names
from synthetic.fedavg import distance_to_ideal, fedavg, ideal_global_model
from synthetic.hyper import METHOD_FIELDS, REFUSED_WHEN_UNUSED, refusal
from synthetic.methods import Hyper, predictor, run_method
from synthetic.metrics import client_losses, run_metrics
from synthetic.names import DEFAULT_METRICS, GLOBAL_METHOD, METHODS, METRICS
from synthetic.problem import Problem, client_objectives, draw_problem, stack_problems

Array = NDArray[np.float64]

# Fields that change array shapes or code paths: configurations batch together only if equal.
SHAPE_FIELDS: tuple[str, ...] = (
    "d", "m", "C", "covariate", "n", "loss", "steps", "client", "n_soup", "global_model",
    "fed_rounds", "fed_local_steps", "n_mc",
)  # fmt: skip
FEDAVG_METRICS: tuple[str, ...] = (
    "fed_angle_max",
    "fed_angle_identifiable",
    "fed_predictor_error",
    "fed_head_error",
)
_DIVERGENCE_BOUND = 1e100  # a parameter beyond this magnitude counts as diverged


def expand_grid(
    base: SimConfig, grid: Mapping[str, Sequence[object]] | None = None, seeds: int = 1
) -> list[SimConfig]:
    """Cartesian product of a grid over configuration fields, times ``seeds`` seeds.

    Parameters
    ----------
    base : SimConfig
        Values of the fields not in ``grid``; seeds run from ``base.seed``.
    grid : mapping of field name to values, optional
    seeds : int
        Number of seeds ``base.seed, base.seed + 1, ...``.

    Returns
    -------
    list of SimConfig
        Seeds vary fastest.
    """
    if seeds < 1:
        raise ConfigError(f"seeds={seeds!r} is invalid: expected at least 1 seed")
    grid = dict(grid or {})
    unknown = sorted(set(grid) - set(field_names()))
    if unknown:
        raise ConfigError(
            f"unknown grid key {unknown[0]!r}: expected one of {', '.join(field_names())}"
        )
    keys = list(grid)
    configs: list[SimConfig] = []
    for values in itertools.product(*(grid[key] for key in keys)):
        point = base.replace(**dict(zip(keys, values, strict=True)))
        configs.extend(point.replace(seed=base.seed + s) for s in range(seeds))
    return configs


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


def simulate_batch(
    configs: Sequence[SimConfig],
    methods: Sequence[str],
    problem: Problem | None = None,
    metrics: Sequence[str] = DEFAULT_METRICS,
) -> BatchResult:
    """Run ``methods`` on a batch of configurations that share every field in SHAPE_FIELDS.

    Parameters
    ----------
    configs : sequence of SimConfig
        G configurations.
    methods : sequence of str
        PFT methods (:data:`synthetic.methods.METHODS`) and/or ``global`` (the starting model).
    problem : Problem, optional
        Pre-drawn stacked problem (drawn from the configurations when omitted).
    metrics : sequence of str
        Metric names (:data:`synthetic.metrics.METRICS`); local and global losses are always
        computed (they decide divergence).

    Returns
    -------
    BatchResult
    """
    first = configs[0]
    problem = problem or stack_problems([draw_problem(c) for c in configs])
    clients = clients_of(first)
    v0, b0 = global_model_of(configs, problem)
    hp = hyper_of(configs)
    sigma = _field(configs, "sigma")
    objective = client_objectives(problem, clients, sigma)
    needs_soup = "soup" in methods and problem.x is not None
    soup_objective = client_objectives(problem, clients, sigma, soup=True) if needs_soup else None
    values: dict[str, dict[str, Array]] = {}
    diverged: dict[str, NDArray[np.bool_]] = {}
    with np.errstate(over="ignore", invalid="ignore"):
        for method in methods:
            if method == GLOBAL_METHOD:
                V = np.broadcast_to(v0[:, None, :], (len(configs), len(clients), v0.shape[-1]))
                B = np.broadcast_to(b0[:, None], (*V.shape, b0.shape[-1]))
            else:
                fit = run_method(
                    method,
                    v0[:, None, :],
                    b0[:, None],
                    objective,
                    hp,
                    soup_objective=soup_objective,
                )
                V, B = fit.V, fit.B
            bad = ~(
                np.all(np.abs(V) < _DIVERGENCE_BOUND, axis=-1)
                & np.all(np.abs(B) < _DIVERGENCE_BOUND, axis=(-2, -1))
            )
            # Metrics of diverged rows are computed on the global model, then masked as NaN.
            V = np.where(bad[..., None], v0[:, None, :], V)
            B = np.where(bad[..., None, None], b0[:, None], B)
            wanted = list(dict.fromkeys(["local_loss", "global_loss", *metrics]))
            out = run_metrics(problem, clients, V, B, v0, b0, first.loss_scale, wanted)
            bad = bad | ~np.isfinite(out["local_loss"]) | ~np.isfinite(out["global_loss"])
            if method == GLOBAL_METHOD and first.global_model == "fedavg":
                for name, arr in distance_to_ideal(problem, v0, b0).items():
                    out["fed_" + name] = np.broadcast_to(arr[:, None], bad.shape).copy()
            keep = [*metrics, *(k for k in out if k.startswith("fed_"))]
            values[method] = {key: np.where(bad, np.nan, out[key]) for key in keep}
            diverged[method] = bad
    return BatchResult(clients, values, diverged)


def _groups(configs: Sequence[SimConfig], chunk_size: int) -> list[list[int]]:
    groups: dict[tuple[object, ...], list[int]] = {}
    for i, config in enumerate(configs):
        groups.setdefault(tuple(getattr(config, f) for f in SHAPE_FIELDS), []).append(i)
    return [
        idx[start : start + chunk_size]
        for idx in groups.values()
        for start in range(0, len(idx), chunk_size)
    ]


def batch_frame(configs: Sequence[SimConfig], result: BatchResult) -> pd.DataFrame:
    """Tidy rows of one batch: one per (configuration, client, method, metric), in that order.

    Columns: every configuration field (``client`` holds the fine-tuning client), ``method``,
    ``metric``, ``value``, ``diverged``.
    """
    n_cfg, n_cli = len(configs), len(result.clients)
    methods = list(result.values)
    names = [list(result.values[m]) for m in methods]
    # Per (client, method, metric) block of one configuration.
    method_col = np.concatenate(
        [np.full(len(n), m, dtype=object) for m, n in zip(methods, names, strict=True)]
    )
    metric_col = np.concatenate([np.array(n, dtype=object) for n in names])
    per_cfg = n_cli * len(metric_col)
    values = np.concatenate(
        [
            np.stack([result.values[m][k] for k in n], axis=-1)
            for m, n in zip(methods, names, strict=True)
        ],
        axis=-1,
    )  # (G, P, sum of metrics)
    diverged = np.concatenate(
        [
            np.repeat(result.diverged[m][..., None], len(n), axis=-1)
            for m, n in zip(methods, names, strict=True)
        ],
        axis=-1,
    )
    columns: dict[str, object] = {}
    for f in field_names():
        if f == "client":
            continue
        vals = [getattr(c, f) for c in configs]
        columns[f] = np.repeat(np.array(vals, dtype=object if None in vals else None), per_cfg)
    columns["client"] = np.tile(np.repeat(result.clients, len(metric_col)), n_cfg)
    columns["method"] = np.tile(method_col, n_cfg * n_cli)
    columns["metric"] = np.tile(metric_col, n_cfg * n_cli)
    columns["value"] = values.reshape(-1)
    columns["diverged"] = diverged.reshape(-1)
    return pd.DataFrame(columns)


def check_methods(methods: Iterable[str]) -> list[str]:
    """Validate method names; ``global`` is the un-fine-tuned starting model."""
    methods = list(methods)
    allowed = (*METHODS, GLOBAL_METHOD)
    for method in methods:
        if method not in allowed:
            raise ConfigError(f"method={method!r} is invalid: expected one of {', '.join(allowed)}")
    if not methods:
        raise ConfigError("methods=[] is invalid: expected at least one method")
    return methods


def check_options(configs: Sequence[SimConfig], methods: Sequence[str]) -> None:
    """Refuse an option a requested method would ignore (``flood`` with ``sparse``, say).

    Raises
    ------
    ConfigError
        Naming the option, its value, the method and the methods that use it.
    """
    for name in REFUSED_WHEN_UNUSED:
        value = next((getattr(c, name) for c in configs if getattr(c, name) is not None), None)
        if value is None:
            continue
        for method in methods:
            if method in METHOD_FIELDS and name not in METHOD_FIELDS[method]:
                raise ConfigError(f"{name}={value!r} {refusal(method, name)}")


def simulate(
    configs: Sequence[SimConfig],
    methods: Sequence[str] = METHODS,
    *,
    metrics: Sequence[str] = DEFAULT_METRICS,
    chunk_size: int = 512,
    progress: bool = False,
) -> pd.DataFrame:
    """Simulate every configuration with every method and return a tidy table.

    Parameters
    ----------
    configs : sequence of SimConfig
    methods : sequence of str
        Any of :data:`synthetic.methods.METHODS` and ``global``.
    metrics : sequence of str
        Any of :data:`synthetic.metrics.METRICS` (default :data:`DEFAULT_METRICS`).
    chunk_size : int
        Configurations per vectorized batch (bounds memory).
    progress : bool
        Show a tqdm progress bar over batches.

    Returns
    -------
    pandas.DataFrame
        One row per (configuration, seed, client, method, metric), in the order of ``configs``;
        metric names :data:`synthetic.metrics.METRICS` (plus FedAvg distances for ``global``).
    """
    methods = check_methods(methods)
    unknown = sorted(set(metrics) - set(METRICS))
    if unknown or not metrics:
        bad = unknown[0] if unknown else "[]"
        raise ConfigError(f"metric={bad!r} is invalid: expected one of {', '.join(METRICS)}")
    if not configs:
        raise ConfigError("configs=[] is invalid: expected at least one configuration")
    check_options(configs, methods)
    batches = _groups(configs, chunk_size)
    iterator: Iterable[list[int]] = batches
    if progress:
        from tqdm.auto import tqdm

        iterator = tqdm(batches, desc="simulate", unit="batch")
    frames: list[pd.DataFrame] = []
    order_parts: list[NDArray[np.int_]] = []
    for idx in iterator:
        chunk = [configs[i] for i in idx]
        frame = batch_frame(chunk, simulate_batch(chunk, methods, metrics=metrics))
        frames.append(frame)
        order_parts.append(np.repeat(np.array(idx), len(frame) // len(idx)))
    out = frames[0] if len(frames) == 1 else pd.concat(frames, ignore_index=True)
    # Batches group configurations by shape; restore the order of ``configs``.
    order = np.concatenate(order_parts)
    if np.all(np.diff(order) >= 0):
        return out
    return out.iloc[np.argsort(order, kind="stable")].reset_index(drop=True)


__all__ = [
    "FEDAVG_METRICS",
    "GLOBAL_METHOD",
    "DEFAULT_METRICS",
    "METRICS",
    "SHAPE_FIELDS",
    "BatchResult",
    "batch_frame",
    "check_methods",
    "check_options",
    "client_losses",
    "clients_of",
    "expand_grid",
    "global_model_of",
    "hyper_of",
    "predictor",
    "simulate",
    "simulate_batch",
]
