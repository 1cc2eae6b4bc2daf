"""PFT comparison figures: tradeoff and flooding (linear model ``syn-*`` beside digits ``real-*``).

Markers are means over seeds with the range over seeds (``y_lo``, ``y_hi``, ``n_seeds``); the
per-seed values are ``sample`` rows, from which the captions' comparisons with FT are computed
(:func:`figures._trend.difference_trend`: a tie when the seed range of the paired difference
holds 0).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from figures._pft import REAL_VARIANTS, common, real_runs, seed_stats, seeded_grid, syn_base
from figures._style import draw, finish, new_figure, tidy
from figures._trend import Trend, describe_difference, difference_trend, fmt
from figures.registry import FigureSpec, Settings

Row = dict[str, Any]
SYN_METHODS = ["global", "ft", "lp", "lpft", "proximal", "sparse", "align"]
NAN = float("nan")


def _points(per_seed: pd.DataFrame, panel: str, name: str, keys: list[str]) -> list[Row]:
    """Sample rows (x, y per seed) and marker rows (mean, seed range) of ``keys`` groups."""
    rows: list[Row] = [{"panel": panel, "series": r[name], "kind": "sample", "x": r["x"],
                        "y": r["y"], "seed": int(r["seed"])} | {k: r[k] for k in keys}
                       for _, r in per_seed.iterrows()]  # fmt: skip
    stats = seed_stats(per_seed, keys, "y")
    x = per_seed.groupby(keys, sort=False)["x"].mean().reset_index(drop=True)
    for (_, r), xv in zip(stats.iterrows(), x, strict=True):
        rows.append({"panel": panel, "series": r[name], "kind": "marker", "x": xv, "y": r["y"],
                     "y_lo": r["y_lo"], "y_hi": r["y_hi"], "n_seeds": int(r["n_seeds"])}
                    | {k: r[k] for k in keys})  # fmt: skip
    return rows


def _vs_ft(data: pd.DataFrame, panel: str, at: float = NAN, label: str = "") -> list[Trend]:
    samples = data[(data["panel"] == panel) & (data["kind"] == "sample")]
    if np.isfinite(at):
        samples = samples[np.isclose(samples["x"], at)]
    ft = "FT" if "FT" in set(samples["series"]) else "ft"
    return [
        difference_trend(panel, samples, str(s), ft, at, f"{s} − {ft}{label}")
        for s in dict.fromkeys(samples["series"].astype(str))
        if s not in (ft, "global")
    ]


# --------------------------------------------------------------------------- tradeoff


def tradeoff_settings(quick: bool) -> Settings:
    """Synthetic (overlap covariate shift, 20 GD steps) and the quick digits experiment."""
    return common(quick) | {"real_variants": REAL_VARIANTS}


def tradeoff_data(settings: Mapping[str, Any], workdir: Path) -> pd.DataFrame:
    """Local vs global performance per PFT method: synthetic losses, real accuracies (%)."""
    from synthetic import simulate

    sim = simulate(seeded_grid(syn_base(settings), {}, list(settings["seeds"])), SYN_METHODS,
                   metrics=["local_loss", "global_loss_others"])  # fmt: skip
    syn = (sim.groupby(["method", "seed", "metric"], sort=False)["value"].mean()
           .unstack("metric").reset_index()
           .rename(columns={"local_loss": "x", "global_loss_others": "y"}))  # fmt: skip
    rows = _points(syn, "syn-tradeoff", "method", ["method"])
    metrics, _ = real_runs(settings, workdir, list(settings["real_variants"]))
    real = (metrics.groupby(["variant", "seed", "metric"], sort=False)["value"].mean()
            .unstack("metric").reset_index())  # fmt: skip
    real = real.assign(x=100 * real["local"], y=100 * real["global"])
    rows += _points(real, "real-tradeoff", "variant", ["variant"])
    return tidy(rows).drop(columns=["method", "variant"], errors="ignore")


def tradeoff_trends(data: pd.DataFrame) -> list[Trend]:
    """LP-FT minus LP in the linear model; each digits variant minus FT, paired over seeds."""
    syn = data[(data["panel"] == "syn-tradeoff") & (data["kind"] == "sample")]
    same = difference_trend("syn-tradeoff", syn, "lpft", "lp", NAN, "lpft − lp")
    return [same, *_vs_ft(data, "real-tradeoff")]


def tradeoff_describe(records: list[Trend]) -> str:
    """Caption sentences from the records."""
    syn = [describe_difference(t) for t in records if t.panel == "syn-tradeoff"]
    real = [describe_difference(t, " points") for t in records if t.panel == "real-tradeoff"]
    return (f"Computed: (a) other clients' loss, {'; '.join(syn)}. (b) Other clients' accuracy "
            f"minus FT's: {'; '.join(real)}.")  # fmt: skip


def tradeoff_plot(data: pd.DataFrame, *, ax: Axes | Sequence[Axes] | None = None) -> Figure:
    """Local vs global: synthetic (loss, lower is better) and real (accuracy, higher)."""
    fig, (a, b) = new_figure(ax, 2, size=3.8)
    draw(a, data, "syn-tradeoff")
    finish(a, "(a) two-layer linear, overlap shift", "local loss (squared error)",
           "global loss, other clients (squared error)")  # fmt: skip
    draw(b, data, "real-tradeoff")
    finish(b, "(b) digits CNN, covariate shift", "local accuracy (%)",
           "global accuracy, other clients (%)")  # fmt: skip
    fig.suptitle("Local vs global performance of every PFT method")
    return fig


TRADEOFF_SPEC = FigureSpec(
    name="tradeoff",
    caption=(
        "Local versus global performance of each PFT method (mean over seeds and clients; "
        "bars: range over seeds). (a) Synthetic two-layer linear model under partial "
        "feature overlap: loss, lower is better; 'global' is the un-fine-tuned model. (b) "
        "Real digits experiment "
        "(digits-covariate preset: 5 clients, 40 FedAvg rounds, 15 fine-tuning epochs; "
        "--quick: 3 clients, 10 rounds, 3 epochs, 2 seeds): accuracy on the other "
        "clients' test sets in %, higher is better; 'fedavg' is the global model."
    ),
    settings=tradeoff_settings,
    data=tradeoff_data,
    plot=tradeoff_plot,
    trends=tradeoff_trends,
    describe=tradeoff_describe,
)


# --------------------------------------------------------------------------- flooding


def flooding_settings(quick: bool) -> Settings:
    """Flood levels for the synthetic model (100 GD steps) and the real experiment."""
    return common(quick) | {
        "steps": 100,
        "floods": [0.0, 0.05, 0.1, 0.2, 0.3, 0.5] if quick else
                  [0.0, 0.025, 0.05, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5],
        "real_floods": [0.0, 0.5, 1.0] if quick else [0.0, 0.25, 0.5, 1.0],
    }  # fmt: skip


def flooding_data(settings: Mapping[str, Any], workdir: Path) -> pd.DataFrame:
    """FT vs LP-FT under loss flooding, synthetic beside digits.

    Synthetic: global loss against the local loss each flood level reaches. Digits: global
    accuracy against the flood level (``x``), per seed (``sample``) and mean.
    """
    from synthetic import simulate

    floods = [float(f) for f in settings["floods"]]
    sim = simulate(seeded_grid(syn_base(settings), {"flood": floods}, list(settings["seeds"])),
                   ["ft", "lpft"], metrics=["local_loss", "global_loss_others"])  # fmt: skip
    syn = (sim.groupby(["method", "flood", "metric"])["value"].mean().unstack("metric")
           .reset_index())  # fmt: skip
    rows: list[Row] = []
    for _, r in syn.sort_values(["method", "local_loss"]).iterrows():
        rows.append({"panel": "syn-flooding", "series": {"ft": "FT", "lpft": "LP-FT"}[r["method"]],
                     "kind": "line", "x": r["local_loss"], "y": r["global_loss_others"],
                     "flood": r["flood"]})  # fmt: skip
    per: list[pd.DataFrame] = []
    for level in [float(v) for v in settings["real_floods"]]:
        metrics, _ = real_runs(settings, workdir, ["ft", "lpft"], None if level == 0 else level)
        block = metrics[metrics["variant"].isin(["ft", "lpft"])]
        block = (block.groupby(["variant", "seed", "metric"])["value"].mean().unstack("metric")
                 .reset_index())  # fmt: skip
        per.append(block.assign(x=level, y=100 * block["global"],
                                local_acc=100 * block["local"]))  # fmt: skip
    real = pd.concat(per, ignore_index=True)
    real["variant"] = real["variant"].map({"ft": "FT", "lpft": "LP-FT"})
    rows += _points(real, "real-flooding", "variant", ["variant", "x"])
    frame = tidy(rows)
    return frame.drop(columns=["variant"], errors="ignore")


def flooding_trends(data: pd.DataFrame) -> list[Trend]:
    """LP-FT's local-loss range over flood levels; LP-FT − FT on digits at each flood level."""
    syn = data[(data["panel"] == "syn-flooding") & (data["series"] == "LP-FT")]
    span = float(np.ptp(syn["x"])) if len(syn) else NAN
    out = [Trend("syn-flooding", "local_range", span, NAN, NAN, 0, "LP-FT")]
    levels = sorted(data.loc[data["panel"] == "real-flooding", "x"].unique())
    for level in levels:
        out += _vs_ft(data, "real-flooding", float(level), f" at flood {float(level):g}")
    return out


