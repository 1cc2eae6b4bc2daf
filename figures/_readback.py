"""Read a drawn figure back (tests): every series by its ``gid`` ``"panel|series"``."""

from __future__ import annotations

import numpy as np
import pandas as pd
from matplotlib.figure import Figure


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
    shown = data[data["kind"] != "sample"]
    for (panel, series), block in shown.groupby(["panel", "series"], sort=False):
        out[f"{panel}|{series}"] = (
            block["x"].to_numpy(dtype=float),
            block["y"].to_numpy(dtype=float),
        )
    return out


__all__ = ["expected_lines", "plotted_lines"]
