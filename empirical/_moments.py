"""Private: centred second moments from the float64 sums of :class:`empirical.cka.CKAState`."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch

if TYPE_CHECKING:
    from empirical.cka import CKAState

CONSTANT_RTOL = 1e-10


@dataclass(frozen=True)
class CentredMoments:
    """Centred moments of paired features X (n, d1), Y (n, d2), all float64.

    ``cxx = X~^T X~`` (d1, d1), ``cyy`` (d2, d2), ``cxy = X~^T Y~`` (d1, d2) with X~ the centred
    rows; ``tr_x = tr(cxx)``; ``row_xy = sum_i ||x~_i||^2 ||y~_i||^2`` (and ``row_xx``,
    ``row_yy``; NaN when the state has no row statistics); ``constant_x`` when tr(cxx) is at
    most CONSTANT_RTOL times sum_i ||x_i||^2.
    """

    n: int
    cxx: torch.Tensor
    cyy: torch.Tensor
    cxy: torch.Tensor
    tr_x: float
    tr_y: float
    row_xx: float
    row_yy: float
    row_xy: float
    constant_x: bool
    constant_y: bool


def centred_moments(state: CKAState) -> CentredMoments:
    """Centre the sums of shifted rows u_i = x_i - s (exact, since centring removes any shift).

    With mu = mean(u), alpha = ||mu||^2, a_i = ||u_i||^2 and p_i = u_i . mu,
    ||u_i - mu||^2 = a_i - 2 p_i + alpha, so sums of products of centred row norms expand into
    the accumulated sums (sab, sav, sbu, suv, ...).
    """
    if state.n == 0 or state.shift_x is None or state.shift_y is None:
        raise ValueError("no samples were accumulated (n=0)")
    n = state.n
    s = state.sums
    mu, mv = s["su"] / n, s["sv"] / n
    alpha, beta = float(mu @ mu), float(mv @ mv)
    cxx = s["suu"] - n * torch.outer(mu, mu)
    cyy = s["svv"] - n * torch.outer(mv, mv)
    cxy = s["suv"] - n * torch.outer(mu, mv)
    sa, sb = float(s["suu"].diagonal().sum()), float(s["svv"].diagonal().sum())
    tr_x = sa - n * alpha
    tr_y = sb - n * beta
    if state.row_stats:
        row_xy = (
            float(s["sab"])
            - 2 * float(mv @ s["sav"])
            - 2 * float(mu @ s["sbu"])
            + beta * sa
            + alpha * sb
            + 4 * float(mu @ s["suv"] @ mv)
            - 3 * n * alpha * beta
        )
        row_xx = (
            float(s["saa"])
            - 4 * float(mu @ s["sau"])
            + 2 * alpha * sa
            + 4 * float(mu @ s["suu"] @ mu)
            - 3 * n * alpha * alpha
        )
        row_yy = (
            float(s["sbb"])
            - 4 * float(mv @ s["sbv"])
            + 2 * beta * sb
            + 4 * float(mv @ s["svv"] @ mv)
            - 3 * n * beta * beta
        )
    else:
        row_xy = row_xx = row_yy = math.nan  # not accumulated: only the debiased CKA needs them
    sx, sy = state.shift_x, state.shift_y
    raw_x = sa + 2 * float(sx @ s["su"]) + n * float(sx @ sx)
    raw_y = sb + 2 * float(sy @ s["sv"]) + n * float(sy @ sy)
    return CentredMoments(
        n=n,
        cxx=cxx,
        cyy=cyy,
        cxy=cxy,
        tr_x=max(tr_x, 0.0),
        tr_y=max(tr_y, 0.0),
        row_xx=row_xx,
        row_yy=row_yy,
        row_xy=row_xy,
        constant_x=tr_x <= CONSTANT_RTOL * raw_x,
        constant_y=tr_y <= CONSTANT_RTOL * raw_y,
    )
