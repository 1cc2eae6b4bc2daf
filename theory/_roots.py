r"""Sign of FT minus LP-FT global loss in [CLOSER] Theorem 4.5: lambda*, every winning interval.

FT minus LP-FT global loss is :math:`\lambda^2 q(\lambda)` with
:math:`q(\lambda) = (a_2 - b_2) + a_3 \lambda + a_4 \lambda^2`, so LP-FT's global loss is the
lower (or equal) exactly where :math:`q(\lambda) \ge 0`. Since :math:`a_4 = c_L\,\mathrm{mean}_j
D^T S_j D \ge 0`, where q has two positive roots LP-FT wins on :math:`(0, r_1]` *and again*
on :math:`[r_2, \infty)`: the winning set is a union of intervals, not :math:`(0, \lambda^*]`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

#: Relative tolerance under which a2 and b2 count as equal (a tie, not a regime).
TIE_RTOL = 1e-10
#: Relative size below which a3 or a4 count as exactly zero.
ZERO_RTOL = 1e-12

#: One interval [lo, hi] of lambda; ``hi`` is None for +infinity.
Interval = tuple[float, float | None]


def _clean(a2: float, a3: float, a4: float, b2: float) -> tuple[float, float, float, bool]:
    """(c0, a3, a4, tie) with rounding-sized a3, a4 set to 0 and a tie's c0 set to 0."""
    c0 = a2 - b2
    scale = max(abs(a2), abs(b2), abs(a3), abs(a4), 1e-300)
    # Rounding leaves ~1e-17-sized a3, a4 where they vanish exactly (e.g. e_i = u_i: D = 0).
    a3 = 0.0 if abs(a3) <= ZERO_RTOL * scale else a3
    a4 = 0.0 if abs(a4) <= ZERO_RTOL * scale else a4
    tie = abs(c0) <= TIE_RTOL * max(abs(a2), abs(b2), 1e-300)
    return (0.0 if tie else c0), a3, a4, tie


def positive_roots(c0: float, a3: float, a4: float) -> list[float]:
    r"""Sorted distinct positive roots of :math:`a_4 \ell^2 + a_3 \ell + c_0`.

    Parameters
    ----------
    c0, a3, a4 : float
        Finite coefficients.

    Returns
    -------
    list of float
        At most two roots, ascending (a double root appears once).
    """
    roots: list[float] = []
    if a4 != 0:
        disc = a3 * a3 - 4 * a4 * c0
        if disc >= 0:
            sq = math.sqrt(disc)
            # Numerically stable pair of roots.
            qv = -0.5 * (a3 + math.copysign(sq, a3 if a3 != 0 else 1.0))
            cand = [qv / a4, c0 / qv] if qv != 0 else [-a3 / (2 * a4)]
            roots = [r for r in cand if r > 0 and math.isfinite(r)]
    elif a3 != 0:
        r = -c0 / a3
        roots = [r] if r > 0 else []
    return sorted(set(roots))


def finite_coefficients(*values: float) -> bool:
    """Whether every coefficient is finite (an overflowing step size gives inf or nan)."""
    return all(math.isfinite(v) for v in values)


