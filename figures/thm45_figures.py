"""[CLOSER] Theorem 4.5 under both "global" conventions: D_G and the other clients.

D_G averages over every client (the fine-tuning one included, where LP-FT's local loss is 0);
"others" over the other clients only (the paper's empirical "Global"). lambda*, its regime and
every interval where LP-FT wins come from ``theory.predict_claim("thm-4.5", ...)`` (what
``theory explain thm-4.5`` reports). The lambda axis stops where the one-step model is meant to
apply: the FT step moves the shared features by 2 eta lambda ||V*_com|| ([CLOSER] Lemma 4.3),
at most their own (unit) norm.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from figures._style import PALETTE, draw, finish, new_figure, tidy
from figures._trend import Trend, describe_error, fmt
from figures.registry import FigureSpec, Settings

Row = dict[str, Any]
CONVENTIONS = {"D_G": "", "others": "_others"}  # label -> suffix of the predict_claim keys
_REGIMES = {
    "finite": "finite λ*",
    "infinite": "λ* = ∞ (LP-FT better for all λ)",
    "none": "no λ* (FT better at small λ)",
    "tie": "a2 = b2 (tie)",
    "overflow": "overflow",
}


def thm45_settings(quick: bool) -> Settings:
    """Covariate + concept shift, one FT step; mix and eta grids for the lambda* maps."""
    return {
        "d": 12, "m": 3, "C": 4, "eps": 0.3, "covariate": "mix", "mix": 0.5, "eta": 0.1,
        "client": 0, "vcom_norm": 1.0, "lam_sim": 5 if quick else 9,
        "sweep_mix": np.linspace(0.0, 1.0, 6 if quick else 21).round(4).tolist(),
        "sweep_eta": [0.05, 0.1, 0.2, 0.3, 0.5],
        "seeds": [0],
    }  # fmt: skip


def one_step_lam_max(eta: float, vcom_norm: float) -> float:
    """Largest lambda with 2 eta lambda ||V*_com|| <= 1 (the step moves features by <= 1)."""
    return 1.0 / (2.0 * eta * vcom_norm)


def _config(settings: Mapping[str, Any], **changes: Any) -> Any:
    from synthetic import SimConfig

    keys = ("d", "m", "C", "eps", "covariate", "mix", "eta", "client", "vcom_norm")
    values = {k: settings[k] for k in keys} | changes
    return SimConfig(**values, seed=int(settings["seeds"][0]))


def _intervals(pred: Mapping[str, Any], suffix: str) -> list[list[float | None]]:
    return list(pred[f"lpft_wins_intervals{suffix}"][0])


def thm45_data(settings: Mapping[str, Any], workdir: Path) -> pd.DataFrame:
    """FT - LP-FT under both conventions vs lambda; lambda* and its regime over (mix, eta).

    Panel ``gap``: (G_FT - G_LPFT) / lambda^2 = (a2 - b2) + a3 lambda + a4 lambda^2 per
    convention (lines), the simulation (markers, with the theory value in column ``theory``),
    lambda* where finite, and (``sample`` rows) every interval where LP-FT wins. Panel
    ``sweep``: finite lambda* within the one-step range of its eta, against ``mix``. Panels
    ``regime-D_G`` and ``regime-others``: the regime over (mix, eta) (column ``regime``).
    """
    from synthetic import expand_grid, simulate
    from theory import predict_claim

    base = _config(settings)
    lam_max = one_step_lam_max(float(settings["eta"]), float(settings["vcom_norm"]))
    pred = predict_claim("thm-4.5", base)
    dense = np.linspace(0.0, lam_max, 121)
    n_sim = int(settings["lam_sim"])
    lams = np.linspace(lam_max / n_sim, lam_max, n_sim).round(6)
    sim = simulate(expand_grid(base, {"lam": lams.tolist()}), ["ft", "lpft"],
                   metrics=["global_loss", "global_loss_others"])  # fmt: skip
    rows: list[Row] = []
    for label, suffix in CONVENTIONS.items():
        a2, a3, a4, b2 = (float(pred[f"{c}{suffix}"][0]) for c in ("a2", "a3", "a4", "b2"))

        def gap(x: np.ndarray, a2: float = a2, a3: float = a3, a4: float = a4,
                b2: float = b2) -> np.ndarray:  # fmt: skip
            """(G_FT - G_LPFT) / lambda^2: the sign of the gap, visible at small lambda."""
            return np.asarray((a2 - b2) + a3 * x + a4 * x**2)

        rows += [{"panel": "gap", "series": f"{label} theory", "kind": "line", "x": x, "y": y}
                 for x, y in zip(dense, gap(dense), strict=True)]  # fmt: skip
        metric = "global_loss" if label == "D_G" else "global_loss_others"
        wide = sim[sim["metric"] == metric].pivot_table(index="lam", columns="method",
                                                        values="value")  # fmt: skip
        for lam, r in wide.iterrows():
            rows.append({"panel": "gap", "series": f"{label} sim", "kind": "marker",
                         "x": float(lam), "y": (r["ft"] - r["lpft"]) / float(lam) ** 2,
                         "theory": float(gap(np.array(float(lam))))})  # fmt: skip
        for lo, hi in _intervals(pred, suffix):  # every interval where LP-FT wins
            rows.append(
                {
                    "panel": "gap",
                    "series": f"LP-FT wins ({label})",
                    "kind": "sample",
                    "x": float(lo or 0.0),
                    "y": np.inf if hi is None else float(hi),
                }
            )
        star = pred[f"lambda_star{suffix}"][0]
        if star is not None and star <= lam_max:
            rows.append({"panel": "gap", "series": f"λ* ({label})", "kind": "marker",
                         "x": float(star), "y": 0.0})  # fmt: skip
    for eta in [float(e) for e in settings["sweep_eta"]]:
        top = one_step_lam_max(eta, float(settings["vcom_norm"]))
        for mix in [float(v) for v in settings["sweep_mix"]]:
            p = predict_claim("thm-4.5", _config(settings, mix=mix, eta=eta))
            for label, suffix in CONVENTIONS.items():
                regime = str(p[f"lambda_star{suffix}_regime"][0])
                star = p[f"lambda_star{suffix}"][0]
                rows.append({"panel": f"regime-{label}", "series": _REGIMES[regime],
                             "kind": "marker", "x": mix, "y": eta, "regime": regime,
                             "lambda_star": np.nan if star is None else float(star),
                             "one_step_lam_max": top})  # fmt: skip
                if star is not None and star <= top:
                    rows.append({"panel": "sweep", "series": f"η={eta:g} {label}",
                                 "kind": "marker", "x": mix, "y": float(star)})  # fmt: skip
    return tidy(rows)


def thm45_trends(data: pd.DataFrame) -> list[Trend]:
    """lambda* per convention, the simulation's error, and how often lambda* is finite."""
    out: list[Trend] = []
    gap = data[data["panel"] == "gap"]
    for label in CONVENTIONS:
        sim = gap[gap["series"] == f"{label} sim"]
        err = float(np.max(np.abs(sim["y"] - sim["theory"])))
        out.append(Trend("gap", "max_abs_error", err, np.nan, np.nan, 0, f"{label} sim"))
        wins = gap[gap["series"] == f"LP-FT wins ({label})"]
        out += [Trend("gap", "lpft_wins_interval", np.nan, float(r["x"]), float(r["y"]), 0,
                      label) for _, r in wins.iterrows()]  # fmt: skip
        star = gap[gap["series"] == f"λ* ({label})"]["x"]
        value = float(star.iloc[0]) if len(star) else np.nan
        out.append(Trend("gap", "lambda_star", value, np.nan, np.nan, 0, label))
        regime = data[data["panel"] == f"regime-{label}"]
        for eta, block in regime.groupby("y"):
            in_range = (block["regime"] == "finite") & (
                block["lambda_star"] <= block["one_step_lam_max"])  # fmt: skip
            out.append(Trend(f"regime-{label}", "finite_fraction",
                             float(in_range.mean()), np.nan, np.nan, 0,
                             f"η={float(str(eta)):g}", n_seeds=len(block)))  # fmt: skip
    return out


