"""Global models: the idealized one of [CLOSER] and real FedAvg on the linear model."""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

from synthetic.methods import Hyper, gradient_descent, predictor
from synthetic.metrics import max_row_space_angle
from synthetic.problem import Objective, Problem, client_objectives

Array = NDArray[np.float64]


def ideal_global_model(problem: Problem) -> tuple[Array, Array]:
    """Idealized global model (B*, [V*_com; 0]) ([CLOSER] Sec. 4, after Collins et al. 2022).

    Returns
    -------
    V0 : ndarray of shape (..., k)
    B0 : ndarray of shape (..., k, d)
    """
    k = problem.b_star.shape[-2]
    m = problem.v_com.shape[-1]
    v0 = np.zeros((*problem.v_com.shape[:-1], k))
    v0[..., :m] = problem.v_com
    return v0, problem.b_star.copy()


def fedavg(
    problem: Problem,
    *,
    lr: Array | float,
    local_steps: int,
    loss_scale: float = 1.0,
    sigma: Array | float = 0.0,
) -> tuple[Array, Array]:
    r"""FedAvg on the two-layer linear model, vectorized over a batch of problems.

    Each round, the participating clients (``problem.fed_mask``) run ``local_steps`` full-batch
    GD steps on their own objective from the current global (V, B), and the server averages
    their parameters with equal weights:

    .. math:: \theta^{t+1} = \frac{1}{|A_t|} \sum_{j \in A_t} \mathrm{GD}_j^{\tau}(\theta^t)

    Parameters
    ----------
    problem : Problem
        Batch shape (G,) with FedAvg draws (``global_model='fedavg'``).
    lr : float or ndarray of shape (G,)
    local_steps : int
    loss_scale : float
    sigma : float or ndarray of shape (G,)

    Returns
    -------
    V : ndarray of shape (G, k)
    B : ndarray of shape (G, k, d)
    """
    if problem.fed_v is None or problem.fed_b is None or problem.fed_mask is None:
        raise ValueError(
            "problem has no FedAvg draws: expected a config with global_model='fedavg'"
        )
    C = problem.heads.shape[-2]
    objective: Objective = client_objectives(problem, np.arange(C), sigma)
    V, B = problem.fed_v.copy(), problem.fed_b.copy()
    hp = Hyper(np.asarray(lr, dtype=float)[..., None], local_steps, loss_scale)
    weights = problem.fed_mask / problem.fed_mask.sum(axis=-1, keepdims=True)
    with np.errstate(over="ignore", invalid="ignore"):
        for t in range(problem.fed_mask.shape[-2]):
            fit = gradient_descent(V[..., None, :], B[..., None, :, :], objective, hp)
            wt = weights[..., t, :]
            V = np.einsum("...c,...ck->...k", wt, fit.V)
            B = np.einsum("...c,...ckd->...kd", wt, fit.B)
    return V, B


def distance_to_ideal(problem: Problem, V: Array, B: Array) -> dict[str, Array]:
    """How close a global model lands to the idealization (B*, [V*_com; 0]).

    Returns
    -------
    dict of str to ndarray of shape (G,)
        ``angle_max``: largest principal angle between rowspace(B) and rowspace(B*);
        ``angle_identifiable``: largest angle by which span{w*_j} leaves rowspace(B) (the part of
        rowspace(B*) the clients' targets can reveal; with lam = 0 that is span(w*) only);
        ``predictor_error``: ||B^T V - B*^T V_0||; ``head_error``: ||B* B^T V - V_0|| (the
        learned predictor in B*'s coordinates minus the ideal head).
    """
    v0, b0 = ideal_global_model(problem)
    w = predictor(V, B)
    w_ideal = predictor(v0, b0)
    targets = problem.w_star
    # Directions of span{w*_j} (singular value above 1e-10 relative); the sine of the largest
    # angle by which they leave rowspace(B) is the spectral norm of their residual.
    u, sv, _ = np.linalg.svd(np.swapaxes(targets, -1, -2), full_matrices=False)
    keep = sv > 1e-10 * sv[..., :1]
    q_b = np.linalg.qr(np.swapaxes(B, -1, -2))[0]
    resid = (u - q_b @ (np.swapaxes(q_b, -1, -2) @ u)) * keep[..., None, :]
    sines = np.linalg.svd(resid, compute_uv=False)[..., 0]
    return {
        "angle_max": max_row_space_angle(problem.b_star, B),
        "angle_identifiable": np.arcsin(np.clip(sines, 0.0, 1.0)),
        "predictor_error": np.linalg.norm(w - w_ideal, axis=-1),
        "head_error": np.linalg.norm(np.einsum("...kd,...d->...k", b0, w) - v0, axis=-1),
    }
