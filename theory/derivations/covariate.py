r"""[CLOSER] Theorem 4.5: covariate + concept shift, x_j = e_j + eps z, S_j = e_j e_j^T + eps^2 I.

Derivation.

1. Client i's gradient direction is g = S_i u_i = alpha e_i + eps^2 u_i with alpha = e_i^T u_i.
2. The one-step update (:func:`theory.derivations.gradients.derive_one_step`) with
   a = 2 c_L eta lambda gives w_FT - w_0 = a (P + c I) g + a^2 (w_0^T g) g, and
   w_0^T g = alpha w_0^T e_i because w_0 lies in the shared rows (w_0 ⟂ u_i). Collecting powers
   of lambda:

   .. math:: w_{FT} - w_0 = \lambda A + \lambda^2 D, \quad A = 2 c_L \eta (P + cI) g, \quad
             D = 4 c_L^2 \eta^2 \alpha (w_0^T e_i)\, g.

3. With w^*_j = w_0 + lambda u_j, client j's loss is c_L Q_j(lambda (A - u_j) + lambda^2 D),
   Q_j(x) = x^T S_j x, a quartic in lambda by bilinearity:
   a2 = c_L mean_j Q_j(A - u_j), a3 = 2 c_L mean_j (A - u_j)^T S_j D, a4 = c_L mean_j Q_j(D).
4. LP is exact when B^* S_i B^{*T} is invertible (eps > 0), so LP-FT = (B^*, V^*_i) and its
   loss is b2 lambda^2, b2 = c_L mean_j Q_j(u_i - u_j).
5. FT - LP-FT = lambda^2 [(a2 - b2) + a3 lambda + a4 lambda^2]; LP-FT is better on
   (0, lambda*] where lambda* is the smallest positive root of the bracket (+inf if none) —
   provided a2 > b2. If a2 < b2, FT is better for all small lambda and no lambda* > 0 exists.

Step 3 is confirmed on explicit symbolic vectors; the whole chain is recomputed from sympy's
own gradients on explicit instances by :func:`explicit_ft_loss_polynomial`.
"""

from __future__ import annotations

from dataclasses import dataclass

import sympy as sp

from theory.derivations.gradients import C_L, ETA, derive_one_step

LAM = sp.Symbol("lambda", nonnegative=True)
A2, A3, A4, B2 = sp.symbols("a2 a3 a4 b2", real=True)


@dataclass(frozen=True)
class Thm45Derivation:
    """Structured closed forms of [CLOSER] Theorem 4.5.

    Attributes
    ----------
    g : sympy.MatrixExpr
        S_i u_i = alpha e_i + eps^2 u_i.
    A, D : sympy.MatrixExpr
        First- and second-order displacement of w_FT in lambda.
    loss_coefficients : tuple of sympy.Expr
        (coefficient of lambda^2, lambda^3, lambda^4) of c_L Q(lambda p + lambda^2 q) in terms
        of the bilinear symbols Q_pp, Q_pq, Q_qq.
    lambda_roots : list of sympy.Expr
        Roots of a4 l^2 + a3 l + (a2 - b2) in l.
    theory_md_matches : bool
        Whether docs/theory.md's A and D (c_L = 1) equal the derived ones.
    """

    g: sp.MatrixExpr
    A: sp.MatrixExpr
    D: sp.MatrixExpr
    loss_coefficients: tuple[sp.Expr, sp.Expr, sp.Expr]
    lambda_roots: list[sp.Expr]
    theory_md_matches: bool


