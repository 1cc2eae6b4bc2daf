"""Trend records: every sentence of a caption about a trend is computed from the plotted data.

A figure's ``trends(data)`` returns :class:`Trend` records (written to its manifest entry) and
its caption renders them (:func:`describe`), so a caption cannot contradict its own CSV. The
data behind a statistic is kept in the CSV as rows of kind ``sample`` (one per seed; not drawn).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import pandas as pd

N_BOOT = 2000  # bootstrap draws over seeds
BOOT_SEED = 0  # numpy default_rng seed of the bootstrap
LEVEL = 0.95  # central percentile interval


@dataclass(frozen=True)
class Trend:
    """One computed statement about a panel.

    Attributes
    ----------
    panel : str
    statistic : str
        ``spearman_within_lam`` (:func:`within_group_spearman`) or ``difference`` (a paired
        difference of two series over seeds, :func:`paired_difference`).
    value : float
        The estimate on all seeds.
    lo, hi : float
        Its interval: bootstrap percentiles, or the range over seeds for ``difference``.
    sign : int
        +1 when ``lo > 0``, -1 when ``hi < 0``, 0 when the interval holds 0 (no clear direction;
        for a difference: a tie).
    subject : str
        What is compared (``"Δ vs drop"``, ``"LP-FT − FT at flood 0.5"``).
    n_seeds : int
    series, versus : str
        For ``difference``: the sample series ``series - versus``.
    at : float
        For ``difference``: the x value (sample rows) where they are compared.
    """

    panel: str
    statistic: str
    value: float
    lo: float
    hi: float
    sign: int
    subject: str = ""
    n_seeds: int = 0
    series: str = ""
    versus: str = ""
    at: float = float("nan")

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready record (NaN as None)."""
        out = asdict(self)
        for key in ("value", "lo", "hi", "at"):
            out[key] = None if not np.isfinite(out[key]) else float(out[key])
        return out


def interval_sign(lo: float, hi: float) -> int:
    """+1 when the interval is above 0, -1 when below, 0 when it holds 0 (or is NaN)."""
    if np.isfinite(lo) and lo > 0:
        return 1
    if np.isfinite(hi) and hi < 0:
        return -1
    return 0