def flooding_describe(records: list[Trend]) -> str:
    """Caption sentences from the records."""
    span = next(r for r in records if r.statistic == "local_range")
    diffs = [describe_difference(t, " points") for t in records if t.statistic == "difference"]
    return (
        f"Computed: LP-FT's local loss spans {fmt(span.value)} over the flood levels; "
        f"digits, LP-FT's accuracy on the other clients minus FT's: {'; '.join(diffs)}."
    )


def flooding_plot(data: pd.DataFrame, *, ax: Axes | Sequence[Axes] | None = None) -> Figure:
    """Synthetic global loss vs achieved local loss; real global accuracy vs flood level."""
    fig, (a, b) = new_figure(ax, 2, size=3.8)
    draw(a, data, "syn-flooding")
    finish(a, "(a) synthetic: flood levels 0..b", "local loss reached (squared error)",
           "global loss, other clients (sq. error)")  # fmt: skip
    draw(b, data, "real-flooding")
    finish(b, "(b) digits CNN", "flood level b (training cross-entropy, nats)",
           "global accuracy, other clients (%)")  # fmt: skip
    fig.suptitle("FT vs LP-FT at equal local loss (loss flooding)")
    return fig


FLOODING_SPEC = FigureSpec(
    name="flooding",
    caption=(
        "FT versus LP-FT at matched local loss via loss flooding. (a) Synthetic (overlap "
        "shift, 100 GD steps): other clients' global loss against the local loss each "
        "flood level reaches (FT traces a curve; LP-FT's exact probe leaves zero local "
        "loss and zero gradient). (b) Real digits (digits-covariate preset; smaller with "
        "--quick, where the FedAvg model is weak): global accuracy against the flood level "
        "of the fine-tuning loss (0 = no flooding), mean and range over seeds."
    ),
    settings=flooding_settings,
    data=flooding_data,
    plot=flooding_plot,
    trends=flooding_trends,
    describe=flooding_describe,
)

# The figures this module declares, read by figures.registry (no registration on import).
SPECS: tuple[FigureSpec, ...] = (
    TRADEOFF_SPEC,
    FLOODING_SPEC,
)
