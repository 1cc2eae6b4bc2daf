"""Theorem 4.5 under both conventions, overflow as divergence, and exit codes ([CLOSER] 4.5)."""

from __future__ import annotations

import json

import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from feddistort.cli import main
from synthetic import SimConfig
from synthetic.simulation import simulate
from theory.claims import check_claim, predict_claim
from theory.closed_forms import (
    lambda_star,
    lpft_wins_intervals,
    thm45_coefficients,
    thm45_intervals,
)

EXAMPLE = SimConfig(covariate="mix", mix=0.75, eta=0.2, eps=0.3, seed=0, client=3)
FLIP = 1e-3  # the winner must flip within 1e-3 (relative) of every reported root
METRIC = {"global": "global_loss", "others": "global_loss_others"}


def _gap(config: SimConfig, lam: float, convention: str) -> float:
    """Simulated FT minus LP-FT loss under one convention (> 0: LP-FT better)."""
    frame = simulate([config.replace(lam=lam)], ["ft", "lpft"], metrics=[METRIC[convention]])
    g = frame.set_index("method")["value"]
    return float(g["ft"] - g["lpft"])


def _assert_flips(config: SimConfig, intervals, convention: str) -> None:
    edges = [x for lo, hi in intervals for x in (lo, hi) if x not in (0.0, None)]
    for root in edges:
        below, above = _gap(config, root * (1 - FLIP), convention), _gap(
            config, root * (1 + FLIP), convention)  # fmt: skip
        assert below * above < 0, (convention, root, below, above)
        inside = any(lo <= root * (1 + FLIP) and (hi is None or root * (1 + FLIP) <= hi)
                     for lo, hi in intervals)  # fmt: skip
        assert (above > 0) == inside  # LP-FT wins exactly inside the reported intervals


def test_documented_example_both_conventions_and_second_roots():
    pred = predict_claim("thm-4.5", EXAMPLE)
    assert pred["lambda_star"][0] == pytest.approx(5.709, abs=1e-3)
    assert pred["lambda_star_others"][0] == pytest.approx(1.140, abs=1e-3)
    (lo1, hi1), (lo2, hi2) = pred["lpft_wins_intervals"][0]
    assert (lo1, hi2) == (0.0, None)
    assert hi1 == pytest.approx(5.709, abs=1e-3)
    assert lo2 == pytest.approx(21.1, abs=0.05)  # a4 > 0: LP-FT wins again past the 2nd root
    (_, h1), (l2, h2) = pred["lpft_wins_intervals_others"][0]
    assert (h1, l2, h2) == (pytest.approx(1.140, abs=1e-3), pytest.approx(59.2, abs=0.05), None)
    for convention, key in (("global", "lpft_wins_intervals"),
                            ("others", "lpft_wins_intervals_others")):  # fmt: skip
        _assert_flips(EXAMPLE, pred[key][0], convention)


@settings(max_examples=12)
@given(seed=st.integers(0, 500), mix=st.floats(0.2, 1.0), eta=st.floats(0.05, 0.6),
       eps=st.floats(0.1, 0.6), client=st.integers(0, 3))  # fmt: skip
def test_both_conventions_flip_at_every_reported_root(seed, mix, eta, eps, client):
    config = SimConfig(covariate="mix", mix=mix, eta=eta, eps=eps, seed=seed, client=client)
    coef = thm45_coefficients(config)
    for convention in ("global", "others"):
        intervals = thm45_intervals(coef, convention)[0]
        edges = [x for lo, hi in intervals for x in (lo, hi) if x not in (0.0, None)]
        # Roots closer than 3e-3 (relative) to each other or to 0 / 1e4 cannot be bracketed
        # at +-1e-3 by simulation in float64; such draws say nothing about the flip.
        assume(all(1e-3 < r < 1e4 for r in edges))
        assume(all(b > a * (1 + 3 * FLIP) for a, b in zip(edges, edges[1:], strict=False)))
        # The gap is lam^2 q(lam): |q| at the probes must exceed float64 rounding of the losses.
        assume(all(abs(_gap(config, r * (1 + FLIP), convention)) > 1e-9 * r**2 for r in edges))
        _assert_flips(config, intervals, convention)


