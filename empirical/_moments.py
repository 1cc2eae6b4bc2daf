"""Private: centred second moments from the float64 sums of a CKAState (_cka_state.py)."""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import cached_property
from typing import TYPE_CHECKING

import numpy as np

from empirical._kernels import square_and_apply
from empirical._numerics import INPUT_NOISE, PRODUCT_RTOL, Frame, eps

if TYPE_CHECKING:
    from empirical._cka_state import CKAState


@dataclass
class CentredMoments:
    """Centred moments of paired features X (n, d1), Y (n, d2), float64, in frame units.

    ``suu``, ``svv``, ``suv`` are the uncentred sums; they keep the input dtype when a single
    chunk was accumulated (exact), and every reduction of them here runs in float64.

    ``cxx = W~^T W~`` (d1, d1), ``cyy`` (d2, d2), ``cxy = W~^T V~`` (d1, d2) where W~ are the
    centred rows of X times 2**-exp_x (V~ likewise for Y with exp_y): every metric built from
    them is scale invariant, so the units cancel. ``tr_x = tr(cxx)``; ``row_xy = sum_i
    ||w~_i||^2 ||v~_i||^2`` (and ``row_xx``, ``row_yy``; NaN without row statistics);
    ``constant_x`` when the centred spread of X is at the rounding level of its stored values.
    """

    n: int
    suu: np.ndarray
    svv: np.ndarray
    suv: np.ndarray
    mu: np.ndarray
    mv: np.ndarray
    tr_x: float
    tr_y: float
    row_xx: float
    row_yy: float
    row_xy: float
    constant_x: bool
    constant_y: bool
    exp_x: int
    exp_y: int

    @cached_property
    def cxx(self) -> np.ndarray:
        """Centred W~^T W~ (d1, d1), built on first use."""
        return _minus_outer(self.suu, self.n, self.mu, self.mu)

    @cached_property
    def cyy(self) -> np.ndarray:
        """Centred V~^T V~ (d2, d2), built on first use."""
        return _minus_outer(self.svv, self.n, self.mv, self.mv)

    @cached_property
    def cxy(self) -> np.ndarray:
        """Centred W~^T V~ (d1, d2), built on first use."""
        return _minus_outer(self.suv, self.n, self.mu, self.mv)

    @cached_property
    def applied(self) -> dict[str, tuple[float, np.ndarray]]:
        """(||S||_F^2, S b) of each uncentred sum S, one float64 pass over each.

        b = mv for ``suv`` and ``svv``, b = mu for ``suu``: the centring corrections of the
        Frobenius norms and of the row statistics both need these.
        """
        return {
            "suv": square_and_apply(self.suv, self.mv),
            "suu": square_and_apply(self.suu, self.mu),
            "svv": square_and_apply(self.svv, self.mv),
        }

    def bilinear(self, key: str) -> float:
        """a^T S b for S = ``key`` (a = mu for ``suv`` and ``suu``, mv for ``svv``)."""
        a = self.mv if key == "svv" else self.mu
        return float(a @ self.applied[key][1])

    def frobenius2(self) -> tuple[float, float, float]:
        """(||cxy||_F^2, ||cxx||_F^2, ||cyy||_F^2) without building the centred matrices.

        ||S - n a b^T||_F^2 = ||S||_F^2 - 2 n a^T S b + n^2 ||a||^2 ||b||^2 (one pass over S)
        when the centring is a small correction (n ||mu||^2 <= EXPAND_RATIO tr, so the
        cancellation costs at most EXPAND_RATIO^2 eps); the explicit matrices otherwise.
        """
        n, mu, mv = self.n, self.mu, self.mv
        alpha, beta = float(mu @ mu), float(mv @ mv)
        if n * alpha > EXPAND_RATIO * self.tr_x or n * beta > EXPAND_RATIO * self.tr_y:
            return (
                float(np.vdot(self.cxy, self.cxy)),
                float(np.vdot(self.cxx, self.cxx)),
                float(np.vdot(self.cyy, self.cyy)),
            )

        def expand(key: str, ab: float) -> float:
            return self.applied[key][0] - 2.0 * n * self.bilinear(key) + n * n * ab

        return (
            expand("suv", alpha * beta),
            expand("suu", alpha * alpha),
            expand("svv", beta * beta),
        )


EXPAND_RATIO = 10.0