def derive_thm45() -> Thm45Derivation:
    """Derive the structured closed forms of [CLOSER] Theorem 4.5 (see the module docstring).

    Returns
    -------
    Thm45Derivation
    """
    step = derive_one_step()
    d = step.w1.shape[0]
    e_i = sp.MatrixSymbol("e_i", d, 1)
    u_i = sp.MatrixSymbol("u_i", d, 1)
    w0 = sp.MatrixSymbol("w_0", d, 1)
    P = sp.MatrixSymbol("P", d, d)
    g_sym = sp.MatrixSymbol("g", d, 1)
    alpha, eps, c, a = sp.symbols("alpha epsilon c a")
    # Step 1: S_i u_i with S_i = e_i e_i^T + eps^2 I, and e_i^T u_i = alpha.
    S_i = e_i * e_i.T + eps**2 * sp.Identity(d)
    g = (S_i * u_i).expand().subs(e_i.T * u_i, alpha).doit()
    # Step 2: w_FT - w_0 from the one-step update, then powers of lambda.
    displacement = (step.w1 - w0).expand()
    # w_0^T g = alpha w_0^T e_i + eps^2 w_0^T u_i, and w_0^T u_i = V_0^T B^* u_i
    # = V_0^T e_{m+i} = 0 (V_0 = [V*_com; 0]); name w0_e = w_0^T e_i.
    w0_e = sp.Symbol("w0_e")
    w0_g_expr = (w0.T * g).expand().subs(w0.T * u_i, sp.ZeroMatrix(1, 1))
    w0_g_expr = w0_g_expr.subs(w0.T * e_i, w0_e * sp.Identity(1)).doit()
    w0_g = sp.simplify(w0_g_expr[0, 0])
    assert sp.simplify(w0_g - alpha * w0_e) == 0, w0_g
    displacement = displacement.subs(w0.T * g_sym, w0_g * sp.Identity(1)).doit()
    lam_coeff = {a: 2 * C_L * ETA * LAM}
    A = (2 * C_L * ETA * (P * g_sym + c * g_sym)).subs(g_sym, g)
    D = (4 * C_L**2 * ETA**2 * w0_g * g_sym).subs(g_sym, g)
    rebuilt = (LAM * A + LAM**2 * D).expand()
    direct = displacement.subs(lam_coeff).subs(g_sym, g).expand()
    assert (rebuilt - direct).expand() == sp.ZeroMatrix(d, 1), (rebuilt, direct)
    # docs/theory.md: A = 2 eta [alpha P e_i + eps^2 u_i + c (alpha e_i + eps^2 u_i)] (P u_i = u_i),
    # D = 4 eta^2 alpha (w_0^T e_i)(alpha e_i + eps^2 u_i); at c_L = 1.
    A_md = 2 * ETA * (alpha * P * e_i + eps**2 * u_i + c * (alpha * e_i + eps**2 * u_i))
    D_md = 4 * ETA**2 * w0_g * (alpha * e_i + eps**2 * u_i)
    A_ours = A.subs(C_L, 1).expand().subs(P * u_i, u_i)
    md_ok = (A_ours - A_md.expand()).expand() == sp.ZeroMatrix(d, 1) and (
        D.subs(C_L, 1).expand() - D_md.expand()
    ).expand() == sp.ZeroMatrix(d, 1)
    # Step 3: bilinearity, confirmed on explicit symbolic vectors of dimension 3.
    p = sp.Matrix(sp.symbols("p0:3"))
    q = sp.Matrix(sp.symbols("q0:3"))
    S = sp.Matrix(3, 3, lambda r, s: sp.Symbol(f"S_{min(r, s)}{max(r, s)}"))
    x = LAM * p + LAM**2 * q
    poly = sp.Poly(sp.expand(C_L * (x.T * S * x)[0, 0]), LAM)
    Qpp, Qpq, Qqq = sp.symbols("Q_pp Q_pq Q_qq")
    coefficients = (C_L * Qpp, 2 * C_L * Qpq, C_L * Qqq)
    explicit = {
        Qpp: (p.T * S * p)[0, 0],
        Qpq: (p.T * S * q)[0, 0],
        Qqq: (q.T * S * q)[0, 0],
    }
    for power, coefficient in zip((2, 3, 4), coefficients, strict=False):
        diff = sp.expand(poly.coeff_monomial(LAM**power) - coefficient.subs(explicit))
        assert diff == 0, (power, diff)
    assert poly.coeff_monomial(LAM) == 0
    assert poly.coeff_monomial(1) == 0
    # Step 5: lambda* candidates.
    ell = sp.Symbol("ell")
    roots = sp.solve(sp.Eq(A4 * ell**2 + A3 * ell + (A2 - B2), 0), ell)
    return Thm45Derivation(g, A, D, coefficients, roots, bool(md_ok))


def explicit_ft_loss_polynomial(
    b_star: sp.Matrix,
    v_com: sp.Matrix,
    means: sp.Matrix,
    eps: sp.Expr,
    eta: sp.Expr,
    loss_scale: sp.Expr,
    i: int,
) -> tuple[sp.Poly, sp.Poly]:
    """Recompute FT's and LP-FT's global losses in lambda from sympy's gradients (no shortcuts).

    Parameters
    ----------
    b_star : sympy.Matrix of shape (k, d)
        Orthonormal rows (exact entries, e.g. a signed permutation of the identity).
    v_com : sympy.Matrix of shape (m, 1)
    means : sympy.Matrix of shape (C, d)
        Client means e_j.
    eps, eta, loss_scale : sympy numbers
    i : int
        The fine-tuning client.

    Returns
    -------
    ft, lpft : sympy.Poly
        Global losses over D_G as polynomials in lambda; LP-FT uses V = V^*_i (exact LP).
    """
    k, d = b_star.shape
    m = v_com.shape[0]
    C = k - m
    heads = [v_com.col_join(sp.Matrix([LAM if a == j else 0 for a in range(C)])) for j in range(C)]
    seconds = [means[j, :].T * means[j, :] + eps**2 * sp.eye(d) for j in range(C)]
    B = sp.Matrix(k, d, lambda a, b: sp.Symbol(f"B_{a}_{b}"))
    V = sp.Matrix(k, 1, lambda a, _: sp.Symbol(f"V_{a}"))
    r = B.T * V - b_star.T * heads[i]
    loss = loss_scale * (r.T * seconds[i] * r)[0, 0]
    V0 = v_com.col_join(sp.zeros(C, 1))
    at0 = {**dict(zip(B, b_star, strict=False)), **dict(zip(V, V0, strict=False))}
    B1 = b_star - eta * B.applyfunc(lambda b: sp.diff(loss, b).subs(at0))
    V1 = V0 - eta * V.applyfunc(lambda v: sp.diff(loss, v).subs(at0))

    def global_loss(w: sp.Matrix) -> sp.Poly:
        total = sum(
            ((w - b_star.T * heads[j]).T * seconds[j] * (w - b_star.T * heads[j]))[0, 0]
            for j in range(C)
        )
        return sp.Poly(sp.expand(loss_scale * total / C), LAM)

    return global_loss(B1.T * V1), global_loss(b_star.T * heads[i])
