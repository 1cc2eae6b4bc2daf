"""Every registered figure plots its own computed data (read back from the axes)."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import pytest
from matplotlib.figure import Figure

from figures._readback import expected_lines, plotted_lines
from figures._style import tidy
from figures.registry import figure_names, get_figure

THEORY = ["lemma-4.3", "thm-4.4", "thm-4.5", "kumar"]
PFT = ["tradeoff", "distortion", "flooding", "frontier"]


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plt.close("all")


@pytest.fixture(scope="module")
def theory_data(tmp_path_factory) -> dict[str, pd.DataFrame]:
    work = tmp_path_factory.mktemp("work")
    return {n: get_figure(n).data(get_figure(n).settings(True), work / n) for n in THEORY + PFT}


def test_registry_has_every_required_figure():
    names = figure_names()
    for required in [*THEORY, "tradeoff", "distortion", "flooding"]:
        assert required in names
    with pytest.raises(ValueError, match="figure='nope'"):
        get_figure("nope")


@pytest.mark.slow
@pytest.mark.parametrize("name", THEORY + PFT)
def test_plot_returns_figure_and_draws_the_data(name, theory_data):
    data = theory_data[name]
    fig = get_figure(name).plot(data)
    assert isinstance(fig, Figure)
    drawn = plotted_lines(fig)
    expected = expected_lines(data)
    assert set(drawn) == set(expected)
    for gid, (x, y) in expected.items():
        np.testing.assert_array_equal(drawn[gid][0], x, err_msg=gid)
        np.testing.assert_array_equal(drawn[gid][1], y, err_msg=gid)


@pytest.mark.slow
@pytest.mark.parametrize("name", THEORY)
def test_plot_accepts_caller_axes(name, theory_data):
    data = theory_data[name]
    n_panels = data["panel"].nunique()
    fig, axes = plt.subplots(1, n_panels)
    assert get_figure(name).plot(data, ax=list(axes)) is fig
    with pytest.raises(ValueError, match="ax has"):
        get_figure(name).plot(data, ax=list(axes)[:1] if n_panels > 1 else [axes, axes])


@pytest.mark.slow
def test_lemma43_simulation_matches_prediction(theory_data):
    rows = theory_data["lemma-4.3"]
    rows = rows[(rows["panel"] == "rows") & (rows["series"] != "y = x")]
    np.testing.assert_allclose(rows["y"], rows["x"], atol=1e-9)
    assert rows["max_entry_error"].max() < 1e-9


@pytest.mark.slow
def test_thm44_phase_map_agrees_with_the_boundary(theory_data):
    phase = theory_data["thm-4.4"]
    phase = phase[(phase["panel"] == "phase") & (phase["kind"] == "marker")]
    s = 1.0 + phase["y"]
    predicted = np.where(2 * phase["x"] * s > 1 + 1e-9, "LP-FT lower (sim)", "FT lower (sim)")
    clear = np.abs(2 * phase["x"] * s - 1) > 1e-6
    assert (phase["series"].to_numpy()[clear] == predicted[clear]).all()
    assert set(phase["series"]) >= {"LP-FT lower (sim)", "FT lower (sim)"}


@pytest.mark.slow
def test_kumar_outside_span_is_unchanged(theory_data):
    span = theory_data["kumar"]
    outside = span[span["series"] == "FT: outside rowspace(X)"]
    inside = span[span["series"] == "FT: inside rowspace(X)"]
    assert outside["y_hi"].max() < 1e-9
    assert inside["y"].iloc[-1] > 1e-3


def test_tidy_rejects_bad_rows():
    with pytest.raises(ValueError, match="kind='bar'"):
        tidy([{"panel": "a", "series": "s", "kind": "bar", "x": 1.0, "y": 2.0}])
    with pytest.raises(ValueError, match="missing"):
        tidy([{"panel": "a", "series": "s", "kind": "line", "x": 1.0}])


def test_theory_data_is_deterministic(tmp_path: Path):
    spec = get_figure("thm-4.5")
    first = spec.data(spec.settings(True), tmp_path)
    second = spec.data(spec.settings(True), tmp_path)
    assert first.to_csv(index=False) == second.to_csv(index=False)
