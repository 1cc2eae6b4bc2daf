"""The ``step-size`` figure: data read back from the axes, caption records against the CSV,
and the synthetic panel's sign change at tau = 1 against [CLOSER] Thm 4.4."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402

from figures import stepsize_figures as sf  # noqa: E402
from figures._readback import plotted_lines  # noqa: E402
from figures.registry import get_figure  # noqa: E402

LRS = (0.001, 0.01, 0.1)


def _metrics(gaps: dict[str, list[list[float]]]) -> pd.DataFrame:
    """A digits-step-size metrics frame: gaps[shift][lr index][seed] = lpft - ft accuracy."""
    rows = []
    for shift, per_lr in gaps.items():
        for lr, per_seed in zip(LRS, per_lr, strict=True):
            for seed, gap in enumerate(per_seed):
                for client in range(3):
                    ft = 0.5 + 0.01 * client
                    for variant, value in (("ft", ft), ("lpft", ft + gap)):
                        rows.append({"preset": "p", "shift": shift, "seed": seed,
                                     "variant": variant, "ft_lr": lr, "client": client,
                                     "metric": "global", "value": value})  # fmt: skip
                rows.append(
                    {
                        "preset": "p",
                        "shift": shift,
                        "seed": seed,
                        "variant": "lp",
                        "ft_lr": np.nan,
                        "client": 0,
                        "metric": "global",
                        "value": 0.9,
                    }
                )
    return pd.DataFrame(rows)


GAPS = {
    "covariate": [[-0.02, 0.01, 0.00], [0.01, 0.02, 0.03], [0.05, 0.04, 0.06]],  # follows
    "concept": [[0.02, 0.03, 0.04], [-0.01, 0.01, 0.0], [-0.03, -0.02, -0.04]],  # reversed
}


@pytest.fixture(scope="module")
def data() -> pd.DataFrame:
    settings = sf.stepsize_settings(quick=True)
    rows = sf._synthetic_rows(settings) + sf.real_rows_from(_metrics(GAPS), list(GAPS))
    return sf._tidy(rows)


def test_real_rows_are_hand_computed_means_and_ranges_over_seeds(data: pd.DataFrame) -> None:
    block = data[data["panel"] == "real-covariate"].sort_values("x")
    np.testing.assert_allclose(block["y"], [100 * np.mean(g) for g in GAPS["covariate"]],
                               atol=1e-8)  # fmt: skip
    np.testing.assert_allclose(block["y_lo"], [100 * min(g) for g in GAPS["covariate"]], atol=1e-8)
    np.testing.assert_allclose(block["y_hi"], [100 * max(g) for g in GAPS["covariate"]], atol=1e-8)
    assert (block["n_seeds"] == 3).all()
    assert list(block["x"]) == list(LRS)
    assert {"y_lo", "y_hi", "n_seeds"} <= set(data.columns)
    assert set(data["panel"]) == {"syn-others", "real-covariate", "real-concept"}


def test_plot_data_read_back_from_the_axes_equals_the_csv(data: pd.DataFrame, tmp_path) -> None:
    path = tmp_path / "step-size.csv"
    data.to_csv(path, index=False)
    csv = pd.read_csv(path)
    fig = sf.stepsize_plot(csv)
    lines = plotted_lines(fig)
    for (panel, series), block in csv.groupby(["panel", "series"], sort=False):
        x, y = lines[f"{panel}|{series}"]
        np.testing.assert_allclose(x, block["x"], rtol=0, atol=0)
        np.testing.assert_allclose(y, block["y"], rtol=0, atol=0)
    bars = {}
    for axis in fig.axes:
        for coll in axis.collections:
            if coll.get_gid():
                bars[coll.get_gid()] = coll.get_segments()
    for (panel, series), block in csv[csv["kind"] == "marker"].groupby(["panel", "series"]):
        segments = bars[f"{panel}|{series}|range"]
        lo = [min(s[:, 1]) for s in segments]
        hi = [max(s[:, 1]) for s in segments]
        np.testing.assert_allclose(lo, block["y_lo"], atol=1e-12)
        np.testing.assert_allclose(hi, block["y_hi"], atol=1e-12)
    plt.close(fig)


def test_synthetic_sign_change_at_tau_one_matches_theory(data: pd.DataFrame) -> None:
    """[CLOSER] Thm 4.4 over the others: LP-FT - FT = c_L lam^2 (1 - tau^2), < 0 iff tau > 1."""
    syn = data[(data["panel"] == "syn-others") & (data["kind"] == "marker")]
    assert len(syn) >= 5
    assert syn["x"].min() < 1 < syn["x"].max()
    tau = syn["x"].to_numpy()
    np.testing.assert_allclose(syn["y"], 1 - tau**2, atol=1e-9)  # the simulator, lam = c_L = 1
    tol = 1e-9
    assert (syn.loc[tau > 1, "y_hi"] < -tol).all()  # LP-FT better only when 2 c_L eta s >= 1
    assert (syn.loc[tau < 1, "y_lo"] > tol).all()  # FT better below
    assert (syn.loc[tau == 1, "y"].abs() <= tol).all()  # the tie at tau = 1
    np.testing.assert_allclose(syn["x"], 2 * 1.0 * syn["eta"] * (1 + 1.0**2), rtol=1e-9)


def test_caption_records_match_the_csv(data: pd.DataFrame) -> None:
    records = sf.stepsize_trends(data)
    for rec in records:
        if rec.statistic != "difference":
            continue
        row = data[(data["panel"] == rec.panel) & (data["series"] == sf.SERIES)
                   & (data["x"] == rec.at)]  # fmt: skip
        assert len(row) == 1
        r = row.iloc[0]
        assert (rec.value, rec.lo, rec.hi) == (r["y"], r["y_lo"], r["y_hi"])
        expected = 1 if r["y_lo"] > 0 else -1 if r["y_hi"] < 0 else 0
        assert rec.sign == expected
        assert rec.edge == (-expected if rec.panel.startswith("syn-") else expected)
    verdicts = {r.panel: r.value for r in records if r.statistic == "follows"}
    assert verdicts == {"syn-others": 1.0, "real-covariate": 1.0, "real-concept": 0.0}
    text = sf.stepsize_describe(records)
    assert "the simulation follows the predicted sign change" in text
    assert "(covariate shift) follows the predicted sign change" in text
    assert "(concept shift) does not follow the predicted sign change" in text
    assert "FT at 0.001" not in text.split("real-concept")[1]  # concept: LP-FT better at 0.001
    assert "LP-FT is better at FT learning rate = 0.001" in text


@pytest.mark.parametrize(
    ("edges", "follows"),
    [([-1, 0, 1], True), ([0, 0, 1], True), ([-1, -1, 0], False), ([1, 1, 1], False),
     ([-1, 1, 0], False), ([0, 1, -1], False), ([], False)],
)  # fmt: skip
def test_follows_prediction_rule(edges: list[int], follows: bool) -> None:
    assert sf.follows_prediction(edges) is follows


def test_registered_and_settings_have_three_seeds() -> None:
    spec = get_figure("step-size")
    for quick in (True, False):
        settings = spec.settings(quick)
        assert settings["real_seeds"] == [0, 1, 2]
        assert 1.0 in settings["taus"]
