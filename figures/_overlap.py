"""Series that hide each other, and mathtext labels: helpers of :mod:`figures._style`."""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np
import pandas as pd

# Two points closer than this fraction of the panel's data range (in x and in y) are drawn on
# top of each other: a 5-point marker is about 2% of a 3-inch axis.
COINCIDE_FRACTION = 0.01
# A line counts as lying on another when at least this fraction of its points does.
LINE_FRACTION = 0.5

_SUB = re.compile(r"(?P<nucleus>\S*?)(?P<op>[_^])(?P<arg>\{[^{}]*\}|[A-Za-z0-9+\-]+)")
_ZERO = re.compile(r"(?<![A-Za-z])(?P<letter>[A-Z])0(?![0-9.])")


@dataclass(frozen=True)
class Coincidence:
    """A series drawn on top of an earlier one.

    Attributes
    ----------
    series : str
        The later series (drawn on top).
    under : str
        The earlier series it covers.
    fraction : float
        Fraction of ``series``' points that lie on ``under`` (1.0: it hides it entirely).
    """

    series: str
    under: str
    fraction: float


def _span(values: np.ndarray) -> float:
    finite = values[np.isfinite(values)]
    spread = float(np.ptp(finite)) if finite.size else 0.0
    return spread if spread > 0 else max(float(np.max(np.abs(finite), initial=0.0)), 1.0)


def _on_markers(px: np.ndarray, py: np.ndarray, qx: np.ndarray, qy: np.ndarray) -> np.ndarray:
    """Whether each point p has some point q within the tolerance (scaled coordinates)."""
    dist = np.maximum(np.abs(px[:, None] - qx[None, :]), np.abs(py[:, None] - qy[None, :]))
    return np.asarray(np.min(dist, axis=1, initial=np.inf) <= COINCIDE_FRACTION)


def _on_line(px: np.ndarray, py: np.ndarray, qx: np.ndarray, qy: np.ndarray) -> np.ndarray:
    """Whether the polyline through q (sorted by x) passes within the tolerance of each p."""
    if qx.size == 0:
        return np.zeros(px.shape, dtype=bool)
    order = np.argsort(qx, kind="stable")
    qx, qy = qx[order], qy[order]
    inside = (px >= qx[0] - COINCIDE_FRACTION) & (px <= qx[-1] + COINCIDE_FRACTION)
    return np.asarray(inside & (np.abs(np.interp(px, qx, qy) - py) <= COINCIDE_FRACTION))


def coincident_series(data: pd.DataFrame, panel: str) -> list[Coincidence]:
    """Which series of a panel lie on an earlier one, in drawing order.

    A marker series lies on an earlier marker series where its points are within
    :data:`COINCIDE_FRACTION` of the panel's x and y ranges of one of that series' points; a
    line lies on an earlier line where at least :data:`LINE_FRACTION` of its points are that
    close to it. A marker on a line stays visible and is not reported.

    Parameters
    ----------
    data : DataFrame
        Tidy plot data (columns ``panel, series, kind, x, y``).
    panel : str

    Returns
    -------
    list of Coincidence
        One per covering series: the earlier series it covers most.

    Examples
    --------
    >>> frame = pd.DataFrame({"panel": "p", "series": ["lpft", "lp"], "kind": "marker",
    ...                       "x": [1.0, 1.0], "y": [2.0, 2.0]})
    >>> coincident_series(frame, "p")
    [Coincidence(series='lp', under='lpft', fraction=1.0)]
    """
    rows = data[data["panel"] == panel]
    sx = _span(rows["x"].to_numpy(dtype=float))
    sy = _span(rows["y"].to_numpy(dtype=float))
    drawn: list[tuple[str, bool, np.ndarray, np.ndarray]] = []
    found: list[Coincidence] = []
    for series, block in rows.groupby("series", sort=False):
        x = block["x"].to_numpy(dtype=float) / sx
        y = block["y"].to_numpy(dtype=float) / sy
        keep = np.isfinite(x) & np.isfinite(y)
        x, y = x[keep], y[keep]
        is_marker = str(block["kind"].iloc[0]) == "marker"
        best: Coincidence | None = None
        for under, under_marker, ux, uy in drawn:
            if x.size == 0 or is_marker != under_marker:
                continue
            hits = _on_markers(x, y, ux, uy) if is_marker else _on_line(x, y, ux, uy)
            fraction = float(np.mean(hits))
            enough = fraction > 0 if is_marker else fraction >= LINE_FRACTION
            if enough and (best is None or fraction > best.fraction):
                best = Coincidence(str(series), under, fraction)
        if best is not None:
            found.append(best)
        drawn.append((str(series), is_marker, x, y))
    return found


def _convert(match: re.Match[str]) -> str:
    nucleus, op, arg = match["nucleus"], match["op"], match["arg"]
    letters = re.search(r"[A-Za-z]*$", nucleus)
    tail = letters.group(0) if letters else ""
    if len(tail) >= 3 and re.fullmatch(r"[A-Za-z]{3,}", arg):
        return match.group(0)  # an identifier such as global_loss: left as it is
    body = arg[1:-1] if arg.startswith("{") else arg
    return f"{nucleus}${op}{{{body}}}$"


def math_label(text: str) -> str:
    r"""Write raw subscripts and superscripts (``Δ_c``, ``B^T``, ``B0``) as mathtext.

    Text that already holds ``$`` is returned unchanged, and so are identifiers such as
    ``global_loss`` (both sides of the underscore three letters or longer).

    Parameters
    ----------
    text : str

    Returns
    -------
    str

    Examples
    --------
    >>> math_label("‖B − B0‖_F (feature units)")
    '‖B − B$_{0}$‖$_{F}$ (feature units)'
    >>> math_label("e_{m+i} and global_loss")
    'e$_{m+i}$ and global_loss'
    """
    if "$" in text or ("_" not in text and "^" not in text and "0" not in text):
        return text
    text = _SUB.sub(_convert, text)
    parts = re.split(r"(\$[^$]*\$)", text)
    return "".join(p if p.startswith("$") else _ZERO.sub(r"\g<letter>$_{0}$", p) for p in parts)
