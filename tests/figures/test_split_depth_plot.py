"""The split-depth figure: one unit per axis, one colour per series across panels."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")

import pandas as pd
import pytest

import empirical.experiment.flexp.study as study_module
from empirical.experiment.flexp.partition import Cut
from figures import split_depth_figures as sdf

METRICS = ("local", "global", "delta", "delta_cut", "client_params", "client_flops")


def _fake(config: Any, progress: Any = None) -> pd.DataFrame:
    rows = []
    for shift in config.shifts:
        for seed in config.seeds:
            for mode in config.modes:
                for text in config.cuts:
                    cut = Cut.parse(text)
                    blocks = cut.front + cut.back
                    for beta in config.betas:
                        for m in METRICS:
                            value = {"client_params": 1e3 * blocks, "client_flops": 1e6 * blocks}
                            rows.append({"shift": shift, "seed": seed, "mode": mode, "cut": text,
                                         "client_blocks": blocks, "beta": beta, "client": 0,
                                         "metric": m,
                                         "value": value.get(m, 0.1 * blocks + beta)})  # fmt: skip
    return pd.DataFrame(rows)


@pytest.fixture
def figure(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Any:
    monkeypatch.setattr(study_module, "split_depth_study", _fake)
    settings = sdf.split_depth_settings(True) | {"seeds": [0], "steps": 2}
    data = sdf.split_depth_data(settings, tmp_path)
    return data, sdf.split_depth_plot(data)


def test_cost_panel_has_one_unit_per_axis(figure: Any) -> None:
    data, fig = figure
    params = data[data["panel"] == "cost"]
    flops = data[data["panel"] == "cost-flops"]
    assert set(params["series"]) == {"parameters"}
    assert set(flops["series"]) == {"FLOPs / sample (fwd+bwd)"}
    cost_axes = [a for a in fig.axes if "cost" in a.get_title(loc="left")]
    assert len(cost_axes) == 1
    twins = [
        a for a in fig.axes if a is not cost_axes[0] and a.bbox.bounds == cost_axes[0].bbox.bounds
    ]
    assert len(twins) == 1
    assert "parameters" in cost_axes[0].get_ylabel()
    assert "FLOPs" in twins[0].get_ylabel()
    assert "FLOPs" not in cost_axes[0].get_ylabel()


def test_each_series_has_one_colour_in_every_panel(figure: Any) -> None:
    _, fig = figure
    seen: dict[str, Any] = {}
    for axis in fig.axes:
        for line in axis.get_lines():
            label = line.get_label()
            if label.startswith("_"):
                continue
            colour = matplotlib.colors.to_hex(line.get_color())
            assert seen.setdefault(label, colour) == colour, label
    assert len(set(seen.values())) == len(seen)  # and distinct series, distinct colours


def test_titles_name_metrics_in_words_and_legends_once_per_row(figure: Any) -> None:
    _, fig = figure
    titles = [a.get_title(loc="left") for a in fig.axes if a.get_title(loc="left")]
    for key in ("delta_cut", "local_loss", "global_loss_others", "delta_l2"):
        assert not any(key in t for t in titles), key
    legends = [a for a in fig.axes if a.get_legend() is not None]
    assert len(legends) == 4  # two digits rows, the cost panel, the linear row


def test_client_block_axes_tick_whole_blocks(figure: Any) -> None:
    _, fig = figure
    for axis in fig.axes:
        if "client blocks" in axis.get_xlabel():
            ticks = [t for t in axis.get_xticks() if 1 <= t <= 3]
            assert ticks
            assert all(float(t).is_integer() for t in ticks), ticks


def test_alignment_records_are_computed_from_the_per_seed_rows(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    # _fake gives value = 0.1 * blocks + beta, the same for every seed: alignment raises both
    # accuracies by 100 * beta points at every point, and the caption must say so.
    monkeypatch.setattr(study_module, "split_depth_study", _fake)
    settings = sdf.split_depth_settings(True) | {"seeds": [0], "real_seeds": [0, 1], "steps": 2}
    data = sdf.split_depth_data(settings, tmp_path)
    records = sdf.split_depth_trends(data)
    n_points = len(settings["modes"]) * len(settings["cuts"]) * 2  # betas 0.25 and 1 vs 0
    assert len(records) == 2 * 2 * n_points  # 2 shifts x 2 metrics
    for r in records:
        beta = float(r.series.split("β=")[1])
        assert (r.value, r.lo, r.hi, r.sign, r.n_seeds) == pytest.approx(
            (100 * beta, 100 * beta, 100 * beta, 1, 2)
        )
    caption = sdf.SPEC.render_caption(list(records))
    assert f"higher at {n_points}, lower at 0, tie at 0 of {n_points} points" in caption
    # Negative control: alignment that lowers one seed's and raises another's accuracy is a tie.
    flipped = data.copy()
    rows = (flipped["kind"] == "sample") & (flipped["seed"] == 1)
    flipped.loc[rows, "y"] = -flipped.loc[rows, "y"]
    caption2 = sdf.SPEC.render_caption(list(sdf.split_depth_trends(flipped)))
    assert f"higher at 0, lower at 0, tie at {n_points} of {n_points} points" in caption2


def test_align_panels_are_not_drawn_and_shifts_are_not_doubled(figure: Any) -> None:
    data, fig = figure
    titles = [t for a in fig.axes if (t := a.get_title(loc="left") or a.get_title())]
    assert not any("align" in t for t in titles)
    assert len(titles) == len(set(titles)) == 12  # 2 shifts x 4 metrics, cost, 3 linear


def test_real_panels_draw_the_seed_range_the_caption_names(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    # The caption says "bands the range over seeds": with seeds that differ, every real
    # series gets one band spanning exactly its lo..hi; with one seed none is drawn.
    def varied(config: Any, progress: Any = None) -> pd.DataFrame:
        frame = _fake(config)
        frame["value"] = frame["value"] + 0.01 * frame["seed"]
        return frame

    monkeypatch.setattr(study_module, "split_depth_study", varied)
    settings = sdf.split_depth_settings(True) | {"seeds": [0], "real_seeds": [0, 1], "steps": 2}
    data = sdf.split_depth_data(settings, tmp_path)
    fig = sdf.split_depth_plot(data)
    bands = [c for a in fig.axes for c in a.collections if str(c.get_gid()).endswith("|range")]
    real = data[(data["kind"] == "line") & data["panel"].str.match(r"(covariate|concept)-")]
    assert len(bands) == real.groupby(["panel", "series"]).ngroups > 0
    for band in bands:
        panel, series, _ = str(band.get_gid()).split("|")
        block = real[(real["panel"] == panel) & (real["series"] == series)]
        ys = band.get_paths()[0].vertices[:, 1]
        assert ys.min() == pytest.approx(block["y_lo"].min())
        assert ys.max() == pytest.approx(block["y_hi"].max())


def test_one_seed_draws_no_band(figure: Any) -> None:
    _, fig = figure
    assert not [c for a in fig.axes for c in a.collections if str(c.get_gid()).endswith("|range")]
