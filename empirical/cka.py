"""Exact linear CKA, one-shot and streaming, from float64 moment sums.

Both paths call the same two functions, torchmetrics' way: :func:`_cka_update` adds a batch of
paired rows to a :class:`CKAState` (sums of X, Y, X^T X, Y^T Y, X^T Y and a few row-norm sums,
all float64), and :func:`_cka_compute` centres them at the end. Memory is
O(d1^2 + d2^2 + d1 d2) whatever n is; no n x n Gram matrix is ever built.

Numerics (:mod:`empirical._numerics`): the rows enter the products as (x - s) 2**-e, with s a
float64 reference mean (of the first batch; CKA is offset invariant, so any s is exact) and e
a power-of-two scale (exact), so that no product overflows, underflows or cancels. The
products run in the input dtype (numpy BLAS: ``w.T @ w`` is a syrk, half the flops of a
GEMM) on chunks of rows and are summed in the input dtype over at most ``CHUNK`` rows, in
float64 beyond. What keeps the cost near that of the bare products: the d x d sums of up to
CHUNK rows stay in the input dtype (exact for one chunk) and are reduced in float64 block by
block; the reference mean is taken without copying; the centring buffers (up to
``BUFFER_BYTES`` each, one for X and one for Y) and the matrices that later chunks multiply
into are kept per thread between calls, since fresh pages cost more than the centring itself
on some machines, and rows are split into balanced chunks small enough for those buffers.
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import torch

from empirical._cka_state import CKAState, _cka_update
from empirical._moments import CentredMoments, centred_moments
from empirical._numerics import as_features, check_finite, check_rows


def _debiased_hsic(frob2: float, cross: float, tr1: float, tr2: float, n: int) -> float:
    """Debiased HSIC of [KORNBLITH] (after Song et al. 2012), up to a factor depending on n."""
    return frob2 - n / (n - 2.0) * cross + tr1 * tr2 / ((n - 1.0) * (n - 2.0))


def _cka_compute(state: CKAState, debiased: bool = False) -> float:
    """Linear CKA of the rows accumulated in ``state``; see :func:`linear_cka`."""
    if state.n < 2:
        raise ValueError(f"linear CKA needs at least n=2 samples, got n={state.n}")
    if debiased and not state.row_stats:
        raise ValueError(
            "debiased CKA needs the row-norm sums: accumulate with debiased=True "
            "(StreamingLinearCKA(debiased=True))"
        )
    if debiased and state.n < 4:
        raise ValueError(
            f"debiased linear CKA needs at least n=4 samples (unbiased HSIC divides by "
            f"n(n-3)), got n={state.n}"
        )
    m = centred_moments(state)
    const_x, const_y = m.constant_x, m.constant_y
    if const_x or const_y:
        # Defined convention: both constant -> identical after removing offsets -> 1; one
        # constant -> no shared variance -> 0.
        return 1.0 if (const_x and const_y) else 0.0
    xy, xx, yy = m.frobenius2()
    if not all(math.isfinite(v) for v in (xy, xx, yy)):
        raise ValueError("the float64 moment sums are not finite (this is a bug: please report)")
    if not debiased:
        value = xy / (math.sqrt(xx) * math.sqrt(yy))
        return min(max(value, 0.0), 1.0)
    n = state.n
    hxy = _debiased_hsic(xy, m.row_xy, m.tr_x, m.tr_y, n)
    hxx = _debiased_hsic(xx, m.row_xx, m.tr_x, m.tr_x, n)
    hyy = _debiased_hsic(yy, m.row_yy, m.tr_y, m.tr_y, n)
    if hxx <= 0.0 or hyy <= 0.0:
        raise ValueError(
            f"debiased linear CKA is undefined here: the debiased self-similarity is not "
            f"positive (HSIC(X,X)={hxx:.3g}, HSIC(Y,Y)={hyy:.3g}) with n={n}; use more samples "
            "or debiased=False"
        )
    return hxy / (math.sqrt(hxx) * math.sqrt(hyy))


def linear_cka(
    X: np.ndarray | torch.Tensor, Y: np.ndarray | torch.Tensor, debiased: bool = False
) -> float:
    r"""Exact linear centred kernel alignment between two representations of the same samples.

    .. math::
        \mathrm{CKA}(X, Y) = \frac{\|\tilde Y^\top \tilde X\|_F^2}
        {\|\tilde X^\top \tilde X\|_F\,\|\tilde Y^\top \tilde Y\|_F},
        \qquad \tilde X = X - \mathbf 1 \bar x^\top,

    the feature-space form of HSIC(K, L) / sqrt(HSIC(K, K) HSIC(L, L)) with linear kernels
    ([KORNBLITH] Eq. 3-4). With ``debiased=True`` every HSIC is replaced by the unbiased
    estimator of Song et al. (2012), written in feature space as in [KORNBLITH]'s reference
    code; the debiased value can be slightly negative.

    Parameters
    ----------
    X : ndarray or Tensor of shape (n, d1)
    Y : ndarray or Tensor of shape (n, d2)
        Features of the same n samples (rows paired), real and finite, any scale in the
        float range. float32 input is multiplied in float32 and accumulated in float64;
        float64 (and integer) input in float64; X and Y may differ in dtype.
    debiased : bool
        Use the unbiased HSIC estimator (needs n >= 4).

    Returns
    -------
    float
        In [0, 1] when ``debiased=False``. Constant features (centred spread at the rounding
        level of the stored values, i.e. below 4 eps |x|) give a defined value: 1.0 if both
        X and Y are constant, 0.0 if only one is.

    Raises
    ------
    ValueError
        Rows differ, complex, NaN or Inf values (the message names X or Y), n < 2 (n < 4
        when debiased), a debiased self-similarity that is not positive, or streamed batches
        whose mean drifted so far from the first batch's that the products lost precision.
    """
    return _cka_compute(_cka_update(CKAState(row_stats=debiased), X, Y), debiased=debiased)


class StreamingLinearCKA:
    """Exact linear CKA over batches in O(d1^2 + d2^2 + d1 d2) memory.

    Parameters
    ----------
    debiased : bool
        Also accumulate the O(n (d1 + d2)) row-norm sums that the debiased estimator needs,
        and make it the default of :meth:`compute`.

    Feeding the rows of X and Y in any batches gives the same value as :func:`linear_cka` on
    the concatenated arrays (up to floating-point rounding).

    Examples
    --------
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> X = rng.normal(size=(100, 5)); Y = X @ rng.normal(size=(5, 3))
    >>> acc = StreamingLinearCKA()
    >>> for i in range(0, 100, 32):
    ...     acc.update(X[i:i + 32], Y[i:i + 32])
    >>> bool(abs(acc.compute() - linear_cka(X, Y)) < 1e-12)
    True
    """

    def __init__(self, debiased: bool = False) -> None:
        self.debiased = debiased
        self.state = CKAState(row_stats=debiased)

    @property
    def n(self) -> int:
        """Number of rows seen so far."""
        return self.state.n

    def update(self, X: np.ndarray | torch.Tensor, Y: np.ndarray | torch.Tensor) -> None:
        """Add a batch of paired rows X (m, d1), Y (m, d2)."""
        _cka_update(self.state, X, Y)

    def compute(self, debiased: bool | None = None) -> float:
        """Linear CKA of all rows seen so far (see :func:`linear_cka`).

        ``debiased`` defaults to the constructor's choice; the debiased estimator is only
        available when the accumulator was created with ``debiased=True``.
        """
        return _cka_compute(self.state, debiased=self.debiased if debiased is None else debiased)

    def moments(self) -> CentredMoments:
        """Centred second moments of everything seen so far (for Procrustes, angles).

        A snapshot: later :meth:`update` calls add to the state's sums in place, so the
        returned moments hold copies of the d x d sums (O(d1^2 + d2^2 + d1 d2) memory).
        """
        m = centred_moments(self.state)
        return dataclasses.replace(m, suu=m.suu.copy(), svv=m.svv.copy(), suv=m.suv.copy())


def gram_linear_cka(
    X: np.ndarray | torch.Tensor, Y: np.ndarray | torch.Tensor, debiased: bool = False
) -> float:
    r"""Linear CKA through n x n Gram matrices (reference implementation, O(n^2) memory).

    .. math:: \mathrm{CKA} = \frac{\mathrm{HSIC}(K, L)}{\sqrt{\mathrm{HSIC}(K,K)\,
        \mathrm{HSIC}(L,L)}}, \quad K = XX^\top,\ L = YY^\top,

    with HSIC(K, L) = tr(KHLH) / (n-1)^2 ([KORNBLITH] Eq. 3) or, when ``debiased``, the
    unbiased estimator of Song et al. (2012) Eq. 5. Used to cross-check :func:`linear_cka`;
    prefer :func:`linear_cka` on real data.

    Parameters
    ----------
    X : ndarray or Tensor of shape (n, d1)
    Y : ndarray or Tensor of shape (n, d2)
    debiased : bool
        Use the unbiased HSIC estimator (n >= 4).

    Returns
    -------
    float
        Linear CKA (no convention for constant features: this is a reference formula).
    """
    from empirical.minibatch import hsic_unbiased

    xa, ya = as_features(X, "X"), as_features(Y, "Y")
    check_rows(xa, ya)
    check_finite(xa, "X")
    check_finite(ya, "Y")
    x = torch.from_numpy(xa.astype(np.float64))
    y = torch.from_numpy(ya.astype(np.float64))
    n = x.shape[0]
    k, l_ = x @ x.T, y @ y.T
    if debiased:
        if n < 4:
            raise ValueError(f"debiased linear CKA needs at least n=4 samples, got n={n}")
        hxy, hxx, hyy = hsic_unbiased(k, l_), hsic_unbiased(k, k), hsic_unbiased(l_, l_)
    else:
        h = torch.eye(n, dtype=torch.float64) - 1.0 / n
        kc, lc = h @ k @ h, h @ l_ @ h
        hxy, hxx, hyy = (kc * lc).sum(), (kc * kc).sum(), (lc * lc).sum()
    return float(hxy / torch.sqrt(hxx * hyy))


__all__ = ["CKAState", "StreamingLinearCKA", "gram_linear_cka", "linear_cka"]
