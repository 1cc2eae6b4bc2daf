"""FT versus LP-FT at matched local loss, against hand-computed frontiers."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from synthetic import ConfigError, SimConfig
from theory import matched
from theory.audit import audit_claim


@settings(max_examples=10)
@given(eta=st.floats(0.02, 0.4), vcom=st.floats(0.0, 2.0), lam=st.floats(0.3, 3.0),
       C=st.integers(2, 6), loss=st.sampled_from(["mse", "half_mse"]))  # fmt: skip
def test_thm44_frontier_matches_the_hand_computed_line(eta, vcom, lam, C, loss):
    # FT moves w along u_i by t = tau lam: local c_L (t - lam)^2, global c_L (t^2 - 2 t lam / C
    # + lam^2). LP-FT sits at t = lam (local 0), so the match is t = lam, i.e. eta* = 1/(2 c_L
    # s), where FT's global loss is 2 c_L lam^2 (C - 1) / C: exactly LP-FT's.
    config = SimConfig(eta=eta, vcom_norm=vcom, lam=lam, C=C, d=C + 4, loss=loss, client=0)
    c_l = config.loss_scale
    (m,) = matched.matched_local_loss(config, "eta")
    assert m.verdict == "equal"
    assert m.matched_knob == pytest.approx(1 / (2 * c_l * config.s), rel=1e-6)
    hand = 2 * c_l * lam**2 * (C - 1) / C
    assert m.matched_global == pytest.approx(hand, rel=1e-8)
    assert m.lpft_global == pytest.approx(hand, rel=1e-10)
    tau = 2 * c_l * eta * config.s
    assert m.ft_local == pytest.approx(c_l * lam**2 * (1 - tau) ** 2, rel=1e-9, abs=1e-12)


def test_crossing_and_interpolation_on_a_hand_made_frontier():
    k = np.arange(6.0)
    local = np.array([5.0, 4.0, 3.0, 2.0, 1.0, 0.5])
    glob = np.array([1.0, 1.5, 2.0, 2.5, 3.0, 3.25])
    assert matched.crossing(k, local, glob, 2.5, 0.0) == (2, 3, False)
    assert matched.crossing(k, local, glob, 0.1, 0.0) is None  # never reached: unmatched
    touching = np.array([5.0, 3.0, 1.0, 3.0, 5.0, 7.0])
    assert matched.crossing(k, touching, glob, 1.0 - 1e-9, 1e-6) == (1, 2, False)
    assert matched.crossing(k, touching, glob, 0.0, 1e-9) == (1, 3, True)


def test_unmatched_when_ft_never_reaches_lpfts_local_loss():
    # n < d samples: FT converges to an interpolant with a positive population local loss,
    # while LP-FT recovers w*_i exactly; over 20x the steps FT never reaches local 0.
    config = SimConfig(d=5, m=2, C=2, lam=0.949, covariate="own", n=4, vcom_norm=0.913,
                       eta=0.0169, steps=20, seed=5418)  # fmt: skip
    out = matched.matched_local_loss(config, "steps")
    assert [m.verdict for m in out] == ["unmatched", "unmatched"]
    assert all(m.ft_local_min > 1e-4 for m in out)
    assert all(m.matched_global is None for m in out)


def test_bad_knob_is_refused():
    with pytest.raises(ConfigError, match="knob='lr' is invalid"):
        matched.matched_local_loss(SimConfig(), "lr")


def test_audit_thm44_failures_are_ft_moving_less_and_equal_at_matched_loss():
    for prior in ("eta-log-uniform", "eta-uniform"):
        rows = {r.kind: r for r in audit_claim("thm-4.4", 20, np.random.default_rng(3), prior)}
        concl = rows["conclusion"]
        assert concl.prior == prior
        assert concl.violations > 0
        n = concl.violations
        assert concl.details["ft_moved_less_tau_lt_1"] == f"{n}/{n}"
        assert concl.details["ft_local_higher"] == f"{n}/{n}"
        verdicts = concl.details["matched_local_loss"]["verdicts_per_client"]
        assert set(verdicts) == {"equal"}


def test_audit_kumar_failures_have_higher_ft_local_loss():
    rows = {r.kind: r for r in audit_claim("kumar-prop-3.2", 10, np.random.default_rng(2))}
    fed = rows["federated-reading"]
    assert fed.violations > 0
    assert fed.details["ft_local_higher"] == f"{fed.violations}/{fed.violations}"
    assert fed.details["matched_local_loss"]["knob"] == "steps"
