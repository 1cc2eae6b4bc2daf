"""The ``split-depth`` figure: FlexP split depth and alignment, digits beside the linear model.

Real (digits, :mod:`empirical.experiment.flexp.study`): local and global accuracy, Delta_c at
the penultimate layer and at the first cut, against the number of client blocks of the cut,
per server mode and beta; the client cost of each cut. Linear model analogue: the client
fine-tunes the head V and only the first ``r`` of the ``k`` rows of B (its "share"), with the
``align`` penalty ``beta E||(B - B_0) x||^2`` (gradient descent from the FedAvg model).

The digits study is cached in the work folder as ``split_depth_study.csv`` beside
``split_depth_study.json``, every field of its :class:`StudyConfig`; any difference reruns it.
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
from matplotlib.ticker import MaxNLocator

from figures._style import draw, finish, new_figure, tidy
from figures.registry import FigureSpec, Settings

Row = dict[str, Any]
REAL_METRICS = (("local", "local accuracy (%)"), ("global", "global accuracy, others (%)"),
                ("delta", "Δ_c penultimate (l2)"),
                ("delta_cut", "Δ_c at the first cut (l2)"))  # fmt: skip
LINEAR_METRICS = (("local_loss", "local loss (sq. error)"),
                  ("global_loss_others", "global loss, others (sq. error)"),
                  ("delta_l2", "Δ = E‖(B − B0)x‖"))  # fmt: skip


# Panel titles in words (the CSV keeps the metric keys).
TITLES = {"local": "local acc.", "global": "global acc.", "delta": "Δ_c penult.",
          "delta_cut": "Δ_c first cut",
          "local_loss": "local loss", "global_loss_others": "global loss (others)",
          "delta_l2": "Δ of B"}  # fmt: skip

# Client cost: parameters (left axis) and FLOPs (right axis), never one axis for both units.
COST_SERIES = {"client_params": ("cost", "parameters"),
               "client_flops": ("cost-flops", "FLOPs / sample (fwd+bwd)")}  # fmt: skip


def split_depth_settings(quick: bool) -> Settings:
    """Digits: 2 shifts, cuts 1:0, 1:1, 2:1, beta 0/0.25/1, both modes; linear: rows 2/4/7."""
    return {
        "d": 16, "m": 3, "C": 4, "covariate": "overlap", "rho": 0.5, "eps": 0.3, "lam": 1.0,
        "eta": 0.05, "steps": 20, "seeds": [0, 1] if quick else [0, 1, 2],
        "rows": [2, 4, 7], "linear_betas": [0.0, 0.5, 2.0],
        "shifts": ["covariate", "concept"], "real_seeds": [0] if quick else [0, 1, 2],
        "cuts": ["1:0", "1:1", "2:1"], "betas": [0.0, 0.25, 1.0],
        "modes": ["frozen", "shared"], "real_quick": quick, "real_epochs": None,
        "real_rounds": None, "real_align_depth": "client",
    }  # fmt: skip


def _linear_rows(settings: Mapping[str, Any]) -> list[Row]:
    from synthetic import SimConfig, client_objectives, expand_grid
    from synthetic.methods import Hyper, gradient_descent
    from synthetic.metrics import run_metrics
    from synthetic.problem import draw_problem, stack_problems
    from synthetic.simulation import clients_of, global_model_of

    keys = ("d", "m", "C", "covariate", "rho", "eps", "lam", "eta", "steps")
    base = SimConfig(**{k: settings[k] for k in keys})
    configs = expand_grid(base, {"seed": list(settings["seeds"])})
    problem = stack_problems([draw_problem(c) for c in configs])
    clients = clients_of(configs[0])
    v0, b0 = global_model_of(configs, problem)
    sigma = np.array([c.sigma for c in configs])
    objective = client_objectives(problem, clients, sigma)
    k = b0.shape[-2]
    rows: list[Row] = []
    for r in settings["rows"]:
        mask_b = np.zeros(b0.shape[-2:])
        mask_b[: int(r)] = 1.0
        for beta in settings["linear_betas"]:
            hp = Hyper(base.eta, base.steps, base.loss_scale, beta=float(beta))
            fit = gradient_descent(v0[:, None, :], b0[:, None], objective, hp,
                                   mask=(np.ones(k), mask_b))  # fmt: skip
            out = run_metrics(problem, clients, fit.V, fit.B, v0, b0, base.loss_scale,
                              [m for m, _ in LINEAR_METRICS])  # fmt: skip
            for metric, _ in LINEAR_METRICS:
                rows.append({"panel": f"linear-{metric}", "series": f"align β={beta:g}",
                             "kind": "line", "x": int(r) / k,
                             "y": float(np.mean(out[metric]))})  # fmt: skip
    return rows


def _real_frame(settings: Mapping[str, Any], workdir: Path) -> pd.DataFrame:
    from empirical.experiment.flexp.study import StudyConfig, split_depth_study

    study = StudyConfig(shifts=tuple(settings["shifts"]), seeds=tuple(settings["real_seeds"]),
                        cuts=tuple(settings["cuts"]), betas=tuple(settings["betas"]),
                        modes=tuple(settings["modes"]), quick=bool(settings["real_quick"]),
                        epochs=settings["real_epochs"],
                        fedavg_rounds=settings.get("real_rounds"),
                        align_depth=str(settings.get("real_align_depth", "client")))  # fmt: skip
    cache = workdir / "split_depth_study.csv"
    meta = workdir / "split_depth_study.json"
    wanted = study_signature(study)
    if cache.exists() and meta.exists():
        import json

        try:
            stored = json.loads(meta.read_text())
        except json.JSONDecodeError:
            stored = None
        if stored == wanted:
            return pd.read_csv(cache)
    frame = split_depth_study(study)
    workdir.mkdir(parents=True, exist_ok=True)
    from feddistort_io import atomic_write_json, atomic_write_text

    # The table first, then its configuration: a crash in between leaves no matching pair.
    meta.unlink(missing_ok=True)
    atomic_write_text(cache, frame.to_csv(index=False))
    atomic_write_json(meta, wanted)
    return frame


def study_signature(study: Any) -> dict[str, Any]:
    """Every field of the study configuration, JSON-ready (the cache key of its table)."""
    import dataclasses
    import json

    return dict(json.loads(json.dumps(dataclasses.asdict(study))))


def split_depth_data(settings: Mapping[str, Any], workdir: Path) -> pd.DataFrame:
    """Tidy plot rows: per-shift real panels, the cost panel and the linear panels.

    Real values are means over seeds and clients (accuracies in %); ``lo``/``hi`` are the
    min/max over seeds of the client means.
    """
    frame = _real_frame(settings, workdir)
    rows: list[Row] = []
    keys = ["shift", "mode", "beta", "client_blocks", "cut", "metric"]
    per_seed = frame.groupby([*keys, "seed"])["value"].mean().reset_index()
    agg = per_seed.groupby(keys)["value"].agg(["mean", "min", "max"]).reset_index()
    for _, r in agg.iterrows():
        if r["metric"] not in dict(REAL_METRICS):
            continue
        scale = 100.0 if r["metric"] in ("local", "global") else 1.0
        rows.append({"panel": f"{r['shift']}-{r['metric']}",
                     "series": f"{r['mode']} β={r['beta']:g}", "kind": "line",
                     "x": int(r["client_blocks"]), "y": scale * r["mean"],
                     "lo": scale * r["min"], "hi": scale * r["max"], "cut": r["cut"]})  # fmt: skip
    cost = frame[frame["metric"].isin(["client_params", "client_flops"])]
    cost = cost.groupby(["client_blocks", "cut", "metric"])["value"].first().reset_index()
    for _, r in cost.iterrows():
        panel, label = COST_SERIES[str(r["metric"])]
        rows.append({"panel": panel, "series": label, "kind": "line",
                     "x": int(r["client_blocks"]), "y": float(r["value"]),
                     "cut": r["cut"]})  # fmt: skip
    rows += _alignment_samples(per_seed)
    rows += _linear_rows(settings)
    return tidy(rows)


ALIGN_METRICS = ("global", "local")
"""Metrics whose change under alignment the caption reports (beta > 0 minus beta = 0)."""


def _alignment_samples(per_seed: pd.DataFrame) -> list[Row]:
    """Per-seed effect of alignment: accuracy at beta minus at beta = 0 (points), same cut.

    Rows of panel ``{shift}-align-{metric}``, kind ``sample`` (not drawn; the caption's
    records are computed from them by :func:`split_depth_trends`).
    """
    rows: list[Row] = []
    keys = ["shift", "mode", "cut", "client_blocks", "seed"]
    for metric in ALIGN_METRICS:
        part = per_seed[per_seed["metric"] == metric]
        base = part[part["beta"] == 0.0].set_index(keys)["value"]
        if base.empty:
            continue
        for _, r in part[part["beta"] > 0.0].iterrows():
            ref = base.get(tuple(r[k] for k in keys))
            if ref is None:
                continue
            rows.append({"panel": f"{r['shift']}-align-{metric}",
                         "series": f"{r['mode']} β={r['beta']:g}", "kind": "sample",
                         "x": int(r["client_blocks"]), "y": 100.0 * (r["value"] - ref),
                         "cut": r["cut"], "seed": int(r["seed"])})  # fmt: skip
    return rows


@dataclass(frozen=True)
class AlignTrend:
    """Alignment's effect at one (mode, beta, cut): mean and range over seeds, in points.

    ``sign`` is +1 when the whole seed range is above 0 (alignment raised the metric), -1
    when below, 0 when it holds 0 (a tie; with one seed only an exact 0 is a tie).
    """

    panel: str
    series: str
    cut: str
    value: float
    lo: float
    hi: float
    sign: int
    n_seeds: int

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready record."""
        return asdict(self)


