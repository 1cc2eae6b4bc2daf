"""PFT comparison figures: tradeoff, distortion and flooding (synthetic beside real)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pandas as pd
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from figures._real import run_real
from figures._style import draw, finish, new_figure, tidy
from figures.registry import FigureSpec, Settings, register

Row = dict[str, Any]
SYN_METHODS = ["global", "ft", "lp", "lpft", "proximal", "sparse", "align"]
REAL_VARIANTS = ["ft", "lp", "lpft", "proximal", "sparse", "soup", "lss", "split"]


def _syn_base(settings: Mapping[str, Any]) -> Any:
    from synthetic import SimConfig

    keys = ("d", "m", "C", "covariate", "rho", "eps", "lam", "eta", "steps")
    return SimConfig(**{k: settings[k] for k in keys})


def _common(quick: bool) -> Settings:
    return {
        "d": 16, "m": 3, "C": 4, "covariate": "overlap", "rho": 0.5, "eps": 0.3, "lam": 1.0,
        "eta": 0.05, "steps": 20, "seeds": [0, 1] if quick else [0, 1, 2],
        "real_preset": "digits-covariate", "real_seeds": [0] if quick else [0, 1, 2],
        "real_epochs": 3 if quick else None, "real_quick": quick,
    }  # fmt: skip


def _real_dir(workdir: Path) -> Path:
    return workdir.parent / "_real"  # shared by the figures that use the same runs


def _mean_by(frame: pd.DataFrame, keys: list[str]) -> pd.DataFrame:
    return frame.groupby(keys, sort=False)["value"].mean().unstack("metric").reset_index()


# --------------------------------------------------------------------------- tradeoff


def tradeoff_settings(quick: bool) -> Settings:
    """Synthetic (overlap covariate shift, 20 GD steps) and the quick digits experiment."""
    return _common(quick) | {"real_variants": REAL_VARIANTS}


def tradeoff_data(settings: Mapping[str, Any], workdir: Path) -> pd.DataFrame:
    """Local vs global performance per PFT method: synthetic losses, real accuracies."""
    from synthetic import expand_grid, simulate

    sim = simulate(expand_grid(_syn_base(settings), {"seed": list(settings["seeds"])}),
                   SYN_METHODS, metrics=["local_loss", "global_loss_others"])  # fmt: skip
    wide = _mean_by(sim, ["method", "metric"])
    rows: list[Row] = [{"panel": "synthetic", "series": r["method"], "kind": "marker",
                        "x": r["local_loss"], "y": r["global_loss_others"]}
                       for _, r in wide.iterrows()]  # fmt: skip
    metrics, _ = run_real(_real_dir(workdir), settings["real_preset"], settings["real_seeds"],
                          settings["real_variants"], settings["real_epochs"],
                          quick=bool(settings["real_quick"]))  # fmt: skip
    real = _mean_by(metrics, ["variant", "metric"])
    rows += [{"panel": "real", "series": r["variant"], "kind": "marker", "x": 100 * r["local"],
              "y": 100 * r["global"]} for _, r in real.iterrows()]  # fmt: skip
    return tidy(rows)


def tradeoff_plot(data: pd.DataFrame, *, ax: Axes | Sequence[Axes] | None = None) -> Figure:
    """Local vs global: synthetic (loss, lower is better) and real (accuracy, higher)."""
    fig, (a, b) = new_figure(ax, 2, size=3.6)
    draw(a, data, "synthetic")
    finish(a, "(a) two-layer linear, overlap shift", "local loss (squared error)",
           "global loss, other clients (squared error)")  # fmt: skip
    draw(b, data, "real")
    finish(b, "(b) digits CNN, covariate shift", "local accuracy (%)",
           "global accuracy, other clients (%)")  # fmt: skip
    fig.suptitle("Local vs global performance of every PFT method")
    return fig


register(
    FigureSpec(
        name="tradeoff",
        caption=(
            "Local versus global performance of each PFT method (mean over seeds and clients). "
            "(a) Synthetic two-layer linear model under partial feature overlap: loss, lower is "
            "better; 'global' is the un-fine-tuned model. (b) Real digits experiment "
            "(digits-covariate preset: 5 clients, 40 FedAvg rounds, 15 fine-tuning epochs; "
            "--quick: 3 clients, 10 rounds, 3 epochs): accuracy on the other clients' test "
            "sets in %, higher is better; 'fedavg' is the global model."
        ),
        settings=tradeoff_settings,
        data=tradeoff_data,
        plot=tradeoff_plot,
    )
)


# --------------------------------------------------------------------------- flooding


def flooding_settings(quick: bool) -> Settings:
    """Flood levels for the synthetic model (100 GD steps) and the real experiment."""
    return _common(quick) | {
        "steps": 100,
        "floods": [0.0, 0.05, 0.1, 0.2, 0.3, 0.5] if quick else
                  [0.0, 0.025, 0.05, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5],
        "real_floods": [0.0, 0.5, 1.0] if quick else [0.0, 0.25, 0.5, 1.0],
    }  # fmt: skip


def flooding_data(settings: Mapping[str, Any], workdir: Path) -> pd.DataFrame:
    """FT vs LP-FT global performance at equal local loss via flood levels."""
    from synthetic import expand_grid, simulate

    grid = {"flood": [float(f) for f in settings["floods"]], "seed": list(settings["seeds"])}
    sim = simulate(expand_grid(_syn_base(settings), grid), ["ft", "lpft"],
                   metrics=["local_loss", "global_loss_others"])  # fmt: skip
    wide = _mean_by(sim, ["method", "flood", "metric"])
    rows: list[Row] = []
    for _, r in wide.sort_values(["method", "local_loss"]).iterrows():
        rows.append({"panel": "synthetic", "series": {"ft": "FT", "lpft": "LP-FT"}[r["method"]],
                     "kind": "line", "x": r["local_loss"], "y": r["global_loss_others"],
                     "flood": r["flood"]})  # fmt: skip
    for level in settings["real_floods"]:
        metrics, _ = run_real(_real_dir(workdir), settings["real_preset"],
                              settings["real_seeds"], ["ft", "lpft"],
                              settings["real_epochs"],
                              None if float(level) == 0 else float(level),
                              quick=bool(settings["real_quick"]))  # fmt: skip
        real = _mean_by(metrics, ["variant", "metric"]).set_index("variant")
        for variant, label in (("ft", "FT"), ("lpft", "LP-FT")):
            rows.append({"panel": "real", "series": label, "kind": "line", "x": float(level),
                         "y": 100 * real.loc[variant, "global"],
                         "local_acc": 100 * real.loc[variant, "local"]})  # fmt: skip
    return tidy(rows)


def flooding_plot(data: pd.DataFrame, *, ax: Axes | Sequence[Axes] | None = None) -> Figure:
    """Synthetic global loss vs achieved local loss; real global accuracy vs flood level."""
    fig, (a, b) = new_figure(ax, 2, size=3.6)
    colors = {"FT": "#0173b2", "LP-FT": "#000000"}
    draw(a, data, "synthetic", colors)
    finish(a, "(a) synthetic: flood levels 0..b", "local loss reached (squared error)",
           "global loss, other clients (sq. error)")  # fmt: skip
    draw(b, data, "real", colors)
    finish(b, "(b) digits CNN", "flood level b (training cross-entropy, nats)",
           "global accuracy, other clients (%)")  # fmt: skip
    for axis in (a, b):
        for line in axis.get_lines():
            line.set_marker("o")
            line.set_markersize(4)
    fig.suptitle("FT vs LP-FT at equal local loss (loss flooding)")
    return fig


register(
    FigureSpec(
        name="flooding",
        caption=(
            "FT versus LP-FT at matched local loss via loss flooding. (a) Synthetic (overlap "
            "shift, 100 GD steps): other clients' global loss against the local loss each "
            "flood level reaches; LP-FT's exact probe leaves zero local loss and zero "
            "gradient, so it stays at one point while FT traces a curve. (b) Real digits "
            "(digits-covariate preset; smaller with --quick, where the FedAvg model is weak): "
            "global accuracy against the flood level of the fine-tuning loss (0 = no flooding)."
        ),
        settings=flooding_settings,
        data=flooding_data,
        plot=flooding_plot,
    )
)
