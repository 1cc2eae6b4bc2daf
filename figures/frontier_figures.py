"""The frontier figure: methods compared at matched local loss (synthetic beside digits).

Each method's (local, global) curve over its knob (GD steps in the linear model, fine-tuning
epochs on digits, as the experiment records them) is cut at common local levels by
:func:`synthetic.frontier.matched_by_seed` within each seed; the caption's comparisons are
paired differences to FT over seeds (:func:`figures._trend.difference_trend`), a tie when
the seed range holds 0.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from figures._pft import REAL_VARIANTS, common, real_runs, seeded_grid, syn_base
from figures._style import draw, finish, new_figure, tidy
from figures._trend import Trend, describe_difference, difference_trend, fmt
from figures.registry import FigureSpec, Settings

Row = dict[str, Any]
SYN_METHODS = ["ft", "lp", "lpft", "proximal", "sparse", "align"]
LEVELS = 5  # matched local levels (the shared start, where all methods agree, is left out)


def frontier_settings(quick: bool) -> Settings:
    """GD-step grid of the linear model; the digits runs shared with the other PFT figures."""
    return common(quick) | {
        "real_variants": REAL_VARIANTS,
        "step_grid": [0, 1, 2, 5, 10, 20, 50, 100, 200, 400],
    }


def _levels(lo: float, hi: float) -> list[float]:
    return np.linspace(lo, hi, LEVELS + 1)[1:].tolist() if hi > lo else [lo]


def _curves(frame: pd.DataFrame, panel: str, knob: str, scale: float) -> list[Row]:
    """Seed-mean trace of every method over its knob (lines)."""
    mean = frame.groupby(["method", knob], sort=False)[["local", "global"]].mean().reset_index()
    return [{"panel": panel, "series": r["method"], "kind": "line", "x": scale * r["local"],
             "y": scale * r["global"], knob: r[knob]} for _, r in mean.iterrows()]  # fmt: skip


def _matched_rows(frame: pd.DataFrame, panel: str, knob: str, metric: str, scale: float,
                  methods: list[str]) -> list[Row]:  # fmt: skip
    """Matched points: the levels are set within each seed, the k-th level of every seed pooled.

    Seeds start from different global models, so their local ranges need not overlap (the
    full digits preset: seed 1's curves end below where seed 0's start). Within one seed every
    method starts from the same model, so the methods share a range; the k-th of the
    :data:`LEVELS` levels of each seed is compared, and drawn at the mean of those levels.
    """
    from synthetic.frontier import common_range, matched_by_seed

    sub = frame[frame["method"].isin(methods)]
    parts = []
    for _, block in sub.groupby("seed", sort=True):
        lo, hi = common_range(block, knob)
        part = matched_by_seed(block, knob, _levels(lo, hi))
        part["position"] = part.groupby(["method", "seed"]).cumcount()
        parts.append(part)
    per = pd.concat(parts, ignore_index=True)
    per["level"] = per.groupby("position")["local"].transform("mean")
    g = per.groupby(["method", "position"], sort=False)
    table = pd.DataFrame({"local": g["level"].first(), "global": g["global"].mean(),
                          "global_lo": g["global"].min(), "global_hi": g["global"].max(),
                          "n_seeds": g["global"].count()}).reset_index()  # fmt: skip
    rows: list[Row] = [{"panel": panel, "series": f"{r['method']} matched", "kind": "marker",
                        "x": scale * r["local"], "y": scale * r["global"],
                        "y_lo": scale * r["global_lo"], "y_hi": scale * r["global_hi"],
                        "n_seeds": int(r["n_seeds"]), "scale": metric}
                       for _, r in table.iterrows()]  # fmt: skip
    rows += [{"panel": panel, "series": r["method"], "kind": "sample", "x": scale * r["level"],
              "y": scale * r["global"], "seed": int(r["seed"]), "local_seed": scale * r["local"]}
             for _, r in per.iterrows()]  # fmt: skip
    return rows


def frontier_data(settings: Mapping[str, Any], workdir: Path) -> pd.DataFrame:
    """Traces and matched-local-loss points, linear model (loss) and digits (accuracy, %).

    Panel ``syn-frontier``: local and other clients' loss over GD steps; the matched points
    use the methods whose curve spans a range (LP and LP-FT reach local loss 0 in their exact
    probe and stay there: one point each). Panel ``real-frontier``: local and other clients'
    accuracy over fine-tuning epochs (epoch 0 is the FedAvg model).
    """
    from synthetic import simulate

    seeds = list(settings["seeds"])
    grid = seeded_grid(syn_base(settings), {"steps": list(settings["step_grid"])}, seeds)
    sim = simulate(grid, SYN_METHODS, metrics=["local_loss", "global_loss_others"])
    syn = (sim.groupby(["method", "seed", "steps", "metric"])["value"].mean().unstack("metric")
           .reset_index().rename(columns={"local_loss": "local",
                                          "global_loss_others": "global"}))  # fmt: skip
    spans = syn.groupby("method")["local"].agg(np.ptp)
    curved = [m for m in SYN_METHODS if spans.get(m, 0.0) > 1e-9]
    rows = _curves(syn, "syn-frontier", "steps", 1.0)
    rows += _matched_rows(syn, "syn-frontier", "steps", "loss", 1.0, curved)
    _, epochs = real_runs(settings, workdir, list(settings["real_variants"]))
    real = (epochs[epochs["variant"] != "fedavg"]
            .groupby(["variant", "seed", "epoch", "metric"])["value"].mean().unstack("metric")
            .reset_index().rename(columns={"variant": "method", "local_acc": "local",
                                           "global_acc": "global"}))  # fmt: skip
    rows += _curves(real, "real-frontier", "epoch", 100.0)
    methods = list(dict.fromkeys(real["method"]))
    rows += _matched_rows(real, "real-frontier", "epoch", "accuracy", 100.0, methods)
    return tidy(rows)


def frontier_trends(data: pd.DataFrame) -> list[Trend]:
    """Each method minus FT at the middle matched level, paired over seeds; FT's end point."""
    out: list[Trend] = [_endpoint(data)]
    for panel in ("syn-frontier", "real-frontier"):
        samples = data[(data["panel"] == panel) & (data["kind"] == "sample")]
        levels = sorted(samples["x"].unique())
        level = float(levels[len(levels) // 2])
        for method in dict.fromkeys(samples["series"].astype(str)):
            if method != "ft":
                subject = f"{panel} {method} − FT at local {level:.3g}"
                out.append(difference_trend(panel, samples, method, "ft", level, subject))
    return out


def _endpoint(data: pd.DataFrame) -> Trend:
    """Linear model: FT's global loss at its lowest local loss minus LP-FT's (seed means)."""
    lines = data[(data["panel"] == "syn-frontier") & (data["kind"] == "line")]
    ft = lines[lines["series"] == "ft"]
    end = ft.loc[ft["x"].idxmin()]
    lpft = lines[lines["series"] == "lpft"]
    gap = float(end["y"] - lpft["y"].mean()) if len(lpft) else float("nan")
    return Trend("syn-frontier", "endpoint_gap", gap, float(end["x"]), float(end["x"]), 0,
                 "ft end − lpft")  # fmt: skip


def frontier_describe(records: list[Trend]) -> str:
    """Caption sentences from the records."""
    end = next(r for r in records if r.statistic == "endpoint_gap")
    records = [r for r in records if r.statistic == "difference"]
    syn = "; ".join(describe_difference(t) for t in records if t.panel == "syn-frontier")
    real = "; ".join(describe_difference(t, " points") for t in records
                     if t.panel == "real-frontier")  # fmt: skip
    return (f"Linear model: FT at its lowest local loss ({fmt(end.lo)}) minus LP-FT, global "
            f"loss: {fmt(end.value)}. Global metric minus FT's at the middle matched "
            f"level (loss: higher is worse; accuracy: higher is better): {syn}. "
            f"{real}.")  # fmt: skip


def frontier_plot(data: pd.DataFrame, *, ax: Axes | Sequence[Axes] | None = None) -> Figure:
    """Two panels: the linear model's loss frontier and the digits accuracy frontier."""
    fig, (a, b) = new_figure(ax, 2, size=4.2)
    hide = {s: "" for s in data["series"].astype(str).unique() if s.endswith(" matched")}
    draw(a, data, "syn-frontier", labels=hide)
    finish(a, "(a) linear model, over GD steps", "local loss (squared error)",
           "global loss, other clients (squared error)")  # fmt: skip
    draw(b, data, "real-frontier", labels=hide)
    finish(b, "(b) digits CNN, over fine-tuning epochs", "local accuracy (%)",
           "global accuracy, other clients (%)")  # fmt: skip
    fig.suptitle("Methods at matched local loss: lines trace each method, markers are matched")
    return fig


FRONTIER_SPEC = FigureSpec(
    name="frontier",
    caption=(
        "Each method's (local, global) frontier over its own knob, compared at matched "
        "local levels (set within each seed, where every method starts from the same model; "
        "markers: the k-th level of every seed, drawn at their mean, bars: range over seeds; "
        "interpolated on each seed's curve). (a) Two-layer linear model (overlap shift, GD "
        "steps 0-400): "
        "the other clients' loss against the local loss; LP and LP-FT sit at local loss 0 "
        "(exact probe) and are not matched. (b) Digits CNN (digits-covariate preset; "
        "smaller with --quick): accuracy on the other clients against local accuracy over "
        "the fine-tuning epochs. Dashed lines and open "
        "markers lie on an earlier series (the legend says which when entirely)."
    ),
    settings=frontier_settings,
    data=frontier_data,
    plot=frontier_plot,
    trends=frontier_trends,
    describe=frontier_describe,
)

# The figures this module declares, read by figures.registry (no registration on import).
SPECS: tuple[FigureSpec, ...] = (FRONTIER_SPEC,)
