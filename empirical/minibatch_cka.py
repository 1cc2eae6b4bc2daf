"""Minibatch CKA ([NGUYEN]): unbiased HSIC averaged over minibatches, then normalised.

This estimates a different quantity from exact :func:`empirical.cka.linear_cka`: the ratio of
the expected minibatch HSICs, which does not depend on n but on the minibatch size.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from empirical._util import check_pair

GROUP = 8
"""Minibatches processed together (batched Gram matrices)."""


def hsic_unbiased(K: torch.Tensor, L: torch.Tensor) -> torch.Tensor:
    r"""Unbiased HSIC estimator of Song et al. (2012) Eq. 5, batched over leading dimensions.

    .. math::
        \mathrm{HSIC}_1(K, L) = \frac{1}{m(m-3)}\Big[\mathrm{tr}(\tilde K \tilde L)
        + \frac{\mathbf 1^\top \tilde K \mathbf 1\,\mathbf 1^\top \tilde L \mathbf 1}{(m-1)(m-2)}
        - \frac{2}{m-2}\,\mathbf 1^\top \tilde K \tilde L \mathbf 1\Big],

    where the tilde zeroes the diagonal ([NGUYEN] Eq. 3).

    Parameters
    ----------
    K, L : Tensor of shape (..., m, m)
        Symmetric Gram matrices, m >= 4.

    Returns
    -------
    Tensor of shape (...)
    """
    m = K.shape[-1]
    if m < 4:
        raise ValueError(f"unbiased HSIC needs at least m=4 samples per batch, got m={m}")
    eye = torch.eye(m, dtype=torch.bool, device=K.device)
    kt = K.masked_fill(eye, 0.0)
    lt = L.masked_fill(eye, 0.0)
    trace = (kt * lt).sum((-1, -2))
    ks, ls = kt.sum(-1), lt.sum(-1)  # row sums; K~ 1 and L~ 1
    total = ks.sum(-1) * ls.sum(-1) / ((m - 1) * (m - 2))
    cross = (ks * ls).sum(-1) * 2.0 / (m - 2)
    return (trace + total - cross) / (m * (m - 3))


def _minibatch_update(sums: torch.Tensor, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Add the unbiased HSICs (xy, xx, yy) of one batch to ``sums`` (3,) and count it."""
    x64, y64 = x.to(torch.float64), y.to(torch.float64)
    k, l_ = x64 @ x64.mT, y64 @ y64.mT
    h = torch.stack([hsic_unbiased(k, l_), hsic_unbiased(k, k), hsic_unbiased(l_, l_)], -1)
    sums[:3] += h.reshape(-1, 3).sum(0)
    sums[3] += h.reshape(-1, 3).shape[0]
    return sums


def _minibatch_compute(sums: torch.Tensor) -> float:
    """Ratio of the averaged HSICs; constant-feature convention as in linear_cka."""
    if int(sums[3]) == 0:
        raise ValueError("minibatch CKA saw no batch with at least 4 samples")
    hxy, hxx, hyy = (float(v) for v in sums[:3] / sums[3])
    if hxx <= 0.0 and hyy <= 0.0:
        return 1.0
    if hxx <= 0.0 or hyy <= 0.0:
        return 0.0
    return hxy / math.sqrt(hxx * hyy)


def minibatch_cka(
    X: np.ndarray | torch.Tensor,
    Y: np.ndarray | torch.Tensor,
    batch_size: int = 256,
    *,
    rng: np.random.Generator | None = None,
) -> float:
    r"""Minibatch linear CKA of [NGUYEN] (Sec. 3.1, Eq. 2-3).

    .. math::
        \mathrm{CKA}_{mb} = \frac{\frac1k\sum_b \mathrm{HSIC}_1(K_b, L_b)}
        {\sqrt{\frac1k\sum_b \mathrm{HSIC}_1(K_b, K_b)\ \frac1k\sum_b \mathrm{HSIC}_1(L_b, L_b)}}

    over k minibatches of ``batch_size`` rows, with the unbiased HSIC of :func:`hsic_unbiased`.
    A final partial batch is used when it has at least 4 rows and dropped otherwise.

    Parameters
    ----------
    X : ndarray or Tensor of shape (n, d1)
    Y : ndarray or Tensor of shape (n, d2)
    batch_size : int
        Rows per minibatch, >= 4.
    rng : numpy.random.Generator, optional
        When given, rows are permuted before batching; otherwise they are taken in order.

    Returns
    -------
    float
        The estimate (can be slightly negative). If the averaged self-HSIC is not positive for
        both inputs (constant features) the value is 1.0; for one of them, 0.0.
    """
    if batch_size < 4:
        raise ValueError(f"batch_size={batch_size} is invalid: expected an integer >= 4")
    x, y = check_pair(X, Y)
    if rng is not None:
        perm = torch.from_numpy(rng.permutation(x.shape[0]))
        x, y = x[perm], y[perm]
    n = x.shape[0]
    full = (n // batch_size) * batch_size
    sums = torch.zeros(4, dtype=torch.float64)
    step = GROUP * batch_size  # a few batches at a time: memory independent of n
    for start in range(0, full, step):
        stop = min(start + step, full)
        _minibatch_update(
            sums,
            x[start:stop].reshape(-1, batch_size, x.shape[1]),
            y[start:stop].reshape(-1, batch_size, y.shape[1]),
        )
    if n - full >= 4:
        _minibatch_update(sums, x[full:], y[full:])
    return _minibatch_compute(sums)


__all__ = ["hsic_unbiased", "minibatch_cka"]
