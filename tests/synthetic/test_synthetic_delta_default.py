"""Exact Delta by default: exactly 0 where B did not move, no standard error in the defaults."""

from __future__ import annotations

import numpy as np
import pytest

from synthetic import DEFAULT_METRICS, METRICS, SimConfig, expand_grid, simulate

FEATURE_METRICS = ("feature_distortion_fro", "feature_distortion_local", "delta_l2",
                   "delta_l2_mc", "delta_l2_se", "feature_angle_max")  # fmt: skip


def test_default_metrics_are_exact_and_without_standard_error():
    assert "delta_l2" in DEFAULT_METRICS
    assert "delta_l2_se" not in DEFAULT_METRICS
    assert "delta_l2_mc" not in DEFAULT_METRICS
    assert {"delta_l2_mc", "delta_l2_se"} <= set(METRICS)


@pytest.mark.parametrize("n", [None, 20])
@pytest.mark.parametrize("cov", ["isotropic", "own", "overlap"])
def test_lp_and_the_lp_phase_of_lpft_report_exactly_zero(cov, n):
    base = SimConfig(covariate=cov, d=20, n=n, lam=0.8, sigma=0.3)
    # steps=0: LP-FT is its LP phase; steps=2: LP-FT moves B (negative control). One batch
    # holds both methods' rows beside FT's, whose features move.
    configs = expand_grid(base, {"steps": [0, 2], "lam": [0.3, 0.8]})
    frame = simulate(configs, ["lp", "lpft", "ft"], metrics=METRICS)
    feats = frame[frame.metric.isin(FEATURE_METRICS)]
    frozen = feats[(feats.method == "lp") | ((feats.method == "lpft") & (feats.steps == 0))]
    assert len(frozen) > 0
    assert (frozen["value"] == 0.0).all()  # exactly 0, not rounding noise
    delta = feats[(feats.steps == 2) & (feats.metric == "delta_l2")].groupby("method")["value"]
    assert (delta.min()["ft"]) > 1e-6  # negative control: FT moves B
    if n is not None:  # noisy samples leave the probe a residual, so LP-FT's FT phase moves B
        assert delta.min()["lpft"] > 1e-6
    else:  # in population the probe from B* is exact: the FT phase moves B by round-off only
        assert delta.max()["lpft"] < 1e-12


def test_exact_delta_does_not_depend_on_the_monte_carlo_draws():
    a = simulate([SimConfig(covariate="own", n_mc=16)], ["ft"], metrics=["delta_l2", "delta_l2_mc"])
    b = simulate([SimConfig(covariate="own", n_mc=64)], ["ft"], metrics=["delta_l2", "delta_l2_mc"])
    exact_a = a[a.metric == "delta_l2"]["value"].to_numpy()
    exact_b = b[b.metric == "delta_l2"]["value"].to_numpy()
    assert np.array_equal(exact_a, exact_b)
    mc_a = a[a.metric == "delta_l2_mc"]["value"].to_numpy()
    mc_b = b[b.metric == "delta_l2_mc"]["value"].to_numpy()
    assert not np.array_equal(mc_a, mc_b)  # the cross-check does sample
