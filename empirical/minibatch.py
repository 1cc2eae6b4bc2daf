"""Minibatch CKA ([NGUYEN]): unbiased HSIC averaged over minibatches, then normalised.

This estimates a different quantity from exact :func:`empirical.cka.linear_cka`: the ratio of
the expected minibatch HSICs, which does not depend on n but on the minibatch size.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import torch

from empirical._numerics import (
    Frame,
    as_features,
    centred_rows,
    check_rows,
    in_range,
    new_frame,
    scaled_rows,
)


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


def _hsic_terms(trace: float, ks: np.ndarray, ls: np.ndarray, m: int) -> float:
    """HSIC_1 from tr(K~ L~) and the row sums K~ 1, L~ 1 (Song et al. 2012 Eq. 5)."""
    total = float(ks.sum()) * float(ls.sum()) / ((m - 1) * (m - 2))
    cross = float(ks @ ls) * 2.0 / (m - 2)
    return (trace + total - cross) / (m * (m - 3))


def _batch_hsics(u: np.ndarray, v: np.ndarray) -> tuple[np.ndarray, float, float]:
    """(HSIC_1(K, L), HSIC_1(K, K), HSIC_1(L, L)) of one batch of framed rows (m, d1), (m, d2).

    Also returns max_i ||u_i||^2 and max_i ||v_i||^2 (the Grams' diagonals), which bound
    every product and so tell whether the batch was in range.

    Gram form (two m x m syrk in the input dtype, diagonals zeroed exactly) when
    m < d1 + d2, feature form (two d x d syrk and one d1 x d2 GEMM, float64) otherwise; the
    flop ratio of the two is (d1 + d2) / m.
    """
    m = u.shape[0]
    if m < u.shape[1] + v.shape[1]:
        k = (u @ u.T).astype(np.float64)  # syrk
        l_ = (v @ v.T).astype(np.float64)
        qx, qy = float(k.diagonal().max()), float(l_.diagonal().max())
        np.fill_diagonal(k, 0.0)
        np.fill_diagonal(l_, 0.0)
        ks, ls = k.sum(1), l_.sum(1)
        t_kl, t_kk, t_ll = float(np.vdot(k, l_)), float(np.vdot(k, k)), float(np.vdot(l_, l_))
    else:
        # tr(K~L~) = ||U^T V||_F^2 - sum_i a_i b_i; K~ 1 = U (U^T 1) - a, a_i = ||u_i||^2.
        # This form subtracts the diagonal instead of zeroing it, so it runs in float64.
        u, v = u.astype(np.float64), v.astype(np.float64)
        a, b = np.einsum("ij,ij->i", u, u), np.einsum("ij,ij->i", v, v)
        qx, qy = float(a.max()), float(b.max())
        uu, vv, uv = u.T @ u, v.T @ v, u.T @ v
        ks, ls = u @ u.sum(0) - a, v @ v.sum(0) - b
        t_kl = float(np.vdot(uv, uv)) - float(a @ b)
        t_kk = float(np.vdot(uu, uu)) - float(a @ a)
        t_ll = float(np.vdot(vv, vv)) - float(b @ b)
    h = [_hsic_terms(t_kl, ks, ls, m), _hsic_terms(t_kk, ks, ks, m), _hsic_terms(t_ll, ls, ls, m)]
    return np.array(h), qx, qy


QUICK_ROWS = 32
"""Rows of a batch whose float64 mean is its reference shift on the fast path."""


def _framed_hsics(
    xb: np.ndarray, yb: np.ndarray, bufs: dict[str, np.ndarray] | None = None
) -> tuple[np.ndarray, int, int]:
    """HSICs of one batch in its own frame, and the frame exponents (x, y).

    Fast path: shift by the float64 mean of the first rows, no scaling, then check the
    Grams' diagonals; out of range (or non-finite), redo with the batch's own scale.
    """
    fx = Frame(_quick_shift(xb), xb.dtype, "X", exp=0)
    fy = Frame(_quick_shift(yb), yb.dtype, "Y", exp=0)
    with np.errstate(all="ignore"):  # an overflow here only sends the batch to the slow path
        bx = _buffer(bufs, "x", xb)
        by = _buffer(bufs, "y", yb)
        h, qx, qy = _batch_hsics(centred_rows(fx, xb, bx), centred_rows(fy, yb, by))
    if in_range(qx, xb.dtype) and in_range(qy, yb.dtype) and np.isfinite(h).all():
        return h, 0, 0
    fx, fy = new_frame(xb, "X", rows=xb.shape[0]), new_frame(yb, "Y", rows=yb.shape[0])
    u, _ = scaled_rows(fx, xb)
    v, _ = scaled_rows(fy, yb)
    return _batch_hsics(u, v)[0], fx.exp or 0, fy.exp or 0


def _buffer(bufs: dict[str, np.ndarray] | None, key: str, a: np.ndarray) -> np.ndarray | None:
    """A reusable scratch array at least as large as ``a`` (same dtype), or None."""
    if bufs is None:
        return None
    b = bufs.get(key)
    if b is None or b.shape[0] < a.shape[0] or b.shape[1:] != a.shape[1:] or b.dtype != a.dtype:
        b = bufs[key] = np.empty_like(a)
    return b


def _quick_shift(x: np.ndarray) -> np.ndarray:
    with np.errstate(all="ignore"):
        return x[:QUICK_ROWS].astype(np.float64).mean(0).astype(x.dtype).astype(np.float64)


@dataclass
class MinibatchState:
    """Sums of the per-batch unbiased HSICs (xy, xx, yy), float64, in units 2**(deg * exp).

    Each batch is centred on its own float64 mean and scaled by its own power of two (see
    :mod:`empirical._numerics`); its HSICs are then brought to the common exponents
    ``exp_x``, ``exp_y`` (the largest seen so far) exactly, by powers of two.
    """

    sums: np.ndarray = field(default_factory=lambda: np.zeros(3))
    batches: int = 0
    exp_x: int | None = None
    exp_y: int | None = None


DEG_X = np.array([2, 4, 0])
DEG_Y = np.array([2, 0, 4])
"""Degree of (HSIC(K, L), HSIC(K, K), HSIC(L, L)) in the rows of X and of Y."""


def _minibatch_update(
    sums: MinibatchState | torch.Tensor,
    x: np.ndarray | torch.Tensor,
    y: np.ndarray | torch.Tensor,
) -> MinibatchState | torch.Tensor:
    """Add the unbiased HSICs (xy, xx, yy) of batches ``x`` (k, m, d1) or (m, d1) to ``sums``.

    ``sums`` is a :class:`MinibatchState`, or a float64 tensor (4,) [xy, xx, yy, count] holding
    the HSICs in absolute units (each batch computed in its own frame, then scaled back
    exactly; the float64 range limits this form to |x| below about 1e75, beyond which the sums
    overflow and :func:`_minibatch_compute` refuses them). Both forms give the same value.
    """
    xa = as_features(x.reshape(-1, x.shape[-1]), "X")
    ya = as_features(y.reshape(-1, y.shape[-1]), "Y")
    check_rows(xa, ya)
    m = x.shape[-2]
    bufs: dict[str, np.ndarray] = {}
    for start in range(0, xa.shape[0], m):
        xb, yb = xa[start : start + m], ya[start : start + m]
        h, ex, ey = _framed_hsics(xb, yb, bufs)
        if isinstance(sums, MinibatchState):
            if sums.exp_x is None or sums.exp_y is None:
                sums.exp_x, sums.exp_y = ex, ey
            gx, gy = max(ex - sums.exp_x, 0), max(ey - sums.exp_y, 0)
            if gx or gy:  # a larger batch: express the sums in its units
                sums.sums = np.ldexp(sums.sums, -(DEG_X * gx + DEG_Y * gy))
                sums.exp_x, sums.exp_y = sums.exp_x + gx, sums.exp_y + gy
            sums.sums += np.ldexp(h, DEG_X * (ex - sums.exp_x) + DEG_Y * (ey - sums.exp_y))
            sums.batches += 1
        else:
            with np.errstate(over="ignore"):
                h = np.ldexp(h, DEG_X * ex + DEG_Y * ey)
            sums[:3] += torch.from_numpy(h)
            sums[3] += 1
    return sums


def _minibatch_compute(sums: MinibatchState | torch.Tensor) -> float:
    """Ratio of the averaged HSICs; constant-feature convention as in linear_cka."""
    if isinstance(sums, MinibatchState):
        count, h = sums.batches, sums.sums
    else:
        count, h = int(sums[3]), sums[:3].numpy()
    if count == 0:
        raise ValueError("minibatch CKA saw no batch with at least 4 samples")
    if not np.isfinite(h).all():
        raise ValueError(
            "minibatch CKA: the HSIC sums overflowed float64 (features beyond about 1e75 in "
            "absolute value); accumulate into a MinibatchState, which keeps them in scaled units"
        )
    hxy, hxx, hyy = (float(v) for v in h)
    if hxx <= 0.0 and hyy <= 0.0:
        return 1.0
    if hxx <= 0.0 or hyy <= 0.0:
        return 0.0
    return hxy / (math.sqrt(hxx) * math.sqrt(hyy))


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
    x, y = as_features(X, "X"), as_features(Y, "Y")
    check_rows(x, y)
    # No separate finiteness pass: a NaN or Inf shows in the batch's Gram diagonal, and the
    # slow path then raises naming X or Y.
    if rng is not None:
        perm = rng.permutation(x.shape[0])
        x, y = x[perm], y[perm]
    n = x.shape[0]
    full = (n // batch_size) * batch_size
    state = MinibatchState()
    if full:  # all full batches in one call: (k, m, d) views, scratch buffers reused
        k = full // batch_size
        _minibatch_update(
            state, x[:full].reshape(k, batch_size, -1), y[:full].reshape(k, batch_size, -1)
        )
    if n - full >= 4:
        _minibatch_update(state, x[full:], y[full:])
    return _minibatch_compute(state)


__all__ = ["MinibatchState", "hsic_unbiased", "minibatch_cka"]