def _is_constant(frame: Frame, mu: np.ndarray, n: int, tr: float) -> bool:
    """Centred spread at most INPUT_NOISE eps |x| (relative to the data's own magnitude).

    sum_i ||x_i||^2 = n ||mean||^2 + tr exactly, in frame units; an overflow of that
    magnitude (offset >> spread) correctly reads as constant.
    """
    if frame.exp is None or tr <= 0.0:
        return True
    with np.errstate(over="ignore"):
        mean = mu + np.ldexp(frame.shift, -frame.exp)
        raw = n * float(mean @ mean) + tr
    return tr <= (INPUT_NOISE * eps(frame.dtype)) ** 2 * raw


def _check_resolved(name: str, dtype: np.dtype, tr: float, total: float) -> None:
    """Refuse moments whose rounding error, amplified by the centring, exceeds PRODUCT_RTOL.

    ``total`` = sum of squares of the shifted rows; ``total / tr`` = 1 + n ||mean||^2 / tr
    grows when later batches drift far from the first batch's mean (the reference shift).
    """
    if eps(dtype) * total / tr > PRODUCT_RTOL:
        raise ValueError(
            f"{name}: the rows' mean drifted {math.sqrt(max(total / tr - 1.0, 0.0)):.3g} "
            f"spreads away from the first batch's mean, which costs more precision than "
            f"{dtype} products keep (relative error > {PRODUCT_RTOL:g}); pass float64 "
            "features or shuffle the rows before streaming them"
        )


def _minus_outer(c: np.ndarray, n: int, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Return c - n a b^T in two passes over a d1 x d2 matrix."""
    out = np.multiply.outer(n * a, b)
    return np.subtract(c, out, out=out)


def centred_moments(state: CKAState) -> CentredMoments:
    """Centre the sums of shifted rows u_i = x_i - s (exact, since centring removes any shift).

    With mu = mean(u), alpha = ||mu||^2, a_i = ||u_i||^2 and p_i = u_i . mu,
    ||u_i - mu||^2 = a_i - 2 p_i + alpha, so sums of products of centred row norms expand into
    the accumulated sums (sab, sav, sbu, suv, ...).
    """
    if state.n == 0 or state.frame_x is None or state.frame_y is None:
        raise ValueError("no samples were accumulated (n=0)")
    n = state.n
    s = state.sums
    mu, mv = s["su"] / n, s["sv"] / n
    alpha, beta = float(mu @ mu), float(mv @ mv)
    sa = float(np.trace(s["suu"], dtype=np.float64))
    sb = float(np.trace(s["svv"], dtype=np.float64))
    tr_x, tr_y = max(sa - n * alpha, 0.0), max(sb - n * beta, 0.0)
    fx, fy = state.frame_x, state.frame_y
    const_x, const_y = _is_constant(fx, mu, n, tr_x), _is_constant(fy, mv, n, tr_y)
    if not const_x:
        _check_resolved("X", fx.dtype, tr_x, sa)
    if not const_y:
        _check_resolved("Y", fy.dtype, tr_y, sb)
    m = CentredMoments(
        n=n,
        suu=s["suu"],
        svv=s["svv"],
        suv=s["suv"],
        mu=mu,
        mv=mv,
        tr_x=tr_x,
        tr_y=tr_y,
        row_xx=math.nan,  # below; NaN without row statistics (only the debiased CKA needs them)
        row_yy=math.nan,
        row_xy=math.nan,
        constant_x=const_x,
        constant_y=const_y,
        exp_x=fx.exp or 0,
        exp_y=fy.exp or 0,
    )
    if state.row_stats:
        m.row_xy = (
            float(s["sab"])
            - 2 * float(mv @ s["sav"])
            - 2 * float(mu @ s["sbu"])
            + beta * sa
            + alpha * sb
            + 4 * m.bilinear("suv")
            - 3 * n * alpha * beta
        )
        m.row_xx = _row_self(s["saa"], s["sau"], mu, alpha, sa, m.bilinear("suu"), n)
        m.row_yy = _row_self(s["sbb"], s["sbv"], mv, beta, sb, m.bilinear("svv"), n)
    return m


def _row_self(
    s4: np.ndarray, s3: np.ndarray, mean: np.ndarray, alpha: float, s2: float, quad: float, n: int
) -> float:
    """sum_i ||u_i - mean||^4 from the sums of the shifted rows u_i (see centred_moments).

    With a_i = ||u_i||^2: s4 = sum a_i^2, s3 = sum a_i u_i, s2 = sum a_i, quad = mean^T U^T U
    mean, alpha = ||mean||^2 (and sum u_i = n mean).
    """
    return float(s4) - 4 * float(mean @ s3) + 2 * alpha * s2 + 4 * quad - 3 * n * alpha * alpha