def _rank_corr(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Spearman correlation along the last axis (average ranks; NaN if a side is constant)."""
    from scipy.stats import rankdata

    rx = rankdata(x, axis=-1)
    ry = rankdata(y, axis=-1)
    rx = rx - rx.mean(axis=-1, keepdims=True)
    ry = ry - ry.mean(axis=-1, keepdims=True)
    den = np.sqrt((rx**2).sum(axis=-1) * (ry**2).sum(axis=-1))
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(den > 0, (rx * ry).sum(axis=-1) / np.where(den > 0, den, 1.0), np.nan)


def _cube(samples: pd.DataFrame, group: str, item: str) -> tuple[np.ndarray, np.ndarray, int]:
    """Arrays x, y of shape (groups, items, seeds) from sample rows (seeds ascending)."""
    keys = [group, item, "seed"]
    full = samples.set_index(keys)[["x", "y"]].sort_index()
    groups = full.index.unique(group)
    items = full.index.unique(item)
    seeds = full.index.unique("seed")
    index = pd.MultiIndex.from_product([groups, items, seeds], names=keys)
    if len(full) != len(index) or full.index.duplicated().any():
        raise ValueError(f"samples must hold one row per ({group}, {item}, seed): got {len(full)}"
                         f" rows for {len(index)} combinations")  # fmt: skip
    full = full.reindex(index)
    shape = (len(groups), len(items), len(seeds))
    return (
        full["x"].to_numpy(float).reshape(shape),
        full["y"].to_numpy(float).reshape(shape),
        (len(seeds)),
    )


def within_group_spearman(
    samples: pd.DataFrame, group: str = "lam", item: str = "series",
    n_boot: int = N_BOOT, rng_seed: int = BOOT_SEED,
) -> tuple[float, float, float, int]:  # fmt: skip
    r"""Spearman correlation of x and y across items within each group, averaged over groups.

    Per group (one lambda), the seed-mean x and y of every item (method) are ranked and
    correlated; the groups get equal weight. The interval resamples seeds with replacement
    (draw b: ``rng.integers(0, n_seeds, size=(n_boot, n_seeds))[b]``, ``rng =
    default_rng(rng_seed)``) and takes the central :data:`LEVEL` percentiles.

    Parameters
    ----------
    samples : DataFrame
        Columns ``group, item, seed, x, y``: one row per combination.
    group, item : str
        Column names.
    n_boot, rng_seed : int

    Returns
    -------
    value, lo, hi : float
    n_seeds : int
    """
    x, y, n_seeds = _cube(samples, group, item)
    value = float(np.nanmean(_rank_corr(x.mean(-1), y.mean(-1)))) if x.size else np.nan
    draws = np.random.default_rng(rng_seed).integers(0, n_seeds, size=(n_boot, n_seeds))
    weights = np.stack([np.bincount(d, minlength=n_seeds) for d in draws]) / n_seeds  # (B, S)
    xb = np.einsum("gis,bs->bgi", x, weights)
    yb = np.einsum("gis,bs->bgi", y, weights)
    with np.errstate(invalid="ignore"):
        per_draw = np.nanmean(_rank_corr(xb, yb), axis=-1)  # (B,)
    tail = 100 * (1 - LEVEL) / 2
    if np.all(np.isnan(per_draw)):
        return value, np.nan, np.nan, n_seeds
    lo, hi = np.nanpercentile(per_draw, [tail, 100 - tail])
    return value, float(lo), float(hi), n_seeds


def spearman_trend(panel: str, samples: pd.DataFrame, subject: str, group: str = "lam") -> Trend:
    """:func:`within_group_spearman` of one panel's sample rows as a :class:`Trend`."""
    value, lo, hi, n = within_group_spearman(samples, group=group)
    return Trend(panel, "spearman_within_lam", value, lo, hi, interval_sign(lo, hi), subject, n)


def paired_difference(a: pd.Series, b: pd.Series) -> tuple[float, float, float, int]:
    """Mean, min and max over seeds of ``a - b`` (both indexed by seed).

    Returns
    -------
    value, lo, hi : float
    n_seeds : int
    """
    diff = (a - b).dropna()
    if diff.empty:
        return np.nan, np.nan, np.nan, 0
    return float(diff.mean()), float(diff.min()), float(diff.max()), int(diff.size)


def difference_trend(
    panel: str, samples: pd.DataFrame, series: str, versus: str, at: float, subject: str
) -> Trend:
    """Paired difference ``series - versus`` of a panel's sample rows at ``x == at``.

    ``at`` NaN compares every row of each series (one per seed). Sign 0 is a tie: the range
    over seeds holds 0 (or there is a single seed).
    """
    if np.isfinite(at):
        samples = samples[np.isclose(samples["x"].to_numpy(dtype=float), at)]
    rows = samples
    a = rows[rows["series"] == series].set_index("seed")["y"]
    b = rows[rows["series"] == versus].set_index("seed")["y"]
    value, lo, hi, n = paired_difference(a, b)
    sign = interval_sign(lo, hi) if n > 1 else 0
    return Trend(panel, "difference", value, lo, hi, sign, subject, n, series, versus, at)


def samples_of(data: pd.DataFrame, panel: str) -> pd.DataFrame:
    """The ``sample`` rows of one panel (the per-seed data behind its statistics)."""
    return data[(data["panel"] == panel) & (data["kind"] == "sample")]


_DIRECTION = {1: "positive", -1: "negative", 0: "no clear sign (interval holds 0)"}


def fmt(v: float) -> str:
    """A number for a caption (3 significant digits)."""
    return "nan" if not np.isfinite(v) else f"{v:.3g}"


def describe_spearman(t: Trend) -> str:
    """``"(a): rho = -0.43 [-0.6, -0.2], negative"``."""
    return (f"{t.panel}: within-lambda Spearman rho({t.subject}) = {fmt(t.value)} "
            f"[{fmt(t.lo)}, {fmt(t.hi)}], {_DIRECTION[t.sign]}")  # fmt: skip


def describe_difference(t: Trend, unit: str = "") -> str:
    """``"LP-FT − FT: +1.2 points (range over 2 seeds [-0.3, 2.5]): tie"``."""
    if t.n_seeds < 2:
        verdict = "one seed, no spread to judge"
    else:
        verdict = {1: "higher", -1: "lower", 0: "a tie (the seed range holds 0)"}[t.sign]
    return (f"{t.subject}: {fmt(t.value)}{unit} (range over {t.n_seeds} seeds "
            f"[{fmt(t.lo)}, {fmt(t.hi)}]): {verdict}")  # fmt: skip


def describe_error(v: float) -> str:
    """``"within 3e-12 of"`` or, for 0 after the CSV's rounding, ``"equal to 10 decimals to"``."""
    return "equal to 10 decimals to" if v == 0 else f"within {fmt(v)} of"
