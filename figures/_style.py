"""House style of every figure: one colour and marker per method, labelled axes, tidy drawing.

Every plotted element is drawn from rows of a tidy frame with the columns of :data:`COLUMNS`;
each line gets the ``gid`` ``"panel|series"`` so that tests can read the plotted data back.
A series whose name starts with a method (``ft``, ``LP-FT``, ``FT η=0.1 sim``: see
:func:`series_method`) is drawn in that method's colour and marker from :data:`METHOD_STYLE`,
in every figure and panel; series that lie on top of an earlier one are drawn visibly
(:func:`coincident_series`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, cast

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.text import Text

from figures._methods import (
    MARKERS,
    METHOD_STYLE,
    PALETTE,
    MethodStyle,
    series_method,
    series_styles,
)
from figures._overlap import coincident_series, math_label

COLUMNS: tuple[str, ...] = ("panel", "series", "kind", "x", "y", "y_lo", "y_hi")
# ``sample`` rows are not drawn: the per-seed data behind a panel's trend records.
KINDS: tuple[str, ...] = ("line", "marker", "dashed", "sample")
_LEGACY = {"lo": "y_lo", "hi": "y_hi"}
DECIMALS = 10
DPI = 200  # PNG resolution of the written figures


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
    "savefig.dpi": DPI,
    "figure.dpi": 110,
}


def tidy(rows: Sequence[dict[str, Any]] | pd.DataFrame) -> pd.DataFrame:
    """Normalize plotted rows: the columns of :data:`COLUMNS` first, floats rounded.

    Rounding to :data:`DECIMALS` decimals makes the CSV byte-identical across platforms
    whose last-ulp arithmetic differs; the plot is drawn from the rounded values.

    Parameters
    ----------
    rows : sequence of dict or DataFrame
        Rows with at least ``panel, series, kind, x, y`` (``y_lo``, ``y_hi`` optional; ``lo``
        and ``hi`` are accepted for them).

    Returns
    -------
    DataFrame
    """
    frame = pd.DataFrame(rows).copy()
    for old, new in _LEGACY.items():
        if old in frame:
            frame[new] = frame[old] if new not in frame else frame[new].fillna(frame[old])
            frame = frame.drop(columns=old)
    for col in ("y_lo", "y_hi"):
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
    markers: dict[str, str] | None = None,
) -> None:
    """Draw every series of one panel (line, markers with intervals, or dashed line).

    Method series take their colour and marker from :data:`METHOD_STYLE` (parameter variants
    of one method get shades of its colour). A series that lies on an earlier one
    (:func:`coincident_series`) is drawn on top with open, larger markers or a dashed line,
    and a fully covered one says so in its legend label. A line whose points all coincide
    is drawn as a marker.

    Parameters
    ----------
    ax : Axes
    data : DataFrame
        Tidy plot data (:func:`tidy`).
    panel : str
        Which panel's rows to draw.
    colors : dict, optional
        Series -> colour for series that are not a method's; otherwise the palette in order.
    labels : dict, optional
        Series -> legend label (``""`` hides it from the legend).
    markers : dict, optional
        Series -> marker for series that are not a method's.
    """
    data = data[data["kind"] != "sample"]
    rows = data[data["panel"] == panel]
    styles = series_styles(data, panel, colors, markers)
    covered = {c.series: c for c in coincident_series(data, panel)}
    for series, block in rows.groupby("series", sort=False):
        name = str(series)
        style = styles[name]
        label = math_label((labels or {}).get(name, name))
        hit = covered.get(name)
        if hit is not None and hit.fraction == 1.0 and label:
            label = f"{label} (on {math_label(hit.under)})"
        kind = str(block["kind"].iloc[0])
        x = block["x"].to_numpy(dtype=float)
        y = block["y"].to_numpy(dtype=float)
        hollow = style["hollow"] or hit is not None
        marker_kw: dict[str, Any] = {"marker": style["marker"], "color": style["color"],
                                     "ms": 8 if hit is not None else 5, "label": label}  # fmt: skip
        if hollow:
            marker_kw |= {"markerfacecolor": "none", "markeredgewidth": 1.4}
        if kind == "marker":
            lo = block["y_lo"].to_numpy(dtype=float)
            hi = block["y_hi"].to_numpy(dtype=float)
            if np.all(np.isnan(lo)):
                (line,) = ax.plot(x, y, ls="none", zorder=3, **marker_kw)
            else:
                err = np.vstack([np.clip(y - lo, 0, None), np.clip(hi - y, 0, None)])
                container = ax.errorbar(x, y, yerr=err, ls="none", capsize=2.5, elinewidth=1,
                                        zorder=3, **marker_kw)  # fmt: skip
                line = container.lines[0]
        else:
            dashed = kind == "dashed" or style["dashes"] or hit is not None
            (line,) = ax.plot(x, y, ls="--" if dashed else "-", lw=1.6, color=style["color"],
                              label=label)  # fmt: skip
            if len(x) > 0 and np.ptp(x) == 0 and np.ptp(y) == 0:
                line.set(**{k: v for k, v in marker_kw.items() if k != "label"})
        line.set_gid(f"{panel}|{series}")


def finish(ax: Axes, title: str, xlabel: str, ylabel: str, legend: bool = True) -> None:
    """Title, axis labels (with units, mathtext subscripts) and a legend without duplicates."""
    ax.set_title(math_label(title), loc="left")
    ax.set_xlabel(math_label(xlabel))
    ax.set_ylabel(math_label(ylabel))
    if legend:
        handles, names = ax.get_legend_handles_labels()
        keep = {n: h for h, n in zip(handles, names, strict=True) if n and not n.startswith("_")}
        if keep:
            ax.legend(list(keep.values()), list(keep.keys()), frameon=False)


def polish(fig: Figure) -> Figure:
    """Turn raw ``_x`` subscripts in every text of a figure (titles, labels, legends) to mathtext.

    Parameters
    ----------
    fig : Figure

    Returns
    -------
    Figure
        The same figure.
    """
    for text in fig.findobj(Text):
        if isinstance(text, Text):
            text.set_text(math_label(text.get_text()))
    return fig


__all__ = [
    "DPI", "MARKERS", "METHOD_STYLE", "PALETTE", "MethodStyle", "coincident_series", "draw",
    "finish", "math_label", "new_figure", "polish", "series_method", "series_styles", "tidy",
]  # fmt: skip