def split_depth_trends(data: pd.DataFrame) -> list[AlignTrend]:
    """The caption's records, from the ``sample`` rows of the ``*-align-*`` panels."""
    rows = data[(data["kind"] == "sample") & data["panel"].str.contains("-align-")]
    out: list[AlignTrend] = []
    for (panel, series, cut), block in rows.groupby(["panel", "series", "cut"], sort=True):
        y = block["y"].to_numpy(dtype=float)
        lo, hi = float(y.min()), float(y.max())
        sign = 1 if lo > 0 else (-1 if hi < 0 else 0)
        out.append(AlignTrend(str(panel), str(series), str(cut), float(y.mean()), lo, hi,
                              sign, int(block["seed"].nunique())))  # fmt: skip
    return out


def split_depth_describe(records: Sequence[AlignTrend]) -> str:
    """One sentence per shift and metric: where alignment raised, lowered or tied it."""
    words = {"global": "others' accuracy", "local": "local accuracy"}
    sentences = []
    for panel in dict.fromkeys(r.panel for r in records):
        mine = [r for r in records if r.panel == panel]
        shift, metric = panel.split("-align-")
        up = [r for r in mine if r.sign > 0]
        down = [r for r in mine if r.sign < 0]
        seeds = min(r.n_seeds for r in mine)
        best = max(mine, key=lambda r: r.value)
        worst = min(mine, key=lambda r: r.value)
        sentences.append(
            f"Digits {shift}, {words[metric]}, alignment (beta > 0) minus beta = 0 at the same "
            f"cut and mode, {seeds} seed{'s' if seeds != 1 else ''}: higher at {len(up)}, lower "
            f"at {len(down)}, tie at {len(mine) - len(up) - len(down)} of {len(mine)} points; "
            f"largest {_pts(best.value)} ({best.series}, cut {best.cut}), smallest "
            f"{_pts(worst.value)} ({worst.series}, cut {worst.cut})."
        )
    return " ".join(sentences)


