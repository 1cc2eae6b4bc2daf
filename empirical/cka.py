"""Exact linear CKA, one-shot and streaming, from float64 moment sums.

Both paths call the same two functions, torchmetrics' way: :func:`_cka_update` adds a batch of
paired rows to a :class:`CKAState` (sums of X, Y, X^T X, Y^T Y, X^T Y and a few row-norm sums,
all float64), and :func:`_cka_compute` centres them at the end. Memory is
O(d1^2 + d2^2 + d1 d2) whatever n is; no n x n Gram matrix is ever built.

Numerics (:mod:`empirical._numerics`): the rows enter the products as (x - s) 2**-e, with s a
float64 reference mean (of the first batch; CKA is offset invariant, so any s is exact) and e
a power-of-two scale (exact), so that no product overflows, underflows or cancels. The
products run in the input dtype (numpy BLAS: ``w.T @ w`` is a syrk, half the flops of a
GEMM) on chunks of at most ``CHUNK`` rows and are accumulated in float64.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import torch

from empirical._moments import CentredMoments, centred_moments
from empirical._numerics import (
    CHUNK,
    Frame,
    as_features,
    centred_rows,
    check_finite,
    check_rows,
    in_range,
    new_frame,
    scaled_rows,
)

DEGREES: dict[str, tuple[int, int]] = {
    "su": (1, 0), "sv": (0, 1), "suu": (2, 0), "svv": (0, 2), "suv": (1, 1),
    "sau": (3, 0), "sbu": (1, 2), "sav": (2, 1), "sbv": (0, 3),
    "saa": (4, 0), "sbb": (0, 4), "sab": (2, 2),
}  # fmt: skip
"""Degree of each sum in the rows of X and of Y (how it changes when a frame is rescaled)."""


@dataclass
class CKAState:
    """Float64 sufficient statistics of paired features X (n, d1) and Y (n, d2).

    Attributes are sums over the rows seen so far of the framed rows u = (x - s_x) 2**-e_x,
    v = (y - s_y) 2**-e_y (``frame_x``, ``frame_y``): ``su`` (d1,), ``sv`` (d2,), ``suu`` =
    U^T U (d1, d1), ``svv`` (d2, d2), ``suv`` = U^T V (d1, d2). With ``row_stats`` (needed by
    the debiased estimator only) also the row norms a_i = ||u_i||^2, b_i = ||v_i||^2 in
    ``saa, sbb, sab`` and the vectors ``sau`` = sum a_i u_i, ``sbu``, ``sav``, ``sbv``.
    """

    row_stats: bool = True
    n: int = 0
    frame_x: Frame | None = None
    frame_y: Frame | None = None
    sums: dict[str, np.ndarray] = field(default_factory=dict)


def _init_sums(state: CKAState, x: np.ndarray, y: np.ndarray) -> None:
    state.frame_x, state.frame_y = new_frame(x, "X"), new_frame(y, "Y")
    d1, d2 = x.shape[1], y.shape[1]
    names = {"su": (d1,), "sv": (d2,), "suu": (d1, d1), "svv": (d2, d2), "suv": (d1, d2)}
    if state.row_stats:
        names |= {"sau": (d1,), "sbu": (d1,), "sav": (d2,), "sbv": (d2,)}
        names |= {"saa": (), "sbb": (), "sab": ()}
    state.sums = {k: np.zeros(shape, dtype=np.float64) for k, shape in names.items()}


def _rescale(state: CKAState, rx: int, ry: int) -> None:
    """Express the sums in a frame whose exponents grew by -rx, -ry (exact: powers of two)."""
    for key, total in state.sums.items():
        px, py = DEGREES[key]
        state.sums[key] = np.ldexp(total, px * rx + py * ry)


def _cka_update(
    state: CKAState, x: np.ndarray | torch.Tensor, y: np.ndarray | torch.Tensor
) -> CKAState:
    """Add a batch of paired rows ``x`` (m, d1), ``y`` (m, d2) to ``state`` (in place).

    Cost: the three products U^T U (syrk), V^T V (syrk), U^T V (GEMM) in the input precision,
    chunk by chunk, plus O(m (d1 + d2)) for the shift, the scale and the column sums (and the
    row norms when ``row_stats``).

    Raises
    ------
    ValueError
        Complex, non-finite or unpaired rows, or widths that differ from the first batch.
    """
    xa, ya = as_features(x, "X"), as_features(y, "Y")
    check_rows(xa, ya)
    if xa.shape[0] == 0:
        return state
    if state.frame_x is None or state.frame_y is None:
        _init_sums(state, xa, ya)
    elif xa.shape[1] != state.sums["su"].shape[0] or ya.shape[1] != state.sums["sv"].shape[0]:
        raise ValueError(
            f"batch feature dimensions ({xa.shape[1]}, {ya.shape[1]}) differ from the first "
            f"batch ({state.sums['su'].shape[0]}, {state.sums['sv'].shape[0]})"
        )
    assert state.frame_x is not None
    assert state.frame_y is not None
    if xa.shape[0] > CHUNK:  # several chunks: keep the state unchanged if one is refused
        saved = ({k: v.copy() for k, v in state.sums.items()}, state.frame_x.exp, state.frame_y.exp)
        try:
            return _add_chunks(state, xa, ya)
        except ValueError:
            state.sums = saved[0]
            state.frame_x.exp, state.frame_y.exp = saved[1], saved[2]
            raise
    return _add_chunks(state, xa, ya)


def _add_chunks(state: CKAState, xa: np.ndarray, ya: np.ndarray) -> CKAState:
    fx, fy = state.frame_x, state.frame_y
    assert fx is not None
    assert fy is not None
    rows = min(CHUNK, xa.shape[0])
    bx, by = np.empty((rows, xa.shape[1]), xa.dtype), np.empty((rows, ya.shape[1]), ya.dtype)
    for start in range(0, xa.shape[0], CHUNK):
        xc, yc = xa[start : start + CHUNK], ya[start : start + CHUNK]
        # Fast path: centre, multiply, then check the products' range (the diagonal bounds
        # every entry); redo the chunk with its own scale only when they are out of range.
        u, v = centred_rows(fx, xc, bx), centred_rows(fy, yc, by)
        with np.errstate(all="ignore"):  # an overflow here only sends the chunk to the slow path
            prods = _products(u, v, state.row_stats)
        if not _usable(prods, fx, fy):
            u, rx = scaled_rows(fx, xc, bx)
            v, ry = scaled_rows(fy, yc, by)
            if rx or ry:
                _rescale(state, rx, ry)
            prods = _products(u, v, state.row_stats)
        for key, value in prods.items():
            if state.n == 0 and start == 0:  # first chunk: no zeros to read
                state.sums[key] = np.asarray(value, dtype=np.float64)
            else:
                state.sums[key] += value
    state.n += int(xa.shape[0])
    return state


def _usable(prods: dict[str, np.ndarray], fx: Frame, fy: Frame) -> bool:
    """Whether fast-path products are in range (so exact up to rounding) and finite."""
    if fx.exp is None or fy.exp is None:
        return False
    if not in_range(float(prods["suu"].diagonal().max(initial=0.0)), fx.dtype):
        return False
    if not in_range(float(prods["svv"].diagonal().max(initial=0.0)), fy.dtype):
        return False
    # |suv_ij| <= sqrt(suu_ii svv_jj) (Cauchy-Schwarz): in range with the diagonals.
    vectors = ("su", "sv", "sau", "sbu", "sav", "sbv")
    return all(bool(np.isfinite(prods[k]).all()) for k in vectors if k in prods)


def _products(u: np.ndarray, v: np.ndarray, row_stats: bool) -> dict[str, np.ndarray]:
    """The sums of one chunk of framed rows, products in the input dtype."""
    out = {"suu": u.T @ u, "svv": v.T @ v, "suv": u.T @ v}  # syrk, syrk, GEMM
    if not row_stats:
        out["su"] = np.ones(u.shape[0], u.dtype) @ u
        out["sv"] = np.ones(v.shape[0], v.dtype) @ v
        return out
    a = np.einsum("ij,ij->i", u, u)
    b = np.einsum("ij,ij->i", v, v)
    coef = np.stack([np.ones_like(a), a, b.astype(a.dtype)])
    cu = coef @ u
    cv = coef.astype(v.dtype) @ v
    a64, b64 = a.astype(np.float64), b.astype(np.float64)
    out |= {"su": cu[0], "sau": cu[1], "sbu": cu[2], "sv": cv[0], "sav": cv[1], "sbv": cv[2]}
    out |= {"saa": a64 @ a64, "sbb": b64 @ b64, "sab": a64 @ b64}
    return out


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
        """Centred second moments of everything seen so far (for Procrustes, angles)."""
        return centred_moments(self.state)


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
    from empirical.minibatch_cka import hsic_unbiased

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
