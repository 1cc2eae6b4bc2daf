"""Settings and helpers shared by the PFT figures (synthetic beside the digits experiment)."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pandas as pd

from figures._real import run_real
from figures.registry import Settings

REAL_VARIANTS = ["ft", "lp", "lpft", "proximal", "sparse", "soup", "lss", "split"]


def syn_base(settings: Mapping[str, Any]) -> Any:
    """The :class:`synthetic.SimConfig` of the figure's synthetic settings."""
    from synthetic import SimConfig

    keys = ("d", "m", "C", "covariate", "rho", "eps", "lam", "eta", "steps")
    return SimConfig(**{k: settings[k] for k in keys})


def common(quick: bool) -> Settings:
    """Overlap covariate shift, 20 GD steps; the digits-covariate experiment (2 seeds quick)."""
    return {
        "d": 16, "m": 3, "C": 4, "covariate": "overlap", "rho": 0.5, "eps": 0.3, "lam": 1.0,
        "eta": 0.05, "steps": 20, "seeds": [0, 1] if quick else [0, 1, 2],
        "real_preset": "digits-covariate", "real_seeds": [0, 1] if quick else [0, 1, 2],
        "real_epochs": 3 if quick else None, "real_quick": quick,
    }  # fmt: skip


def real_runs(
    settings: Mapping[str, Any], workdir: Path, variants: list[str], flood: float | None = None
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The cached experiment runs shared by every PFT figure (``workdir/../_real``)."""
    return run_real(workdir.parent / "_real", settings["real_preset"],
                    list(settings["real_seeds"]), variants, settings["real_epochs"], flood,
                    quick=bool(settings["real_quick"]))  # fmt: skip


def mean_by(frame: pd.DataFrame, keys: list[str]) -> pd.DataFrame:
    """Mean of ``value`` per ``keys`` (which include ``metric``), metrics as columns."""
    return frame.groupby(keys, sort=False)["value"].mean().unstack("metric").reset_index()


def seed_stats(frame: pd.DataFrame, keys: list[str], col: str) -> pd.DataFrame:
    """Mean, min, max and count over seeds of ``col`` per ``keys`` (``y, y_lo, y_hi, n_seeds``)."""
    g = frame.groupby(keys, sort=False)[col]
    out = pd.DataFrame({"y": g.mean(), "y_lo": g.min(), "y_hi": g.max(), "n_seeds": g.count()})
    return out.reset_index()


def seeded_grid(base: Any, grid: Mapping[str, Any], seeds: list[int]) -> list[Any]:
    """``expand_grid(base, grid)`` times the listed seeds (which must be consecutive).

    ``synthetic.expand_grid`` numbers seeds from ``base.seed`` (``seeds=n``); a ``seed`` key in
    its grid would be overwritten, so the figures pass their seed list here.
    """
    from synthetic import expand_grid

    seeds = sorted(int(s) for s in seeds)
    if seeds != list(range(seeds[0], seeds[0] + len(seeds))):
        raise ValueError(f"seeds={seeds!r} is invalid: expected consecutive integers")
    return list(expand_grid(base.replace(seed=seeds[0]), dict(grid), seeds=len(seeds)))
