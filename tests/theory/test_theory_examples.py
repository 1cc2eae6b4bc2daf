"""The three user-style claims of docs/claims.md and their outcomes (theory.examples)."""

from __future__ import annotations

import numpy as np
import pytest

from synthetic.config import SimConfig
from theory.closed_forms import thm44_losses
from theory.examples import (
    ft_never_raises_global,
    lp_never_raises_local,
    lpft_no_worse_at_matched_local,
)
from theory.results import evaluate
from theory.search import property_search


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_lp_never_raises_local_holds(seed):
    assert property_search(lp_never_raises_local, max_examples=60, seed=seed).holds


@pytest.mark.parametrize("fixed", [{"ridge": "0.1"}, {"n": "5", "C": "5", "m": "1"}])
def test_lp_never_raises_local_fails_with_ridge_or_few_samples(fixed):
    # Outside exact population probing the statement is false (documented in docs/claims.md).
    result = property_search(lp_never_raises_local, fixed, max_examples=100, seed=0)
    assert not result.holds
    ce = result.counterexample
    r = evaluate(lp_never_raises_local, ce)
    assert np.any(r["lp", "local_loss"] > r["global", "local_loss"])


def test_ft_never_raises_global_fails_exactly_past_tau_2_over_c():
    result = property_search(ft_never_raises_global, max_examples=100, seed=0)
    ce = result.counterexample
    assert ce is not None
    assert ce.covariate == "isotropic"
    assert thm44_losses(ce)["tau"] > 2 / ce.C
    # Just below the threshold it holds, just above it fails (isotropic, one step).
    s, c_l = ce.s, ce.loss_scale
    below = ce.replace(eta=0.99 * 2 / ce.C / (2 * c_l * s))
    above = ce.replace(eta=1.01 * 2 / ce.C / (2 * c_l * s))
    assert ft_never_raises_global.check(below, None).failed() == []
    assert ft_never_raises_global.check(above, None).failed() == ["user's claim"]


def test_lpft_at_matched_local_loss_equal_with_exact_probing():
    # Isotropic, exact LP: LP-FT's local loss is 0, FT reaches 0 at tau = 1; the two global
    # losses agree there ([CLOSER] Thm 4.4 at tau = 1: c_L lam^2 (1 - 2/C + 1) = 2 (C-1)/C).
    config = SimConfig(eta=0.25, vcom_norm=1.0, ridge=0.0)  # tau = 2 * 0.25 * 2 = 1
    r = evaluate(lpft_no_worse_at_matched_local, config)
    f = r.frontier("ft", "eta", np.linspace(0.0, 0.5, 201))  # contains eta = 0.25
    np.testing.assert_allclose(f.at_local(r["lpft", "local_loss"]), r["lpft", "global_loss"],
                               rtol=1e-9)  # fmt: skip


def test_lpft_at_matched_local_loss_fails_with_ridge_probing():
    result = property_search(lpft_no_worse_at_matched_local, max_examples=100, seed=0)
    assert not result.holds
    ce = result.counterexample
    r = evaluate(lpft_no_worse_at_matched_local, ce)
    f = r.frontier("ft", "eta", np.linspace(0.0, 4.0 * ce.eta, 201))
    matched = f.at_local(r["lpft", "local_loss"])
    assert np.any(r["lpft", "global_loss"] > matched * (1 + 1e-4))


def test_lpft_at_matched_local_loss_is_vacuous_with_exact_probing():
    # docs/claims.md: with ridge = 0 the search "holds" only because no client is matched.
    import dataclasses

    from theory._samplers import sample_space

    claim = lpft_no_worse_at_matched_local
    exact = dataclasses.replace(claim, space={**claim.space, "ridge": 0.0})
    rng = np.random.default_rng(0)
    matched = 0
    for _ in range(30):
        config = sample_space(exact, rng, "eta-log-uniform")
        r = evaluate(exact, config)
        f = r.frontier("ft", "eta", np.linspace(0.0, 4.0 * config.eta, 201))
        matched += int(np.isfinite(f.at_local(r["lpft", "local_loss"])).sum())
    assert matched == 0
    # With ridge probing some clients are matched, so the failures above are not vacuous.
    rng = np.random.default_rng(0)
    matched = 0
    for _ in range(30):
        config = sample_space(claim, rng, "eta-log-uniform")
        r = evaluate(claim, config)
        f = r.frontier("ft", "eta", np.linspace(0.0, 4.0 * config.eta, 201))
        matched += int(np.isfinite(f.at_local(r["lpft", "local_loss"])).sum())
    assert matched > 0
