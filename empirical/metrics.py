"""Paired feature-distortion metrics and the public metric namespace.

The paper's distortion Delta_c ([CLOSER] Sec. 3), its relative version and the mean cosine
distance compare the features of the *same* samples under the global and the fine-tuned
model, row by row; they need d1 == d2. The similarity measures (linear CKA, minibatch CKA,
Procrustes, principal angles) are re-exported here from their own modules.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from empirical._numerics import as_features, check_finite, check_rows
from empirical.cka import StreamingLinearCKA, gram_linear_cka, linear_cka
from empirical.minibatch import minibatch_cka
from empirical.similarity import principal_angles, procrustes_distance


def _fro(norms: np.ndarray) -> float:
    """sqrt(sum norms^2) without overflow or underflow (scaled by a power of two)."""
    top = float(norms.max()) if norms.size else 0.0
    if top == 0.0:
        return 0.0
    e = math.frexp(top)[1]
    return math.ldexp(float(np.sqrt(np.square(np.ldexp(norms, -e)).sum())), e)


def _paired_update(
    sums: torch.Tensor, x: np.ndarray | torch.Tensor, y: np.ndarray | torch.Tensor
) -> torch.Tensor:
    """Add a batch to ``sums`` = [n, sum ||x-y||, ||X-Y||_F, ||X||_F, sum cos dist] (float64).

    Each row pair is first divided by the power of two just above max(|x_i|, |y_i|) (exact),
    so no square overflows or underflows at any scale; the Frobenius norms are combined with
    ``hypot``. Cosine distance of a row pair is 1 - cos; by convention 0 when both rows are
    zero and 1 when exactly one is.
    """
    xa, ya = as_features(x, "X"), as_features(y, "Y")
    check_rows(xa, ya, same_dim=True)
    check_finite(xa, "X")
    check_finite(ya, "Y")
    x64, y64 = xa.astype(np.float64), ya.astype(np.float64)
    top = np.maximum(np.abs(x64).max(1, initial=0.0), np.abs(y64).max(1, initial=0.0))
    e = np.frexp(top)[1][:, None]
    xs, ys = np.ldexp(x64, -e), np.ldexp(y64, -e)
    diff = np.linalg.norm(xs - ys, axis=1)
    nx, ny = np.linalg.norm(xs, axis=1), np.linalg.norm(ys, axis=1)
    both = (nx > 0) & (ny > 0)
    dot = np.einsum("ij,ij->i", xs, ys)
    cos = np.where(both, dot / np.where(both, nx * ny, 1.0), 0.0)
    cos = np.where((nx == 0) & (ny == 0), 1.0, np.clip(cos, -1.0, 1.0))
    e1 = e[:, 0]
    diff, nx = np.ldexp(diff, e1), np.ldexp(nx, e1)
    sums[0] += xa.shape[0]
    sums[1] += float(diff.sum())
    sums[2] = math.hypot(float(sums[2]), _fro(diff))
    sums[3] = math.hypot(float(sums[3]), _fro(nx))
    sums[4] += float((1.0 - cos).sum())
    return sums


def _paired_compute(sums: torch.Tensor) -> dict[str, float]:
    """Finish the paired metrics from the sums of :func:`_paired_update`."""
    n = float(sums[0])
    if n == 0:
        raise ValueError("paired metrics need at least one sample, got n=0")
    diff, ref = float(sums[2]), float(sums[3])
    rel = diff / ref if ref > 0 else (0.0 if diff == 0 else math.inf)
    return {
        "delta_l2": float(sums[1]) / n,
        "relative_l2": rel,
        "cosine_distance": float(sums[4]) / n,
    }


def _paired(X: np.ndarray | torch.Tensor, Y: np.ndarray | torch.Tensor) -> dict[str, float]:
    return _paired_compute(_paired_update(torch.zeros(5, dtype=torch.float64), X, Y))


def delta_l2(X: np.ndarray | torch.Tensor, Y: np.ndarray | torch.Tensor) -> float:
    r"""Federated feature distortion: mean unsquared l2 distance between paired rows.

    .. math:: \Delta = \frac1n \sum_{j=1}^n \| x_j - y_j \|_2

    ([CLOSER] Sec. 3, Delta_c with x_j = f(theta_G; x_cj) and y_j = f(theta_c; x_cj)).

    Parameters
    ----------
    X, Y : ndarray or Tensor of shape (n, d)
        Features of the same n samples under the global and the client model.

    Returns
    -------
    float
        Delta >= 0, computed in float64.
    """
    return _paired(X, Y)["delta_l2"]


def relative_l2(X: np.ndarray | torch.Tensor, Y: np.ndarray | torch.Tensor) -> float:
    r"""Relative feature distortion ||X - Y||_F / ||X||_F (docs/theory.md Sec. 6).

    .. math:: \rho = \sqrt{\textstyle\sum_j \|x_j - y_j\|^2 \big/ \sum_j \|x_j\|^2}

    Parameters
    ----------
    X : ndarray or Tensor of shape (n, d)
        Reference (global-model) features.
    Y : ndarray or Tensor of shape (n, d)
        Client-model features of the same samples.

    Returns
    -------
    float
        rho >= 0. If X is all zeros: 0.0 when Y is all zeros too, ``inf`` otherwise.
    """
    return _paired(X, Y)["relative_l2"]


def mean_cosine_distance(X: np.ndarray | torch.Tensor, Y: np.ndarray | torch.Tensor) -> float:
    r"""Mean over rows of the cosine distance between paired feature vectors.

    .. math:: \frac1n \sum_j \Big(1 - \frac{x_j^\top y_j}{\|x_j\|\,\|y_j\|}\Big)

    Parameters
    ----------
    X, Y : ndarray or Tensor of shape (n, d)

    Returns
    -------
    float
        In [0, 2]. A row pair where both vectors are zero counts 0, where exactly one is zero
        counts 1.
    """
    return _paired(X, Y)["cosine_distance"]


__all__ = [
    "StreamingLinearCKA",
    "delta_l2",
    "gram_linear_cka",
    "linear_cka",
    "mean_cosine_distance",
    "minibatch_cka",
    "principal_angles",
    "procrustes_distance",
    "relative_l2",
]
