"""The ``step-size`` figure: the theory's step-size prediction beside the CNN's learning-rate sweep.

[CLOSER] Thm 4.4 (isotropic inputs, one FT step): over the other clients FT's global loss is
``c_L lam^2 (1 + tau^2)`` and LP-FT's ``2 c_L lam^2``, with ``tau = 2 c_L eta s``, so

    LP-FT - FT = c_L lam^2 (1 - tau^2),

negative (LP-FT better) exactly when ``tau >= 1``: LP-FT's global edge is a step-size effect,
it appears only when FT's step overshoots the local optimum. Panel ``syn-others`` plots this
difference from the simulator over a grid of eta (markers; seed range) with the closed form
(line). Panels ``real-covariate`` and ``real-concept`` plot the digits CNN's LP-FT minus FT
accuracy on the other clients (points; mean and range over 3 seeds) against the FT learning
rate of the ``digits-step-size`` preset (LP-FT's LP phase at the preset's rate).

The CSV has the columns ``panel, series, kind, x, y, y_lo, y_hi, n_seeds`` (plus ``tau`` or
``ft_lr``); :func:`stepsize_trends` computes the statements of the caption from those rows
and :func:`stepsize_describe` renders them.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from figures._progress import inner_progress
from figures._style import METHOD_STYLE, finish, new_figure
from figures.registry import FigureSpec, Settings

COLUMNS: tuple[str, ...] = ("panel", "series", "kind", "x", "y", "y_lo", "y_hi", "n_seeds")
SYN_PANEL = "syn-others"
SERIES = "LP-FT − FT"
THEORY = "theory: c_L λ²(1 − τ²)"
DECIMALS = 10


@dataclass(frozen=True)
class StepTrend:
    """One computed statement of the caption (the fields of the figures' trend records).

    ``statistic`` is ``difference`` (LP-FT minus FT at one x: value = mean, lo/hi = range
    over seeds, ``sign`` +1/-1/0 when the range is above/below/holds 0) or ``follows``
    (value 1 when the panel shows the predicted sign change, else 0; ``sign`` is the value).
    ``edge`` is the sign of LP-FT's advantage (``-sign`` for a loss, ``sign`` for accuracy).
    """

    panel: str
    statistic: str
    value: float
    lo: float
    hi: float
    sign: int
    subject: str = ""
    n_seeds: int = 0
    at: float = float("nan")
    edge: int = 0

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready record (NaN as None)."""
        out = asdict(self)
        for key in ("value", "lo", "hi", "at"):
            out[key] = None if not np.isfinite(out[key]) else float(out[key])
        return out


def stepsize_settings(quick: bool) -> Settings:
    """Synthetic grid (tau from 0.1 to 4, including 1) and the real preset (3 seeds)."""
    quick_taus = [0.1, 0.3, 0.6, 0.9, 1.0, 1.1, 1.5, 2.5, 4.0]
    full_taus = [0.1, 0.2, 0.3, 0.45, 0.6, 0.75, 0.9, 1.0, 1.1, 1.25, 1.5, 2.0, 2.5, 3.0, 4.0]
    taus = quick_taus if quick else full_taus
    return {
        "d": 12, "m": 3, "C": 4, "lam": 1.0, "vcom_norm": 1.0, "loss": "mse",
        "taus": taus, "seeds": [0, 1, 2],
        "real_preset": "digits-step-size", "real_seeds": [0, 1, 2], "real_quick": quick,
    }  # fmt: skip


def _tidy(rows: list[dict[str, Any]]) -> pd.DataFrame:
    frame = pd.DataFrame(rows)
    extra = [c for c in frame.columns if c not in COLUMNS]
    frame = frame[[*COLUMNS, *extra]]
    floats = frame.select_dtypes(include="float").columns
    frame[floats] = frame[floats].round(DECIMALS) + 0.0
    frame["n_seeds"] = frame["n_seeds"].astype(int)
    return frame.reset_index(drop=True)


def _synthetic_rows(settings: Mapping[str, Any]) -> list[dict[str, Any]]:
    from synthetic import SimConfig, expand_grid, simulate
    from theory.closed_forms import tau

    base = SimConfig(d=int(settings["d"]), m=int(settings["m"]), C=int(settings["C"]),
                     lam=float(settings["lam"]), vcom_norm=float(settings["vcom_norm"]),
                     loss=str(settings["loss"]), seed=int(settings["seeds"][0]))  # fmt: skip
    c_l = 1.0 if base.loss == "mse" else 0.5
    s = base.s
    etas = [float(t) / (2 * c_l * s) for t in settings["taus"]]
    configs = expand_grid(base, {"eta": etas}, seeds=len(settings["seeds"]))
    sim = simulate(configs, ["ft", "lpft"], metrics=["global_loss_others"])
    per_seed = sim.groupby(["eta", "seed", "method"])["value"].mean().unstack("method")
    diff = (per_seed["lpft"] - per_seed["ft"]).groupby(level="eta").agg(["mean", "min", "max",
                                                                         "count"])  # fmt: skip
    rows: list[dict[str, Any]] = []
    for key, r in diff.iterrows():
        eta = float(key)  # type: ignore[arg-type]
        t = float(tau(eta, s, c_l))
        rows.append(
            {
                "panel": SYN_PANEL,
                "series": SERIES,
                "kind": "marker",
                "x": t,
                "y": r["mean"],
                "y_lo": r["min"],
                "y_hi": r["max"],
                "n_seeds": int(r["count"]),
                "eta": eta,
            }
        )
    dense = np.linspace(0.0, max(settings["taus"]), 81)
    scale = c_l * float(settings["lam"]) ** 2
    rows += [{"panel": SYN_PANEL, "series": THEORY, "kind": "line", "x": x,
              "y": scale * (1 - x**2), "y_lo": np.nan, "y_hi": np.nan, "n_seeds": 0,
              "eta": x / (2 * c_l * s)} for x in dense]  # fmt: skip
    return rows


def real_rows_from(metrics: pd.DataFrame, shifts: Sequence[str]) -> list[dict[str, Any]]:
    """LP-FT minus FT accuracy on the other clients per (shift, FT rate), over seeds.

    Parameters
    ----------
    metrics : DataFrame
        :func:`empirical.experiment.load_metrics` of a ``digits-step-size`` run (columns
        ``shift, seed, variant, ft_lr, client, metric, value``).
    shifts : sequence of str
        Shifts in panel order.

    Returns
    -------
    list of dict
        Per (shift, rate): ``y`` the mean over seeds of ``100 (global_lpft - global_ft)``
        (each seed's value a mean over clients), ``y_lo``/``y_hi`` its min/max over seeds.
    """
    glob = metrics[(metrics["metric"] == "global") & metrics["variant"].isin(["ft", "lpft"])]
    per_seed = glob.groupby(["shift", "ft_lr", "seed", "variant"])["value"].mean()
    wide = per_seed.unstack("variant")
    diff = 100 * (wide["lpft"] - wide["ft"])  # accuracy points on the other clients
    stats = diff.groupby(level=["shift", "ft_lr"]).agg(["mean", "min", "max", "count"])
    rows: list[dict[str, Any]] = []
    for shift in shifts:
        for lr, r in stats.loc[shift].iterrows():
            rows.append({"panel": f"real-{shift}", "series": SERIES, "kind": "marker",
                         "x": float(lr), "y": r["mean"], "y_lo": r["min"], "y_hi": r["max"],
                         "n_seeds": int(r["count"]), "eta": float(lr)})  # fmt: skip
    return rows


def _real_rows(settings: Mapping[str, Any], workdir: Path) -> list[dict[str, Any]]:
    from empirical.experiment import load_metrics, make_preset, run_experiment

    config = make_preset(str(settings["real_preset"]), quick=bool(settings["real_quick"]))
    out = workdir / config.preset
    run_experiment(config, out, list(settings["real_seeds"]), progress=inner_progress())
    return real_rows_from(load_metrics(out), config.shift_units)


def stepsize_data(settings: Mapping[str, Any], workdir: Path) -> pd.DataFrame:
    """LP-FT minus FT: synthetic loss against tau, digits accuracy against the FT rate."""
    return _tidy([*_synthetic_rows(settings), *_real_rows(settings, workdir)])


def _sign(lo: float, hi: float) -> int:
    return 1 if lo > 0 else -1 if hi < 0 else 0


def follows_prediction(edges: Sequence[int]) -> bool:
    """Whether LP-FT's edge, ordered by step size, shows the predicted sign change.

    The prediction: FT is better or tied at small steps and LP-FT's edge appears only at
    large ones. So the edges (+1 LP-FT better, 0 tie, -1 FT better) must never decrease
    with the step, start at 0 or -1, and reach +1.
    """
    e = list(edges)
    return (
        bool(e) and e[0] <= 0 and 1 in e and all(a <= b for a, b in zip(e[:-1], e[1:], strict=True))
    )


def stepsize_trends(data: pd.DataFrame) -> list[StepTrend]:
    """Per panel: the difference at every x (seed range) and whether it follows the theory."""
    records: list[StepTrend] = []
    for panel, block in data[data["series"] == SERIES].groupby("panel", sort=False):
        block = block.sort_values("x")
        loss = str(panel).startswith("syn-")
        edges = []
        for _, r in block.iterrows():
            sign = _sign(float(r["y_lo"]), float(r["y_hi"]))
            edge = -sign if loss else sign
            edges.append(edge)
            records.append(StepTrend(str(panel), "difference", float(r["y"]), float(r["y_lo"]),
                                     float(r["y_hi"]), sign, SERIES, int(r["n_seeds"]),
                                     float(r["x"]), edge))  # fmt: skip
        ok = follows_prediction(edges)
        records.append(StepTrend(str(panel), "follows", float(ok), float(ok), float(ok),
                                 int(ok), "sign change of LP-FT's edge with the step",
                                 int(block["n_seeds"].min())))  # fmt: skip
    return records


def _where(records: list[StepTrend], edge: int, fmt: str) -> str:
    xs = [fmt.format(r.at) for r in records if r.statistic == "difference" and r.edge == edge]
    return ", ".join(xs) if xs else "none"


def stepsize_describe(records: list[StepTrend]) -> str:
    """The caption's computed sentences (one per panel)."""
    sentences = []
    for panel in dict.fromkeys(r.panel for r in records):
        mine = [r for r in records if r.panel == panel]
        (verdict,) = [r for r in mine if r.statistic == "follows"]
        syn = panel.startswith("syn-")
        what = "tau" if syn else "FT learning rate"
        fmt = "{:.3g}"
        follows = "follows" if verdict.value else "does not follow"
        who = "the simulation" if syn else f"the digits CNN ({panel.removeprefix('real-')} shift)"
        sentences.append(
            f"{panel}: LP-FT is better at {what} = {_where(mine, 1, fmt)}; FT at "
            f"{_where(mine, -1, fmt)}; within the seed range (tie) at {_where(mine, 0, fmt)}: "
            f"{who} {follows} the predicted sign change."
        )
    return " ".join(sentences)


def _plot_panel(ax: Axes, data: pd.DataFrame, panel: str) -> None:
    rows = data[data["panel"] == panel]
    style = METHOD_STYLE["lpft"]
    for series, block in rows.groupby("series", sort=False):
        x = block["x"].to_numpy(dtype=float)
        y = block["y"].to_numpy(dtype=float)
        gid = f"{panel}|{series}"
        if block["kind"].iloc[0] == "line":
            (line,) = ax.plot(x, y, "-", color="#949494", lw=1.4, label=str(series))
        else:
            lo = block["y_lo"].to_numpy(dtype=float)
            hi = block["y_hi"].to_numpy(dtype=float)
            err = np.vstack([np.clip(y - lo, 0, None), np.clip(hi - y, 0, None)])
            container = ax.errorbar(x, y, yerr=err, ls="none", marker=style.marker,
                                    color=style.color, ms=5, capsize=2.5, elinewidth=1,
                                    zorder=3, label=f"{series} (range over seeds)")  # fmt: skip
            line = container.lines[0]
            for bars in container.lines[2]:
                bars.set_gid(f"{gid}|range")
        line.set_gid(gid)
    ax.axhline(0.0, color="#000000", lw=0.6, zorder=1)


def stepsize_plot(data: pd.DataFrame, *, ax: Axes | Sequence[Axes] | None = None) -> Figure:
    """Synthetic loss difference against tau; real accuracy differences against the FT rate."""
    panels = list(dict.fromkeys(data["panel"]))
    fig, axes = new_figure(ax, len(panels), size=3.6)
    for i, (axis, panel) in enumerate(zip(axes, panels, strict=True)):
        _plot_panel(axis, data, panel)
        letter = "abcdefgh"[i]
        if panel.startswith("syn-"):
            axis.axvline(1.0, color="#949494", ls=":", lw=1)
            finish(axis, f"({letter}) linear model, one FT step", "τ = 2 c_L η s",
                   "LP-FT − FT loss, others (sq. error)")  # fmt: skip
        else:
            axis.set_xscale("log")
            finish(axis, f"({letter}) digits CNN, {panel.removeprefix('real-')} shift",
                   "FT learning rate (SGD, momentum 0.9)",
                   "LP-FT − FT accuracy, others (points)")  # fmt: skip
    fig.suptitle("LP-FT's global edge over FT as a function of FT's step size")
    return fig


CAPTION = (
    "LP-FT minus FT on the other clients, against FT's step. Left, linear model ([CLOSER] Thm "
    "4.4, isotropic concept shift, C = 4, lambda = 1, ||V*_com|| = 1, one step, population "
    "losses): global-loss difference against tau = 2 c_L eta s (markers: simulator, mean and "
    "range over 3 seeds, which coincide because the one-step population losses do not depend "
    "on the seed; line: c_L lambda^2 (1 - tau^2)); LP-FT is better below 0. Right, digits CNN "
    "(digits-step-size preset; smaller with --quick): global-accuracy difference in points "
    "against the FT learning rate of FT and of LP-FT's FT phase (LP at 0.01); LP-FT is better "
    "above 0; mean and range over 3 seeds. A difference whose seed range holds 0 is a tie."
)

STEP_SIZE_SPEC = FigureSpec(
    name="step-size",
    caption=CAPTION,
    settings=stepsize_settings,
    data=stepsize_data,
    plot=stepsize_plot,
    trends=stepsize_trends,
    describe=stepsize_describe,
)
# The figures this module declares, read by figures.registry (no registration on import).
SPECS: tuple[FigureSpec, ...] = (STEP_SIZE_SPEC,)

__all__ = [
    "CAPTION", "COLUMNS", "StepTrend", "follows_prediction", "real_rows_from", "stepsize_data",
    "stepsize_describe", "stepsize_plot", "stepsize_settings", "stepsize_trends",
]  # fmt: skip
