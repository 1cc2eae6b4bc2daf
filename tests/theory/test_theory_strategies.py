"""theory.strategies draws only valid configurations (hypothesis over the strategies)."""

from __future__ import annotations

import dataclasses

from hypothesis import given
from hypothesis import strategies as st

from synthetic.config import SimConfig
from theory.claims import CLAIMS
from theory.examples import lpft_no_worse_at_matched_local
from theory.space import DEFAULT_SPACE
from theory.strategies import configs, dims, geometries, losses, samples, step_sizes


def _revalidated(config: SimConfig) -> SimConfig:
    return SimConfig(**dataclasses.asdict(config))  # raises if the draw were invalid


@given(configs())
def test_default_draws_are_valid_and_bounded(config):
    assert _revalidated(config) == config
    lo, hi = DEFAULT_SPACE["C"]
    assert lo <= config.C <= hi
    assert config.k <= config.d <= config.k + 4
    assert 0.01 <= config.eta <= 1.0
    assert (config.eps == SimConfig().eps) or config.covariate != "isotropic"


@given(st.sampled_from(sorted(CLAIMS)).flatmap(lambda cid: configs(claim=CLAIMS[cid])
                                               .map(lambda c: (cid, c))))  # fmt: skip
def test_claim_draws_meet_the_claims_hypotheses(drawn):
    claim_id, config = drawn
    assert _revalidated(config) == config
    assert CLAIMS[claim_id].hypotheses(config) == []


@given(configs(claim=lpft_no_worse_at_matched_local))
def test_user_claim_space_is_respected(config):
    assert config.steps == 1
    assert config.n in (None, 8, 16, 32)
    assert 0.01 <= config.ridge <= 1.0


@given(configs(steps=(1, 3), covariate="own", C=3))
def test_overrides_fix_or_bound_fields(config):
    assert 1 <= config.steps <= 3
    assert config.covariate == "own"
    assert config.C == 3


@given(dims(), geometries(), step_sizes(0.05, 0.5), losses(), samples(2, 9))
def test_building_blocks_compose_into_valid_configs(dim, geometry, eta, loss, n):
    assert dim["d"] >= dim["m"] + dim["C"]
    assert ("eps" in geometry) == (geometry["covariate"] != "isotropic")
    assert ("mix" in geometry) == (geometry["covariate"] == "mix")
    assert 0.05 <= eta <= 0.5
    config = SimConfig(**dim, **geometry, eta=eta, loss=loss, n=n)
    assert n is None or 2 <= config.n <= 9
