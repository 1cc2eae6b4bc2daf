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
        Rows and columns in order of first appearance.
    """
    sub = table[table["metric"] == metric]
    if sub.empty:
        raise ValueError(
            f"metric={metric!r} is not in the table: expected one of "
            f"{sorted(table['metric'].unique())}"
        )
    wide = sub.pivot_table(index="client", columns="layer", values="value", aggfunc="mean")
    return wide.loc[list(dict.fromkeys(sub["client"])), list(dict.fromkeys(sub["layer"]))]


def distortion_heatmap(table: pd.DataFrame, metric: str, *, ax: Axes | None = None) -> Figure:
    """Draw :func:`heatmap_data` as an annotated image (never shows or saves it).

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

    data = heatmap_data(table, metric)
    if ax is None:
        width = 2.0 + 0.9 * data.shape[1]
        height = 1.5 + 0.45 * data.shape[0]
        fig, ax = plt.subplots(figsize=(min(width, 20.0), min(height, 20.0)))
    else:
        fig = ax.figure  # type: ignore[assignment]
    image = ax.imshow(data.to_numpy(dtype=float), aspect="auto", cmap="viridis")
    ax.set_xticks(range(data.shape[1]), [str(c) for c in data.columns], rotation=45, ha="right")
    ax.set_yticks(range(data.shape[0]), [str(i) for i in data.index])
    ax.set_xlabel("layer")
    ax.set_ylabel("client")
    ax.set_title(metric)
    if data.size <= 200:
        for (i, j), v in pd.DataFrame(data.to_numpy()).stack().items():
            ax.text(j, i, f"{v:.3g}", ha="center", va="center", color="w", fontsize=8)
    fig.colorbar(image, ax=ax)
    fig.tight_layout()
    return fig


__all__ = ["distortion_heatmap", "heatmap_data"]
