"""[KUMAR] Thm 3.1 with the paper's constant, balancedness on the flow, failure paths."""

from __future__ import annotations

import numpy as np
import pytest

from synthetic import SimConfig
from synthetic.problem import draw_problem
from theory import _kumar, _kumar_flow
from theory.claims import CLAIMS, check_claim, get_claim

SAMPLES = get_claim("kumar-thm-3.1").default


def test_thm31_uses_the_papers_squared_constant():
    problem = draw_problem(SAMPLES)
    paper = _kumar_flow.thm31_bound(problem, SAMPLES, 0)
    tight = _kumar_flow.thm31_bound(problem, SAMPLES, 0, power=1)
    w = paper["w_star_norm"]
    assert w > 0
    # Hand-computed eq. 3.7: cos / sqrt(k) * min(phi, phi^2/||w*||) / (1 + ||w*||)^2.
    phi = paper["phi"]
    expected = paper["cos_theta_k"] / np.sqrt(SAMPLES.k) * min(phi, phi**2 / w) / (1 + w) ** 2
    assert paper["bound"] == pytest.approx(expected, rel=1e-12)
    assert tight["bound"] == pytest.approx(paper["bound"] * (1 + w), rel=1e-12)
    assert "(1 + ||w*||)^2" in CLAIMS["kumar-thm-3.1"].statement


def test_tighter_bound_is_a_separate_labelled_empirical_claim():
    tight = CLAIMS["kumar-thm-3.1-tight"]
    assert tight.statement.startswith("EMPIRICAL")
    assert "not proved" in tight.source
    assert CLAIMS["kumar-thm-3.1"].source == "[KUMAR] Theorem 3.1"
    record = check_claim("kumar-thm-3.1-tight", SAMPLES, np.random.default_rng(0))
    assert record.claim == "kumar-thm-3.1-tight"
    assert record.holds


def test_thm31_is_checked_on_many_small_steps_and_can_fail():
    record = check_claim("kumar-thm-3.1", SAMPLES, np.random.default_rng(0))
    assert record.holds
    assert record.kind == "bound"
    assert f"eta/{_kumar_flow.FLOW_REFINE}" in record.notes
    # Failure path: a bound inflated beyond the measured OOD error must be reported violated.
    inflated = _kumar_flow.thm31_flow_check(SAMPLES, "kumar-thm-3.1", 2, bound_scale=1e6)
    assert not inflated.holds
    assert inflated.failed() == ["bound"]


def test_balance_conclusion_is_checked_on_the_flow():
    config = get_claim("kumar-balance").default
    record = check_claim("kumar-balance", config, np.random.default_rng(0))
    assert record.holds
    assert record.conclusion_holds
    coarse, fine = record.measured["flow_drift"]
    assert coarse > 0
    assert fine / coarse == pytest.approx(0.5, abs=_kumar_flow.FLOW_RATIO_TOL)
    # Independent: the drift at step eta/4 is about twice the drift at eta/8 (linear in h).
    d4 = _kumar_flow.balance_drift(config, 4)
    assert d4 is not None
    assert d4[0] / coarse == pytest.approx(2.0, rel=0.1)


def test_balance_conclusion_failure_path():
    # A drift that does not shrink with the step is not gradient-flow invariance.
    ok, ratio = _kumar_flow.drift_shrinks_linearly(1e-3, 1e-3, atol=1e-12)
    assert not ok
    assert ratio == 1.0
    assert _kumar_flow.drift_shrinks_linearly(0.0, 0.0, atol=1e-12)[0]  # no drift at all


def test_span_tolerance_does_not_grow_with_steps():
    config = get_claim("kumar-span").default
    few = check_claim("kumar-span", config.replace(steps=5), np.random.default_rng(0))
    many = check_claim("kumar-span", config.replace(steps=500), np.random.default_rng(0))
    assert few.holds
    assert many.holds
    # Same |B| scale up to the movement of B: no factor 100 from the step count.
    assert many.tolerance < 10 * few.tolerance


def test_prop32_closed_form_and_conclusion_are_separate():
    config = get_claim("kumar-prop-3.2").default
    record = check_claim("kumar-prop-3.2", config, np.random.default_rng(0))
    assert record.holds
    assert record.conclusion_holds
    assert record.verdicts() == {"closed form": True, "paper's conclusion": True}
    # Failure path of the conclusion: with n >= d samples (outside the hypotheses) FT from a
    # random head converges to w*_i too, so LP-FT no longer beats it out of distribution.
    outside = config.replace(n=config.d + 10, steps=3000, eta=0.1)
    direct = _kumar.prop32_check(outside, np.random.default_rng(0))
    assert direct.holds  # LP-FT still has zero OOD error
    assert direct.conclusion_holds is False


def test_flow_checks_report_divergence():
    config = SimConfig(covariate="isotropic", d=20, m=2, C=3, n=8, eta=50.0, steps=50)
    for claim in ("kumar-thm-3.1", "kumar-balance"):
        record = check_claim(claim, config, np.random.default_rng(0))
        assert record.diverged
        assert record.verdicts() == {}
