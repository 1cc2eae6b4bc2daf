"""Symbolic derivations vs their lambdified forms vs numeric closed forms vs the simulator."""

from __future__ import annotations

import functools

import numpy as np
import pytest
import sympy as sp
from hypothesis import given, settings
from hypothesis import strategies as st

from synthetic import SimConfig
from synthetic.fedavg import ideal_global_model
from synthetic.generators import InputModel, client_heads
from synthetic.methods import Hyper, gradients, run_method
from synthetic.problem import Problem, client_objectives, draw_problem, stack_problems
from synthetic.simulation import simulate_batch
from theory.closed_forms import (
    lpft_wins_boundary,
    thm44_losses,
    thm44_losses_from,
    thm45_coefficients,
)
from theory.derivations import (
    derive_balance_step,
    derive_gradients,
    derive_lemma43,
    derive_span_lemma,
    derive_thm44,
    derive_thm45,
)
from theory.derivations.concept import LAM, N_CLIENTS, S_, TAU, THM44_ARGS
from theory.derivations.covariate import explicit_ft_loss_polynomial
from theory.derivations.gradients import C_L, ETA

RTOL = 1e-10


@functools.cache
def _thm44():
    return derive_thm44()


@functools.cache
def _lemma43_b_ft():
    lemma = derive_lemma43()
    return sp.lambdify(sorted(lemma["B_FT"].free_symbols, key=str), lemma["B_FT"], "numpy")


@functools.cache
def _thm44_numeric():
    return _thm44().lambdified()


def test_dimension_free_identities_are_zero_matrices():
    assert isinstance(derive_balance_step(), sp.ZeroMatrix)
    assert isinstance(derive_span_lemma(), sp.ZeroMatrix)


@pytest.mark.slow
def test_thm44_derivation_matches_theory_md_and_exact_condition():
    der = _thm44()
    assert all(der.theory_md_matches.values())
    assert sp.simplify(der.t_ft - 2 * C_L * ETA * LAM * S_) == 0
    expected = C_L * LAM**2 * (TAU - 1) * (TAU + 1 - 2 / N_CLIENTS)
    assert sp.simplify(der.difference - expected) == 0
    for C in range(3, 7):
        assert der.win_sets[C] == sp.Interval(1, sp.oo)
    assert der.win_sets[2] == sp.Union(sp.FiniteSet(0), sp.Interval(1, sp.oo))
    assert der.win_sets[1] == sp.Interval(0, sp.oo)


@settings(max_examples=20)
@given(
    m=st.integers(1, 3), C=st.integers(2, 5), extra=st.integers(0, 3), seed=st.integers(0, 999),
    lam=st.floats(0.0, 3.0), eta=st.floats(0.0, 1.0), vcom=st.floats(0.0, 2.0),
    loss=st.sampled_from(["mse", "half_mse"]),
)  # fmt: skip
def test_thm44_symbolic_lambdified_numeric_simulator(m, C, extra, seed, lam, eta, vcom, loss):
    config = SimConfig(
        m=m, C=C, d=m + C + extra, seed=seed, lam=lam, eta=eta, vcom_norm=vcom, loss=loss
    )
    numeric = thm44_losses(config)
    frame_vals = simulate_batch([config], ["ft", "lpft"]).values
    der = _thm44()
    subs = {LAM: lam, ETA: eta, S_: config.s, N_CLIENTS: C, C_L: config.loss_scale}
    for key, fn in _thm44_numeric().items():
        symbolic = float(der.losses[key].subs(subs))
        lamb = float(fn(lam, eta, config.s, C, config.loss_scale))
        metric, method = key.rsplit("_", 1)
        simulated = frame_vals[method][metric][0]
        scale = max(1.0, abs(symbolic))
        assert abs(symbolic - lamb) <= RTOL * scale
        assert abs(lamb - numeric[key]) <= RTOL * scale
        np.testing.assert_allclose(simulated, numeric[key], rtol=RTOL, atol=RTOL)
    assert THM44_ARGS[0] is LAM


def test_lpft_wins_boundary_respects_loss_normalization():
    eta = np.array([0.1, 0.25, 0.5, 1.0])
    mse = lpft_wins_boundary(eta)
    half = lpft_wins_boundary(eta, "half_mse")
    np.testing.assert_allclose(mse, 1 / (2 * eta) - 1)
    np.testing.assert_allclose(half, 1 / eta - 1)
    # On the boundary LP-FT and FT tie; slightly above it LP-FT wins, below it FT wins.
    for loss, bound in (("mse", mse), ("half_mse", half)):
        scale = 1.0 if loss == "mse" else 0.5
        for e, b in zip(eta, bound, strict=True):
            if b <= 0:
                continue
            for shift, wins in ((1e-3, True), (-1e-3, False)):
                out = thm44_losses_from(1.0, e, 1.0 + b + shift, 4, scale)
                assert bool(out["lpft_wins"]) is wins


