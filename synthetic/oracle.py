"""A plain per-configuration loop implementation: the test oracle of the vectorized simulator.

Written independently of :mod:`synthetic.methods` and :mod:`synthetic.metrics` (dense second
moments, explicit loops over clients and steps); it shares only the random draws
(:func:`synthetic.problem.draw_problem`). Slow by design.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
from numpy.typing import NDArray

from synthetic.config import SimConfig
from synthetic.delta import delta_population
from synthetic.generators import InputModel, second_moment
from synthetic.metrics import DEFAULT_METRICS
from synthetic.problem import Problem, draw_problem
from synthetic.simulation import GLOBAL_METHOD, BatchResult, batch_frame, check_methods, clients_of

Array = NDArray[np.float64]


def _train_moments(problem: Problem, config: SimConfig, i: int) -> tuple[Array, Array, float]:
    """(S, c, c0) of client i's training loss w^T S w - 2 c^T w + c0."""
    if problem.x is None or problem.y is None:
        S = second_moment(problem.inputs)[i]
        w_star = problem.b_star.T @ problem.heads[i]
        return S, S @ w_star, float(w_star @ S @ w_star + config.sigma**2)
    x, y = problem.x[i], problem.y[i]
    n = x.shape[0]
    return x.T @ x / n, x.T @ y / n, float(y @ y / n)


def _gd(
    V: Array,
    B: Array,
    S: Array,
    c: Array,
    c0: float,
    config: SimConfig,
    *,
    mu: float = 0.0,
    beta: float = 0.0,
    flood: float | None = None,
    mask: tuple[Array, Array] | None = None,
) -> tuple[Array, Array]:
    V0, B0 = V.copy(), B.copy()
    scale = config.loss_scale
    for _ in range(config.steps):
        w = B.T @ V
        loss = scale * (w @ S @ w - 2 * c @ w + c0)
        g_w = 2 * scale * (S @ w - c)
        g_v = B @ g_w
        g_b = np.outer(V, g_w)
        if flood is not None and loss < flood:
            g_v, g_b = -g_v, -g_b
        g_v = g_v + mu * (V - V0)
        g_b = g_b + mu * (B - B0) + 2 * beta * (B - B0) @ S
        if mask is not None:
            g_v, g_b = g_v * mask[0], g_b * mask[1]
        V, B = V - config.eta * g_v, B - config.eta * g_b
    return V, B


def _snip(V: Array, B: Array, S: Array, c: Array, config: SimConfig) -> tuple[Array, Array]:
    g_w = 2 * config.loss_scale * (S @ (B.T @ V) - c)
    sal = np.concatenate([np.abs((B @ g_w) * V), np.abs(np.outer(V, g_w) * B).ravel()])
    keep = max(1, int(np.rint(config.sparsity * sal.size)))
    mask = np.zeros(sal.size)
    mask[np.argsort(-sal, kind="stable")[:keep]] = 1.0
    return mask[: V.size], mask[V.size :].reshape(B.shape)


def _method(
    method: str, problem: Problem, config: SimConfig, i: int, V0: Array, B0: Array
) -> tuple[Array, Array]:
    S, c, c0 = _train_moments(problem, config, i)
    if method == GLOBAL_METHOD:
        return V0.copy(), B0.copy()
    if method == "ft":
        return _gd(V0, B0, S, c, c0, config, flood=config.flood)
    if method in ("lp", "lpft"):
        gram = B0 @ S @ B0.T + config.ridge * np.eye(B0.shape[0])
        V = np.linalg.pinv(gram, hermitian=True) @ (B0 @ c)
        if method == "lp":
            return V, B0.copy()
        return _gd(V, B0, S, c, c0, config, flood=config.flood)
    if method == "proximal":
        return _gd(V0, B0, S, c, c0, config, mu=config.mu)
    if method == "sparse":
        return _gd(V0, B0, S, c, c0, config, mask=_snip(V0, B0, S, c, config))
    if method == "align":
        return _gd(V0, B0, S, c, c0, config, beta=config.beta)
    if method == "soup":
        if problem.x is None or problem.y is None or problem.soup_counts is None:
            return _gd(V0, B0, S, c, c0, config)
        x, y, n = problem.x[i], problem.y[i], problem.x.shape[1]
        runs = []
        for counts in problem.soup_counts[i]:
            xs = x * (counts / n)[:, None]
            runs.append(_gd(V0, B0, xs.T @ x, xs.T @ y, float(counts @ (y * y) / n), config))
        return np.mean([r[0] for r in runs], axis=0), np.mean([r[1] for r in runs], axis=0)
    raise ValueError(f"method={method!r} is invalid")


