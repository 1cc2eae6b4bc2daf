"""Theorem-validation figures: [CLOSER] Lemma 4.3, Theorems 4.4 and 4.5, and [KUMAR].

Theory curves come from :mod:`theory` (closed forms); simulation markers from :mod:`synthetic`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, cast

import numpy as np
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from figures._pft import seeded_grid
from figures._style import PALETTE, draw, finish, new_figure, tidy
from figures._trend import Trend, describe_error
from figures.registry import FigureSpec, Settings

Row = dict[str, Any]
NAN = float("nan")


def _seeds(quick: bool, full: int, small: int = 1) -> list[int]:
    return list(range(small if quick else full))


# --------------------------------------------------------------------------- lemma-4.3


def lemma43_settings(quick: bool) -> Settings:
    """Grid of ||V*_com|| and lambda for :func:`lemma43_data`."""
    return {
        "d": 12, "m": 3, "C": 4, "eta": 0.2, "client": 0,
        "vcom_norm": [0.5, 2.0] if quick else [0.5, 1.0, 2.0],
        "lam": [0.5, 2.0] if quick else [0.25, 0.5, 1.0, 1.5, 2.0],
        "seeds": _seeds(quick, 2),
    }  # fmt: skip


def lemma43_data(settings: Mapping[str, Any], workdir: Path) -> pd.DataFrame:
    """Predicted ([CLOSER] Lemma 4.3) versus simulated one-step FT feature displacement.

    Panel ``rows``: per shared row j, predicted ||(B_FT - B*)_j|| = 2 eta lambda |(V_0)_j| (x)
    against the simulated norm (y). Panel ``total``: ||B_FT - B*||_F against lambda, theory
    line 2 eta lambda ||V*_com|| and simulation markers. ``max_entry_error`` is the largest
    entrywise |B_sim - B_pred| of the run.
    """
    from synthetic import (  # noqa: I001
        Hyper,
        SimConfig,
        client_objectives,
        draw_problem,
        ideal_global_model,
        run_method,
    )
    from theory import lemma43_rows

    rows: list[Row] = []
    eta, client = float(settings["eta"]), int(settings["client"])
    lams = [float(v) for v in settings["lam"]]
    for vn in settings["vcom_norm"]:
        series = f"‖V*com‖={vn:g}"
        dense = np.linspace(0.0, max(lams), 41)
        for lam in dense:
            rows.append({"panel": "total", "series": f"{series} theory", "kind": "line",
                         "x": lam, "y": 2 * eta * lam * float(vn)})  # fmt: skip
        for lam in lams:
            totals = []
            for seed in settings["seeds"]:
                cfg = SimConfig(
                    d=int(settings["d"]), m=int(settings["m"]), C=int(settings["C"]), lam=lam,
                    vcom_norm=float(vn), eta=eta, client=client, seed=int(seed),
                )  # fmt: skip
                problem = draw_problem(cfg)
                V0, B0 = ideal_global_model(problem)
                fit = run_method("ft", V0, B0, client_objectives(problem, np.array([client])),
                                 Hyper(eta=eta))  # fmt: skip
                B_pred, _ = lemma43_rows(problem.b_star, problem.v_com, client, lam, eta)
                err = float(np.abs(fit.B[0] - B_pred).max())
                sim_rows = np.linalg.norm(fit.B[0] - problem.b_star, axis=1)
                pred_rows = np.linalg.norm(B_pred - problem.b_star, axis=1)
                for j in range(int(settings["m"])):
                    rows.append({"panel": "rows", "series": series, "kind": "marker",
                                 "x": pred_rows[j], "y": sim_rows[j], "lam": lam,
                                 "seed": seed, "row": j, "max_entry_error": err})  # fmt: skip
                totals.append(float(np.linalg.norm(fit.B[0] - problem.b_star)))
            rows.append({"panel": "total", "series": f"{series} sim", "kind": "marker",
                         "x": lam, "y": float(np.mean(totals)), "lo": min(totals),
                         "hi": max(totals)})  # fmt: skip
    frame = tidy(rows)
    top = float(frame.loc[frame["panel"] == "rows", "x"].max())
    diag = tidy([{"panel": "rows", "series": "y = x", "kind": "dashed", "x": v, "y": v}
                 for v in (0.0, top)])  # fmt: skip
    return pd.concat([frame, diag], ignore_index=True)


def lemma43_plot(data: pd.DataFrame, *, ax: Axes | Sequence[Axes] | None = None) -> Figure:
    """Two panels: predicted vs simulated row displacements; ||B_FT - B*||_F vs lambda."""
    fig, (a, b) = new_figure(ax, 2)
    series = [s for s in data.loc[data["panel"] == "rows", "series"].unique() if s != "y = x"]
    colors = {s: PALETTE[i] for i, s in enumerate(series)} | {"y = x": "#555555"}
    colors |= {f"{s} theory": PALETTE[i] for i, s in enumerate(series)}
    colors |= {f"{s} sim": PALETTE[i] for i, s in enumerate(series)}
    draw(a, data, "rows", colors)
    finish(a, "(a) shared rows of B_FT − B*", "predicted ‖row‖ = 2ηλ|V0_j| (feature units)",
           "simulated ‖row‖ (feature units)")  # fmt: skip
    draw(b, data, "total", colors)
    finish(b, "(b) total distortion", "heterogeneity λ", "‖B_FT − B*‖_F (feature units)")
    fig.suptitle("Lemma 4.3: one FT step moves the shared rows along u_i, as predicted")
    return fig


def lemma43_trends(data: pd.DataFrame) -> list[Trend]:
    """Largest |simulated - predicted| row norm and total, over every seed and lambda."""
    rows = data[(data["panel"] == "rows") & (data["series"] != "y = x")]
    total = data[(data["panel"] == "total") & data["series"].str.endswith(" sim")]
    err_total = 0.0
    for series, block in total.groupby("series"):
        line = data[data["series"] == str(series).replace(" sim", " theory")]
        gap = np.abs(np.concatenate([block["y"], block["y_lo"], block["y_hi"]])
                     - np.tile(np.interp(block["x"], line["x"], line["y"]), 3))  # fmt: skip
        err_total = max(err_total, float(gap.max()))
    return [
        Trend("rows", "max_abs_error", float(np.max(np.abs(rows["y"] - rows["x"]))), NAN, NAN,
              0, "row norms: simulated vs predicted"),
        Trend("total", "max_abs_error", err_total, NAN, NAN, 0, "‖B_FT − B*‖_F vs 2ηλ‖V*com‖"),
    ]  # fmt: skip


def lemma43_describe(records: list[Trend]) -> str:
    """Caption sentences from the records."""
    rows, total = records
    return (f"Computed: (a) the simulated row norms are {describe_error(rows.value)} the "
            f"prediction; (b) every seed's ||B_FT - B*||_F is {describe_error(total.value)} "
            f"the line 2 eta lambda ||V*_com||.")  # fmt: skip


LEMMA_4_3_SPEC = FigureSpec(
    name="lemma-4.3",
    caption=(
        "[CLOSER] Lemma 4.3, isotropic inputs, one FT step from (B*, [V*_com; 0]): the m "
        "shared feature rows move by 2·eta·lambda·(V_0)_j·u_i. (a) Simulated row "
        "displacements against the predicted ones (y = x dashed); (b) ||B_FT - B*||_F "
        "against lambda, with the predicted line of slope 2·eta·||V*_com||."
    ),
    settings=lemma43_settings,
    data=lemma43_data,
    plot=lemma43_plot,
    trends=lemma43_trends,
    describe=lemma43_describe,
)


# --------------------------------------------------------------------------- thm-4.4


def thm44_settings(quick: bool) -> Settings:
    """Settings of :func:`thm44_data` (isotropic concept shift, one FT step)."""
    return {
        "d": 12, "m": 3, "C": 4, "vcom_norm": 1.0,
        "eta": [0.1, 0.25, 0.5],
        "lam": [0.5, 1.0, 1.5, 2.0] if quick else [0.25, 0.5, 0.75, 1.0, 1.25, 1.5, 1.75, 2.0],
        "phase_eta": np.linspace(0.05, 0.6, 6 if quick else 16).round(4).tolist(),
        "phase_vcom_sq": np.linspace(0.0, 3.0, 5 if quick else 13).round(4).tolist(),
        "phase_lam": 1.0,
        "seeds": _seeds(quick, 3, 2),
    }  # fmt: skip


def thm44_data(settings: Mapping[str, Any], workdir: Path) -> pd.DataFrame:
    """Global loss vs lambda and the phase map of the winner ([CLOSER] Thm 4.4).

    Panel ``loss``: theory lines and simulated mean (min-max over seeds and clients). Panel
    ``phase``: the simulated winner over (eta, ||V*_com||^2) and the boundary 2 eta s = 1.
    """
    from synthetic import SimConfig, expand_grid, simulate
    from theory import lpft_wins_boundary, thm44_losses_from

    d, m, C = int(settings["d"]), int(settings["m"]), int(settings["C"])
    s = 1.0 + float(settings["vcom_norm"]) ** 2
    etas = [float(e) for e in settings["eta"]]
    rows: list[Row] = []
    dense = np.linspace(0.0, max(settings["lam"]), 41)
    for eta in etas:
        theory = thm44_losses_from(dense, eta, s, C)
        ft = theory["global_loss_ft"]
        rows += [{"panel": "loss", "series": f"FT η={eta:g} theory", "kind": "line", "x": x,
                  "y": y} for x, y in zip(dense, ft, strict=True)]  # fmt: skip
    lpft = thm44_losses_from(dense, etas[0], s, C)["global_loss_lpft"]
    rows += [{"panel": "loss", "series": "LP-FT theory", "kind": "line", "x": x, "y": y}
             for x, y in zip(dense, lpft, strict=True)]  # fmt: skip
    base = SimConfig(d=d, m=m, C=C, vcom_norm=float(settings["vcom_norm"]))
    seeds = list(settings["seeds"])
    grid = {"lam": [float(v) for v in settings["lam"]], "eta": etas}
    sim = simulate(seeded_grid(base, grid, seeds), ["ft", "lpft"], metrics=["global_loss"])
    stats = sim.groupby(["method", "eta", "lam"], sort=True)["value"].agg(["mean", "min", "max"])
    for key, row in stats.iterrows():
        method, eta, lam = cast(tuple[Any, ...], key)
        if method == "lpft" and eta != etas[0]:
            continue  # LP-FT does not depend on eta: one marker series
        name = f"FT η={eta:g} sim" if method == "ft" else "LP-FT sim"
        rows.append({"panel": "loss", "series": name, "kind": "marker", "x": lam,
                     "y": row["mean"], "lo": row["min"], "hi": row["max"]})  # fmt: skip
    # Phase map: sign of G_FT - G_LPFT from the simulation at lambda = phase_lam.
    vsq = [float(v) for v in settings["phase_vcom_sq"]]
    pgrid = {"eta": [float(e) for e in settings["phase_eta"]],
             "vcom_norm": [float(np.sqrt(v)) for v in vsq]}  # fmt: skip
    pbase = SimConfig(d=d, m=m, C=C, lam=float(settings["phase_lam"]), seed=seeds[0])
    phase = simulate(expand_grid(pbase, pgrid), ["ft", "lpft"], metrics=["global_loss"])
    means = phase.groupby(["eta", "vcom_norm", "method"])["value"].mean().unstack("method")
    for key, row in means.iterrows():
        eta, vn = cast(tuple[Any, ...], key)
        gap = row["ft"] - row["lpft"]
        tol = 1e-9 * max(abs(row["ft"]), 1.0)
        label = "LP-FT lower (sim)" if gap > tol else "FT lower (sim)" if gap < -tol else "tie"
        rows.append({"panel": "phase", "series": label, "kind": "marker", "x": eta,
                     "y": float(vn) ** 2, "gap": gap})  # fmt: skip
    fine = np.linspace(min(pgrid["eta"]), max(pgrid["eta"]), 101)
    bound = lpft_wins_boundary(fine)
    keep = (bound >= min(vsq)) & (bound <= max(vsq))
    rows += [{"panel": "phase", "series": "theory: 2ηs = 1", "kind": "line", "x": x, "y": y}
             for x, y in zip(fine[keep], bound[keep], strict=True)]  # fmt: skip
    return tidy(rows)


def thm44_plot(data: pd.DataFrame, *, ax: Axes | Sequence[Axes] | None = None) -> Figure:
    """Global loss vs lambda (theory lines + simulation markers); phase map of the winner."""
    fig, (a, b) = new_figure(ax, 2, size=3.6)
    etas = [s.split()[1] for s in data["series"].unique() if s.startswith("FT η=")]
    colors: dict[str, str] = {}
    for i, e in enumerate(dict.fromkeys(etas)):
        colors |= {f"FT {e} theory": PALETTE[i], f"FT {e} sim": PALETTE[i]}
    colors |= {"LP-FT theory": "#000000", "LP-FT sim": "#000000"}
    draw(a, data, "loss", colors)
    finish(a, "(a) global loss over D_G, ‖V*com‖ = 1", "heterogeneity λ",
           "global loss (squared error)")  # fmt: skip
    phase_colors = {"LP-FT lower (sim)": PALETTE[2], "FT lower (sim)": PALETTE[3],
                    "tie": PALETTE[7], "theory: 2ηs = 1": "#000000"}  # fmt: skip
    draw(b, data, "phase", phase_colors, markers={"LP-FT lower (sim)": "s",
                                                  "FT lower (sim)": "o", "tie": "D"})  # fmt: skip
    finish(b, "(b) who has the lower global loss", "step size η", "‖V*com‖²", legend=False)
    handles, names = b.get_legend_handles_labels()
    fig.legend(handles, names, loc="outside lower right", ncols=3, frameon=False)
    fig.suptitle("Theorem 4.4: LP-FT beats FT on global loss iff 2ηs ≥ 1 (s = 1 + ‖V*com‖²)")
    return fig


def thm44_trends(data: pd.DataFrame) -> list[Trend]:
    """Simulation error, FT-below-LP-FT fraction per eta, phase-map agreement with 2 eta s = 1."""
    loss = data[data["panel"] == "loss"]
    out: list[Trend] = []
    errors = []
    lpft = loss[loss["series"] == "LP-FT sim"].set_index("x")["y"]
    for series in [s for s in dict.fromkeys(loss["series"]) if s.endswith(" sim")]:
        sim = loss[loss["series"] == series]
        line = loss[loss["series"] == series.replace(" sim", " theory")]
        errors.append(np.max(np.abs(sim["y"].to_numpy() - np.interp(sim["x"], line["x"],
                                                                    line["y"]))))  # fmt: skip
        if series.startswith("FT "):
            ft = sim.set_index("x")["y"]
            below = (ft < lpft.reindex(ft.index)).to_numpy()
            out.append(Trend("loss", "ft_below_lpft_fraction", float(below.mean()), NAN, NAN, 0,
                             series.removesuffix(" sim"), n_seeds=int(below.size)))  # fmt: skip
    out.append(Trend("loss", "max_abs_error", float(max(errors)), NAN, NAN, 0, "sim vs theory"))
    phase = data[(data["panel"] == "phase") & (data["kind"] == "marker")]
    tau = 2 * phase["x"] * (1.0 + phase["y"])
    clear = np.abs(tau - 1) > 1e-6
    theory = np.where(tau > 1, "LP-FT lower (sim)", "FT lower (sim)")
    agree = (phase["series"].to_numpy() == theory)[clear.to_numpy()]
    out.append(Trend("phase", "agreement", float(agree.mean()), NAN, NAN, 0, "2ηs ≥ 1",
                     n_seeds=int(agree.size)))  # fmt: skip
    return out


def thm44_describe(records: list[Trend]) -> str:
    """Caption sentences from the records."""
    err = next(r for r in records if r.statistic == "max_abs_error")
    below = [f"{r.subject}: {round(r.value * r.n_seeds)}/{r.n_seeds}" for r in records
             if r.statistic == "ft_below_lpft_fraction"]  # fmt: skip
    agree = next(r for r in records if r.statistic == "agreement")
    return (f"Computed: simulation {describe_error(err.value)} the closed forms; FT below LP-FT "
            f"at {', '.join(below)} simulated lambdas; the simulated winner agrees with "
            f"2 eta s >= 1 at {round(agree.value * agree.n_seeds)}/{agree.n_seeds} grid points "
            f"off the boundary.")  # fmt: skip


THM_4_4_SPEC = FigureSpec(
    name="thm-4.4",
    caption=(
        "[CLOSER] Theorem 4.4 (isotropic concept shift, one step). (a) Global loss over D_G "
        "versus lambda: FT's lambda^2(1 - 4 eta s/C + 4 eta^2 s^2) for three step sizes and "
        "LP-FT's 2 lambda^2 (C-1)/C (lines) against the simulation (markers: mean, min-max "
        "over seeds and clients). (b) Simulated winner over (eta, ||V*_com||^2) and the "
        "theory curve 2 eta s = 1 (LP-FT lower above it)."
    ),
    settings=thm44_settings,
    data=thm44_data,
    plot=thm44_plot,
    trends=thm44_trends,
    describe=thm44_describe,
)

# The figures this module declares, read by figures.registry (no registration on import).
SPECS: tuple[FigureSpec, ...] = (
    LEMMA_4_3_SPEC,
    THM_4_4_SPEC,
)
