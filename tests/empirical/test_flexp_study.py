"""The split-depth study and its figure: rows agree with the study table and the simulator."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from empirical.experiment.flexp.costs import client_cost, profile_model
from empirical.experiment.models import build_model
from figures.split_depth_figures import split_depth_data, split_depth_plot, split_depth_settings


@pytest.fixture(autouse=True)
def _single_thread() -> Iterator[None]:
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _tiny() -> dict[str, object]:
    return split_depth_settings(True) | {
        "shifts": ["covariate"], "real_seeds": [0], "cuts": ["1:0", "2:1"], "betas": [0.0, 1.0],
        "modes": ["shared"], "real_epochs": 1, "real_rounds": 2, "seeds": [0], "rows": [2, 7],
        "linear_betas": [0.0, 1.0],
    }  # fmt: skip


@pytest.fixture(scope="module")
def figure_data(tmp_path_factory: pytest.TempPathFactory) -> tuple[pd.DataFrame, Path]:
    work = tmp_path_factory.mktemp("split_depth")
    return split_depth_data(_tiny(), work), work


@pytest.mark.slow
def test_real_panels_are_the_study_means(figure_data: tuple[pd.DataFrame, Path]) -> None:
    data, work = figure_data
    study = pd.read_csv(work / "split_depth_study.csv")
    assert set(study["cut"]) == {"1:0", "2:1"}
    assert set(study["mode"]) == {"shared"}
    local = study[(study["metric"] == "local") & (study["mode"] == "shared")
                  & (study["beta"] == 1.0) & (study["cut"] == "2:1")]  # fmt: skip
    row = data[(data["panel"] == "covariate-local") & (data["series"] == "shared β=1")
               & (data["x"] == 3)]  # fmt: skip
    assert len(row) == 1
    assert row["y"].iloc[0] == pytest.approx(100 * local["value"].mean(), abs=1e-6)
    profile = profile_model(build_model("cnn"), (1, 8, 8))
    cost = data[(data["panel"] == "cost") & (data["series"] == "parameters")]
    assert dict(zip(cost["x"], cost["y"], strict=True)) == {
        1: client_cost(profile, 1, 0).params,
        3: client_cost(profile, 2, 1).params,
    }
    # negative control: the beta series are distinct runs (alignment changes the cut's Delta)
    d0 = study[(study["beta"] == 0.0) & (study["metric"] == "delta_cut")]["value"]
    d1 = study[(study["beta"] == 1.0) & (study["metric"] == "delta_cut")]["value"]
    assert not np.allclose(d0.to_numpy(), d1.to_numpy())
    fig = split_depth_plot(data)
    assert len(fig.axes) >= 9


@pytest.mark.slow
def test_linear_analogue_with_every_row_is_the_simulators_ft_and_align(
    figure_data: tuple[pd.DataFrame, Path],
) -> None:
    from synthetic import SimConfig, expand_grid, simulate

    data, _ = figure_data
    settings = _tiny()
    keys = ("d", "m", "C", "covariate", "rho", "eps", "lam", "eta", "steps")
    base = SimConfig(**{k: settings[k] for k in keys})  # type: ignore[arg-type]
    for beta, method in ((0.0, "ft"), (1.0, "align")):
        sim = simulate(expand_grid(base.replace(beta=beta), {"seed": [0]}), [method],
                       metrics=["local_loss", "global_loss_others", "delta_l2"])  # fmt: skip
        for metric in ("local_loss", "global_loss_others", "delta_l2"):
            ours = data[(data["panel"] == f"linear-{metric}") & (data["x"] == 1.0)
                        & (data["series"] == f"align β={beta:g}")]["y"]  # fmt: skip
            want = sim[sim["metric"] == metric]["value"].mean()
            assert ours.iloc[0] == pytest.approx(want, rel=1e-6, abs=1e-9), (beta, metric)
    # on this configuration, fewer trainable rows of B give a smaller distortion (r=2 vs r=7)
    delta = data[(data["panel"] == "linear-delta_l2") & (data["series"] == "align β=0")]
    by_share = dict(zip(delta["x"], delta["y"], strict=True))
    assert by_share[min(by_share)] < by_share[1.0]
