"""Losses and feature-distortion metrics of fine-tuned two-layer linear models.

Losses are exact population excess risks r^T S_j r (label noise excluded), scaled by the loss
normalization c_L ([CLOSER] Sec. 3-4). "Global" is the uniform mixture D_G over all clients;
"others" averages over the clients other than the fine-tuning one ([CLOSER] Table 2).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from numpy.typing import NDArray

from synthetic.delta import delta_exact, delta_monte_carlo, delta_population
from synthetic.methods import predictor
from synthetic.moments import apply_inputs, quadratic_form
from synthetic.names import DEFAULT_METRICS, METRICS
from synthetic.problem import Problem, select_clients

Array = NDArray[np.float64]

__all__ = [
    "DEFAULT_METRICS",
    "METRICS",
    "LOSS_METRICS",
    "client_losses",
    "delta_exact",
    "delta_monte_carlo",
    "delta_population",
    "loss_metrics",
    "max_row_space_angle",
    "row_space_angles",
    "run_metrics",
]


def _orthonormal_basis(A: Array) -> Array:
    """Orthonormal basis (columns) of rowspace(A) for A of shape (..., k, d), via QR of A^T."""
    return np.linalg.qr(np.swapaxes(A, -1, -2))[0]


def row_space_angles(A: Array, B: Array) -> Array:
    """Principal angles between the row spaces rowspace(A) and rowspace(B) of weight matrices.

    (Not the sample-space principal components of :func:`empirical.metrics.principal_angles`.)

    Parameters
    ----------
    A : ndarray of shape (..., k1, d)
    B : ndarray of shape (..., k2, d)
        Full row rank.

    Returns
    -------
    ndarray of shape (..., min(k1, k2))
        Angles in radians, ascending: arccos of the singular values of Q_A^T Q_B
        (Bjorck & Golub 1973).
    """
    qa, qb = _orthonormal_basis(A), _orthonormal_basis(B)
    cosines = np.linalg.svd(np.swapaxes(qa, -1, -2) @ qb, compute_uv=False)
    return np.sort(np.arccos(np.clip(cosines, -1.0, 1.0)), axis=-1)


def max_row_space_angle(A: Array, B: Array, basis_a: Array | None = None) -> Array:
    r"""Largest angle by which rowspace(B) leaves rowspace(A), accurate for small angles.

    With Q_A an orthonormal basis of rowspace(A), R = B (I - Q_A Q_A^T) and G = B B^T, the
    squared sines of the principal angles are the eigenvalues of G^{-1/2} R R^T G^{-1/2}:

    .. math:: \sin^2 \theta_{\max} = \lambda_{\max}(L^{-1} R R^T L^{-T}), \quad G = L L^T.

    Parameters
    ----------
    A : ndarray of shape (..., k1, d)
    B : ndarray of shape (..., k2, d)
        Full row rank, k2 <= k1.
    basis_a : ndarray of shape (..., d, k1), optional
        A precomputed orthonormal basis of rowspace(A).

    Returns
    -------
    ndarray of shape (...)
        Radians in [0, pi/2].
    """
    qa = _orthonormal_basis(A) if basis_a is None else basis_a
    resid = B - (B @ qa) @ np.swapaxes(qa, -1, -2)
    chol_inv = np.linalg.inv(np.linalg.cholesky(B @ np.swapaxes(B, -1, -2)))
    whitened = chol_inv @ resid  # L^{-1} R
    sines2 = np.linalg.eigvalsh(whitened @ np.swapaxes(whitened, -1, -2))[..., -1]
    return np.arcsin(np.clip(np.sqrt(np.clip(sines2, 0.0, None)), 0.0, 1.0))


def client_losses(problem: Problem, w: Array, loss_scale: float = 1.0) -> Array:
    """Population excess risk of predictors on every client.

    Parameters
    ----------
    problem : Problem
        Batch shape (G,).
    w : ndarray of shape (G, P, d)
        One predictor per fine-tuning client.
    loss_scale : float
        1 (``mse``) or 1/2 (``half_mse``).

    Returns
    -------
    ndarray of shape (G, P, C)
        L_j(w_p) = c_L (w_p - w*_j)^T S_j (w_p - w*_j).
    """
    resid = w[..., :, None, :] - problem.w_star[..., None, :, :]
    return loss_scale * quadratic_form(problem.inputs, resid)


LOSS_METRICS: tuple[str, ...] = ("local_loss", "global_loss", "global_loss_others", "ood_loss")
"""The metrics that depend on the fine-tuned model only through its predictor w = B^T V."""


def loss_metrics(
    problem: Problem, clients: NDArray[np.int_], w: Array, loss_scale: float,
    metrics: Sequence[str],
) -> dict[str, Array]:  # fmt: skip
    """The :data:`LOSS_METRICS` among ``metrics`` from the predictors ``w``.

    Parameters
    ----------
    problem : Problem
        Batch shape (G,), C clients.
    clients : ndarray of int, shape (P,)
        The fine-tuning client of each model.
    w : ndarray of shape (G, P, d)
        Predictors B^T V of the fine-tuned models.
    loss_scale : float
    metrics : sequence of str

    Returns
    -------
    dict of str to ndarray of shape (G, P)
        Local loss, mean loss over D_G, mean over the other clients (NaN when C = 1) and
        ||w*_i - w||^2.
    """
    wanted = [name for name in metrics if name in LOSS_METRICS]
    if not wanted:
        return {}
    C = problem.heads.shape[-2]
    losses = client_losses(problem, w, loss_scale)
    own = losses[..., np.arange(len(clients)), clients]
    total = losses.sum(axis=-1)
    out: dict[str, Array] = {}
    for name in wanted:
        if name == "local_loss":
            out[name] = own
        elif name == "global_loss":
            out[name] = total / C
        elif name == "global_loss_others":
            out[name] = (total - own) / (C - 1) if C > 1 else np.full_like(own, np.nan)
        else:  # ood_loss
            out[name] = np.sum((problem.w_star[..., clients, :] - w) ** 2, axis=-1)
    return out


def run_metrics(
    problem: Problem,
    clients: NDArray[np.int_],
    V: Array,
    B: Array,
    V0: Array,
    B0: Array,
    loss_scale: float = 1.0,
    metrics: Sequence[str] = DEFAULT_METRICS,
) -> dict[str, Array]:
    """Per-run metrics of fine-tuned models.

    Parameters
    ----------
    problem : Problem
        Batch shape (G,).
    clients : ndarray of int, shape (P,)
        The fine-tuning client of each model.
    V, B : ndarray of shapes (G, P, k) and (G, P, k, d)
        Fine-tuned parameters.
    V0, B0 : ndarray of shapes (G, k) and (G, k, d)
        Global model.
    loss_scale : float
    metrics : sequence of str
        Names from :data:`METRICS`.

    Returns
    -------
    dict of str to ndarray of shape (G, P)
        Definitions: local/global/others losses as in the module docstring; ``ood_loss``
        ||w*_i - B^T V||^2 ([KUMAR], isotropic risk to the client's own target);
        ``feature_distortion_fro`` ||B - B_0||_F; ``feature_distortion_local``
        E_{D_i} ||(B - B_0) x||^2 = tr(D S_i D^T); ``delta_l2`` the exact unsquared
        distortion E_{D_i} ||(B - B_0) x|| (:func:`synthetic.delta.delta_population`; the
        mean over the client's samples when ``n`` is set), exactly 0 where B did not move;
        ``delta_l2_mc`` and ``delta_l2_se`` its Monte-Carlo estimate with ``n_mc`` draws and
        standard error (:func:`delta_monte_carlo`, a cross-check); ``head_change``
        ||V - V_0||; ``feature_angle_max`` the
        largest principal angle between rowspace(B) and rowspace(B_0), radians.
    """
    unknown = sorted(set(metrics) - set(METRICS))
    if unknown:
        raise ValueError(f"metric={unknown[0]!r} is invalid: expected one of {', '.join(METRICS)}")
    w = predictor(V, B)
    D = B - B0[..., None, :, :]
    unchanged = not np.any(D)  # e.g. linear probing: every feature metric is exactly zero
    zeros = np.zeros(w.shape[:-1])
    inputs = select_clients(problem.inputs, clients)
    out = loss_metrics(problem, clients, w, loss_scale, metrics)
    for name in metrics:
        if name in out:
            continue
        if name == "feature_distortion_fro":
            out[name] = np.linalg.norm(D, axis=(-2, -1))
        elif name == "feature_distortion_local":
            # tr(D S_i D^T): S_i applied to each row of D that moved anywhere in the batch.
            live = np.flatnonzero(np.any(D != 0, axis=(*range(D.ndim - 2), -1)))
            moved_rows = D[..., live, :]
            out[name] = np.sum(
                moved_rows * apply_inputs(inputs, moved_rows, extra=1), axis=(-2, -1)
            )
        elif name == "delta_l2":
            if unchanged:
                out[name] = zeros
            elif problem.x is not None:
                x_own = problem.x[..., clients, :, :]
                out[name] = np.linalg.norm(x_own @ np.swapaxes(D, -1, -2), axis=-1).mean(-1)
            else:
                out[name] = delta_population(D, inputs)
        elif name in ("delta_l2_mc", "delta_l2_se"):
            if "delta_l2_mc" not in out:
                if unchanged:
                    out["delta_l2_mc"], out["delta_l2_se"] = zeros, zeros
                else:
                    x_mc = None if problem.x is None else problem.x[..., clients, :, :]
                    mc = problem.mc[..., clients, :, :]
                    out["delta_l2_mc"], out["delta_l2_se"] = delta_monte_carlo(D, inputs, mc, x_mc)
        elif name == "head_change":
            out[name] = np.linalg.norm(V - V0[..., None, :], axis=-1)
        elif name == "feature_angle_max":
            if unchanged:
                out[name] = zeros
            else:
                basis0 = _orthonormal_basis(B0)[..., None, :, :]
                basis0 = np.broadcast_to(basis0, (*B.shape[:-2], *basis0.shape[-2:]))
                angle = max_row_space_angle(B0[..., None, :, :], B, basis_a=basis0)
                out[name] = np.where(np.any(D != 0, axis=(-2, -1)), angle, 0.0)  # exact 0 if B=B0
    return {name: out[name] for name in metrics}
