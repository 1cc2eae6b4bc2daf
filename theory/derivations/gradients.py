r"""Gradients of the population MSE of y = V^T B x, the one-step FT update, [KUMAR]'s identities.

Notation ([CLOSER] Sec. 4, docs/theory.md Sec. 2): B in R^{k x d}, V in R^k, the
end-to-end predictor w = B^T V, a client's second moment S (symmetric) and target w*. The loss is

.. math:: L(V, B) = c_L (B^T V - w^*)^T S (B^T V - w^*),

with c_L = 1 (``mse``, the default) or c_L = 1/2 (``half_mse``). Every derivation below keeps c_L
as a symbol, so each step-size condition downstream carries the factor explicitly.

The derivations are dimension-free where sympy's matrix-expression algebra allows it
(``MatrixSymbol`` of symbolic shape k x d); where it does not (the gradient in B), the formula
is confirmed entry by entry on explicit symbolic cases of several shapes, and the index pattern
(dL/dB_ab = 2 c_L V_a (S r)_b, the same expression for every a, b) is what makes the small cases
a proof for all shapes.
"""

from __future__ import annotations

from dataclasses import dataclass

import sympy as sp

#: The loss-scale symbol c_L (1 for ``mse``, 1/2 for ``half_mse``).
C_L = sp.Symbol("c_L", positive=True)
ETA = sp.Symbol("eta", nonnegative=True)
_k, _d, _n = sp.symbols("k d n", integer=True, positive=True)


@dataclass(frozen=True)
class GradientDerivation:
    r"""Gradients of the population loss.

    Attributes
    ----------
    grad_V : sympy.MatrixExpr of shape (k, 1)
        :math:`\\nabla_V L = 2 c_L B S r` (dimension-free derivation).
    grad_B : sympy.MatrixExpr of shape (k, d)
        :math:`\\nabla_B L = 2 c_L V (S r)^T`.
    checked_shapes : tuple of (int, int)
        Explicit (k, d) on which both gradients were confirmed entry by entry.
    """

    grad_V: sp.MatrixExpr
    grad_B: sp.MatrixExpr
    checked_shapes: tuple[tuple[int, int], ...]


def _explicit_case(k: int, d: int) -> bool:
    """Differentiate the explicit loss entry by entry and compare with the structured gradients."""
    B = sp.Matrix(k, d, lambda a, b: sp.Symbol(f"B_{a}{b}"))
    V = sp.Matrix(k, 1, lambda a, _: sp.Symbol(f"V_{a}"))
    w_star = sp.Matrix(d, 1, lambda a, _: sp.Symbol(f"w_{a}"))
    S = sp.Matrix(d, d, lambda a, b: sp.Symbol(f"S_{min(a, b)}{max(a, b)}"))  # symmetric
    r = B.T * V - w_star
    loss = C_L * (r.T * S * r)[0, 0]
    grad_V = sp.Matrix(k, 1, lambda a, _: sp.diff(loss, V[a]))
    grad_B = sp.Matrix(k, d, lambda a, b: sp.diff(loss, B[a, b]))
    ok_V = sp.expand(grad_V - 2 * C_L * B * S * r) == sp.zeros(k, 1)
    ok_B = sp.expand(grad_B - 2 * C_L * V * (S * r).T) == sp.zeros(k, d)
    return bool(ok_V and ok_B)


def derive_gradients(
    shapes: tuple[tuple[int, int], ...] = ((1, 1), (1, 3), (2, 3), (3, 4)),
) -> GradientDerivation:
    r"""Derive :math:`\nabla_V L` and :math:`\nabla_B L` of the population MSE.

    .. math:: \nabla_V L = 2 c_L B S r, \qquad \nabla_B L = 2 c_L V (S r)^T,
              \qquad r = B^T V - w^*.

    Parameters
    ----------
    shapes : tuple of (int, int)
        Explicit (k, d) on which the B-gradient (and again the V-gradient) is confirmed.

    Returns
    -------
    GradientDerivation

    Raises
    ------
    AssertionError
        If sympy's calculus disagrees with the structured formula (a derivation failure).

    Notes
    -----
    [CLOSER] Sec. 4; docs/theory.md Sec. 3 ("grad_V = 2 B S_i r; grad_B = 2 V (S_i r)^T",
    stated there for c_L = 1).
    """
    B = sp.MatrixSymbol("B", _k, _d)
    V = sp.MatrixSymbol("V", _k, 1)
    S = sp.MatrixSymbol("S", _d, _d)
    w_star = sp.MatrixSymbol("w_star", _d, 1)
    r = B.T * V - w_star
    loss = C_L * (r.T * S * r)
    # Matrix calculus in V (dimension-free): d/dV r^T S r = B (S + S^T) r, then S = S^T.
    grad_V = sp.diff(loss, V).subs(S.T, S).doit()
    expected_V = 2 * C_L * B * S * r
    assert sp.simplify(grad_V - expected_V) == sp.ZeroMatrix(_k, 1), grad_V
    grad_B = 2 * C_L * V * (S * r).T
    for k, d in shapes:
        assert _explicit_case(k, d), (k, d)
    return GradientDerivation(expected_V, grad_B, shapes)


