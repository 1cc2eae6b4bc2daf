"""Private numerics of the representation metrics: input checks, reference shift, scaling.

Every metric sees its rows through a :class:`Frame`: a fixed float64 reference mean ``shift``
(exactly representable in the input dtype) and a power-of-two exponent ``exp``, so that the
rows enter the products as w = (x - shift) * 2**-exp. Subtracting a reference near the mean
removes the cancellation that a large offset causes; the power-of-two scale keeps every
product and every later sum of squares far from overflow and underflow, and is exact (it only
changes the binary exponent). The products run in the input dtype and are accumulated in
float64 by the callers.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

BAND = 16
"""Rows are rescaled only when their largest |x - shift| leaves [2**-BAND, 2**BAND] relative to
the frame's scale. With |w| <= 2**16, float32 products of up to CHUNK rows (and the row-norm
sums of the debiased estimator, degree 3) stay below 2**100 < float32 max."""

CHUNK = 16384
"""Rows per product in the input dtype before the result is added to the float64 sums."""

INPUT_NOISE = 4.0
"""Rows whose centred spread is below INPUT_NOISE x eps(dtype) x |x| are constant: they differ
only by the rounding of the stored values."""

PRODUCT_RTOL = 1e-5
"""Largest accepted estimate of the relative rounding error of the centred second moments."""


def as_features(x: Any, name: str) -> np.ndarray:
    """Return ``x`` as a 2-D real floating numpy array (no copy when possible).

    Parameters
    ----------
    x : ndarray or Tensor of shape (n, d)
        Features, one row per sample. Integers and booleans become float64, float16 and
        bfloat16 become float32; float32 and float64 are kept.
    name : str
        Name of the argument, used in error messages.

    Returns
    -------
    ndarray of shape (n, d), float32 or float64

    Raises
    ------
    ValueError
        Complex, non-numeric or non-2-D input.
    TypeError
        Neither a numpy array nor a torch tensor.
    """
    if isinstance(x, torch.Tensor):
        t = x.detach().to("cpu")
        if t.is_complex():
            raise ValueError(
                f"{name} has complex dtype {t.dtype}: expected real features (pass .real or "
                ".abs() explicitly)"
            )
        if t.dtype in (torch.float16, torch.bfloat16):
            t = t.to(torch.float32)
        elif not t.is_floating_point():
            t = t.to(torch.float64)
        a = t.numpy()
    elif isinstance(x, np.ndarray):
        a = x
    else:
        raise TypeError(f"{name} must be a numpy array or a torch tensor, got {type(x).__name__}")
    if np.iscomplexobj(a):
        raise ValueError(
            f"{name} has complex dtype {a.dtype}: expected real features (pass .real or "
            "abs() explicitly)"
        )
    if a.dtype.kind in "biu":
        a = a.astype(np.float64)
    elif a.dtype == np.float16:
        a = a.astype(np.float32)
    elif a.dtype not in (np.float32, np.float64):
        raise ValueError(f"{name} has dtype {a.dtype}: expected real numbers (float32/float64)")
    if a.ndim != 2:
        raise ValueError(f"{name} must have shape (n, d), got shape {a.shape}")
    return np.ascontiguousarray(a)


def check_finite(a: np.ndarray, name: str) -> None:
    """Raise a ValueError naming ``name`` when ``a`` holds NaN or Inf."""
    if not np.isfinite(a).all():
        raise ValueError(f"{name} contains NaN or Inf values; metrics need finite features")


def check_rows(x: np.ndarray, y: np.ndarray, *, same_dim: bool = False) -> None:
    """Raise when ``x`` and ``y`` are not paired row by row (or differ in width if asked)."""
    if x.shape[0] != y.shape[0]:
        raise ValueError(
            f"X and Y must have the same number of rows (samples), got {x.shape[0]} and "
            f"{y.shape[0]}"
        )
    if same_dim and x.shape[1] != y.shape[1]:
        raise ValueError(
            f"X and Y must have the same number of columns, got {x.shape[1]} and {y.shape[1]}"
        )


def eps(dtype: np.dtype) -> float:
    """Unit roundoff of a float dtype."""
    return float(np.finfo(dtype).eps)


@dataclass
class Frame:
    """Reference shift and power-of-two scale of one input (see the module docstring).

    ``shift`` (d,) float64, exactly representable in ``dtype``; ``exp`` the current exponent,
    None until a row different from ``shift`` was seen.
    """

    shift: np.ndarray
    dtype: np.dtype
    name: str
    exp: int | None = None


SHIFT_ROWS = 1024
"""Rows whose float64 mean is the reference shift (any shift is exact; near the mean it avoids
cancellation)."""


def new_frame(x: np.ndarray, name: str, rows: int = SHIFT_ROWS) -> Frame:
    """Frame from the first ``rows`` rows of ``x``.

    The shift is their float64 mean (rounded to ``x``'s dtype), the exponent that of their
    largest |x - shift| (0 when within 2**BAND of 1), taken column by column as
    max(max_i x_ij - s_j, s_j - min_i x_ij): three reductions of the rows, no temporary.

    Raises
    ------
    ValueError
        The rows hold NaN or Inf (the message names ``name``).
    """
    head = x[:rows]
    with np.errstate(over="ignore", invalid="ignore"):
        mean = head.mean(0, dtype=np.float64)  # float64 sums, no copy; NaN and Inf propagate
    if not np.isfinite(mean).all():
        check_finite(head, name)
        # |x| near the dtype's max: the halves do not overflow
        mean = np.ldexp(np.ldexp(head.astype(np.float64), -2).mean(0), 2)
    shift = mean.astype(x.dtype)
    frame = Frame(shift=shift.astype(np.float64), dtype=x.dtype, name=name)
    if head.size == 0:
        return frame
    with np.errstate(over="ignore", invalid="ignore"):
        above = head.max(0).astype(np.float64) - frame.shift
        below = frame.shift - head.min(0).astype(np.float64)
        amax = max(float(above.max()), float(below.max()))
    if amax > 0.0:
        e = math.frexp(amax)[1]
        frame.exp = 0 if abs(e) <= BAND else e
    return frame


SAFE_SQUARES = {np.dtype(np.float32): 2.0**60, np.dtype(np.float64): 2.0**400}
"""A chunk's products are used as computed when its largest column sum of squares lies in
[1 / SAFE, SAFE] (frame units): then no product, row-norm sum or later float64 square can
overflow or underflow. Otherwise the chunk is redone with its own scale."""


def centred_rows(frame: Frame, x: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
    """Return w = (x - shift) * 2**-exp without any check (fast path; see :func:`in_range`)."""
    buf = out[: x.shape[0]] if out is not None else None
    with np.errstate(over="ignore", invalid="ignore"):
        u = np.subtract(x, frame.shift.astype(x.dtype), out=buf)
    if frame.exp:
        np.ldexp(u, -frame.exp, out=u)
    return u


def in_range(squares: float, dtype: np.dtype) -> bool:
    """Whether a largest sum of squares (float64) allows the fast path (SAFE_SQUARES)."""
    safe = SAFE_SQUARES[np.dtype(dtype)]
    return math.isfinite(squares) and 1.0 / safe <= squares <= safe


def _extremes(u: np.ndarray) -> float:
    if u.size == 0:
        return 0.0
    return max(float(u.max()), -float(u.min()))  # NaN propagates through max/min


def scaled_rows(
    frame: Frame, x: np.ndarray, out: np.ndarray | None = None
) -> tuple[np.ndarray, int]:
    """Rows of a chunk in the frame's units, w = (x - shift) * 2**-exp, in ``x``'s dtype.

    Parameters
    ----------
    frame : Frame
        Updated in place when the chunk needs a larger exponent.
    x : ndarray of shape (m, d)
    out : ndarray of shape (>= m, d), optional
        Buffer of ``x``'s dtype to write into (reused across chunks).

    Returns
    -------
    (ndarray of shape (m, d), int)
        w, and ``rescale`` <= 0: sums accumulated so far must be multiplied by
        2**(degree * rescale) to be in the (new) frame's units.

    Raises
    ------
    ValueError
        ``x`` contains NaN or Inf.
    """
    shift = frame.shift.astype(x.dtype)
    buf = out[: x.shape[0]] if out is not None else None
    u = np.subtract(x, shift, out=buf)
    e0 = 0
    amax = _extremes(u)
    if not math.isfinite(amax):
        check_finite(x, frame.name)
        # x - shift overflowed (|x| near the dtype's max): subtract the halves instead.
        u = np.subtract(np.ldexp(x, -1), np.ldexp(shift, -1), out=u)
        e0, amax = 1, _extremes(u)
    rescale = 0
    if amax == 0.0:
        return u, rescale
    e = math.frexp(amax)[1] + e0
    if frame.exp is None:
        frame.exp = 0 if abs(e) <= BAND else e
    elif e > frame.exp + BAND:
        rescale, frame.exp = frame.exp - e, e
    if e0 != frame.exp:
        np.ldexp(u, e0 - frame.exp, out=u)
    return u, rescale


def pow2_scaled(a: np.ndarray) -> tuple[np.ndarray, int]:
    """``a`` divided by the power of two just above max|a| (exact), and that exponent."""
    amax = float(np.abs(a).max()) if a.size else 0.0
    if amax == 0.0:
        return a, 0
    e = math.frexp(amax)[1]
    return np.ldexp(a, -e), e


__all__ = [
    "BAND",
    "CHUNK",
    "Frame",
    "as_features",
    "check_finite",
    "check_rows",
    "eps",
    "centred_rows",
    "in_range",
    "new_frame",
    "pow2_scaled",
    "scaled_rows",
]
