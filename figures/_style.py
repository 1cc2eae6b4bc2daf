"""House style of every figure: colorblind palette, labelled axes, and tidy-data drawing.

Every plotted element is drawn from rows of a tidy frame with the columns of :data:`COLUMNS`;
each line gets the ``gid`` ``"panel|series"`` so that tests can read the plotted data back.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, cast

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.figure import Figure

# seaborn's "colorblind" palette (Wong-like), fixed here so figures do not depend on seaborn.
PALETTE: tuple[str, ...] = (
    "#0173b2", "#de8f05", "#029e73", "#d55e00", "#cc78bc",
    "#ca9161", "#fbafe4", "#949494", "#ece133", "#56b4e9",
)  # fmt: skip
MARKERS: tuple[str, ...] = ("o", "s", "^", "D", "v", "P", "X", "*", "<", ">")
COLUMNS: tuple[str, ...] = ("panel", "series", "kind", "x", "y", "lo", "hi")
KINDS: tuple[str, ...] = ("line", "marker", "dashed")
DECIMALS = 10

_RC: dict[str, Any] = {
    "font.size": 9,
    "axes.titlesize": 9.5,
    "axes.labelsize": 9,
    "legend.fontsize": 7.5,
    "xtick.labelsize": 8,
    "ytick.labelsize": 8,
    "axes.grid": True,
    "grid.alpha": 0.3,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "savefig.dpi": 110,
    "figure.dpi": 110,
}


def tidy(rows: Sequence[dict[str, Any]] | pd.DataFrame) -> pd.DataFrame:
    """Normalize plotted rows: the columns of :data:`COLUMNS` first, floats rounded.

    Rounding to :data:`DECIMALS` decimals makes the CSV byte-identical across platforms
    whose last-ulp arithmetic differs; the plot is drawn from the rounded values.

    Parameters
    ----------
    rows : sequence of dict or DataFrame
        Rows with at least ``panel, series, kind, x, y`` (``lo``, ``hi`` optional).

    Returns
    -------
    DataFrame
    """
    frame = pd.DataFrame(rows).copy()
    for col in ("lo", "hi"):
        if col not in frame:
            frame[col] = np.nan
    missing = [c for c in COLUMNS if c not in frame]
    if missing:
        raise ValueError(f"plot data columns={missing!r} are missing: expected {COLUMNS}")
    bad = sorted(set(frame["kind"]) - set(KINDS))
    if bad:
        raise ValueError(f"kind={bad[0]!r} is invalid: expected one of {', '.join(KINDS)}")
    extra = [c for c in frame.columns if c not in COLUMNS]
    frame = frame[[*COLUMNS, *extra]]
    floats = frame.select_dtypes(include="float").columns
    frame[floats] = frame[floats].round(DECIMALS) + 0.0  # + 0.0 turns -0.0 into 0.0
    return frame.reset_index(drop=True)


def new_figure(
    ax: Axes | Sequence[Axes] | None, n_panels: int, ncols: int | None = None, size: float = 3.2
) -> tuple[Figure, list[Axes]]:
    """Return the figure and ``n_panels`` axes, creating them when ``ax`` is None.

    Parameters
    ----------
    ax : Axes, sequence of Axes, or None
        Caller-provided axes (exactly ``n_panels``).
    n_panels : int
    ncols : int, optional
        Columns of the grid (default: all panels in one row).
    size : float
        Panel width in inches (height 0.8 of it).

    Returns
    -------
    Figure, list of Axes
    """
    plt.rcParams.update(cast(Any, _RC))
    if ax is None:
        ncols = n_panels if ncols is None else ncols
        nrows = -(-n_panels // ncols)
        fig, grid = plt.subplots(
            nrows, ncols, figsize=(size * ncols, 0.8 * size * nrows), squeeze=False,
            layout="constrained",
        )  # fmt: skip
        axes = list(grid.ravel())
        for extra in axes[n_panels:]:
            extra.set_visible(False)
        return fig, axes[:n_panels]
    axes = [ax] if isinstance(ax, Axes) else list(ax)
    if len(axes) != n_panels:
        raise ValueError(f"ax has {len(axes)} axes: expected {n_panels} (one per panel)")
    fig = axes[0].get_figure()
    if not isinstance(fig, Figure):  # pragma: no cover - subfigures
        raise ValueError("ax must belong to a matplotlib Figure")
    return fig, axes


def draw(
    ax: Axes,
    data: pd.DataFrame,
    panel: str,
    colors: dict[str, str] | None = None,
    labels: dict[str, str] | None = None,
) -> None:
    """Draw every series of one panel (line, markers with intervals, or dashed line).

    Parameters
    ----------
    ax : Axes
    data : DataFrame
        Tidy plot data (:func:`tidy`).
    panel : str
        Which panel's rows to draw.
    colors : dict, optional
        Series -> color; otherwise the palette in order of appearance.
    labels : dict, optional
        Series -> legend label (``""`` hides it from the legend).
    """
    rows = data[data["panel"] == panel]
    for index, (series, block) in enumerate(rows.groupby("series", sort=False)):
        color = (colors or {}).get(str(series), PALETTE[index % len(PALETTE)])
        label = (labels or {}).get(str(series), str(series))
        gid = f"{panel}|{series}"
        kind = str(block["kind"].iloc[0])
        x = block["x"].to_numpy(dtype=float)
        y = block["y"].to_numpy(dtype=float)
        if kind == "marker":
            lo = block["lo"].to_numpy(dtype=float)
            hi = block["hi"].to_numpy(dtype=float)
            marker = MARKERS[index % len(MARKERS)]
            if np.all(np.isnan(lo)):
                (line,) = ax.plot(x, y, ls="none", marker=marker, ms=5, color=color, label=label)
            else:
                err = np.vstack([np.clip(y - lo, 0, None), np.clip(hi - y, 0, None)])
                container = ax.errorbar(
                    x, y, yerr=err, ls="none", marker=marker, ms=5, color=color, capsize=2.5,
                    label=label, elinewidth=1,
                )  # fmt: skip
                line = container.lines[0]
        else:
            (line,) = ax.plot(
                x, y, ls="--" if kind == "dashed" else "-", lw=1.6, color=color, label=label
            )
        line.set_gid(gid)


def finish(ax: Axes, title: str, xlabel: str, ylabel: str, legend: bool = True) -> None:
    """Title, axis labels (with units) and a legend without duplicate entries."""
    ax.set_title(title, loc="left")
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    if legend:
        handles, names = ax.get_legend_handles_labels()
        keep = {n: h for h, n in zip(handles, names, strict=True) if n and not n.startswith("_")}
        if keep:
            ax.legend(list(keep.values()), list(keep.keys()), frameon=False)


def plotted_lines(fig: Figure) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Read back every drawn series of a figure: gid -> (x, y) as float arrays.

    Parameters
    ----------
    fig : Figure

    Returns
    -------
    dict of str to (ndarray, ndarray)
    """
    out: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    for axis in fig.axes:
        for line in axis.get_lines():
            gid = line.get_gid()
            if gid:
                xs = np.asarray(line.get_xdata(), dtype=float)
                ys = np.asarray(line.get_ydata(), dtype=float)
                out[gid] = (xs, ys)
    return out


def expected_lines(data: pd.DataFrame) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """The series a plot of ``data`` must contain: ``"panel|series"`` -> (x, y)."""
    out: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    for (panel, series), block in data.groupby(["panel", "series"], sort=False):
        out[f"{panel}|{series}"] = (
            block["x"].to_numpy(dtype=float),
            block["y"].to_numpy(dtype=float),
        )
    return out