def _fmt_intervals(records: list[Trend]) -> str:
    if not records:
        return "nowhere"
    return " ∪ ".join(f"[{fmt(r.lo)}, " + ("∞)" if not np.isfinite(r.hi) else f"{fmt(r.hi)}]")
                      for r in records)  # fmt: skip


def thm45_describe(records: list[Trend]) -> str:
    """Caption sentences from the records."""
    parts = []
    for label in CONVENTIONS:
        star = next(r for r in records if r.statistic == "lambda_star" and r.subject == label)
        err = next(r for r in records if r.statistic == "max_abs_error" and
                   r.subject == f"{label} sim")  # fmt: skip
        said = (f"λ* = {fmt(star.value)}" if np.isfinite(star.value)
                else "no λ* inside the one-step range")  # fmt: skip
        close = f"{describe_error(err.value)} the quartic"
        fractions = [r for r in records if r.panel == f"regime-{label}"]
        none = [r.subject for r in fractions if r.value == 0]
        some = [f"{r.subject}: {round(r.value * r.n_seeds)}/{r.n_seeds} mixes"
                for r in fractions if r.value > 0]  # fmt: skip
        wins = [r for r in records if r.statistic == "lpft_wins_interval" and r.subject == label]
        parts.append(
            f"{label}: {said}, LP-FT no worse for λ in {_fmt_intervals(wins)} (simulation "
            f"{close}); a finite λ* inside the one-step range exists for "
            f"{', '.join(some) or 'no step size'}, and for no mix at "
            f"{', '.join(none) or 'no step size'}"
        )
    return "Computed: " + "; ".join(parts) + "."


