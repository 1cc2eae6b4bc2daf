"""Losses and feature-distortion metrics of fine-tuned two-layer linear models.

Losses are exact population excess risks r^T S_j r (label noise excluded), scaled by the loss
normalization c_L ([CLOSER] Sec. 3-4). "Global" is the uniform mixture D_G over all clients;
"others" averages over the clients other than the fine-tuning one ([CLOSER] Table 2).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from numpy.typing import NDArray

from synthetic.generators import InputModel, apply_inputs, quadratic_form
from synthetic.methods import predictor
from synthetic.problem import Problem, select_clients

Array = NDArray[np.float64]

# Computed by default; ``feature_angle_max`` (one k x k eigenproblem per run) only on request.
DEFAULT_METRICS: tuple[str, ...] = (
    "local_loss",
    "global_loss",
    "global_loss_others",
    "ood_loss",
    "feature_distortion_fro",
    "feature_distortion_local",
    "delta_l2",
    "delta_l2_se",
    "head_change",
)
METRICS: tuple[str, ...] = (*DEFAULT_METRICS, "feature_angle_max")

_RANK_TOL = 1e-14  # eigenvalues below this fraction of the largest carry no Monte-Carlo noise


def _orthonormal_basis(A: Array) -> Array:
    """Orthonormal basis (columns) of rowspace(A) for A of shape (..., k, d), via QR of A^T."""
    return np.linalg.qr(np.swapaxes(A, -1, -2))[0]


def principal_angles(A: Array, B: Array) -> Array:
    """Principal angles between rowspace(A) and rowspace(B).

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


def max_principal_angle(A: Array, B: Array, basis_a: Array | None = None) -> Array:
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


def _delta_gaussian(D: Array, inputs: InputModel) -> tuple[Array, Array]:
    """Centre and eigenvalues of y = (B - B_0) x, x ~ D_i, in the covariance eigenbasis.

    Returns (|Q^T D e_i|, eigenvalues), both (..., k), eigenvalues in descending order.
    """
    df = D @ inputs.factor
    cov = df @ np.swapaxes(df, -1, -2) + (inputs.scale**2)[..., None, None] * (
        D @ np.swapaxes(D, -1, -2)
    )
    vals, vecs = np.linalg.eigh(cov)
    centre = (np.swapaxes(vecs, -1, -2) @ (D @ inputs.mean[..., None]))[..., 0]
    return np.abs(centre[..., ::-1]), np.clip(vals[..., ::-1], 0.0, None)


def delta_monte_carlo(
    D: Array, inputs: InputModel, draws: Array, x: Array | None = None
) -> tuple[Array, Array]:
    r"""The paper's unsquared distortion Delta = E_{x ~ D_i} ||(B - B_0) x||_2 and its s.e.

    Population mode: y = (B - B_0) x is Gaussian, N(D e_i, D (F F^T + s^2 I) D^T). In the
    eigenbasis of that covariance (eigenvalues l_1 >= ... >= l_k, centre m = |Q^T D e_i|),

    .. math:: \|y\|^2 = \sum_{j \le r} (m_j + \sqrt{l_j} z_j)^2 + \sum_{j > r} m_j^2,

    with z the standard-normal ``draws`` and r the largest number of eigenvalues above
    1e-14 l_1 in the batch (below that an eigenvalue counts as zero: its direction carries no
    randomness), so a draw costs
    O(r) rather than O(k d). Sample mode (``x`` given): the mean over the client's own
    samples, as in [CLOSER] Sec. 3.4.

    Parameters
    ----------
    D : ndarray of shape (..., k, d)
        Feature change B - B_0.
    inputs : InputModel
        Input distributions of the fine-tuning clients, batch shape (...).
    draws : ndarray of shape (..., n_mc, k)
    x : ndarray of shape (..., n, d), optional

    Returns
    -------
    delta, stderr : ndarray of shape (...)
        Mean of the norms and its standard error std / sqrt(n).
    """
    if x is not None:
        norms = np.linalg.norm(x @ np.swapaxes(D, -1, -2), axis=-1)
    else:
        centre, vals = _delta_gaussian(D, inputs)
        active = vals > _RANK_TOL * vals[..., :1]
        r = int(active.sum(axis=-1).max()) if active.size else 0
        fixed = np.sum(centre[..., r:] ** 2, axis=-1)
        spread = np.where(active[..., :r], np.sqrt(vals[..., :r]), 0.0)
        samples = centre[..., None, :r] + spread[..., None, :] * draws[..., :r]
        norms = np.sqrt(np.sum(samples * samples, axis=-1) + fixed[..., None])
    n = norms.shape[-1]
    return norms.mean(axis=-1), norms.std(axis=-1, ddof=1) / np.sqrt(n)