def _fedavg(problem: Problem, config: SimConfig) -> tuple[Array, Array]:
    assert problem.fed_v is not None
    assert problem.fed_b is not None
    assert problem.fed_mask is not None
    V, B = problem.fed_v.copy(), problem.fed_b.copy()
    local = config.replace(eta=config.fed_lr, steps=config.fed_local_steps)
    moments = [_train_moments(problem, config, j) for j in range(config.C)]
    for active in problem.fed_mask:
        updates = [_gd(V, B, *moments[j], local) for j in np.flatnonzero(active)]
        V = np.mean([u[0] for u in updates], axis=0)
        B = np.mean([u[1] for u in updates], axis=0)
    return V, B


def _sin_max_angle(A: Array, B: Array) -> float:
    qa, qb = np.linalg.qr(A.T)[0], np.linalg.qr(B.T)[0]
    resid = qb - qa @ qa.T @ qb
    return float(np.arcsin(min(1.0, np.linalg.svd(resid, compute_uv=False)[0])))


def _metrics(
    problem: Problem, config: SimConfig, i: int, V: Array, B: Array, V0: Array, B0: Array
) -> dict[str, float]:
    S_all = second_moment(problem.inputs)
    w = B.T @ V
    losses = []
    for j in range(config.C):
        r = w - problem.b_star.T @ problem.heads[j]
        losses.append(config.loss_scale * float(r @ S_all[j] @ r))
    D = B - B0
    mean_i, factor_i, scale_i = (
        problem.inputs.mean[i], problem.inputs.factor[i], problem.inputs.scale[i],
    )  # fmt: skip
    if problem.x is not None:
        norms = np.array([np.linalg.norm(D @ x) for x in problem.x[i]])
    else:
        # (B - B0) x ~ N(D e_i, D cov_x D^T): draw in its eigenbasis, largest eigenvalue first.
        cov_x = factor_i @ factor_i.T + scale_i**2 * np.eye(config.d)
        vals, vecs = np.linalg.eigh(D @ cov_x @ D.T)
        vals, vecs = np.clip(vals[::-1], 0.0, None), vecs[:, ::-1]
        centre = np.abs(vecs.T @ (D @ mean_i))
        active = int(np.sum(vals > 1e-14 * vals[0]))
        norms = np.array(
            [np.sqrt(np.sum((centre[:active] + np.sqrt(vals[:active]) * z[:active]) ** 2)
                     + np.sum(centre[active:] ** 2)) for z in problem.mc[i]]
        )  # fmt: skip
    if problem.x is not None:  # the client's own samples: the exact value is their mean
        exact = float(np.linalg.norm(problem.x[i] @ D.T, axis=-1).mean())
    else:  # one configuration at a time through the exact quadrature (the fast path batches it)
        exact = float(delta_population(D, InputModel(mean_i, factor_i, np.asarray(scale_i))))
    others = (sum(losses) - losses[i]) / (config.C - 1) if config.C > 1 else float("nan")
    return {
        "local_loss": losses[i],
        "global_loss": sum(losses) / config.C,
        "global_loss_others": others,
        "ood_loss": float(np.sum((problem.b_star.T @ problem.heads[i] - w) ** 2)),
        "feature_distortion_fro": float(np.sqrt(np.sum(D**2))),
        "feature_distortion_local": float(np.trace(D @ S_all[i] @ D.T)),
        "delta_l2": exact,
        "delta_l2_mc": float(norms.mean()),
        "delta_l2_se": float(norms.std(ddof=1) / np.sqrt(norms.size)),
        "head_change": float(np.linalg.norm(V - V0)),
        "feature_angle_max": _sin_max_angle(B0, B),
    }


def simulate_loop(
    configs: Sequence[SimConfig], methods: Sequence[str], metrics: Sequence[str] = DEFAULT_METRICS
) -> pd.DataFrame:
    """Loop-oracle counterpart of :func:`synthetic.simulation` (same table, no FedAvg distances).

    Diverged runs are not special-cased here: use configurations that converge.
    """
    methods = check_methods(methods)
    frames = []
    for config in configs:
        problem = draw_problem(config)
        if config.global_model == "fedavg":
            V0, B0 = _fedavg(problem, config)
        else:
            V0 = np.concatenate([problem.v_com, np.zeros(config.C)])
            B0 = problem.b_star.copy()
        clients = clients_of(config)
        values: dict[str, dict[str, Array]] = {}
        for method in methods:
            rows = []
            for i in clients:
                V, B = _method(method, problem, config, i, V0, B0)
                rows.append(_metrics(problem, config, i, V, B, V0, B0))
            values[method] = {key: np.array([[r[key] for r in rows]]) for key in metrics}
        diverged = {m: np.zeros((1, len(clients)), dtype=bool) for m in methods}
        frames.append(batch_frame([config], BatchResult(clients, values, diverged)))
    return pd.concat(frames, ignore_index=True)
