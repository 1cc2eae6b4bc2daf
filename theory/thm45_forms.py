r"""Numeric closed forms of [CLOSER] Theorem 4.5 (covariate + concept shift, one FT step).

Split from :mod:`theory.closed_forms`, which re-exports every name: the quartic coefficients of
FT's loss and LP-FT's quadratic, per convention ("global" = D_G, "others", "local"), and where
LP-FT wins (:mod:`theory._roots`). Derived symbolically in :mod:`theory.derivations.covariate`
and checked against the simulator in ``tests/theory``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from synthetic.config import ConfigError, SimConfig
from synthetic.generators import second_moment
from synthetic.problem import Problem, draw_problem
from theory._roots import Interval, LambdaStar, lambda_star, lpft_wins_intervals

Array = NDArray[np.float64]


@dataclass(frozen=True)
class Thm45Coefficients:
    """Coefficients of [CLOSER] Theorem 4.5 for each fine-tuning client.

    FT's loss is a2 lam^2 + a3 lam^3 + a4 lam^4 and LP-FT's is b2 lam^2, over D_G (``global``),
    over the other clients (``others``) and on the client itself (``local``, b2 = 0).

    Parameters
    ----------
    a2, a3, a4, b2 : ndarray of shape (P,)
        Over D_G.
    a2_others, a3_others, a4_others, b2_others : ndarray of shape (P,)
    a2_local, a3_local, a4_local : ndarray of shape (P,)
    clients : ndarray of int, shape (P,)
    """

    a2: Array
    a3: Array
    a4: Array
    b2: Array
    a2_others: Array
    a3_others: Array
    a4_others: Array
    b2_others: Array
    a2_local: Array
    a3_local: Array
    a4_local: Array
    clients: NDArray[np.int_]


def thm45_coefficients(config: SimConfig, problem: Problem | None = None) -> Thm45Coefficients:
    r"""Theorem 4.5 coefficients from the derived one-step displacement ([CLOSER] Thm 4.5).

    With g = S_i u_i, P = B^{*T} B^*, c = ||V^*_{com}||^2, w_0 = B^{*T}[V^*_{com}; 0]:

    .. math:: A = 2 c_L \eta (P + c I) g, \quad D = 4 c_L^2 \eta^2 (w_0^T g)\, g,

    .. math:: a_2 = c_L\,\mathrm{mean}_j (A-u_j)^T S_j (A-u_j), \;
              a_3 = 2 c_L\,\mathrm{mean}_j (A-u_j)^T S_j D, \;
              a_4 = c_L\,\mathrm{mean}_j D^T S_j D, \;
              b_2 = c_L\,\mathrm{mean}_j (u_i-u_j)^T S_j (u_i-u_j).

    Valid for any population second moments S_j (the theorem's S_j = e_j e_j^T + eps^2 I is
    a special case); b2 assumes LP is exact (B^* S_i B^{*T} invertible).

    Parameters
    ----------
    config : SimConfig
    problem : Problem, optional
        Unbatched instance; drawn from ``config`` when omitted.

    Returns
    -------
    Thm45Coefficients
    """
    problem = draw_problem(config) if problem is None else problem
    m, C = config.m, config.C
    clients = np.arange(C) if config.client is None else np.array([config.client])
    S = second_moment(problem.inputs)  # (C, d, d)
    b_star = problem.b_star
    U = b_star[m:]  # (C, d) rows u_j
    P = b_star.T @ b_star
    c = float(problem.v_com @ problem.v_com)
    w0 = b_star[:m].T @ problem.v_com
    g = np.einsum("pde,pe->pd", S[clients], U[clients])  # (P, d)
    # float64 arithmetic: an overflowing step size gives inf coefficients, not an exception.
    with np.errstate(over="ignore", invalid="ignore"):
        return _thm45_from(config, S, U, P, c, w0, g, clients)


def _thm45_from(
    config: SimConfig, S: Array, U: Array, P: Array, c: float, w0: Array, g: Array,
    clients: NDArray[np.int_],
) -> Thm45Coefficients:  # fmt: skip
    c_l, C = config.loss_scale, config.C
    eta = np.float64(config.eta)
    A = 2 * c_l * eta * (g @ P + c * g)
    D = 4 * c_l**2 * eta**2 * (g @ w0)[:, None] * g
    p = A[:, None, :] - U[None, :, :]  # (P, C, d): A - u_j
    q = np.broadcast_to(D[:, None, :], p.shape)
    lp = U[clients][:, None, :] - U[None, :, :]  # u_i - u_j

    def form(x: Array, y: Array) -> Array:
        return np.einsum("pjd,jde,pje->pj", x, S, y)

    Qpp, Qpq, Qqq, Qlp = form(p, p), form(p, q), form(q, q), form(lp, lp)
    others = ~(clients[:, None] == np.arange(C)[None, :])
    n_others = max(C - 1, 1)
    rows = np.arange(len(clients))

    def mean_all(x: Array) -> Array:
        return np.asarray(x.mean(axis=1))

    def mean_others(x: Array) -> Array:
        if C == 1:
            return np.full(len(clients), np.nan)
        return np.asarray(np.where(others, x, 0.0).sum(axis=1) / n_others)

    return Thm45Coefficients(
        a2=c_l * mean_all(Qpp),
        a3=2 * c_l * mean_all(Qpq),
        a4=c_l * mean_all(Qqq),
        b2=c_l * mean_all(Qlp),
        a2_others=c_l * mean_others(Qpp),
        a3_others=2 * c_l * mean_others(Qpq),
        a4_others=c_l * mean_others(Qqq),
        b2_others=c_l * mean_others(Qlp),
        a2_local=c_l * Qpp[rows, clients],
        a3_local=2 * c_l * Qpq[rows, clients],
        a4_local=c_l * Qqq[rows, clients],
        clients=clients,
    )


def thm45_lambda_stars(coef: Thm45Coefficients, convention: str = "global") -> list[LambdaStar]:
    """lambda* of every fine-tuning client under one convention ([CLOSER] Thm 4.5).

    Parameters
    ----------
    coef : Thm45Coefficients
    convention : {'global', 'others'}
        ``global``: FT and LP-FT global losses over D_G (all clients, the fine-tuning client
        included, where LP-FT's local loss is 0); ``others``: over the other clients only
        (the paper's empirical "Global").

    Returns
    -------
    list of LambdaStar
        One per entry of ``coef.clients``.
    """
    return [lambda_star(*row) for row in _convention(coef, convention)]


def thm45_intervals(coef: Thm45Coefficients, convention: str = "global") -> list[list[Interval]]:
    """Every interval of lambda where LP-FT's global loss is <= FT's, per client ([CLOSER] 4.5).

    Parameters
    ----------
    coef : Thm45Coefficients
    convention : {'global', 'others'}
        As in :func:`thm45_lambda_stars`.

    Returns
    -------
    list of list of (float, float or None)
        Per client, the disjoint intervals ``(lo, hi)`` of :func:`lpft_wins_intervals`
        (``hi`` None for +infinity). Example (``covariate=mix``, ``mix=0.75``, ``eta=0.2``,
        ``eps=0.3``, seed 0, client 3): over D_G ``[(0, 5.709), (21.1, None)]``.
    """
    return [lpft_wins_intervals(*row) for row in _convention(coef, convention)]


def _convention(coef: Thm45Coefficients, convention: str) -> list[tuple[float, ...]]:
    if convention == "global":
        cols = (coef.a2, coef.a3, coef.a4, coef.b2)
    elif convention == "others":
        cols = (coef.a2_others, coef.a3_others, coef.a4_others, coef.b2_others)
    else:
        raise ConfigError(f"convention={convention!r} is invalid: expected global or others")
    return [tuple(float(v) for v in row) for row in zip(*cols, strict=True)]


__all__ = ["Thm45Coefficients", "thm45_coefficients", "thm45_intervals", "thm45_lambda_stars"]
