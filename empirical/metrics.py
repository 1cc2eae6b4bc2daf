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

from empirical._util import check_pair
from empirical.cka import StreamingLinearCKA, gram_linear_cka, linear_cka
from empirical.minibatch_cka import minibatch_cka
from empirical.similarity import principal_angles, procrustes_distance


def _paired_update(sums: torch.Tensor, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Add a batch to ``sums`` = [n, sum ||x-y||, sum ||x-y||^2, sum ||x||^2, sum cos dist].

    Cosine distance of a row pair is 1 - cos; by convention 0 when both rows are zero and 1 when
    exactly one is.
    """
    x64, y64 = x.to(torch.float64), y.to(torch.float64)
    diff = torch.linalg.vector_norm(x64 - y64, dim=1)
    nx = torch.linalg.vector_norm(x64, dim=1)
    ny = torch.linalg.vector_norm(y64, dim=1)
    both = (nx > 0) & (ny > 0)
    cos = torch.where(both, (x64 * y64).sum(1) / torch.where(both, nx * ny, 1.0), 0.0)
    cos = torch.where((nx == 0) & (ny == 0), 1.0, cos.clamp(-1.0, 1.0))
    sums[0] += x.shape[0]
    sums[1] += diff.sum()
    sums[2] += (diff * diff).sum()
    sums[3] += (nx * nx).sum()
    sums[4] += (1.0 - cos).sum()
    return sums


def _paired_compute(sums: torch.Tensor) -> dict[str, float]:
    """Finish the paired metrics from the sums of :func:`_paired_update`."""
    n = float(sums[0])
    if n == 0:
        raise ValueError("paired metrics need at least one sample, got n=0")
    diff2, ref2 = float(sums[2]), float(sums[3])
    rel = math.sqrt(diff2 / ref2) if ref2 > 0 else (0.0 if diff2 == 0 else math.inf)
    return {
        "delta_l2": float(sums[1]) / n,
        "relative_l2": rel,
        "cosine_distance": float(sums[4]) / n,
    }


def _paired(X: np.ndarray | torch.Tensor, Y: np.ndarray | torch.Tensor) -> dict[str, float]:
    x, y = check_pair(X, Y, same_dim=True)
    return _paired_compute(_paired_update(torch.zeros(5, dtype=torch.float64), x, y))


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
    r"""Relative feature distortion ||X - Y||_F / ||X||_F (THEORY.md Sec. 6).

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