def lpft_wins_intervals(a2: float, a3: float, a4: float, b2: float) -> list[Interval]:
    r"""Every interval of lambda > 0 on which LP-FT's global loss is <= FT's ([CLOSER] Thm 4.5).

    The set :math:`\{\lambda > 0 : (a_2 - b_2) + a_3\lambda + a_4\lambda^2 \ge 0\}`, as
    closed intervals between consecutive positive roots (the first one starts at 0).

    Parameters
    ----------
    a2, a3, a4, b2 : float
        Coefficients under one convention (D_G or the other clients).

    Returns
    -------
    list of (float, float or None)
        Disjoint intervals ``(lo, hi)`` in increasing order; ``hi`` is None for +infinity.
        Empty when FT wins at every lambda > 0, or when a coefficient is not finite
        (overflow; see :func:`finite_coefficients`).

    Examples
    --------
    >>> lpft_wins_intervals(2.0, -3.0, 1.0, 0.0)  # q = (l - 1)(l - 2)
    [(0.0, 1.0), (2.0, None)]
    >>> lpft_wins_intervals(0.0, 0.0, 0.0, 1.0)  # FT better everywhere
    []
    """
    if not finite_coefficients(a2, a3, a4, b2):
        return []
    c0, a3, a4, _ = _clean(a2, a3, a4, b2)
    roots = positive_roots(c0, a3, a4)
    edges = [0.0, *roots]
    out: list[Interval] = []
    for j, lo in enumerate(edges):
        hi = edges[j + 1] if j + 1 < len(edges) else None
        probe = 0.5 * (lo + hi) if hi is not None else lo + max(1.0, lo)
        if c0 + a3 * probe + a4 * probe * probe >= 0:
            if out and out[-1][1] == lo:  # a double root between two winning pieces
                out[-1] = (out[-1][0], hi)
            else:
                out.append((lo, hi))
    return out


@dataclass(frozen=True)
class LambdaStar:
    """The threshold lambda* of [CLOSER] Theorem 4.5 for one client and one convention.

    The theorem says LP-FT is better for all lambda <= lambda*. That is true, but LP-FT is
    *not* better exactly on (0, lambda*]: FT minus LP-FT is lambda^2 (a4 lambda^2 + a3 lambda
    + a2 - b2) with a4 >= 0, so where a second positive root exists LP-FT wins again past it.
    The whole winning set is :func:`lpft_wins_intervals`; ``roots`` lists every sign change.

    Parameters
    ----------
    regime : str
        ``finite`` (a2 > b2 and a positive root: LP-FT better on (0, lambda*], then FT up to
        the second root if there is one, then LP-FT again),
        ``infinite`` (a2 > b2, no positive root: LP-FT better for every lambda > 0),
        ``none`` (a2 < b2: FT better for all small lambda, no lambda* > 0 exists; LP-FT may
        still win past a root),
        ``tie`` (a2 = b2 within :data:`TIE_RTOL`), or
        ``overflow`` (a coefficient is not finite: the step size overflows float64).
    value : float or None
        lambda* for ``finite``; ``None`` otherwise.
    crossover : float or None
        Smallest positive root of the bracket in any regime (where the winner first changes).
    roots : tuple of float
        Every positive root, ascending (at most two).
    """

    regime: str
    value: float | None
    crossover: float | None
    roots: tuple[float, ...] = ()

    @property
    def exists(self) -> bool:
        """Whether the theorem's conclusion (some lambda* > 0) holds: a2 > b2."""
        return self.regime in ("finite", "infinite")


def lambda_star(a2: float, a3: float, a4: float, b2: float) -> LambdaStar:
    r"""Smallest positive root of :math:`a_4 \ell^2 + a_3 \ell + (a_2 - b_2)` ([CLOSER] Thm 4.5).

    FT minus LP-FT global loss is :math:`\lambda^2 [(a_2-b_2) + a_3\lambda + a_4\lambda^2]`.

    Parameters
    ----------
    a2, a3, a4, b2 : float

    Returns
    -------
    LambdaStar
    """
    if not finite_coefficients(a2, a3, a4, b2):
        return LambdaStar("overflow", None, None)
    c0, a3c, a4c, tie = _clean(a2, a3, a4, b2)
    roots = tuple(positive_roots(c0, a3c, a4c))
    crossover = roots[0] if roots else None
    if tie:
        return LambdaStar("tie", None, crossover, roots)
    if a2 - b2 < 0:
        return LambdaStar("none", None, crossover, roots)
    if crossover is None:
        return LambdaStar("infinite", None, None, roots)
    return LambdaStar("finite", crossover, crossover, roots)