def _pts(value: float) -> str:
    return f"{value:+.3g} points"


def _colors(data: pd.DataFrame) -> dict[str, str]:
    hues = {"frozen": ["#023858", "#0570b0", "#74a9cf"],
            "shared": ["#7f2704", "#d94801", "#fd8d3c"],
            "align": ["#000000", "#636363", "#bdbdbd"]}  # fmt: skip
    out: dict[str, str] = {}
    for head, shades in hues.items():
        names = sorted({s for s in data["series"] if str(s).startswith(head)})
        out |= {n: shades[i % len(shades)] for i, n in enumerate(names)}
    out |= {"parameters": "#029e73", "FLOPs / sample (fwd+bwd)": "#cc78bc"}
    return out


def split_depth_plot(data: pd.DataFrame, *, ax: Axes | Sequence[Axes] | None = None) -> Figure:
    """Twelve panels: 2 shifts x 4 digits metrics, client cost, 3 linear-model metrics."""
    fig, axes = new_figure(ax, 12, ncols=4, size=3.0)
    colors = _colors(data)
    panels = set(data["panel"])  # the *-align-* panels hold caption samples, not drawn
    shifts = sorted(
        {p.split("-")[0] for p in panels if p.endswith("-local") and "-align-" not in p}
    )
    specs: list[tuple[str, str, str, str]] = []
    for shift in shifts[:2]:
        specs += [(f"{shift}-{m}", f"digits {shift}: {TITLES[m]}", "client blocks (cut front+back)",
                   label) for m, label in REAL_METRICS]  # fmt: skip
    specs.append(("cost", "client cost of the cut", "client blocks", "client parameters"))
    specs += [(f"linear-{m}", f"linear model: {TITLES[m]}", "client share of B's rows (r/k)", label)
              for m, label in LINEAR_METRICS]  # fmt: skip
    for axis, (panel, title, xlabel, ylabel) in zip(axes, specs, strict=False):
        draw(axis, data, panel, colors)
        _bands(axis, data, panel, colors)
        # one legend per row: the series (and their colours) are the same in every panel
        finish(axis, title, xlabel, ylabel, legend=panel.endswith(("-local", "-local_loss")))
        if not panel.startswith("linear-"):  # whole client blocks only
            axis.xaxis.set_major_locator(MaxNLocator(integer=True))
        if panel == "cost":
            _flops_axis(axis, data, colors)
    fig.suptitle("Split depth and alignment: digits (FlexP variant) and the linear model")
    return fig


