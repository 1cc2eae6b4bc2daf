r"""[CLOSER] Lemma 4.3 and Theorem 4.4: isotropic inputs (pure concept shift), S_i = I_d.

Derivation in three steps.

1. Specialize the one-step update (:func:`theory.derivations.gradients.derive_one_step`) to
   S_i = I: g = u_i, P u_i = u_i (u_i is a row of B^*) and w_0^T u_i = 0 (w_0 lies in the span
   of the shared rows). Hence with a = 2 c_L eta lambda (Lemma 4.3)

   .. math:: B_{FT} = B^* + a V_0 u_i^T, \quad V_{FT} = V_0 + a e_{m+i},
             \quad w_{FT} = w_0 + a s\, u_i, \quad s = 1 + \|V^*_{com}\|^2.

2. Both one-step FT and LP-FT move the predictor along the line w_0 + t u_i: FT with
   t = 2 c_L eta lambda s, LP-FT with t = lambda (LP is exact: B^* has orthonormal rows, so
   V = V^*_i minimizes, the residual vanishes and the FT step after LP has zero gradient).
3. On the line, w - w^*_j = t u_i - lambda u_j with orthonormal u's, so client j's loss is
   c_L (t - lambda)^2 for j = i and c_L (t^2 + lambda^2) otherwise; averaging over the C clients
   (D_G) or the C - 1 others is exact with C a *symbol*, so the result holds for every C, m, d.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import sympy as sp

from theory.derivations.gradients import C_L, ETA, derive_one_step

LAM = sp.Symbol("lambda", nonnegative=True)
S_ = sp.Symbol("s", positive=True)
N_CLIENTS = sp.Symbol("C", integer=True, positive=True)
T = sp.Symbol("t", real=True)
TAU = sp.Symbol("tau", nonnegative=True)

#: Argument order of every lambdified Theorem 4.4 function.
THM44_ARGS: tuple[sp.Symbol, ...] = (LAM, ETA, S_, N_CLIENTS, C_L)


def derive_lemma43() -> dict[str, sp.MatrixExpr]:
    r"""Specialize the one-step update to isotropic inputs ([CLOSER] Lemma 4.3).

    Returns
    -------
    dict
        ``B_FT``, ``V_FT`` and ``w_FT`` as matrix expressions in B^*, V_0, u_i, e_{m+i}, w_0,
        a = 2 c_L eta lambda and c = ||V^*_{com}||^2: B_FT = B^* + a V_0 u_i^T (row j:
        b^*_j + a (V_0)_j u_i), V_FT = V_0 + a e_{m+i}, w_FT = w_0 + a (1 + c) u_i.
    """
    step = derive_one_step()
    k, d = step.B1.shape
    g = sp.MatrixSymbol("g", d, 1)
    u_i = sp.MatrixSymbol("u_i", d, 1)
    e_i = sp.MatrixSymbol("e_mi", k, 1)  # e_{m+i} in R^k, B^* u_i = e_{m+i}
    B_star = sp.MatrixSymbol("B_star", k, d)
    P = sp.MatrixSymbol("P", d, d)
    w0 = sp.MatrixSymbol("w_0", d, 1)
    B1 = step.B1.subs(g, u_i)
    V1 = step.V1.subs(g, u_i).subs(B_star * u_i, e_i)
    # S_i = I: g = u_i; P u_i = u_i; w_0^T u_i = 0.
    w1 = step.w1.subs(g, u_i).subs(P * u_i, u_i).subs(w0.T * u_i, sp.ZeroMatrix(1, 1)).doit()
    return {"B_FT": B1, "V_FT": V1, "w_FT": sp.simplify(w1)}


@dataclass(frozen=True)
class Thm44Derivation:
    """Closed forms of [CLOSER] Theorem 4.4 as sympy expressions in (lambda, eta, s, C, c_L).

    Attributes
    ----------
    losses : dict of str to sympy.Expr
        ``global_loss_ft``, ``global_loss_lpft`` (over D_G), ``global_loss_others_ft``,
        ``global_loss_others_lpft`` (over the C - 1 others), ``local_loss_ft``,
        ``local_loss_lpft``.
    t_ft, t_lpft : sympy.Expr
        Displacement along u_i: 2 c_L eta lambda s and lambda.
    difference : sympy.Expr
        global_loss_ft - global_loss_lpft, factored:
        c_L lambda^2 (tau - 1)(tau + 1 - 2/C) with tau = 2 c_L eta s.
    difference_others : sympy.Expr
        Over the others: c_L lambda^2 (tau - 1)(tau + 1).
    win_sets : dict of int to sympy.Set
        For C = 1..6, the set of tau >= 0 on which LP-FT's global loss is <= FT's.
    theory_md_matches : dict of str to bool
        Whether docs/theory.md's displayed formulas (c_L = 1) equal the derived ones.
    """

    losses: dict[str, sp.Expr]
    t_ft: sp.Expr
    t_lpft: sp.Expr
    difference: sp.Expr
    difference_others: sp.Expr
    win_sets: dict[int, sp.Set]
    theory_md_matches: dict[str, bool]

    def lambdified(self) -> dict[str, Callable[..., object]]:
        """Numpy functions of (lam, eta, s, C, c_L) for every loss (see :data:`THM44_ARGS`)."""
        return {name: sp.lambdify(THM44_ARGS, expr, "numpy") for name, expr in self.losses.items()}


def _coefficient_of(expr: sp.MatrixExpr, name: str) -> sp.Expr:
    """Scalar coefficient of the matrix symbol ``name`` in a sum of scalar-times-symbol terms."""
    total = sp.Integer(0)
    for term in sp.MatAdd.make_args(expr):
        scalar, rest = term.as_coeff_mmul()
        if str(rest) == name:
            total += scalar
    return sp.simplify(total)


def _line_losses(t: sp.Expr) -> tuple[sp.Expr, sp.Expr, sp.Expr]:
    """Local, D_G and others losses of w = w_0 + t u_i (isotropic inputs)."""
    own = C_L * (t - LAM) ** 2  # ||t u_i - lambda u_i||^2
    other = C_L * (t**2 + LAM**2)  # ||t u_i - lambda u_j||^2, u_i orthogonal to u_j
    global_all = (own + (N_CLIENTS - 1) * other) / N_CLIENTS
    return own, global_all, other


def derive_thm44() -> Thm44Derivation:
    r"""Derive [CLOSER] Theorem 4.4's losses and the exact region where LP-FT wins globally.

    .. math:: G_{FT} = c_L \lambda^2 (1 - 2\tau/C + \tau^2), \quad
              G_{LPFT} = 2 c_L \lambda^2 (C-1)/C, \quad \tau = 2 c_L \eta s,

    .. math:: G_{FT} - G_{LPFT} = c_L \lambda^2 (\tau - 1)(\tau + 1 - 2/C).

    For C >= 2 and lambda > 0 the second factor is positive for tau > 0, so LP-FT has the
    lower (or equal) global loss iff tau >= 1, i.e. 2 eta s >= 1 for ``mse`` and eta s >= 1 for
    ``half_mse`` (plus the tie tau = 0 when C = 2). Over the others the factor is tau + 1 and
    the condition is the same.

    Returns
    -------
    Thm44Derivation
    """
    lemma = derive_lemma43()
    # The FT displacement along u_i: w_FT - w_0 = a (1 + c) u_i = 2 c_L eta lambda s u_i.
    a, c = sp.symbols("a c")
    coefficient = _coefficient_of(lemma["w_FT"], "u_i")
    t_ft = sp.simplify(coefficient.subs({a: 2 * C_L * ETA * LAM, c: S_ - 1}))
    assert sp.simplify(t_ft - 2 * C_L * ETA * LAM * S_) == 0, t_ft
    t_lpft = LAM
    local_ft, global_ft, others_ft = _line_losses(t_ft)
    local_lpft, global_lpft, others_lpft = _line_losses(t_lpft)
    losses = {
        "global_loss_ft": sp.factor(sp.expand(global_ft)),
        "global_loss_lpft": sp.factor(sp.expand(global_lpft)),
        "global_loss_others_ft": sp.factor(others_ft),
        "global_loss_others_lpft": sp.factor(others_lpft),
        "local_loss_ft": sp.factor(local_ft),
        "local_loss_lpft": sp.simplify(local_lpft),
    }
    tau_of = {ETA: TAU / (2 * C_L * S_)}
    difference = sp.factor(sp.expand((global_ft - global_lpft).subs(tau_of)))
    expected = C_L * LAM**2 * (TAU - 1) * (TAU + 1 - 2 / N_CLIENTS)
    assert sp.simplify(difference - expected) == 0, difference
    difference_others = sp.factor(sp.expand((others_ft - others_lpft).subs(tau_of)))
    assert sp.simplify(difference_others - C_L * LAM**2 * (TAU - 1) * (TAU + 1)) == 0
    win_sets = {
        C: sp.solve_univariate_inequality(
            (expected / (C_L * LAM**2)).subs(N_CLIENTS, C) >= 0, TAU, relational=False
        ).intersect(sp.Interval(0, sp.oo))
        for C in range(1, 7)
    }
    theory_md = {  # docs/theory.md Sec. 3, stated for c_L = 1
        "global_loss_ft": LAM**2 * (1 - 4 * ETA * S_ / N_CLIENTS + 4 * ETA**2 * S_**2),
        "global_loss_lpft": 2 * LAM**2 * (N_CLIENTS - 1) / N_CLIENTS,
        "local_loss_ft": LAM**2 * (1 - 2 * ETA * S_) ** 2,
        "local_loss_lpft": sp.Integer(0),
    }
    matches = {
        name: bool(sp.simplify(losses[name].subs(C_L, 1) - expr) == 0)
        for name, expr in theory_md.items()
    }
    return Thm44Derivation(losses, t_ft, t_lpft, difference, difference_others, win_sets, matches)