@dataclass(frozen=True)
class OneStepDerivation:
    r"""One FT step from the idealized global model (B_0, V_0) = (B^*, [V^*_{com}; 0]).

    Attributes
    ----------
    B1, V1, w1 : sympy.MatrixExpr
        The updated parameters and predictor in terms of a = 2 c_L eta lambda, g = S_i u_i,
        P = B^{*T} B^*, c = ||V^*_{com}||^2 and w_0 = B^{*T} V_0:
        B1 = B^* + a V_0 g^T, V1 = V_0 + a B^* g,
        w1 = w_0 + a (P g + c g) + a^2 (w_0^T g) g.
    checked_shapes : tuple of (int, int, int)
        Explicit (m, C, d) on which the update was recomputed from sympy's gradients.
    """

    B1: sp.MatrixExpr
    V1: sp.MatrixExpr
    w1: sp.MatrixExpr
    checked_shapes: tuple[tuple[int, int, int], ...]


def _explicit_one_step(m: int, C: int, d: int, i: int) -> bool:
    """Recompute one FT step on an explicit instance (B* = [I_k 0], general symmetric S)."""
    k = m + C
    lam = sp.Symbol("lambda", positive=True)
    b_star = sp.eye(k).row_join(sp.zeros(k, d - k))
    v_com = [sp.Symbol(f"v_{a}") for a in range(m)]
    V0 = sp.Matrix([*v_com, *([0] * C)])
    head_i = sp.Matrix([*v_com, *[lam if j == i else 0 for j in range(C)]])
    S = sp.Matrix(d, d, lambda a, b: sp.Symbol(f"S_{min(a, b)}{max(a, b)}"))
    B = sp.Matrix(k, d, lambda a, b: sp.Symbol(f"B_{a}{b}"))
    V = sp.Matrix(k, 1, lambda a, _: sp.Symbol(f"V_{a}"))
    r = B.T * V - b_star.T * head_i
    loss = C_L * (r.T * S * r)[0, 0]
    at0 = {**dict(zip(B, b_star, strict=False)), **dict(zip(V, V0, strict=False))}
    grad_V = sp.Matrix(k, 1, lambda a, _: sp.diff(loss, V[a]).subs(at0))
    grad_B = sp.Matrix(k, d, lambda a, b: sp.diff(loss, B[a, b]).subs(at0))
    B1 = b_star - ETA * grad_B
    V1 = V0 - ETA * grad_V
    # Structured prediction.
    a = 2 * C_L * ETA * lam
    u_i = b_star.T * sp.eye(k)[:, m + i]
    g = S * u_i
    w0 = b_star.T * V0
    c = (V0.T * V0)[0, 0]
    P = b_star.T * b_star
    ok_B = sp.expand(B1 - (b_star + a * V0 * g.T)) == sp.zeros(k, d)
    ok_V = sp.expand(V1 - (V0 + a * b_star * g)) == sp.zeros(k, 1)
    w1 = B1.T * V1
    w1_pred = w0 + a * (P * g + c * g) + a**2 * (w0.T * g)[0, 0] * g
    ok_w = sp.expand(w1 - w1_pred) == sp.zeros(d, 1)
    return bool(ok_B and ok_V and ok_w)


