"""One colour, marker and legend name per method, in every figure and panel.

A series whose name starts with a method (``ft``, ``LP-FT``, ``FT η=0.1 sim``: see
:func:`series_method`) is drawn in that method's colour and marker from :data:`METHOD_STYLE`;
several series of one method in a panel get shades of its hue.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from matplotlib.colors import to_hex, to_rgb

# seaborn's "colorblind" palette (Wong-like), fixed here so figures do not depend on seaborn.
PALETTE: tuple[str, ...] = (
    "#0173b2", "#de8f05", "#029e73", "#d55e00", "#cc78bc",
    "#ca9161", "#fbafe4", "#949494", "#ece133", "#56b4e9",
)  # fmt: skip
MARKERS: tuple[str, ...] = ("o", "s", "^", "D", "v", "P", "X", "*", "<", ">")


@dataclass(frozen=True)
class MethodStyle:
    """How one method is drawn everywhere: colour, marker and legend name."""

    color: str
    marker: str
    name: str
    hollow: bool = False  # flooded variants: open markers in the method's colour
    dashes: bool = False


# One row per method of synthetic/ and empirical/experiment/ (``fedavg`` is the real global
# model, ``global`` the linear one: one style). Flood variants keep the hue, with open markers.
METHOD_STYLE: dict[str, MethodStyle] = {
    "global": MethodStyle("#949494", "X", "global"),
    "fedavg": MethodStyle("#949494", "X", "FedAvg"),
    "ft": MethodStyle("#0173b2", "o", "FT"),
    "lp": MethodStyle("#029e73", "s", "LP"),
    "lpft": MethodStyle("#000000", "D", "LP-FT"),
    "proximal": MethodStyle("#cc78bc", "^", "proximal"),
    "sparse": MethodStyle("#de8f05", "v", "sparse"),
    "soup": MethodStyle("#ca9161", "P", "soup"),
    "lss": MethodStyle("#56b4e9", "<", "LSS"),
    "split": MethodStyle("#d55e00", ">", "split"),
    "align": MethodStyle("#7b3294", "*", "align"),
    "ft-flood": MethodStyle("#0173b2", "o", "FT + flooding", hollow=True, dashes=True),
    "lpft-flood": MethodStyle("#000000", "D", "LP-FT + flooding", hollow=True, dashes=True),
}
_ALIASES = {"lp-ft": "lpft", "ft+flood": "ft-flood", "lp-ft+flood": "lpft-flood"}
_ROLES = ("theory", "sim", "simulation", "matched")


def series_method(series: str) -> tuple[str | None, str]:
    """The method a series draws and its qualifier, or ``(None, "")``.

    A series is a method's when its first word is a key of :data:`METHOD_STYLE` (or ``LP-FT``;
    case-insensitive) and every other word is a parameter (``η=0.1``) or a role (``theory``,
    ``sim``). ``"FT: inside rowspace(X)"`` or ``"LP-FT lower (sim)"`` are not method series.

    Examples
    --------
    >>> series_method("FT η=0.25 theory")
    ('ft', 'η=0.25')
    >>> series_method("lpft")
    ('lpft', '')
    >>> series_method("Δ (FT)")
    (None, '')
    """
    words = series.split()
    if not words:
        return None, ""
    head = words[0].lower()
    method = _ALIASES.get(head, head)
    if method not in METHOD_STYLE:
        return None, ""
    params = [w for w in words[1:] if w.lower() not in _ROLES]
    if any("=" not in w for w in params):
        return None, ""
    return method, " ".join(params)


def _shade(color: str, index: int, count: int) -> str:
    """The ``index``-th of ``count`` shades of one hue (dark to light), the base in the middle."""
    if count <= 1:
        return color
    t = -0.45 + 0.9 * index / (count - 1)  # < 0 darker, > 0 lighter
    rgb = np.asarray(to_rgb(color))
    if np.all(rgb == 0.0):  # black: shades of grey
        grey = 0.55 * index / (count - 1)
        return to_hex((grey, grey, grey))
    mixed = rgb * (1 + t) if t < 0 else rgb + (1 - rgb) * t
    r, g, b = (float(v) for v in np.clip(mixed, 0.0, 1.0))
    return to_hex((r, g, b))


def series_styles(
    data: pd.DataFrame, panel: str, colors: dict[str, str] | None = None,
    markers: dict[str, str] | None = None,
) -> dict[str, dict[str, Any]]:  # fmt: skip
    """Colour and marker of each series of one panel (method series from the table).

    Parameters
    ----------
    data : DataFrame
        Tidy plot data (:func:`tidy`).
    panel : str
    colors : dict, optional
        Series -> colour for the series that are not a method's.
    markers : dict, optional
        Series -> marker for the series that are not a method's (so that one category keeps
        its marker in every panel).

    Returns
    -------
    dict of str to dict
        ``{"color", "marker", "hollow", "dashes"}`` per series, in order of appearance.
    """
    shown = (data["panel"] == panel) & (data["kind"] != "sample")
    names = list(dict.fromkeys(data.loc[shown, "series"].astype(str)))
    qualifiers: dict[str, list[str]] = {}
    for name in names:
        method, qualifier = series_method(name)
        if method is not None:
            qualifiers.setdefault(method, [])
            if qualifier not in qualifiers[method]:
                qualifiers[method].append(qualifier)
    out: dict[str, dict[str, Any]] = {}
    for index, name in enumerate(names):
        method, qualifier = series_method(name)
        if method is None:
            color = (colors or {}).get(name, PALETTE[index % len(PALETTE)])
            marker = (markers or {}).get(name, MARKERS[index % len(MARKERS)])
            out[name] = {"color": color, "marker": marker,
                         "hollow": False, "dashes": False}  # fmt: skip
            continue
        style = METHOD_STYLE[method]
        levels = qualifiers[method]
        out[name] = {"color": _shade(style.color, levels.index(qualifier), len(levels)),
                     "marker": style.marker, "hollow": style.hollow,
                     "dashes": style.dashes}  # fmt: skip
    return out


__all__ = [
    "MARKERS", "METHOD_STYLE", "MethodStyle", "PALETTE", "series_method", "series_styles",
]  # fmt: skip