def thm45_plot(data: pd.DataFrame, *, ax: Axes | Sequence[Axes] | None = None) -> Figure:
    """FT - LP-FT vs lambda (both conventions); lambda* vs mix; the regime maps."""
    fig, (a, b, c, e) = new_figure(ax, 4, ncols=2, size=3.9)
    colors = {"D_G theory": PALETTE[0], "D_G sim": PALETTE[0], "λ* (D_G)": PALETTE[0],
              "others theory": PALETTE[1], "others sim": PALETTE[1],
              "λ* (others)": PALETTE[1]}  # fmt: skip
    draw(a, data, "gap", colors)
    a.axhline(0.0, color="#777777", lw=0.8)
    finish(a, "(a) (FT − LP-FT) / λ² (> 0: LP-FT better)", "heterogeneity λ (one-step range)",
           "global-loss difference / λ² (sq. error)")  # fmt: skip
    sweep = data[data["panel"] == "sweep"]["series"].unique()
    draw(b, data, "sweep", markers={s: "o" if s.endswith("D_G") else "s" for s in sweep})
    if len(sweep):
        b.set_yscale("log")
    b.set_xlim(-0.05, 1.05)
    finish(b, "(b) finite λ* inside the one-step range",
           "mix (0: mean = own u_i, 1: shared feature)", "λ* (log scale)")  # fmt: skip
    regime_colors = {_REGIMES["finite"]: PALETTE[0], _REGIMES["infinite"]: PALETTE[2],
                     _REGIMES["none"]: PALETTE[3], _REGIMES["tie"]: PALETTE[7],
                     _REGIMES["overflow"]: PALETTE[8]}  # fmt: skip
    regime_markers = dict(zip(_REGIMES.values(), ("s", "o", "^", "D", "X"), strict=True))
    for axis, label, title in ((c, "D_G", "(c) regime over D_G"),
                               (e, "others", "(d) regime over the other clients")):  # fmt: skip
        draw(axis, data, f"regime-{label}", regime_colors, markers=regime_markers)
        finish(axis, title, "mix (0: mean = own u_i, 1: shared feature)", "step size η",
               legend=False)  # fmt: skip
    handles: dict[str, Any] = {}
    for axis in (c, e):
        for h, n in zip(*axis.get_legend_handles_labels(), strict=True):
            handles.setdefault(n, h)
    fig.legend(list(handles.values()), list(handles.keys()), loc="outside lower center",
               ncols=3, frameon=False)  # fmt: skip
    fig.suptitle("Theorem 4.5 under both conventions: D_G (all clients) and the other clients")
    return fig


THM_4_5_SPEC = FigureSpec(
    name="thm-4.5",
    caption=(
        "[CLOSER] Theorem 4.5 (client means e_i + eps z, one FT step), under both "
        "'global' conventions: D_G (every client, the fine-tuning one included) and the "
        "other clients only (the paper's empirical 'Global'). (a) FT's minus LP-FT's "
        "global loss, lambda^2 ((a2 - b2) + a3 lambda + a4 lambda^2) per convention (lines) "
        "against the simulation (markers), for lambda in the one-step range "
        "2 eta lambda ||V*_com|| <= 1; lambda* marked where finite. (b) Finite lambda* "
        "against the mean geometry, per eta and convention, where it lies in that eta's "
        "one-step range. (c, d) Whether lambda* is finite, infinite (LP-FT better for "
        "every lambda) or absent (a2 < b2: FT better at small lambda) over (mix, eta)."
    ),
    settings=thm45_settings,
    data=thm45_data,
    plot=thm45_plot,
    trends=thm45_trends,
    describe=thm45_describe,
)

# The figures this module declares, read by figures.registry (no registration on import).
SPECS: tuple[FigureSpec, ...] = (THM_4_5_SPEC,)