def derive_one_step(
    shapes: tuple[tuple[int, int, int], ...] = ((1, 2, 3), (2, 2, 5)),
) -> OneStepDerivation:
    r"""Derive the one-step FT update from (B^*, [V^*_{com}; 0]) on client i.

    The residual at the start is r_0 = w_0 - w^*_i = -\lambda u_i, so with g = S_i u_i the
    gradients are \nabla_V = -2 c_L \lambda B^* g and \nabla_B = -2 c_L \lambda V_0 g^T, and with
    a = 2 c_L \eta \lambda

    .. math:: B_1 = B^* + a V_0 g^T, \quad V_1 = V_0 + a B^* g, \quad
              w_1 = B_1^T V_1 = w_0 + a (P + c I) g + a^2 (w_0^T g)\, g.

    The product B_1^T V_1 is expanded dimension-free with ``MatrixSymbol`` and the Gram
    identities V_0^T V_0 = c, B^{*T} V_0 = w_0 are applied; the update itself is then recomputed
    from sympy's gradients on explicit instances of each shape in ``shapes``.

    Parameters
    ----------
    shapes : tuple of (int, int, int)
        Explicit (m, C, d) instances (client i = 0).

    Returns
    -------
    OneStepDerivation

    Notes
    -----
    [CLOSER] Lemma 4.3 (S_i = I) and the proof of Theorem 4.5 (S_i = e_i e_i^T + eps^2 I).
    """
    B = sp.MatrixSymbol("B_star", _k, _d)
    V0 = sp.MatrixSymbol("V_0", _k, 1)
    g = sp.MatrixSymbol("g", _d, 1)
    w0 = sp.MatrixSymbol("w_0", _d, 1)
    P = sp.MatrixSymbol("P", _d, _d)
    a, c = sp.symbols("a c")
    B1 = B + a * V0 * g.T
    V1 = V0 + a * B * g
    w1 = (B1.T * V1).expand()
    w1 = w1.subs(V0.T * V0, c).subs(B.T * B, P).subs(B.T * V0, w0).subs(V0.T * B, w0.T)
    for m, C, d in shapes:
        assert _explicit_one_step(m, C, d, 0), (m, C, d)
    return OneStepDerivation(B1, V1, w1, shapes)


def derive_balance_step() -> sp.MatrixExpr:
    r"""Derive the exact one-step change of V V^T - B B^T under gradient descent ([KUMAR]).

    With any quadratic loss c_L (w^T S w - 2 c^T w + c_0) (population or finite samples) the
    gradients are g_V = 2 c_L B h and g_B = 2 c_L V h^T with h = S w - c. One GD step
    (V, B) -> (V - eta g_V, B - eta g_B) changes the imbalance by

    .. math:: (V_1 V_1^T - B_1 B_1^T) - (V V^T - B B^T) = \eta^2 (g_V g_V^T - g_B g_B^T),

    because the first-order terms -eta (g_V V^T + V g_V^T - g_B B^T - B g_B^T) =
    -2 c_L eta (B h V^T + V h^T B^T - V h^T B^T - B h V^T) cancel.

    Returns
    -------
    sympy.MatrixExpr
        The residual change minus eta^2 (g_V g_V^T - g_B g_B^T); the zero matrix (dimension-free).
    """
    B = sp.MatrixSymbol("B", _k, _d)
    V = sp.MatrixSymbol("V", _k, 1)
    h = sp.MatrixSymbol("h", _d, 1)
    g_V = 2 * C_L * B * h
    g_B = 2 * C_L * V * h.T
    V1 = V - ETA * g_V
    B1 = B - ETA * g_B
    change = (V1 * V1.T - B1 * B1.T) - (V * V.T - B * B.T)
    residual = (change - ETA**2 * (g_V * g_V.T - g_B * g_B.T)).expand()
    assert residual == sp.ZeroMatrix(_k, _k), residual
    return residual


def derive_span_lemma() -> sp.MatrixExpr:
    r"""Derive [KUMAR]'s span lemma: a gradient step on B leaves B u unchanged for X u = 0.

    On n samples X in R^{n x d} the loss gradient in B is g_B = 2 c_L V h^T with
    h = X^T rho, rho = (X w - y) / n. Hence for u orthogonal to rowspace(X)

    .. math:: g_B u = 2 c_L V \rho^T X u = 0,

    so B_t u = B_0 u for all GD steps (and under gradient flow).

    Returns
    -------
    sympy.MatrixExpr
        g_B u after substituting X u = 0: the zero matrix.
    """
    X = sp.MatrixSymbol("X", _n, _d)
    rho = sp.MatrixSymbol("rho", _n, 1)
    u = sp.MatrixSymbol("u", _d, 1)
    V = sp.MatrixSymbol("V", _k, 1)
    g_B_u = 2 * C_L * V * (X.T * rho).T * u
    result = g_B_u.subs(X * u, sp.ZeroMatrix(_n, 1)).doit()
    assert result == sp.ZeroMatrix(_k, 1), result
    return result
