"""Trend records: recomputed from each figure's CSV (not from the caption's English)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import numpy as np
import pandas as pd
import pytest
from scipy.stats import spearmanr

from feddistort.cli import main
from figures._trend import N_BOOT, Trend, within_group_spearman
from figures.registry import figure_names, get_figure

README = Path(__file__).resolve().parents[2] / "README.md"
# step-size's records (StepTrend: per-x differences and a `follows` verdict) are checked against
# its CSV in tests/figures/test_stepsize_figure.py; split-depth's in its own tests.
OWN_TESTS = ("step-size",)
TREND_FIGURES = [
    n
    for n in figure_names(on_request=False)
    if get_figure(n).trends is not None and n not in OWN_TESTS
]


def _recompute_spearman(samples: pd.DataFrame, group: str) -> tuple[float, float, float]:
    """Loop version of the documented statistic (scipy's spearmanr, one draw at a time)."""
    seeds = sorted(samples["seed"].unique())
    draws = np.random.default_rng(0).integers(0, len(seeds), size=(N_BOOT, len(seeds)))
    cubes = []
    for _, block in samples.groupby(group):
        wide_x = block.pivot(index="series", columns="seed", values="x")[seeds].to_numpy()
        wide_y = block.pivot(index="series", columns="seed", values="y")[seeds].to_numpy()
        cubes.append((wide_x, wide_y))

    def stat(chosen: np.ndarray) -> float:
        rhos = []
        for wide_x, wide_y in cubes:
            x, y = wide_x[:, chosen].mean(axis=1), wide_y[:, chosen].mean(axis=1)
            if np.ptp(x) > 0 and np.ptp(y) > 0:
                rhos.append(spearmanr(x, y).statistic)
        return float(np.mean(rhos)) if rhos else np.nan

    value = stat(np.arange(len(seeds)))
    boot = np.array([stat(d) for d in draws])
    lo, hi = np.nanpercentile(boot, [2.5, 97.5])
    return value, float(lo), float(hi)


def _thm44_mismatches(data: pd.DataFrame, rec: dict) -> list[str]:
    """thm-4.4's records against its rows."""
    loss = data[data["panel"] == "loss"]
    if rec["statistic"] == "max_abs_error":
        errs = []
        for series in [s for s in loss["series"].unique() if s.endswith(" sim")]:
            sim = loss[loss["series"] == series]
            line = loss[loss["series"] == series.replace(" sim", " theory")]
            errs.append(np.max(np.abs(sim["y"] - np.interp(sim["x"], line["x"], line["y"]))))
        return [] if np.isclose(rec["value"], max(errs)) and max(errs) < 1e-8 else [str(rec)]
    if rec["statistic"] == "ft_below_lpft_fraction":
        ft = loss[loss["series"] == f"{rec['subject']} sim"].set_index("x")["y"]
        lpft = loss[loss["series"] == "LP-FT sim"].set_index("x")["y"]
        want = float((ft < lpft.reindex(ft.index)).mean())
        return [] if np.isclose(rec["value"], want) else [str(rec)]
    phase = data[(data["panel"] == "phase") & (data["kind"] == "marker")]
    tau = 2 * phase["x"] * (1 + phase["y"])
    keep = np.abs(tau - 1) > 1e-6
    ok = phase["series"][keep] == np.where(tau[keep] > 1, "LP-FT lower (sim)", "FT lower (sim)")
    return [] if np.isclose(rec["value"], ok.mean()) and ok.mean() == 1.0 else [str(rec)]


def _lemma_kumar_mismatches(data: pd.DataFrame, rec: dict, name: str) -> list[str]:
    """lemma-4.3's and kumar's records against their rows (and what the captions need)."""
    if name == "lemma-4.3" and rec["panel"] == "rows":
        rows = data[(data["panel"] == "rows") & (data["series"] != "y = x")]
        want = float(np.max(np.abs(rows["y"] - rows["x"])))
        return [] if np.isclose(rec["value"], want) and want < 1e-9 else [str(rec)]
    if name == "lemma-4.3":
        total = data[(data["panel"] == "total") & data["series"].str.endswith(" sim")]
        errs = []
        for series, block in total.groupby("series"):
            line = data[data["series"] == str(series).replace(" sim", " theory")]
            pred = np.interp(block["x"], line["x"], line["y"])
            errs += [np.max(np.abs(block[c] - pred)) for c in ("y", "y_lo", "y_hi")]
        return [] if np.isclose(rec["value"], max(errs)) and max(errs) < 1e-9 else [str(rec)]
    block = data[(data["panel"] == rec["panel"]) & (data["series"] == rec["subject"])]
    block = block.sort_values("x")
    want = block["y_hi"].max() if rec["statistic"] == "max_over_steps" else block["y"].iloc[-1]
    return [] if np.isclose(rec["value"], want) else [str(rec)]


def _mismatches(data: pd.DataFrame, records: list[dict], name: str = "") -> list[str]:
    """Records that disagree with a recomputation from the CSV rows."""
    bad = []
    for rec in records:
        if name in ("lemma-4.3", "kumar"):
            bad += _lemma_kumar_mismatches(data, rec, name)
            continue
        if name == "thm-4.4":
            bad += _thm44_mismatches(data, rec)
            continue
        samples = data[(data["panel"] == rec["panel"]) & (data["kind"] == "sample")]
        if rec["statistic"] == "difference":
            at = samples if rec["at"] is None else samples[np.isclose(samples["x"], rec["at"])]
            a = at[at["series"] == rec["series"]].set_index("seed")["y"]
            b = at[at["series"] == rec["versus"]].set_index("seed")["y"]
            diff = (a - b).dropna()
            want = (diff.mean(), diff.min(), diff.max())
            sign = (1 if want[1] > 0 else -1 if want[2] < 0 else 0) if diff.size > 1 else 0
            got = (rec["value"], rec["lo"], rec["hi"])
            if diff.empty or not np.allclose(got, want, atol=1e-9) or rec["sign"] != sign:
                bad.append(f"{rec['subject']}: record {got} sign {rec['sign']}, data {want}")
            continue
        if rec["statistic"] == "endpoint_gap":
            lines = data[(data["panel"] == rec["panel"]) & (data["kind"] == "line")]
            ft = lines[lines["series"] == "ft"].sort_values("x")
            lpft = lines[lines["series"] == "lpft"]["y"].mean()
            if not np.isclose(rec["value"], ft["y"].iloc[0] - lpft, atol=1e-12):
                bad.append(str(rec))
            continue
        if rec["statistic"] == "local_range":
            rows = data[(data["panel"] == rec["panel"]) & (data["series"] == rec["subject"])]
            if not np.isclose(rec["value"], np.ptp(rows["x"])):
                bad.append(str(rec))
            continue
        if rec["statistic"] in THM45_STATISTICS:
            bad += _thm45_mismatches(data, rec)
            continue
        assert rec["statistic"] == "spearman_within_lam", rec
        group = "lam" if samples["lam"].notna().any() else "group"
        value, lo, hi = _recompute_spearman(samples, group)
        sign = 1 if lo > 0 else -1 if hi < 0 else 0
        got = (rec["value"], rec["lo"], rec["hi"])
        if not np.allclose(got, (value, lo, hi), atol=1e-9) or rec["sign"] != sign:
            bad.append(f"{rec['panel']}: record {got} sign {rec['sign']}, data "
                       f"{(value, lo, hi)} sign {sign}")  # fmt: skip
    return bad


THM45_STATISTICS = {"max_abs_error", "lambda_star", "finite_fraction", "lpft_wins_interval"}


def _thm45_mismatches(data: pd.DataFrame, rec: dict) -> list[str]:
    """thm-4.5's records against its rows."""
    nan = float("nan")
    value = nan if rec["value"] is None else rec["value"]
    if rec["statistic"] == "max_abs_error":
        sim = data[(data["panel"] == "gap") & (data["series"] == rec["subject"])]
        want = float(np.max(np.abs(sim["y"] - sim["theory"])))
        return [] if np.isclose(value, want, atol=1e-12) and want < 1e-8 else [str(rec)]
    if rec["statistic"] == "lambda_star":
        star = data[(data["panel"] == "gap") & (data["series"] == f"λ* ({rec['subject']})")]
        line = data[(data["panel"] == "gap") & (data["series"] == f"{rec['subject']} theory")]
        flips = np.flatnonzero(np.diff(np.sign(line["y"].to_numpy())) < 0)
        if star.empty:  # no lambda*: the theory line never falls through 0 from above
            ok = np.isnan(value) and not (flips.size and line["y"].iloc[0] > 0)
            return [] if ok else [str(rec)]
        x = line["x"].to_numpy()
        ok = flips.size > 0 and x[flips[0]] <= value <= x[flips[0] + 1]
        return [] if ok and value == pytest.approx(star["x"].iloc[0]) else [str(rec)]
    if rec["statistic"] == "finite_fraction":
        rows = data[data["panel"] == rec["panel"]]
        rows = rows[np.isclose(rows["y"], float(rec["subject"].split("=")[1]))]
        want = (rows["regime"] == "finite") & (rows["lambda_star"] <= rows["one_step_lam_max"])
        return [] if np.isclose(value, want.mean()) else [str(rec)]
    wins = data[(data["panel"] == "gap") & (data["series"] == f"LP-FT wins ({rec['subject']})")]
    hi = np.inf if rec["hi"] is None else rec["hi"]
    found = np.isclose(wins["x"], rec["lo"]) & np.isclose(wins["y"], hi)
    return [] if found.any() else [str(rec)]


@pytest.fixture(scope="module")
def built(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("trends")
    assert main(["figures", "--quick", "--no-progress", "--out", str(out),
                 "--only", *TREND_FIGURES]) == 0  # fmt: skip
    return out


def _load(out: Path, name: str) -> tuple[pd.DataFrame, dict]:
    entry = json.loads((out / "manifest.json").read_text())["figures"][name]
    return pd.read_csv(out / f"{name}.csv"), entry


def test_within_group_spearman_hand_cases():
    items = ["a", "b", "c"]
    rows = []
    for seed in (0, 1):
        for i, item in enumerate(items):
            rows.append({"lam": 1.0, "series": item, "seed": seed, "x": i, "y": 10 * i})
            rows.append({"lam": 2.0, "series": item, "seed": seed, "x": i, "y": -i})
    value, lo, hi, n = within_group_spearman(pd.DataFrame(rows), item="series")
    assert n == 2
    assert value == pytest.approx(0.0)  # +1 at lam 1, -1 at lam 2: equal weight
    assert lo == pytest.approx(0.0)
    assert hi == pytest.approx(0.0)
    one = pd.DataFrame([r for r in rows if r["lam"] == 2.0])
    assert within_group_spearman(one, item="series")[0] == pytest.approx(-1.0)
    with pytest.raises(ValueError, match="one row per"):
        within_group_spearman(pd.concat([one, one.iloc[:1]]), item="series")


def test_trend_figures_exist():
    want = {
        "distortion",
        "frontier",
        "thm-4.4",
        "thm-4.5",
        "tradeoff",
        "flooding",
        "kumar",
        "lemma-4.3",
    }
    assert want <= set(TREND_FIGURES)


@pytest.mark.slow
def test_distortion_shows_every_method_in_every_panel(built):
    data, _ = _load(built, "distortion")
    syn = {"ft", "lp", "lpft", "proximal", "sparse", "align"}
    real = {"ft", "lp", "lpft", "proximal", "sparse", "soup", "lss", "split"}
    for panel in ("syn-delta", "syn-fro", "syn-path"):
        assert set(data.loc[data["panel"] == panel, "series"]) == syn, panel
    for panel in ("real-delta", "real-cka", "real-path"):
        assert set(data.loc[data["panel"] == panel, "series"]) == real, panel
    markers = data[data["kind"] == "marker"]
    assert {"y_lo", "y_hi", "n_seeds"} <= set(data.columns)
    assert (markers["y_lo"] <= markers["y"] + 1e-12).all()
    assert (markers["n_seeds"] >= 2).all()


@pytest.mark.slow
@pytest.mark.parametrize("name", TREND_FIGURES)
def test_trend_records_match_the_csv(built, name):
    data, entry = _load(built, name)
    records = entry["trends"]
    assert records, name
    assert _mismatches(data, records, name) == []
    # The caption is rendered from these records (NaN is stored as null).
    nan = float("nan")
    back = [Trend(**{k: nan if v is None else v for k, v in r.items()}) for r in records]
    assert entry["caption"] == get_figure(name).render_caption(back)


@pytest.mark.slow
def test_tampered_csv_is_caught(built):
    data, entry = _load(built, "distortion")
    tampered = data.copy()
    rows = (tampered["panel"] == "syn-delta") & (tampered["kind"] == "sample")
    tampered.loc[rows, "y"] = -tampered.loc[rows, "y"]
    assert _mismatches(tampered, entry["trends"])


@pytest.mark.slow
def test_readme_direction_matches_the_data(built):
    _, entry = _load(built, "distortion")
    text = README.read_text(encoding="utf-8")
    block = text[text.index("![distortion]") :].split("\n\n")[0]
    signs = {r["panel"]: r["sign"] for r in entry["trends"]}
    stated = dict(re.findall(r"`(syn-[a-z]+|real-[a-z]+)`[^`]*?rho = (-?[0-9.]+)", block))
    assert stated, "README states no direction for the distortion figure"
    for panel, value in stated.items():
        assert np.sign(float(value)) == signs[panel] or signs[panel] == 0, panel


@pytest.mark.slow
def test_frontier_points_are_the_matched_frontier(built):
    data, _ = _load(built, "frontier")
    assert set(data["panel"]) == {"syn-frontier", "real-frontier"}
    syn = data[(data["panel"] == "syn-frontier") & (data["kind"] == "sample")]
    levels = sorted(syn["x"].unique())
    # Recompute from the plotted traces' source: the samples are per-seed matched values.
    marks = data[(data["panel"] == "syn-frontier") & (data["kind"] == "marker")]
    for _, r in marks.iterrows():
        seeds = syn[(syn["series"] == r["series"].removesuffix(" matched"))
                    & np.isclose(syn["x"], r["x"])]["y"]  # fmt: skip
        assert r["y"] == pytest.approx(seeds.mean())
        assert r["y_lo"] == pytest.approx(seeds.min())
    assert len(levels) == 5
    lines = data[(data["panel"] == "syn-frontier") & (data["kind"] == "line")]
    for series in set(marks["series"].str.removesuffix(" matched")):
        trace = lines[lines["series"] == series]["x"]
        assert trace.min() - 1e-9 <= levels[0], series
        assert levels[-1] <= trace.max() + 1e-9, series


@pytest.mark.slow
@pytest.mark.parametrize("name", ["tradeoff", "flooding", "distortion", "frontier"])
def test_synthetic_beside_real_convention(built, name):
    """Section 9: panels syn-* and real-*, with y_lo, y_hi and n_seeds on every marker."""
    data, _ = _load(built, name)
    panels = set(data["panel"])
    assert all(p.startswith(("syn-", "real-")) for p in panels), panels
    assert any(p.startswith("real-") for p in panels)
    assert {"y_lo", "y_hi", "n_seeds"} <= set(data.columns)
    real = data[data["panel"].str.startswith("real-") & (data["kind"] == "marker")]
    assert (real["n_seeds"] >= 2).all()
    assert (real["y_hi"] >= real["y_lo"]).all()


@pytest.mark.slow
def test_readme_frontier_directions_match_the_data(built):
    _, entry = _load(built, "frontier")
    text = README.read_text(encoding="utf-8")
    block = text[text.index("![frontier]") :].split("\n\n")[0]
    stated = re.findall(r"`((?:syn|real)-frontier)` (\w+) − FT: ([+-]?[0-9.]+(?:e-?[0-9]+)?)",
                        block)  # fmt: skip
    assert stated, "README states no comparison for the frontier figure"
    for panel, method, value in stated:
        rec = next(r for r in entry["trends"] if r["panel"] == panel and r["series"] == method)
        assert np.sign(float(value)) == np.sign(rec["value"]), (panel, method)
        assert rec["sign"] in (0, np.sign(float(value)))
