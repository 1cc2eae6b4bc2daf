r"""Methods compared at equal personalization: the (local, global) frontier at matched local loss.

Each method traces a curve (local, global) over its own knob (gradient steps, step size,
epochs). Comparing methods at one knob value confounds how far they personalize with how much
they forget; here every curve is cut at common levels of the local metric and the global metric
is read off by linear interpolation,

.. math:: g(\ell) = G_k + \frac{\ell - L_k}{L_{k+1} - L_k} (G_{k+1} - G_k)

on the first segment (in knob order) whose local values bracket :math:`\ell`. Curves are
interpolated per seed; the interval is the range over seeds (issue 10, section 2).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

SCALES = ("loss", "accuracy")
OUTPUT = ("method", "local", "global", "global_lo", "global_hi", "scale", "n_seeds")


def _first_crossing(local: np.ndarray, glob: np.ndarray, level: float) -> float:
    """Global value where the polyline (local, glob), in knob order, first reaches ``level``."""
    if local.size == 1:
        return float(glob[0]) if np.isclose(local[0], level, rtol=0, atol=1e-12) else np.nan
    a, b = local[:-1] - level, local[1:] - level
    hits = np.flatnonzero(a * b <= 0)
    if hits.size == 0:
        return np.nan
    k = int(hits[0])
    width = local[k + 1] - local[k]
    t = 0.0 if width == 0 else (level - local[k]) / width
    return float(glob[k] + t * (glob[k + 1] - glob[k]))


def common_range(
    frame: pd.DataFrame, knob: str, *, local: str = "local", method: str = "method",
    seed: str = "seed",
) -> tuple[float, float]:  # fmt: skip
    """The interval of local values that every (method, seed) curve covers.

    Returns
    -------
    lo, hi : float
        ``max`` of the curves' minima and ``min`` of their maxima; a ValueError when empty.
    """
    del knob  # the range does not depend on the order
    g = frame.groupby([method, seed])[local]
    lo, hi = float(g.min().max()), float(g.max().min())
    if not lo <= hi:
        spans = {str(k): (float(v.min()), float(v.max())) for k, v in g}
        raise ValueError(f"local={local!r} ranges do not overlap: per (method, seed) {spans}")
    return lo, hi


def matched_by_seed(
    frame: pd.DataFrame, knob: str, levels: int | Sequence[float] = 5, *,
    local: str = "local", global_: str = "global", method: str = "method", seed: str = "seed",
) -> pd.DataFrame:  # fmt: skip
    """Global metric of every (method, seed) curve at matched local levels.

    Parameters
    ----------
    frame : DataFrame
        Tidy rows with columns ``method, seed, knob, local, global`` (names configurable): one
        row per (method, seed, knob value).
    knob : str
        Column that orders each curve (steps, step size, epoch).
    levels : int or sequence of float
        Number of evenly spaced levels spanning :func:`common_range`, or the levels
        themselves (each inside that range).
    local, global_, method, seed : str
        Column names.

    Returns
    -------
    DataFrame
        Columns ``method, seed, local, global``.
    """
    missing = [c for c in (method, seed, knob, local, global_) if c not in frame]
    if missing:
        raise ValueError(f"frame columns={missing!r} are missing: expected method, seed, knob, "
                         f"local and global columns")  # fmt: skip
    lo, hi = common_range(frame, knob, local=local, method=method, seed=seed)
    if isinstance(levels, int | np.integer):
        if levels < 1:
            raise ValueError(f"levels={levels!r} is invalid: expected at least 1")
        grid = np.linspace(lo, hi, int(levels)) if levels > 1 else np.array([(lo + hi) / 2])
    else:
        grid = np.asarray(levels, dtype=float)
        tol = 1e-12 * max(1.0, abs(hi))
        if grid.size == 0 or grid.min() < lo - tol or grid.max() > hi + tol:
            raise ValueError(f"levels={grid.tolist()!r} are invalid: expected values in the "
                             f"common local range [{lo:g}, {hi:g}]")  # fmt: skip
    rows = []
    for (name, s), block in frame.sort_values(knob, kind="stable").groupby([method, seed]):
        L = block[local].to_numpy(dtype=float)
        G = block[global_].to_numpy(dtype=float)
        for level in grid:
            rows.append({"method": name, "seed": s, "local": float(level),
                         "global": _first_crossing(L, G, float(level))})  # fmt: skip
    return pd.DataFrame(rows, columns=["method", "seed", "local", "global"])


def matched(
    frame: pd.DataFrame, knob: str, levels: int | Sequence[float] = 5, *,
    local: str = "local", global_: str = "global", scale: str = "loss",
    method: str = "method", seed: str = "seed",
) -> pd.DataFrame:  # fmt: skip
    """Each method's global metric at matched local levels, with the range over seeds.

    Parameters
    ----------
    frame, knob, levels, local, global_, method, seed
        As :func:`matched_by_seed`.
    scale : str
        ``loss`` (lower is better) or ``accuracy`` (higher is better): recorded in the output.

    Returns
    -------
    DataFrame
        Columns ``method, local, global, global_lo, global_hi, scale, n_seeds``: mean, min and
        max over seeds at each level.

    Examples
    --------
    >>> frame = pd.DataFrame({"method": "ft", "seed": 0, "steps": [0, 1, 2],
    ...                       "local": [1.0, 0.5, 0.0], "global": [0.0, 1.0, 2.0]})
    >>> matched(frame, "steps", levels=[0.25])[["local", "global"]].to_numpy().tolist()
    [[0.25, 1.5]]
    """
    if scale not in SCALES:
        raise ValueError(f"scale={scale!r} is invalid: expected one of {', '.join(SCALES)}")
    per = matched_by_seed(frame, knob, levels, local=local, global_=global_, method=method,
                          seed=seed)  # fmt: skip
    g = per.groupby(["method", "local"], sort=False)["global"]
    out = pd.DataFrame({"global": g.mean(), "global_lo": g.min(), "global_hi": g.max(),
                        "n_seeds": g.count()}).reset_index()  # fmt: skip
    out["scale"] = scale
    return out[list(OUTPUT)]
