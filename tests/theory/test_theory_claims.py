"""Property tests of every executable claim against the simulator ([CLOSER], [KUMAR])."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from synthetic import ConfigError, SimConfig
from synthetic.fedavg import ideal_global_model
from synthetic.methods import Hyper, linear_probe, run_method
from synthetic.problem import client_objectives, draw_problem
from synthetic.simulation import simulate
from theory.claims import check_claim, claim_ids, get_claim, predict_claim
from theory.closed_forms import thm44_losses

EXACT = 1e-10  # float64 identities after a handful of flops on O(1) numbers

dims = st.tuples(st.integers(1, 3), st.integers(2, 4), st.integers(0, 4))
seeds = st.integers(0, 10_000)
lams = st.floats(0.0, 3.0)
etas = st.floats(0.0, 1.2)
vcoms = st.floats(0.0, 2.0)
losses = st.sampled_from(["mse", "half_mse"])
geometries = st.sampled_from(["own", "shared", "random", "basis", "mix"])


def _iso(dim: tuple[int, int, int], **kw: object) -> SimConfig:
    m, C, extra = dim
    return SimConfig(covariate="isotropic", m=m, C=C, d=m + C + extra, **kw)  # type: ignore[arg-type]


def _stable_eta(config: SimConfig, fraction: float) -> float:
    """A step size well below the stability limit of GD from the start (samples or population)."""
    s_tot = 1.0 + config.vcom_norm**2 + config.lam**2
    spread = 1.0 + (config.d / config.n if config.n else 1.0) + 1.0
    return fraction / (2.0 * config.loss_scale * s_tot * spread)


@given(dim=dims, seed=seeds, lam=lams, eta=etas, vcom=vcoms, loss=losses)
def test_lemma43_row_formula_exact(dim, seed, lam, eta, vcom, loss):
    config = _iso(dim, seed=seed, lam=lam, eta=eta, vcom_norm=vcom, loss=loss)
    record = check_claim("lemma-4.3", config, np.random.default_rng(0))
    assert record.holds, record.to_dict()
    # Independent of the closed form: client rows are untouched, shared rows move along u_i.
    problem = draw_problem(config)
    v0, b0 = ideal_global_model(problem)
    fit = run_method(
        "ft",
        v0,
        b0,
        client_objectives(problem, np.arange(config.C)),
        Hyper(eta, 1, config.loss_scale),
    )
    m = config.m
    np.testing.assert_allclose(
        fit.B[:, m:], np.broadcast_to(b0[m:], fit.B[:, m:].shape), atol=EXACT
    )
    for i in range(config.C):
        moved = fit.B[i, :m] - b0[:m]
        u_i = b0[m + i]
        np.testing.assert_allclose(moved - np.outer(moved @ u_i, u_i), 0.0, atol=EXACT)


@given(dim=dims, seed=seeds, lam=lams, eta=etas, vcom=vcoms, loss=losses, geo=geometries)
def test_lp_exact_and_lpft_step_is_zero(dim, seed, lam, eta, vcom, loss, geo):
    m, C, extra = dim
    config = SimConfig(
        covariate=geo, m=m, C=C, d=m + C + extra, seed=seed, lam=lam, eta=eta, vcom_norm=vcom,
        loss=loss, eps=0.4, steps=3,
    )  # fmt: skip
    problem = draw_problem(config)
    v0, b0 = ideal_global_model(problem)
    objective = client_objectives(problem, np.arange(C))
    v_lp = linear_probe(b0, objective)
    np.testing.assert_allclose(v_lp, problem.heads, atol=1e-9)
    fit = run_method("lpft", v0, b0, objective, Hyper(eta, 3, config.loss_scale))
    np.testing.assert_allclose(fit.V, problem.heads, atol=1e-9)
    np.testing.assert_allclose(fit.B, np.broadcast_to(b0, fit.B.shape), atol=1e-9)


@given(dim=dims, seed=seeds, lam=lams, eta=etas, vcom=vcoms, loss=losses)
def test_thm44_closed_form_equals_simulator(dim, seed, lam, eta, vcom, loss):
    config = _iso(dim, seed=seed, lam=lam, eta=eta, vcom_norm=vcom, loss=loss)
    record = check_claim("thm-4.4", config, np.random.default_rng(0))
    assert record.holds, record.to_dict()
    # The derived condition decides the simulated winner wherever the simulated winner is
    # resolvable: the check compares the simulated losses with a relative tolerance of 1e-9,
    # so a predicted gap G_FT - G_LPFT = c_L lam^2 (tau - 1)(tau + 1 - 2/C) below 1e-8 of the
    # loss scale (tau = 1, the tie tau = 0 at C = 2, eta ~ 1e-14, lam ~ 0) says nothing about
    # the sign. Away from it, the simulated winner is LP-FT iff tau >= 1 (or tau = 0, C = 2).
    gap = thm44_losses(config)
    pred_gap = gap["global_loss_ft"] - gap["global_loss_lpft"]
    if abs(pred_gap) > 1e-8 * max(1.0, abs(gap["global_loss_ft"])):
        assert record.conclusion_holds == gap["lpft_wins"], (pred_gap, record.to_dict())
        assert record.conclusion_holds == (gap["tau"] >= 1.0)


@given(
    dim=dims, seed=seeds, lam=lams, eta=etas, vcom=vcoms, loss=losses, geo=geometries,
    eps=st.floats(0.05, 1.0), mix=st.floats(0.0, 1.0),
)  # fmt: skip
def test_thm45_closed_form_equals_simulator(dim, seed, lam, eta, vcom, loss, geo, eps, mix):
    m, C, extra = dim
    config = SimConfig(
        covariate=geo, m=m, C=C, d=m + C + extra, seed=seed, lam=lam, eta=eta, vcom_norm=vcom,
        loss=loss, eps=eps, mix=mix,
    )  # fmt: skip
    record = check_claim("thm-4.5", config, np.random.default_rng(0))
    assert record.holds, record.to_dict()


def _global_gap(config: SimConfig, lam: float, client: int) -> float:
    frame = simulate([config.replace(lam=lam, client=client)], ["ft", "lpft"])
    g = frame[frame["metric"] == "global_loss"].set_index("method")["value"]
    return float(g["ft"] - g["lpft"])


@settings(max_examples=15)
@given(seed=seeds, mix=st.floats(0.3, 0.9), eta=st.floats(0.05, 0.6), eps=st.floats(0.1, 0.6))
def test_lambda_star_is_a_sign_change(seed, mix, eta, eps):
    config = SimConfig(covariate="mix", mix=mix, eta=eta, eps=eps, seed=seed)
    pred = predict_claim("thm-4.5", config)
    finite = [i for i, r in enumerate(pred["lambda_star_regime"]) if r == "finite"]
    assume(finite)
    i = finite[0]
    star = pred["lambda_star"][i]
    a2, a3, a4, b2 = (pred[k][i] for k in ("a2", "a3", "a4", "b2"))
    roots = sorted(
        r.real for r in np.roots([a4, a3, a2 - b2]) if r.real > 0 and abs(r.imag) < 1e-12
    )
    assume(star > 1e-3 and star < 1e3)
    upper = roots[1] if len(roots) > 1 else 2 * star
    assume(upper > star * (1 + 1e-3))
    delta = min(0.05, 0.5 * (upper / star - 1))
    assert _global_gap(config, star * (1 - delta), i) > 0  # LP-FT better below lambda*
    assert _global_gap(config, star * (1 + delta), i) < 0  # FT better just above


@settings(max_examples=20)
@given(
    dim=dims, seed=seeds, lam=st.floats(0.1, 2.0), vcom=vcoms, loss=losses,
    steps=st.integers(1, 200), n_frac=st.floats(0.1, 0.9),
    geo=st.sampled_from(["isotropic", "own", "random", "mix"]),
)  # fmt: skip
def test_span_lemma_after_many_steps(dim, seed, lam, vcom, loss, steps, n_frac, geo):
    m, C, extra = dim
    d = m + C + extra + 4
    n = max(1, int(n_frac * d))
    config = SimConfig(
        covariate=geo, m=m, C=C, d=d, n=n, seed=seed, lam=lam, vcom_norm=vcom, loss=loss,
        steps=steps, eta=0.0,
    )  # fmt: skip
    config = config.replace(eta=_stable_eta(config, 0.5))
    record = check_claim("kumar-span", config, np.random.default_rng(seed))
    assert record.holds, record.to_dict()
    # Negative control: inside rowspace(X_i) the features do move.
    problem = draw_problem(config)
    v0, b0 = ideal_global_model(problem)
    fit = run_method(
        "ft",
        v0,
        b0,
        client_objectives(problem, np.arange(C)),
        Hyper(config.eta, steps, config.loss_scale),
    )
    x_row = problem.x[0].T @ problem.y[0]  # X^T y lies in rowspace(X)
    assume(np.linalg.norm(x_row) > 1e-6 and lam * config.eta > 1e-6 and vcom > 0.05)
    assert np.linalg.norm(fit.B[0] @ x_row - b0 @ x_row) > 0


@settings(max_examples=20)
@given(
    dim=dims, seed=seeds, lam=st.floats(0.1, 2.0), vcom=vcoms, loss=losses,
    steps=st.integers(1, 50), n=st.one_of(st.none(), st.integers(1, 30)),
    geo=st.sampled_from(["isotropic", "own", "random", "overlap"]),
)  # fmt: skip
def test_balancedness_each_step(dim, seed, lam, vcom, loss, steps, n, geo):
    m, C, extra = dim
    d = m + 2 * C + extra
    config = SimConfig(
        covariate=geo, m=m, C=C, d=d, n=n, seed=seed, lam=lam, vcom_norm=vcom, loss=loss,
        steps=steps, eta=0.0,
    )  # fmt: skip
    config = config.replace(eta=_stable_eta(config, 0.8))
    record = check_claim("kumar-balance", config, np.random.default_rng(0))
    assert record.holds, record.to_dict()
    # The eta^2 term is real: the imbalance does move under GD (not under gradient flow).
    assume(record.predicted["max_abs_change_predicted"] > 1e-8)
    assert record.measured["max_abs_change_measured"] > 0


@settings(max_examples=20)
@given(
    dim=dims, seed=seeds, lam=st.floats(0.1, 2.0), vcom=vcoms, loss=losses,
    steps=st.integers(1, 60), geo=st.sampled_from(["isotropic", "own", "random", "mix"]),
    extra_n=st.integers(0, 3),
)  # fmt: skip
def test_prop32_lpft_zero_ood(dim, seed, lam, vcom, loss, steps, geo, extra_n):
    m, C, extra = dim
    d = m + C + extra + 4
    n = m + C + extra_n  # k <= n < d
    config = SimConfig(
        covariate=geo, m=m, C=C, d=d, n=n, seed=seed, lam=lam, vcom_norm=vcom, loss=loss,
        steps=steps, eta=0.0, eps=0.4,
    )  # fmt: skip
    config = config.replace(eta=_stable_eta(config, 0.5))
    record = check_claim("kumar-prop-3.2", config, np.random.default_rng(seed))
    assert record.holds, record.to_dict()


@settings(max_examples=20)
@given(
    dim=dims, seed=seeds, lam=st.floats(0.0, 2.0), vcom=vcoms, loss=losses,
    steps=st.integers(1, 150), n_frac=st.floats(0.05, 1.0),
    geo=st.sampled_from(["isotropic", "own", "random", "mix"]),
)  # fmt: skip
def test_thm31_bound_on_trajectories(dim, seed, lam, vcom, loss, steps, n_frac, geo):
    m, C, extra = dim
    k = m + C
    d = 2 * k + extra
    n = max(1, int(n_frac * (d - k)))
    config = SimConfig(
        covariate=geo, m=m, C=C, d=d, n=n, seed=seed, lam=lam, vcom_norm=vcom, loss=loss,
        steps=steps, eta=0.0,
    )  # fmt: skip
    config = config.replace(eta=_stable_eta(config, 0.5))
    record = check_claim("kumar-thm-3.1", config, np.random.default_rng(0))
    assert record.holds, record.to_dict()
    assert all(0.0 <= c <= 1.0 + 1e-12 for c in record.predicted["cos_theta_k"])


@pytest.mark.parametrize("claim_id", claim_ids())
def test_default_configs_satisfy_hypotheses_and_check(claim_id):
    claim = get_claim(claim_id)
    assert claim.hypotheses(claim.default) == []
    record = claim.check(claim.default, np.random.default_rng(0))
    assert record.holds
    assert set(record.to_dict()) >= {
        "claim", "holds", "predicted", "measured", "max_abs_error", "tolerance", "config",
    }  # fmt: skip


def test_hypothesis_failure_names_the_hypothesis():
    with pytest.raises(
        ConfigError, match="thm-4.4 assumes isotropic inputs; covariate model is 'mix'"
    ):
        check_claim("thm-4.4", SimConfig(covariate="mix"), np.random.default_rng(0))
    with pytest.raises(ConfigError, match="n < d"):
        check_claim("kumar-span", SimConfig(), np.random.default_rng(0))
    with pytest.raises(ConfigError, match="lemma-4.3, thm-4.4"):
        get_claim("thm-9")


def test_thm44_negative_control_detects_a_wrong_closed_form():
    # Perturbing the simulated configuration away from the prediction must be detected.
    config = SimConfig(eta=0.3)
    record = check_claim("thm-4.4", config, np.random.default_rng(0))
    wrong = thm44_losses(config.replace(eta=0.31))
    assert abs(wrong["global_loss_ft"] - record.measured["global_loss_ft"][0]) > record.tolerance
