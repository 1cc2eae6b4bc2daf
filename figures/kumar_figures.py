"""[KUMAR] figure: OOD loss along FT and LP-FT trajectories, and the span lemma made visible."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from figures._style import PALETTE, draw, finish, new_figure, tidy
from figures._trend import Trend, fmt
from figures.registry import FigureSpec, Settings

NAN = float("nan")


def kumar_settings(quick: bool) -> Settings:
    """Finite samples with n < d (isotropic inputs, ideal global model)."""
    return {
        "d": 30, "m": 3, "C": 4, "n": 10, "lam": 1.0, "eta": 0.05, "client": 0,
        "steps": 60 if quick else 200,
        "seeds": [0, 1] if quick else [0, 1, 2, 3, 4],
    }  # fmt: skip


def kumar_data(settings: Mapping[str, Any], workdir: Path) -> pd.DataFrame:
    r"""OOD loss along FT and LP-FT, and FT's feature change inside/outside rowspace(X).

    Panel ``ood``: ||w*_i - B_t^T V_t||^2 ([KUMAR] Prop. 3.2). Panel ``span``: ||D P_X||_F and
    ||D (I - P_X)||_F with D = B_t - B_0 ([KUMAR] span lemma).
    Values are means over seeds (``lo``/``hi``: min and max).
    """
    from synthetic import (  # noqa: I001
        Hyper,
        SimConfig,
        client_objectives,
        draw_problem,
        ideal_global_model,
        run_method,
    )

    client, steps = int(settings["client"]), int(settings["steps"])
    keys = ("d", "m", "C", "n", "lam", "eta", "client", "steps")
    curves: dict[tuple[str, str], list[np.ndarray]] = {}
    for seed in settings["seeds"]:
        cfg = SimConfig(**{k: settings[k] for k in keys}, seed=int(seed))
        problem = draw_problem(cfg)
        assert problem.x is not None
        V0, B0 = ideal_global_model(problem)
        objective = client_objectives(problem, np.array([client]))
        hp = Hyper(eta=cfg.eta, steps=steps)
        w_star = problem.w_star[client]
        x = problem.x[client]  # (n, d)
        _, sv, vt = np.linalg.svd(x, full_matrices=True)
        rank = int(np.sum(sv > 1e-10 * sv[0]))
        P = vt[:rank].T @ vt[:rank]  # projector onto rowspace(X)
        for method, label in (("ft", "FT"), ("lpft", "LP-FT")):
            fit = run_method(method, V0, B0, objective, hp, trajectory=True)
            assert fit.V_path is not None
            assert fit.B_path is not None
            V, B = fit.V_path[:, 0], fit.B_path[:, 0]  # (T, k), (T, k, d)
            w = np.einsum("tkd,tk->td", B, V)
            curves.setdefault(("ood", label), []).append(np.sum((w - w_star) ** 2, axis=1))
            if method == "ft":
                D = B - B0[None]
                inside = np.linalg.norm(D @ P, axis=(1, 2))
                outside = np.linalg.norm(D - D @ P, axis=(1, 2))
                curves.setdefault(("span", "FT: inside rowspace(X)"), []).append(inside)
                curves.setdefault(("span", "FT: outside rowspace(X)"), []).append(outside)
    rows: list[dict[str, Any]] = []
    t = np.arange(steps + 1)
    for (panel, series), values in curves.items():
        stack = np.vstack(values)
        for i in range(steps + 1):
            rows.append({"panel": panel, "series": series, "kind": "line", "x": t[i],
                         "y": stack[:, i].mean(), "lo": stack[:, i].min(),
                         "hi": stack[:, i].max()})  # fmt: skip
    return tidy(rows)


def kumar_plot(data: pd.DataFrame, *, ax: Axes | Sequence[Axes] | None = None) -> Figure:
    """OOD loss over steps (FT vs LP-FT); ||ΔB P_X|| and ||ΔB (I - P_X)|| over FT steps."""
    fig, (a, b) = new_figure(ax, 2, size=3.6)
    colors = {"FT": PALETTE[0], "LP-FT": "#000000", "FT: inside rowspace(X)": PALETTE[0],
              "FT: outside rowspace(X)": PALETTE[3]}  # fmt: skip
    draw(a, data, "ood", colors)
    finish(a, "(a) OOD loss along fine-tuning", "gradient step t",
           "OOD loss ‖w*_i − B_tᵀV_t‖² (squared error)")  # fmt: skip
    draw(b, data, "span", colors)
    finish(b, "(b) FT feature change, n < d samples", "gradient step t",
           "‖(B_t − B_0) restricted‖_F (feature units)")  # fmt: skip
    fig.suptitle("[KUMAR]: FT changes features only inside the training span; LP-FT stays exact")
    return fig


def kumar_trends(data: pd.DataFrame) -> list[Trend]:
    """Largest values over steps and seeds of each curve, and FT's final values."""
    out = []
    for panel, series in (("ood", "LP-FT"), ("ood", "FT"), ("span", "FT: inside rowspace(X)"),
                          ("span", "FT: outside rowspace(X)")):  # fmt: skip
        block = data[(data["panel"] == panel) & (data["series"] == series)].sort_values("x")
        out.append(Trend(panel, "max_over_steps", float(block["y_hi"].max()), NAN, NAN, 0,
                         series))  # fmt: skip
        out.append(Trend(panel, "final", float(block["y"].iloc[-1]), NAN, NAN, 0, series))
    return out


def kumar_describe(records: list[Trend]) -> str:
    """Caption sentences from the records."""
    get = {(r.subject, r.statistic): fmt(r.value) for r in records}
    outside = get["FT: outside rowspace(X)", "max_over_steps"]
    return (f"Computed: LP-FT's OOD loss is at most {get['LP-FT', 'max_over_steps']} over all "
            f"steps and seeds, FT's ends at {get['FT', 'final']}; FT's change outside "
            f"rowspace(X) is at most {outside} while inside it ends at "
            f"{get['FT: inside rowspace(X)', 'final']}.")  # fmt: skip


KUMAR_SPEC = FigureSpec(
    name="kumar",
    caption=(
        "[KUMAR] with finite samples (n = 10 < d = 30, isotropic inputs, ideal global model). "
        "(a) The OOD loss ||w*_i - B^T V||^2 along the FT and LP-FT trajectories (Prop. "
        "3.2: LP-FT keeps the perfect features). (b) FT's feature change B_t - B_0 inside "
        "and outside rowspace(X) (span lemma), mean over seeds."
    ),
    settings=kumar_settings,
    data=kumar_data,
    plot=kumar_plot,
    trends=kumar_trends,
    describe=kumar_describe,
)

# The figures this module declares, read by figures.registry (no registration on import).
SPECS: tuple[FigureSpec, ...] = (KUMAR_SPEC,)
