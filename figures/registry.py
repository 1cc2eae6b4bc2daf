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

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import pandas as pd
from matplotlib.figure import Figure

Settings = dict[str, Any]


class TrendRecord(Protocol):
    """A computed statement of a caption (:class:`figures._trend.Trend` or a figure's own)."""

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready record for the manifest."""
        ...


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
    trends: Callable[[pd.DataFrame], Sequence[TrendRecord]] | None = None
    describe: Callable[[Any], str] | None = None

    def records(self, data: pd.DataFrame) -> list[TrendRecord]:
        """The trend records of ``data`` (none for a figure without ``trends``)."""
        return [] if self.trends is None else list(self.trends(data))

    def render_caption(self, records: list[TrendRecord]) -> str:
        """The fixed caption followed by the sentences rendered from ``records``."""
        if self.describe is None:
            return self.caption
        return f"{self.caption} {self.describe(records)}".strip()


# The modules that declare figures, each in a ``SPECS`` tuple: the one explicit list of figures.
FIGURE_MODULES: tuple[str, ...] = (
    "figures.theory_figures",
    "figures.thm45_figures",
    "figures.kumar_figures",
    "figures.pft_figures",
    "figures.distortion_figures",
    "figures.frontier_figures",
    "figures.split_depth_figures",
    "figures.stepsize_figures",
)
# Display order (the theory first, then the PFT comparisons).
ORDER: tuple[str, ...] = (
    "lemma-4.3", "thm-4.4", "thm-4.5", "kumar", "tradeoff", "distortion", "flooding",
    "frontier", "step-size", "split-depth",
)  # fmt: skip
# Studies built only when named (``--only split-depth``): their full settings train hundreds of
# small networks (split-depth: 2 shifts x 3 cuts x 3 betas x 2 server modes x 3 seeds), far
# beyond the budget of the default run.
ON_REQUEST: tuple[str, ...] = ("split-depth",)
REGISTRY: dict[str, FigureSpec] = {}


def figure_names(*, on_request: bool = True) -> list[str]:
    """Names of every figure, in display order.

    With ``on_request=False``, without :data:`ON_REQUEST`: the default set of the command.
    """
    _load()
    rank = {name: i for i, name in enumerate(ORDER)}
    names = sorted(REGISTRY, key=lambda name: (rank.get(name, len(ORDER)), name))
    return [n for n in names if on_request or n not in ON_REQUEST]


def get_figure(name: str) -> FigureSpec:
    """The figure ``name``; a ValueError names the value and the choices."""
    _load()
    if name not in REGISTRY:
        raise ValueError(f"figure={name!r} is invalid: expected one of {', '.join(figure_names())}")
    return REGISTRY[name]


def _load() -> None:
    """Fill :data:`REGISTRY` from the ``SPECS`` of :data:`FIGURE_MODULES` (once; names unique)."""
    if REGISTRY:
        return
    import importlib

    specs: dict[str, FigureSpec] = {}
    for module in FIGURE_MODULES:
        for spec in importlib.import_module(module).SPECS:
            if spec.name in specs:
                raise ValueError(f"figure name={spec.name!r} is declared twice")
            specs[spec.name] = spec
    REGISTRY.update(specs)