@given(a2=st.floats(-5, 5), a3=st.floats(-5, 5), a4=st.floats(0, 5), b2=st.floats(-5, 5))
def test_intervals_are_exactly_where_q_is_nonnegative(a2, a3, a4, b2):
    intervals = lpft_wins_intervals(a2, a3, a4, b2)
    star = lambda_star(a2, a3, a4, b2)
    q = lambda x: (a2 - b2) + a3 * x + a4 * x * x  # noqa: E731
    for x in np.geomspace(1e-3, 1e3, 61):
        inside = any(lo <= x and (hi is None or x <= hi) for lo, hi in intervals)
        qx = q(x)
        assume(abs(qx) > 1e-6 * (abs(a2 - b2) + abs(a3) * x + a4 * x * x + 1e-12))
        assert inside == (qx > 0), (x, qx, intervals)
    if star.regime == "finite":
        assert intervals[0][0] == 0.0
        assert intervals[0][1] == pytest.approx(star.value)


def _run(capsys, *argv):
    code = main(list(argv))
    out = capsys.readouterr()
    return code, out.out, out.err


def test_explain_thm45_json_reports_both_conventions(capsys):
    code, out, _ = _run(capsys, "theory", "explain", "thm-4.5", "--set", "covariate=mix",
                        "--set", "mix=0.75", "--set", "client=3", "--json")  # fmt: skip
    assert code == 0
    data = json.loads(out)
    for key in ("lambda_star", "lambda_star_regime", "lambda_star_others",
                "lambda_star_others_regime", "a2_others", "a3_others", "a4_others", "b2_others",
                "lpft_wins_intervals", "lpft_wins_intervals_others"):  # fmt: skip
        assert key in data
    assert data["lpft_wins_intervals"][-1][1] is None  # hi = null for +infinity
    assert data["lambda_star_others"] == pytest.approx(1.1397, abs=1e-4)


@pytest.mark.parametrize(
    "argv",
    [
        ["theory", "check", "thm-4.5", "--set", "covariate=own", "--set", "eta=1e200"],
        ["theory", "check", "thm-4.4", "--set", "eta=1e200"],  # the closed form overflows
        ["theory", "check", "thm-4.4", "--set", "eta=1e100"],  # the simulated step diverges
        ["theory", "explain", "thm-4.5", "--set", "covariate=own", "--set", "eta=1e200"],
    ],
)
def test_overflow_is_divergence_not_a_false_verdict(capsys, argv):
    code, out, err = _run(capsys, *argv)
    assert code == 2
    assert "diverged" in err
    assert "DOES NOT HOLD" not in out + err
    assert "FAILS" not in out + err
    assert "Traceback" not in out + err


def test_overflow_record_is_flagged():
    record = check_claim("thm-4.4", SimConfig(eta=1e200), np.random.default_rng(0))
    assert record.diverged
    assert record.verdicts() == {}
    assert record.to_dict()["diverged"] is True


def test_exit_codes_name_the_failing_statement(capsys):
    code, out, _ = _run(capsys, "theory", "check", "thm-4.4")  # tau = 0.8 < 1
    assert code == 1
    assert "FAILS: paper's conclusion" in out
    assert "closed form: holds" in out
    code, out, _ = _run(capsys, "theory", "check", "thm-4.4", "--set", "eta=0.3")
    assert code == 0
    code, out, _ = _run(capsys, "theory", "check", "thm-4.5")  # 'own': no lambda* anywhere
    assert code == 1
    assert "paper's conclusion over the other clients: FAILS" in out


def test_help_states_the_exit_codes(capsys):
    for action in ("check", "audit", "explain"):
        with pytest.raises(SystemExit):
            main(["theory", action, "--help"])
        text = " ".join(capsys.readouterr().out.split())
        assert "0 when every checked statement holds" in text
        assert "1 when any fails" in text
        assert "2 for bad input" in text


def test_audit_json_writes_nothing_unasked(capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    code, out, _ = _run(capsys, "theory", "audit", "--claim", "lemma-4.3", "--budget", "2",
                        "--json")  # fmt: skip
    assert code == 0
    assert json.loads(out)["rows"][0]["claim"] == "lemma-4.3"
    assert list(tmp_path.iterdir()) == []
