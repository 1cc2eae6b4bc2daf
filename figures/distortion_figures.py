"""The distortion figure: whether feature distortion predicts the drop of the other clients.

Every PFT method is in every panel. The caption's trend sentences come from
:func:`distortion_trends`: per panel, the Spearman rank correlation between distortion and
drop within each lambda, averaged with equal weight over lambda, with a bootstrap interval over
seeds (:func:`figures._trend.within_group_spearman`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pandas as pd
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from figures._pft import REAL_VARIANTS, common, real_runs, seed_stats, seeded_grid, syn_base
from figures._style import draw, finish, new_figure, tidy
from figures._trend import Trend, describe_spearman, samples_of, spearman_trend
from figures.registry import FigureSpec, Settings

Row = dict[str, Any]
SYN_METHODS = ["ft", "lp", "lpft", "proximal", "sparse", "align"]
SYN_METRICS = ["global_loss_others", "delta_l2", "feature_distortion_fro", "local_loss"]
# Panels whose (distortion, drop) pairs get a trend record: panel -> what is correlated.
TREND_PANELS = {"syn-delta": "Δ, drop", "syn-fro": "‖B − B0‖_F, drop",
                "real-delta": "Δ_c, drop", "real-cka": "1 − CKA, drop",
                "syn-local": "local-loss fall, drop"}  # fmt: skip


def distortion_settings(quick: bool) -> Settings:
    """Synthetic lambda grid and step grid; the same real runs as ``tradeoff``."""
    return common(quick) | {
        "real_variants": REAL_VARIANTS,
        "lams": [0.5, 1.0, 2.0] if quick else [0.5, 1.0, 1.5, 2.0],
        "step_grid": [0, 1, 2, 5, 10, 20] if quick else [0, 1, 2, 5, 10, 20, 40],
    }


def _per_seed(sim: pd.DataFrame, keys: list[str]) -> pd.DataFrame:
    """Client-mean metrics per ``keys + [method, seed]``, with the drop relative to global."""
    wide = (sim.groupby([*keys, "method", "seed", "metric"])["value"].mean()
            .unstack("metric").reset_index())  # fmt: skip
    base = wide[wide["method"] == "global"].set_index([*keys, "seed"])
    wide = wide[wide["method"] != "global"].copy()
    index = pd.MultiIndex.from_frame(wide[[*keys, "seed"]])
    start = base.reindex(index)
    wide["drop"] = wide["global_loss_others"].to_numpy() - start["global_loss_others"].to_numpy()
    wide["local_fall"] = start["local_loss"].to_numpy() - wide["local_loss"].to_numpy()
    return wide


def _scatter_rows(
    per_seed: pd.DataFrame, panel: str, xcol: str, name: str, group: str
) -> list[Row]:
    """Sample rows (one per seed) and marker rows (mean, seed range) of one scatter panel."""
    rows: list[Row] = [{"panel": panel, "series": r[name], "kind": "sample", "x": r[xcol],
                        "y": r["drop"], group: r[group], "seed": int(r["seed"])}
                       for _, r in per_seed.iterrows()]  # fmt: skip
    stats = seed_stats(per_seed, [group, name], "drop")
    x = per_seed.groupby([group, name], sort=False)[xcol].mean().reset_index(drop=True)
    for (_, r), xv in zip(stats.iterrows(), x, strict=True):
        rows.append({"panel": panel, "series": r[name], "kind": "marker", "x": xv, "y": r["y"],
                     "y_lo": r["y_lo"], "y_hi": r["y_hi"], "n_seeds": int(r["n_seeds"]),
                     group: r[group]})  # fmt: skip
    return rows


def distortion_data(settings: Mapping[str, Any], workdir: Path) -> pd.DataFrame:
    """Distortion against the drop of the other clients' performance, every method.

    Drops: synthetic ``global_loss_others(method) - global_loss_others(global)`` (squared
    error, same lambda and seed); real ``global(fedavg) - global(variant)`` (accuracy points,
    same seed). Rows of kind ``sample`` hold the per-seed pairs behind the trend records.
    Panels ``syn-path`` and ``real-path``: each method's (distortion, drop) path over gradient
    steps or fine-tuning epochs (means over seeds).
    """
    from synthetic import simulate

    seeds = list(settings["seeds"])
    sim = simulate(seeded_grid(syn_base(settings), {"lam": list(settings["lams"])}, seeds),
                   ["global", *SYN_METHODS], metrics=SYN_METRICS)  # fmt: skip
    syn = _per_seed(sim, ["lam"])
    rows = _scatter_rows(syn, "syn-delta", "delta_l2", "method", "lam")
    rows += _scatter_rows(syn, "syn-fro", "feature_distortion_fro", "method", "lam")
    # How far each method personalizes (fall of its local loss) against the drop: samples only.
    rows += [r for r in _scatter_rows(syn, "syn-local", "local_fall", "method", "lam")
             if r["kind"] == "sample"]  # fmt: skip
    steps = seeded_grid(syn_base(settings), {"steps": list(settings["step_grid"])}, seeds)
    path = _per_seed(simulate(steps, ["global", *SYN_METHODS], metrics=SYN_METRICS), ["steps"])
    path = path.groupby(["method", "steps"], sort=False)[["delta_l2", "drop"]].mean()
    for (method, step), r in path.sort_index(level=["method", "steps"], sort_remaining=False,
                                             ).iterrows():  # fmt: skip
        rows.append({"panel": "syn-path", "series": method, "kind": "line", "x": r["delta_l2"],
                     "y": r["drop"], "steps": step})  # fmt: skip
    metrics, epochs = real_runs(settings, workdir, list(settings["real_variants"]))
    per = (metrics.groupby(["variant", "seed", "metric"])["value"].mean().unstack("metric")
           .reset_index())  # fmt: skip
    g0 = per[per["variant"] == "fedavg"].set_index("seed")["global"]
    per = per[per["variant"] != "fedavg"].copy()
    per["drop"] = 100 * (g0.reindex(per["seed"]).to_numpy() - per["global"].to_numpy())
    per["one_minus_cka"] = 1.0 - per["cka"]
    real = per.assign(group=0)  # one heterogeneity level: a single group
    rows += _scatter_rows(real, "real-delta", "delta", "variant", "group")
    rows += _scatter_rows(real, "real-cka", "one_minus_cka", "variant", "group")
    ep = (epochs.groupby(["variant", "seed", "epoch", "metric"])["value"].mean()
          .unstack("metric").reset_index())  # fmt: skip
    start = ep[ep["epoch"] == 0].set_index(["variant", "seed"])["global_acc"]
    ep["drop"] = 100 * (start.reindex(pd.MultiIndex.from_frame(ep[["variant", "seed"]]))
                        .to_numpy() - ep["global_acc"].to_numpy())  # fmt: skip
    ep = ep[ep["variant"] != "fedavg"].groupby(["variant", "epoch"], sort=False)[
        ["delta", "drop"]].mean()  # fmt: skip
    for (variant, epoch), r in ep.iterrows():
        rows.append({"panel": "real-path", "series": variant, "kind": "line", "x": r["delta"],
                     "y": r["drop"], "epoch": epoch})  # fmt: skip
    return tidy(rows)


def distortion_trends(data: pd.DataFrame) -> list[Trend]:
    """Within-lambda Spearman(distortion, drop) of every scatter panel (bootstrap over seeds)."""
    out = []
    for panel, subject in TREND_PANELS.items():
        samples = samples_of(data, panel)
        group = "lam" if samples["lam"].notna().any() else "group"
        out.append(spearman_trend(panel, samples.rename(columns={group: "_g"}), subject,
                                  group="_g"))  # fmt: skip
    return out


def distortion_describe(records: list[Trend]) -> str:
    """Caption sentences from the records."""
    parts = "; ".join(describe_spearman(t) for t in records)
    return (f"Rank correlations within each lambda (equal weight over lambda; digits: across "
            f"variants), 95% bootstrap interval over seeds; syn-local correlates the fall of "
            f"the fine-tuning client's own loss (how far a method personalizes) with the drop: "
            f"{parts}.")  # fmt: skip


def distortion_plot(data: pd.DataFrame, *, ax: Axes | Sequence[Axes] | None = None) -> Figure:
    """Six panels: synthetic (top) and real (bottom) distortion vs drop, and their paths."""
    fig, axes = new_figure(ax, 6, ncols=3, size=3.4)
    specs = [
        ("syn-delta", "(a) linear: Δ, per λ", "Δ = E‖(B − B0)x‖ (feature units)",
         "global-loss increase (sq. error)"),
        ("syn-fro", "(b) linear: ‖B − B0‖_F, per λ", "‖B − B0‖_F (feature units)",
         "global-loss increase (sq. error)"),
        ("syn-path", "(c) linear: path over GD steps", "Δ (feature units)",
         "global-loss increase (sq. error)"),
        ("real-delta", "(d) digits: Δ_c", "Δ_c (penultimate-feature l2)",
         "global-accuracy drop (points)"),
        ("real-cka", "(e) digits: 1 − CKA", "1 − linear CKA (unitless)",
         "global-accuracy drop (points)"),
        ("real-path", "(f) digits: path over epochs", "Δ_c (penultimate-feature l2)",
         "global-accuracy drop (points)"),
    ]  # fmt: skip
    for i, (axis, (panel, title, xlabel, ylabel)) in enumerate(zip(axes, specs, strict=True)):
        draw(axis, data, panel)
        finish(axis, title, xlabel, ylabel, legend=i in (0, 2, 3, 5))
    fig.suptitle("Feature distortion against the drop of the other clients' performance")
    return fig


DISTORTION_SPEC = FigureSpec(
    name="distortion",
    caption=(
        "Feature distortion versus the drop of the other clients' performance, every PFT "
        "method in every panel. Top, two-layer linear model (overlap shift, 20 GD steps; "
        "one marker per method and lambda, mean over seeds, bars: range over seeds): Delta "
        "and ||B - B_0||_F against the rise of the other clients' loss; (c) each method's "
        "path over gradient steps at lambda = 1 (LP and LP-FT leave B unchanged: Delta = "
        "0). Bottom, digits CNN (digits-covariate preset; smaller with --quick): Delta_c and "
        "1 - CKA against the fall of the other clients' accuracy relative to FedAvg (mean, "
        "range over seeds); (f) each variant's path over fine-tuning epochs. Dashed lines "
        "and open markers lie on an earlier series (the legend says which when entirely)."
    ),
    settings=distortion_settings,
    data=distortion_data,
    plot=distortion_plot,
    trends=distortion_trends,
    describe=distortion_describe,
)

# The figures this module declares, read by figures.registry (no registration on import).
SPECS: tuple[FigureSpec, ...] = (DISTORTION_SPEC,)
