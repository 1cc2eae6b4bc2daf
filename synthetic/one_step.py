r"""One gradient step in closed form: the feature change is rank one, and so are its metrics.

One full-batch step from (V_s, B_0) moves the features by

.. math:: B - B_0 = -\eta\, s\, V_s g_w^T = a\, b^T, \qquad g_w = 2 c_L (S w - c),

with s = -1 under flooding below the level and +1 otherwise ([CLOSER] Sec. 4). At the start the
proximal and alignment penalties have zero gradient, so FT, proximal FT, feature alignment and
(in population mode, one ingredient) the soup take this same step. Every default metric of the
step follows from the factors without forming the k x d matrix B:

- predictor w = B_0^T V + b (a . V);
- ||B - B_0||_F = ||a|| ||b||, tr(D S_i D^T) = ||a||^2 b^T S_i b;
- Delta = E ||D x|| = ||a|| E|b^T x|, a folded-normal mean in population mode
  (:func:`synthetic.delta.folded_normal_mean`) and ||a|| mean_n |b^T x_n| on samples.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from synthetic.delta import folded_normal_mean
from synthetic.hyper import Hyper
from synthetic.methods import gradients, mask_from_gradients, predictor
from synthetic.metrics import loss_metrics, run_metrics
from synthetic.moments import InputModel, quadratic_form
from synthetic.problem import Objective, Problem, select_clients

Array = NDArray[np.float64]

# Metrics computed here from the factors; any other metric is computed on the formed B.
FACTOR_METRICS: frozenset[str] = frozenset(
    {
        "local_loss", "global_loss", "global_loss_others", "ood_loss", "feature_distortion_fro",
        "feature_distortion_local", "delta_l2", "head_change",
    }
)  # fmt: skip


@dataclass(frozen=True)
class RankOneStep:
    """The result of one step: the head V and the feature change a b^T.

    Parameters
    ----------
    V : ndarray of shape (G, P, k)
    a : ndarray of shape (G, P, k)
    b : ndarray of shape (G, P, d)
    """

    V: Array
    a: Array
    b: Array

    def features(self, B0: Array) -> Array:
        """The fine-tuned features B = B_0 + a b^T, shape (G, P, k, d)."""
        return B0[..., None, :, :] + self.a[..., :, None] * self.b[..., None, :]


def one_step(V_start: Array, B0: Array, objective: Objective, hp: Hyper) -> RankOneStep:
    r"""One (optionally flooded) gradient step on (V, B) from (V_start, B_0), in factored form.

    Parameters
    ----------
    V_start : ndarray of shape (G, P, k) or (G, 1, k)
    B0 : ndarray of shape (G, k, d)
    objective : Objective
        Batch shape (G, P).
    hp : Hyper
        ``eta``, ``loss_scale`` and ``flood`` are used (``steps`` is 1).

    Returns
    -------
    RankOneStep
        V = V_s - eta s B_0 g_w, a = -eta s V_s, b = g_w, as in
        :func:`synthetic.methods.gradient_descent` with one step.
    """
    b0 = B0[..., None, :, :]
    w = predictor(V_start, b0)
    sw = objective.apply(w)
    g_w = 2.0 * hp.loss_scale * (sw - objective.c)
    eta = np.asarray(hp.eta, dtype=float)
    flood = np.asarray(hp.flood, dtype=float)
    if bool(np.any(~np.isnan(flood))):
        loss = hp.loss_scale * (
            np.sum(w * sw, axis=-1) - 2.0 * np.sum(objective.c * w, axis=-1) + objective.c0
        )
        eta = eta * np.where(np.isnan(flood) | (loss >= flood), 1.0, -1.0)
    g_v = (b0 @ g_w[..., None])[..., 0]
    V = V_start - eta[..., None] * g_v
    a = -eta[..., None] * np.broadcast_to(V_start, V.shape)
    return RankOneStep(V, a, g_w)


def sparse_one_step(V0: Array, B0: Array, objective: Objective, hp: Hyper) -> tuple[Array, Array]:
    """One step of ``sparse`` (GD on the SNIP mask), the gradient computed once for both.

    Parameters
    ----------
    V0 : ndarray of shape (G, 1, k)
    B0 : ndarray of shape (G, k, d)
    objective : Objective
        Batch shape (G, P).
    hp : Hyper
        ``eta``, ``loss_scale`` and ``sparsity`` are used.

    Returns
    -------
    V, B : ndarray of shapes (G, P, k) and (G, P, k, d)
        As :func:`synthetic.methods.run_method` with ``sparse`` and one step.
    """
    b0 = B0[..., None, :, :]
    g_v, g_b, _ = gradients(V0, b0, objective, hp.loss_scale)
    mask_v, mask_b = mask_from_gradients(V0, b0, g_v, g_b, hp.sparsity)
    eta = np.asarray(hp.eta, dtype=float)[..., None]
    return V0 - eta * (g_v * mask_v), b0 - eta[..., None] * (g_b * mask_b)


def _delta(a_norm: Array, b: Array, inputs: InputModel, x_own: Array | None) -> Array:
    """E ||a b^T x|| over the fine-tuning client's inputs (exactly 0 where a b^T = 0)."""
    if x_own is not None:
        return a_norm * np.abs(x_own @ b[..., None])[..., 0].mean(axis=-1)
    mu = np.sum(b * inputs.mean, axis=-1)
    var = inputs.scale**2 * np.sum(b * b, axis=-1)
    if inputs.factor.shape[-1]:
        var = var + np.sum(np.einsum("...dq,...d->...q", inputs.factor, b) ** 2, axis=-1)
    return a_norm * folded_normal_mean(mu, np.sqrt(var))


def rank_one_metrics(
    problem: Problem,
    clients: NDArray[np.int_],
    step: RankOneStep,
    V0: Array,
    B0: Array,
    loss_scale: float,
    metrics: Sequence[str],
) -> dict[str, Array]:
    """The metrics of :func:`synthetic.metrics.run_metrics` for a rank-one feature change.

    Parameters
    ----------
    problem : Problem
        Batch shape (G,).
    clients : ndarray of int, shape (P,)
    step : RankOneStep
    V0, B0 : ndarray of shapes (G, k) and (G, k, d)
    loss_scale : float
    metrics : sequence of str

    Returns
    -------
    dict of str to ndarray of shape (G, P)
    """
    V, a, b = step.V, step.a, step.b
    w = predictor(V, B0[..., None, :, :]) + b * np.sum(a * V, axis=-1, keepdims=True)
    inputs = select_clients(problem.inputs, clients)
    a_norm = np.linalg.norm(a, axis=-1)
    out = loss_metrics(problem, clients, w, loss_scale, metrics)
    for name in metrics:
        if name in out:
            continue
        if name == "feature_distortion_fro":
            out[name] = a_norm * np.linalg.norm(b, axis=-1)
        elif name == "feature_distortion_local":
            out[name] = a_norm**2 * quadratic_form(inputs, b)
        elif name == "delta_l2":
            x_own = None if problem.x is None else problem.x[..., clients, :, :]
            out[name] = _delta(a_norm, b, inputs, x_own)
        elif name == "head_change":
            out[name] = np.linalg.norm(V - V0[..., None, :], axis=-1)
    rest = [name for name in metrics if name not in FACTOR_METRICS]
    if rest:
        out.update(run_metrics(problem, clients, V, step.features(B0), V0, B0, loss_scale, rest))
    return {name: out[name] for name in metrics}


__all__ = ["FACTOR_METRICS", "RankOneStep", "one_step", "rank_one_metrics", "sparse_one_step"]