def _bands(axis: Axes, data: pd.DataFrame, panel: str, colors: dict[str, str]) -> None:
    """Draw the range over seeds of each line as a light band of the line's colour.

    None is drawn for a series without a range (one seed, the cost and linear panels).
    """
    rows = data[(data["panel"] == panel) & (data["kind"] == "line")]
    for series, block in rows.groupby("series", sort=False):
        lo, hi = block["y_lo"].to_numpy(dtype=float), block["y_hi"].to_numpy(dtype=float)
        if np.isnan(lo).all() or (np.nan_to_num(hi - lo) == 0).all():
            continue
        band = axis.fill_between(block["x"].to_numpy(dtype=float), lo, hi, lw=0, alpha=0.15,
                                 color=colors.get(str(series), "#949494"))  # fmt: skip
        band.set_gid(f"{panel}|{series}|range")


def _flops_axis(axis: Axes, data: pd.DataFrame, colors: dict[str, str]) -> None:
    """FLOPs per sample on a right-hand axis of the cost panel (own unit, own scale)."""
    axis.set_yscale("log")
    right = axis.twinx()
    draw(right, data, "cost-flops", colors)
    right.set_yscale("log")
    right.set_ylabel("FLOPs / sample")
    handles = [*axis.get_legend_handles_labels()[0], *right.get_legend_handles_labels()[0]]
    names = [*axis.get_legend_handles_labels()[1], *right.get_legend_handles_labels()[1]]
    axis.legend(handles, names, frameon=False)


SPEC = FigureSpec(
    name="split-depth",
    caption=(
        "FlexP-style split personalization against the client's share of the network. "
        "Digits (digits-flexp preset, its quick version under --quick, sizes as in "
        "empirical.experiment.config.make_preset; the manifest's config gives any epoch or "
        "round override and the cuts, the CSV's cut column each point's front:back; every "
        "client uses the same cut, x = its number "
        "of client blocks front + back): local and global (other clients) accuracy, Delta_c "
        "of the penultimate features and at the first cut, for each server mode (frozen "
        "middle or one shared middle) and alignment strength beta (0 = no alignment); lines "
        "are means over seeds and clients, bands the range over seeds (none with one seed). "
        "Cost: client-side parameters (left axis) and FLOPs per sample (right axis) of each "
        "cut. Linear model: "
        "gradient descent on the head and the first r of the k rows of B with the align "
        "penalty beta, against r/k; means over seeds and clients. A difference whose seed "
        "range holds 0 is a tie."
    ),
    settings=split_depth_settings,
    data=split_depth_data,
    plot=split_depth_plot,
    trends=split_depth_trends,
    describe=split_depth_describe,
)

# The figures this module declares, read by figures.registry (no registration on import).
SPECS: tuple[FigureSpec, ...] = (SPEC,)
