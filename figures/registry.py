"""The registry of figures: name, caption, settings, data function and plot function.

A data function ``data(settings, workdir) -> DataFrame`` computes the tidy plot data (columns
``panel, series, kind, x, y, lo, hi``; see :mod:`figures._style`); a plot function
``plot(data, *, ax=None) -> Figure`` draws it and never calls ``show`` or ``savefig``.
``settings(quick)`` returns the JSON-ready configuration of a figure (with its ``seeds``).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
from matplotlib.figure import Figure

Settings = dict[str, Any]
DataFunction = Callable[[Mapping[str, Any], Path], pd.DataFrame]
PlotFunction = Callable[..., Figure]


@dataclass(frozen=True)
class FigureSpec:
    """One registered figure.

    Parameters
    ----------
    name : str
        Command-line name (``--only NAME``) and file stem.
    caption : str
        What the reader should see (written to the manifest).
    settings : callable
        ``settings(quick: bool) -> dict``: JSON-ready configuration including ``seeds``.
    data : callable
        ``data(settings, workdir) -> DataFrame``; ``workdir`` holds resumable caches.
    plot : callable
        ``plot(data, *, ax=None) -> Figure``.
    """

    name: str
    caption: str
    settings: Callable[[bool], Settings]
    data: DataFunction
    plot: PlotFunction


REGISTRY: dict[str, FigureSpec] = {}
# Display order (the theory first, then the PFT comparisons).
ORDER: tuple[str, ...] = (
    "lemma-4.3", "thm-4.4", "thm-4.5", "kumar", "tradeoff", "distortion", "flooding",
)  # fmt: skip


def register(spec: FigureSpec) -> FigureSpec:
    """Add a figure to :data:`REGISTRY` (names are unique)."""
    if spec.name in REGISTRY:
        raise ValueError(f"figure name={spec.name!r} is already registered")
    REGISTRY[spec.name] = spec
    return spec


def figure_names() -> list[str]:
    """Names of every registered figure, in registration order."""
    _load()
    rank = {name: i for i, name in enumerate(ORDER)}
    return sorted(REGISTRY, key=lambda name: (rank.get(name, len(ORDER)), name))


def get_figure(name: str) -> FigureSpec:
    """The registered figure ``name``; a ValueError names the value and the choices."""
    _load()
    if name not in REGISTRY:
        raise ValueError(f"figure={name!r} is invalid: expected one of {', '.join(REGISTRY)}")
    return REGISTRY[name]


def _load() -> None:
    """Import the modules that register figures (once)."""
    import figures.kumar_figures  # noqa: F401
    import figures.pft_figures  # noqa: F401
    import figures.stepsize_figures  # noqa: F401
    import figures.theory_figures  # noqa: F401
