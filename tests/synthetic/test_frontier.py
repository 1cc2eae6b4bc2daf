"""synthetic.frontier: methods compared at matched local loss, against a hand-computed frontier."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import given
from hypothesis import strategies as st

from synthetic.frontier import OUTPUT, common_range, matched, matched_by_seed


def _hand_frame() -> pd.DataFrame:
    rows = []
    # Method a (both seeds): local 1, 0.5, 0 over steps 0, 1, 2; global 0, 1, 2 (g = 2(1 - l)).
    for seed in (0, 1):
        for step, (loc, glo) in enumerate([(1.0, 0.0), (0.5, 1.0), (0.0, 2.0)]):
            rows.append({"method": "a", "seed": seed, "steps": step, "local": loc, "global": glo})
    # Method b: from (0.8, 0) to (0.2, 3) in seed 0, to (0.2, 4) in seed 1.
    for seed, end in ((0, 3.0), (1, 4.0)):
        for step, (loc, glo) in enumerate([(0.8, 0.0), (0.2, end)]):
            rows.append({"method": "b", "seed": seed, "steps": step, "local": loc, "global": glo})
    return pd.DataFrame(rows)


def test_matched_equals_the_hand_computed_frontier():
    out = matched(_hand_frame(), "steps", levels=3)
    assert list(out.columns) == list(OUTPUT)
    got = out.set_index(["method", "local"])
    # Common local range [0.2, 0.8]; levels 0.2, 0.5, 0.8.
    a = got.loc["a"]
    np.testing.assert_allclose(a["global"].to_numpy(), [1.6, 1.0, 0.4])
    np.testing.assert_allclose(a["global_hi"] - a["global_lo"], 0.0)
    b = got.loc["b"]
    # seed 0: g = 3 (0.8 - l) / 0.6; seed 1: g = 4 (0.8 - l) / 0.6.
    np.testing.assert_allclose(b["global_lo"].to_numpy(), [3.0, 1.5, 0.0])
    np.testing.assert_allclose(b["global_hi"].to_numpy(), [4.0, 2.0, 0.0])
    np.testing.assert_allclose(b["global"].to_numpy(), [3.5, 1.75, 0.0])
    assert set(out["scale"]) == {"loss"}
    assert (out["n_seeds"] == 2).all()


def test_first_crossing_in_knob_order():
    # Local loss falls, then rises again (overshoot): the first crossing is used.
    frame = pd.DataFrame({"method": "m", "seed": 0, "steps": [0, 1, 2],
                          "local": [1.0, 0.0, 1.0], "global": [0.0, 1.0, 5.0]})  # fmt: skip
    got = matched_by_seed(frame, "steps", levels=[0.5])
    assert got["global"].iloc[0] == pytest.approx(0.5)
    shuffled = frame.sample(frac=1.0, random_state=1)  # row order does not matter, knob does
    assert matched_by_seed(shuffled, "steps", levels=[0.5])["global"].iloc[0] == pytest.approx(0.5)


def test_bad_input_names_the_problem():
    frame = _hand_frame()
    with pytest.raises(ValueError, match="scale='bogus'"):
        matched(frame, "steps", scale="bogus")
    with pytest.raises(ValueError, match="missing"):
        matched(frame.drop(columns="global"), "steps")
    with pytest.raises(ValueError, match="common local range"):
        matched(frame, "steps", levels=[0.9])
    apart = frame.copy()
    apart.loc[apart["method"] == "b", "local"] += 5.0
    with pytest.raises(ValueError, match="do not overlap"):
        common_range(apart, "steps")


@given(
    st.lists(st.floats(0.01, 1.0), min_size=2, max_size=6),
    st.floats(-3.0, 3.0),
    st.floats(-2.0, 2.0),
    st.floats(0.0, 1.0),
)
def test_linear_frontier_is_recovered(gaps, slope, intercept, where):
    """A curve on the line g = intercept + slope * l is read back exactly at any level."""
    local = 1.0 - np.cumsum([0.0, *gaps]) / (1.0 + sum(gaps))  # strictly decreasing in (0, 1]
    frame = pd.DataFrame({"method": "m", "seed": 0, "steps": np.arange(local.size),
                          "local": local, "global": intercept + slope * local})  # fmt: skip
    level = float(local.min() + where * (local.max() - local.min()))
    got = matched(frame, "steps", levels=[level])
    assert got["global"].iloc[0] == pytest.approx(intercept + slope * level, abs=1e-9)