def test_gradients_lambdified_equal_simulator_gradients():
    der = derive_gradients()
    rng = np.random.default_rng(3)
    k, d = 3, 5
    B = rng.standard_normal((k, d))
    V = rng.standard_normal((k, 1))
    F = rng.standard_normal((d, d))
    S = F @ F.T
    w_star = rng.standard_normal((d, 1))
    for c_l in (1.0, 0.5):
        gb = sp.lambdify(sorted(der.grad_B.free_symbols, key=str), der.grad_B, "numpy")
        gv = sp.lambdify(sorted(der.grad_V.free_symbols, key=str), der.grad_V, "numpy")
        # The simulator's objective form: c_L (w^T S w - 2 c^T w + c0) with c = S w*.
        from synthetic.problem import Objective

        objective = Objective(S, (S @ w_star)[:, 0], np.array((w_star.T @ S @ w_star).item()))
        g_v, g_b, _ = gradients(V[:, 0], B, objective, c_l)
        np.testing.assert_allclose(gb(B, S, V, c_l, w_star), g_b, rtol=1e-12, atol=1e-12)
        np.testing.assert_allclose(gv(B, S, V, c_l, w_star)[:, 0], g_v, rtol=1e-12, atol=1e-12)


@pytest.mark.slow
@settings(max_examples=10)
@given(
    seed=st.integers(0, 999),
    lam=st.floats(0.0, 2.0),
    eta=st.floats(0.0, 1.0),
    loss=st.sampled_from(["mse", "half_mse"]),
)
def test_lemma43_lambdified_equals_simulator(seed, lam, eta, loss):
    config = SimConfig(seed=seed, lam=lam, eta=eta, loss=loss)
    b_ft = _lemma43_b_ft()
    problem = draw_problem(config)
    v0, b0 = ideal_global_model(problem)
    fit = run_method(
        "ft",
        v0,
        b0,
        client_objectives(problem, np.arange(config.C)),
        Hyper(eta, 1, config.loss_scale),
    )
    a = 2 * config.loss_scale * eta * lam
    for i in range(config.C):
        u_i = b0[config.m + i][:, None]
        predicted = b_ft(b0, v0[:, None], a, u_i)
        np.testing.assert_allclose(predicted, fit.B[i], rtol=1e-12, atol=1e-12)


def _exact_problem(eps: sp.Rational):
    """d=5, m=1, C=2: B* = first three standard basis rows, rational v_com and means."""
    m, C, d = 1, 2, 5
    b_star = sp.eye(d)[: m + C, :]
    v_com = sp.Matrix([sp.Rational(3, 2)])
    R = sp.Rational
    means = sp.Matrix([[R(3, 5), R(1, 2), R(2, 5), 0, R(1, 2)], [R(1, 3), 0, R(2, 3), R(2, 3), 0]])
    return m, C, d, b_star, v_com, means, eps


def test_thm45_explicit_sympy_polynomial_equals_numeric_coefficients_and_simulator():
    m, C, d, b_star, v_com, means, eps = _exact_problem(sp.Rational(3, 10))
    eta = sp.Rational(1, 5)
    for loss, c_l in (("mse", sp.Integer(1)), ("half_mse", sp.Rational(1, 2))):
        ft, lpft = explicit_ft_loss_polynomial(b_star, v_com, means, eps, eta, c_l, i=0)
        bs = np.array(b_star, dtype=float)
        vc = np.array(v_com, dtype=float)[:, 0]
        mean = np.array(means, dtype=float)
        inputs = InputModel(mean, np.zeros((C, d, 0)), np.full(C, float(eps)))
        config = SimConfig(
            d=d, m=m, C=C, covariate="own", eps=float(eps), eta=float(eta), loss=loss, client=0
        )
        problem = Problem(
            bs, vc, client_heads(vc, config.lam, C), inputs, None, None,
            np.zeros((C, 2, m + C)), None, None, None, None,
        )  # fmt: skip
        coef = thm45_coefficients(config, problem)
        got = [float(coef.a2[0]), float(coef.a3[0]), float(coef.a4[0])]
        want = [float(ft.coeff_monomial(LAM**p)) for p in (2, 3, 4)]
        np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-14)
        assert ft.coeff_monomial(LAM) == 0
        np.testing.assert_allclose(
            float(coef.b2[0]), float(lpft.coeff_monomial(LAM**2)), rtol=1e-12
        )
        # ... and the simulator at lambda = 1.3 on this very problem.
        lam = 1.3
        cfg = config.replace(lam=lam)
        prob = Problem(
            bs, vc, client_heads(vc, lam, C), inputs, None, None,
            np.zeros((C, 2, m + C)), None, None, None, None,
        )  # fmt: skip
        res = simulate_batch([cfg], ["ft", "lpft"], problem=stack_problems([prob]))
        np.testing.assert_allclose(
            res.values["ft"]["global_loss"][0, 0], float(ft.eval(lam)), rtol=1e-12
        )
        np.testing.assert_allclose(
            res.values["lpft"]["global_loss"][0, 0], float(lpft.eval(lam)), rtol=1e-12
        )


def test_thm45_structured_derivation_matches_theory_md():
    der = derive_thm45()
    assert der.theory_md_matches
    assert len(der.lambda_roots) == 2