def delta_exact(D: Array, inputs: InputModel, nodes: int = 401) -> Array:
    r"""E ||(B - B_0) x|| in population mode by one-dimensional quadrature (no sampling).

    Uses :math:`\sqrt{a} = (2\sqrt{\pi})^{-1} \int_0^\infty (1 - e^{-t a}) t^{-3/2} dt` and
    the Gaussian moment generating function
    :math:`E e^{-t \|y\|^2} = \prod_j (1 + 2 t l_j)^{-1/2} \exp(-t m_j^2 / (1 + 2 t l_j))`
    with eigenvalues l_j and centre m_j in the eigenbasis. Substituting t = e^u / E||y||^2,
    the integrand decays like e^{-|u|/2} on both sides, so the trapezoidal rule on
    u in [-50, 50] is accurate to about 1e-10 relative. An independent reference for
    :func:`delta_monte_carlo` in tests.

    Returns
    -------
    ndarray of shape (...)
    """
    centre, vals = _delta_gaussian(D, inputs)
    second = np.sum(vals, axis=-1) + np.sum(centre**2, axis=-1)  # E ||y||^2
    safe = np.where(second > 0, second, 1.0)
    u = np.linspace(-50.0, 50.0, nodes).reshape(-1, *([1] * centre.ndim))
    t = np.exp(u) / safe[None, ..., None]
    two_t_vals = 2.0 * t * vals[None]
    log_mgf = -0.5 * np.sum(
        np.log1p(two_t_vals) + 2.0 * t * centre[None] ** 2 / (1.0 + two_t_vals), axis=-1
    )
    integrand = -np.expm1(log_mgf) * np.exp(-0.5 * u[..., 0]) * np.sqrt(safe)[None]
    value = np.trapezoid(integrand, u[..., 0], axis=0) / (2.0 * np.sqrt(np.pi))
    return np.where(second > 0, value, 0.0)


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
        E_{D_i} ||(B - B_0) x||^2 = tr(D S_i D^T); ``delta_l2`` and its standard error
        (:func:`delta_monte_carlo`); ``head_change`` ||V - V_0||; ``feature_angle_max`` the
        largest principal angle between rowspace(B) and rowspace(B_0), radians.
    """
    unknown = sorted(set(metrics) - set(METRICS))
    if unknown:
        raise ValueError(f"metric={unknown[0]!r} is invalid: expected one of {', '.join(METRICS)}")
    C = problem.heads.shape[-2]
    w = predictor(V, B)
    losses = client_losses(problem, w, loss_scale)
    own = losses[..., np.arange(len(clients)), clients]
    total = losses.sum(axis=-1)
    D = B - B0[..., None, :, :]
    unchanged = not np.any(D)  # e.g. linear probing: every feature metric is exactly zero
    zeros = np.zeros(own.shape)
    inputs = select_clients(problem.inputs, clients)
    out: dict[str, Array] = {}
    for name in metrics:
        if name == "local_loss":
            out[name] = own
        elif name == "global_loss":
            out[name] = total / C
        elif name == "global_loss_others":
            out[name] = (total - own) / (C - 1) if C > 1 else np.full_like(own, np.nan)
        elif name == "ood_loss":
            out[name] = np.sum((problem.w_star[..., clients, :] - w) ** 2, axis=-1)
        elif name == "feature_distortion_fro":
            out[name] = np.linalg.norm(D, axis=(-2, -1))
        elif name == "feature_distortion_local":
            # tr(D S_i D^T): S_i applied to each of the k rows of D.
            out[name] = np.sum(D * apply_inputs(inputs, D, extra=1), axis=(-2, -1))
        elif name in ("delta_l2", "delta_l2_se"):
            if "delta_l2" not in out:
                if unchanged:
                    out["delta_l2"], out["delta_l2_se"] = zeros, zeros
                else:
                    x_own = None if problem.x is None else problem.x[..., clients, :, :]
                    mc = problem.mc[..., clients, :, :]
                    out["delta_l2"], out["delta_l2_se"] = delta_monte_carlo(D, inputs, mc, x_own)
        elif name == "head_change":
            out[name] = np.linalg.norm(V - V0[..., None, :], axis=-1)
        elif name == "feature_angle_max":
            if unchanged:
                out[name] = zeros
            else:
                basis0 = _orthonormal_basis(B0)[..., None, :, :]
                basis0 = np.broadcast_to(basis0, (*B.shape[:-2], *basis0.shape[-2:]))
                out[name] = max_principal_angle(B0[..., None, :, :], B, basis_a=basis0)
    return {name: out[name] for name in metrics}
