r"""Personalized fine-tuning (PFT) of the two-layer linear model, vectorized over batch axes.

Every method starts from a global model (V_0, B_0) and returns the fine-tuned (V, B). All
arrays may carry leading batch axes (configurations, seeds, clients); hyperparameters are
floats or arrays that broadcast against those batch axes. The loss is the client objective of
:class:`synthetic.problem.Objective`; its gradients ([CLOSER] Sec. 4) are

.. math:: g_w = 2 c_L (S w - c), \quad \nabla_V = B g_w, \quad \nabla_B = V g_w^T.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from synthetic.hyper import METHOD_FIELDS, Hyper, expand, for_method
from synthetic.names import METHODS
from synthetic.problem import Objective
from synthetic.solvers import linear_probe

Array = NDArray[np.float64]


@dataclass(frozen=True)
class Fit:
    """Fine-tuned parameters and, on request, the trajectory.

    Parameters
    ----------
    V : ndarray of shape (..., k)
    B : ndarray of shape (..., k, d)
    V_path : ndarray of shape (steps + 1, ..., k) or None
    B_path : ndarray of shape (steps + 1, ..., k, d) or None
    """

    V: Array
    B: Array
    V_path: Array | None = None
    B_path: Array | None = None


def _arr(x: Array | float) -> Array:
    return np.asarray(x, dtype=float)


def predictor(V: Array, B: Array) -> Array:
    """End-to-end predictor w = B^T V, shape (..., d)."""
    return (np.swapaxes(B, -1, -2) @ V[..., None])[..., 0]


def gradients(
    V: Array, B: Array, objective: Objective, loss_scale: float = 1.0
) -> tuple[Array, Array, Array]:
    r"""Loss and gradients of the client objective at (V, B).

    .. math:: g_w = 2 c_L (S w - c), \quad \nabla_V L = B g_w, \quad \nabla_B L = V g_w^T

    Returns
    -------
    grad_V : ndarray of shape (..., k)
    grad_B : ndarray of shape (..., k, d)
    loss : ndarray of shape (...)
    """
    w = predictor(V, B)
    sw = objective.apply(w)
    g_w = 2.0 * loss_scale * (sw - objective.c)
    loss = loss_scale * (
        np.sum(w * sw, axis=-1) - 2.0 * np.sum(objective.c * w, axis=-1) + objective.c0
    )
    grad_v = (B @ g_w[..., None])[..., 0]
    grad_b = V[..., :, None] * g_w[..., None, :]
    return grad_v, grad_b, loss


def gradient_descent(
    V0: Array,
    B0: Array,
    objective: Objective,
    hp: Hyper,
    *,
    mask: tuple[Array, Array] | None = None,
    trajectory: bool = False,
) -> Fit:
    r"""Full-batch gradient descent on (V, B) from (V0, B0).

    Each step minimizes, with the anchor (V0, B0),

    .. math:: F(L) + \frac{\mu}{2} \|\theta - \theta_0\|^2
              + \beta\, \mathrm{tr}((B - B_0) S (B - B_0)^T),

    where F(L) = |L - b| + b under flooding at level b (Ishida et al. 2020: the loss gradient
    flips sign while L < b) and F(L) = L otherwise. ``mask`` freezes the entries where it is 0.

    Parameters
    ----------
    V0 : ndarray of shape (..., k)
    B0 : ndarray of shape (..., k, d)
    objective : Objective
        Batch shape broadcastable with V0.shape[:-1].
    hp : Hyper
        ``eta``, ``steps``, ``loss_scale``, ``mu``, ``beta``, ``flood`` are used.
    mask : (ndarray (..., k), ndarray (..., k, d)) or None
    trajectory : bool
        Also return every iterate.

    Returns
    -------
    Fit
    """
    batch = np.broadcast_shapes(V0.shape[:-1], objective.c.shape[:-1])
    # Read-only views: every step below builds new arrays, so the start is never copied.
    V = np.broadcast_to(V0, (*batch, V0.shape[-1]))
    B = np.broadcast_to(B0, (*batch, *B0.shape[-2:]))
    eta = _arr(hp.eta)[..., None]
    mu = _arr(hp.mu)[..., None]
    beta = _arr(hp.beta)[..., None, None]
    flood = _arr(hp.flood)
    use_flood = bool(np.any(~np.isnan(flood)))
    use_mu = bool(np.any(mu != 0))
    use_beta = bool(np.any(beta != 0))
    path_v, path_b = ([V.copy()], [B.copy()]) if trajectory else ([], [])
    with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
        for _ in range(hp.steps):
            g_v, g_b, loss = gradients(V, B, objective, hp.loss_scale)
            if use_flood:
                sign = np.where(np.isnan(flood) | (loss >= flood), 1.0, -1.0)
                g_v = g_v * sign[..., None]
                g_b = g_b * sign[..., None, None]
            if use_mu:
                g_v = g_v + mu * (V - V0)
                g_b = g_b + mu[..., None] * (B - B0)
            if use_beta:
                g_b = g_b + 2.0 * beta * objective.apply(B - B0, extra=1)
            if mask is not None:
                g_v = g_v * mask[0]
                g_b = g_b * mask[1]
            V = V - eta * g_v
            B = B - eta[..., None] * g_b
            if trajectory:
                path_v.append(V.copy())
                path_b.append(B.copy())
    if hp.steps == 0:
        V, B = V.copy(), B.copy()
    if trajectory:
        return Fit(V, B, np.stack(path_v), np.stack(path_b))
    return Fit(V, B)


def snip_mask(
    V0: Array, B0: Array, objective: Objective, sparsity: Array | float, loss_scale: float = 1.0
) -> tuple[Array, Array]:
    r"""SNIP mask: the top ``sparsity`` fraction of parameters by saliency |g * theta|.

    Ties are broken by parameter order (V first, then B row-major), so exactly
    max(1, round(sparsity * P)) of the P = k + k d entries are trainable.

    Returns
    -------
    mask_V : ndarray of shape (..., k)
    mask_B : ndarray of shape (..., k, d)
    """
    g_v, g_b, _ = gradients(V0, B0, objective, loss_scale)
    return mask_from_gradients(V0, B0, g_v, g_b, sparsity)


def mask_from_gradients(
    V0: Array, B0: Array, g_v: Array, g_b: Array, sparsity: Array | float
) -> tuple[Array, Array]:
    """:func:`snip_mask` from the gradients at (V0, B0), shapes (..., k) and (..., k, d)."""
    batch = g_v.shape[:-1]
    k, d = g_b.shape[-2:]
    sal = np.concatenate(
        [np.abs(g_v * V0).reshape(*batch, k), np.abs(g_b * B0).reshape(*batch, k * d)], axis=-1
    )
    n_params = sal.shape[-1]
    keep = np.broadcast_to(np.maximum(1, np.rint(_arr(sparsity) * n_params)).astype(int), batch)
    # The keep-th largest saliency, by partition (no full sort): every entry above it is kept,
    # and of the entries equal to it the first ones in parameter order fill the quota, as a
    # stable descending sort would.
    # Columns that are zero in every row (a zero row of the head, say) are left out of the
    # partition: where a row has >= keep positive saliencies its keep-th largest is among the
    # other columns, and where it has fewer, the keep-th largest is 0.
    flat = sal.reshape(-1, n_params)
    live = np.flatnonzero(np.any(flat != 0, axis=0))
    sub = flat[:, live]  # the comparisons below run on these columns only
    keep_flat = keep.reshape(-1)
    kth = np.maximum(live.size - keep_flat, 0)  # ascending position among the live columns
    part = np.partition(sub, np.unique(kth), axis=-1) if live.size else flat[:, :1]
    top = np.take_along_axis(part, np.minimum(kth, part.shape[-1] - 1)[:, None], axis=-1)
    positive = np.count_nonzero(sub > 0, axis=-1)
    threshold = np.where((positive >= keep_flat)[:, None], top, 0.0)  # (R, 1)
    above = sub > threshold  # dead columns (saliency 0) are never above a threshold >= 0
    tied = sub == threshold
    n_tied = tied.sum(axis=-1) + np.where(threshold[:, 0] == 0, n_params - live.size, 0)
    room = keep_flat - above.sum(axis=-1)
    chosen = np.zeros(flat.shape, dtype=bool)
    chosen[:, live] = above | tied
    at_zero = np.flatnonzero(threshold[:, 0] == 0)
    chosen[at_zero] = True  # threshold 0: every entry is above or tied (ties trimmed below)
    crowded = np.flatnonzero(n_tied > room)  # more ties than room
    if crowded.size:  # there the first tied entries in parameter order fill the quota
        rows = flat[crowded]
        tied_c = rows == threshold[crowded]
        fill = np.cumsum(tied_c, axis=-1) <= room[crowded, None]
        chosen[crowded] = (rows > threshold[crowded]) | (tied_c & fill)
    mask = chosen.reshape(sal.shape).astype(float)
    return mask[..., :k], mask[..., k:].reshape(*batch, k, d)


def run_method(
    method: str,
    V0: Array,
    B0: Array,
    objective: Objective,
    hp: Hyper,
    *,
    soup_objective: Objective | None = None,
    trajectory: bool = False,
) -> Fit:
    """Run one PFT method on a client.

    Parameters
    ----------
    method : str
        ``ft`` (GD, optionally flooded), ``lp`` (exact least squares on V), ``lpft`` (lp then
        ft), ``proximal`` (ft with mu/2 ||theta - theta_0||^2), ``sparse`` (ft on the SNIP mask),
        ``soup`` (average of ft runs on the ingredient objectives in ``soup_objective``, extra
        axis before the parameter axes), ``align`` (ft with beta E||B x - B_0 x||^2).
    V0, B0 : ndarray of shapes (..., k) and (..., k, d)
        Global model.
    objective : Objective
        The client's training objective.
    hp : Hyper
        The method reads only its fields of :data:`synthetic.hyper.METHOD_FIELDS`.
    soup_objective : Objective, optional
        Ingredient objectives for ``soup`` with batch shape (..., R); defaults to ``objective``
        (one ingredient: identical to ``ft``).
    trajectory : bool
        Return the iterates (for ``lp`` the path has the start and the probe).

    Returns
    -------
    Fit

    Raises
    ------
    ConfigError
        Unknown method, or ``hp.flood`` set for a method other than ``ft`` and ``lpft``.
    """
    hp = for_method(method, hp)
    if method in ("lp", "lpft"):
        v_lp = linear_probe(B0, objective, hp.ridge)
        b_lp = np.broadcast_to(B0, (*v_lp.shape[:-1], *B0.shape[-2:]))
        if method == "lpft":
            return gradient_descent(v_lp, b_lp, objective, hp, trajectory=trajectory)
        if trajectory:
            v_start = np.broadcast_to(V0, v_lp.shape)
            return Fit(v_lp, b_lp.copy(), np.stack([v_start, v_lp]), np.stack([b_lp, b_lp]))
        return Fit(v_lp, b_lp.copy())
    if method == "sparse":
        mask = snip_mask(V0, B0, objective, hp.sparsity, hp.loss_scale)
        return gradient_descent(V0, B0, objective, hp, mask=mask, trajectory=trajectory)
    if method == "soup" and soup_objective is not None:
        v_start, b_start = V0[..., None, :], B0[..., None, :, :]
        fit = gradient_descent(v_start, b_start, soup_objective, expand(hp), trajectory=trajectory)
        return Fit(
            fit.V.mean(axis=-2),
            fit.B.mean(axis=-3),
            None if fit.V_path is None else fit.V_path.mean(axis=-2),
            None if fit.B_path is None else fit.B_path.mean(axis=-3),
        )
    # ft, proximal, align, and soup with one ingredient: gradient descent on what they read.
    return gradient_descent(V0, B0, objective, hp, trajectory=trajectory)


__all__ = [
    "METHODS",
    "METHOD_FIELDS",
    "Fit",
    "Hyper",
    "gradient_descent",
    "gradients",
    "linear_probe",
    "predictor",
    "run_method",
    "mask_from_gradients",
    "snip_mask",
]
