"""The registry of figures: name, caption, settings, data function and plot function.

A data function ``data(settings, workdir) -> DataFrame`` computes the tidy plot data (columns
``panel, series, kind, x, y, y_lo, y_hi``; see :mod:`figures._style`); a plot function
``plot(data, *, ax=None) -> Figure`` draws it and never calls ``show`` or ``savefig``.
``settings(quick)`` returns the JSON-ready configuration of a figure (with its ``seeds``).
A figure whose caption states a trend also has ``trends(data) -> list[Trend]``
(:mod:`figures._trend`, written to the manifest) and ``describe(records) -> str``, the
sentences of the caption that come from those records.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
from matplotlib.figure import Figure

from figures._trend import Trend

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
    trends : callable, optional
        ``trends(data) -> list[Trend]``: the computed statements of the caption.
    describe : callable, optional
        ``describe(records) -> str``: the caption's sentences about those records.
    """

    name: str
    caption: str
    settings: Callable[[bool], Settings]
    data: DataFunction
    plot: PlotFunction
    trends: Callable[[pd.DataFrame], list[Trend]] | None = None
    describe: Callable[[list[Trend]], str] | None = None

    def records(self, data: pd.DataFrame) -> list[Trend]:
        """The trend records of ``data`` (none for a figure without ``trends``)."""
        return [] if self.trends is None else list(self.trends(data))

    def render_caption(self, records: list[Trend]) -> str:
        """The fixed caption followed by the sentences rendered from ``records``."""
        if self.describe is None:
            return self.caption
        return f"{self.caption} {self.describe(records)}".strip()


REGISTRY: dict[str, FigureSpec] = {}
# Display order (the theory first, then the PFT comparisons).
ORDER: tuple[str, ...] = (
    "lemma-4.3", "thm-4.4", "thm-4.5", "kumar", "tradeoff", "distortion", "flooding",
    "frontier",
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
    import figures.distortion_figures  # noqa: F401
    import figures.frontier_figures  # noqa: F401
    import figures.kumar_figures  # noqa: F401
    import figures.pft_figures  # noqa: F401
    import figures.theory_figures  # noqa: F401
    import figures.thm45_figures  # noqa: F401
