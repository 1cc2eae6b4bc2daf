"""Heatmap of one distortion metric, clients x layers, from a compare_checkpoints table."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pandas as pd

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure


def heatmap_data(table: pd.DataFrame, metric: str) -> pd.DataFrame:
    """Pivot the tidy table to clients (rows) x layers (columns) for one metric.

    Parameters
    ----------
    table : DataFrame with columns client, layer, metric, value, n
    metric : str

    Returns
    -------
    DataFrame of shape (clients, layers)
        Rows and columns in order of first appearance; buffer rows (``kind == "buffer"``)
        become columns ``<layer> [buffer]``.
    """
    sub = table[table["metric"] == metric]
    if "kind" in sub.columns:  # BatchNorm running statistics apart from the layer's parameters
        buffer = sub["kind"] == "buffer"
        sub = sub.assign(layer=sub["layer"].where(~buffer, sub["layer"] + " [buffer]"))
    if sub.empty:
        raise ValueError(
            f"metric={metric!r} is not in the table: expected one of "
            f"{sorted(table['metric'].unique())}"
        )
    wide = sub.pivot_table(index="client", columns="layer", values="value", aggfunc="mean")
    return wide.loc[list(dict.fromkeys(sub["client"])), list(dict.fromkeys(sub["layer"]))]


def distortion_heatmap(table: pd.DataFrame, metric: str, *, ax: Axes | None = None) -> Figure:
    """Draw :func:`heatmap_data` as an annotated image (never shows or saves it).

    The colour scale starts at 0 (or at the minimum if a value is negative) and ends at the
    maximum; each annotation is black on light cells and white on dark ones; the title names
    the metric and the layer (or the number of layers); NaN cells read ``n/a``.

    Parameters
    ----------
    table : DataFrame with columns client, layer, metric, value, n
    metric : str
        Metric to show.
    ax : matplotlib Axes, optional
        Axes to draw in; a new figure otherwise.

    Returns
    -------
    matplotlib.figure.Figure
    """
    import matplotlib.pyplot as plt
    import numpy as np

    data = heatmap_data(table, metric)
    values = data.to_numpy(dtype=float)
    if ax is None:
        width = 2.8 + 0.9 * data.shape[1]
        height = 1.8 + 0.45 * data.shape[0]
        fig, ax = plt.subplots(figsize=(min(width, 20.0), min(height, 20.0)))
    else:
        fig = ax.figure  # type: ignore[assignment]
    finite = values[np.isfinite(values)]
    low = min(0.0, float(finite.min())) if finite.size else 0.0
    high = float(finite.max()) if finite.size else 1.0
    high = high if high > low else low + 1.0
    image = ax.imshow(values, aspect="auto", cmap="viridis", vmin=low, vmax=high)
    image.set_gid("heatmap")
    ax.set_xticks(range(data.shape[1]), [str(c) for c in data.columns], rotation=45, ha="right")
    ax.set_yticks(range(data.shape[0]), [str(i) for i in data.index])
    ax.set_xlabel("layer")
    ax.set_ylabel("client")
    layers = list(data.columns)
    where = f"layer {layers[0]}" if len(layers) == 1 else f"{len(layers)} layers"
    ax.set_title(f"{metric} per client, {where}")
    if data.size <= 200:
        for i in range(values.shape[0]):
            for j in range(values.shape[1]):
                v = values[i, j]
                if not np.isfinite(v):
                    ax.text(j, i, "n/a", ha="center", va="center", color="0.3", fontsize=8)
                    continue
                r, g, b, _ = image.cmap(image.norm(v))
                light = 0.2126 * r + 0.7152 * g + 0.0722 * b > 0.5  # relative luminance
                ax.text(j, i, f"{v:.3g}", ha="center", va="center", fontsize=8,
                        color="black" if light else "white")  # fmt: skip
    fig.colorbar(image, ax=ax, label=metric)
    fig.tight_layout()
    return fig


__all__ = ["distortion_heatmap", "heatmap_data"]
