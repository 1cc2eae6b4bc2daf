"""Private: one fused pass that frames a chunk of rows and takes their squared norms.

The debiased CKA needs, for every framed row w_i = (x_i - shift) 2**-exp, both w_i itself (for
the products) and a_i = ||w_i||^2 (for the row statistics). numpy needs two passes over the
chunk for that (the subtraction, then ``einsum('ij,ij->i')``), each one a full trip through
memory at the widths where CKA is slow; a compiled loop does both while the row is in cache.
The loop is compiled by numba on first use (cached on disk); without numba, or for inputs the
loop does not take (non-contiguous rows, a scale outside the dtype's normal range), the numpy
passes give the same w and the same a_i up to the order of the float64 summation. The biased
CKA takes the same pass and ignores the norms (measured faster than numpy's subtraction alone).
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np

from empirical._numerics import Frame, centred_rows

numba: Any
try:  # numba is a dependency; the numpy passes keep the metric usable where it is missing
    import numba
except ImportError:  # pragma: no cover - exercised where numba is not installed
    numba = None


def _frame_rows_loop(x: Any, shift: Any, scale: Any, out: Any, norms: Any) -> None:
    """out[i, j] = (x[i, j] - shift[j]) * scale in x's dtype; norms[i] = sum_j out[i, j]^2 (f64).

    ``scale`` is a power of two of x's dtype, so the product is exactly numpy's ``ldexp``.
    """
    n, d = x.shape
    for i in range(n):
        acc = 0.0
        for j in range(d):
            w = (x[i, j] - shift[j]) * scale
            out[i, j] = w
            wd = np.float64(w)
            acc += wd * wd
        norms[i] = acc


# reassoc lets the row sum be vectorized (lane-wise partial sums: a different float64 rounding,
# no less accurate); no 'nnan'/'ninf', so NaN and Inf propagate as IEEE arithmetic says.
_compiled = (
    None
    if numba is None
    else numba.njit(cache=True, nogil=True, boundscheck=False, fastmath={"reassoc", "contract"})(
        _frame_rows_loop
    )
)


def _power_of_two(exp: int, dtype: np.dtype) -> np.floating[Any] | None:
    """2**-exp as a normal number of ``dtype``, or None when it is not one."""
    info = np.finfo(dtype)
    if not info.minexp <= -exp < info.maxexp:
        return None
    return dtype.type(np.ldexp(1.0, -exp))


def frame_rows_numpy(frame: Frame, x: np.ndarray, out: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The reference passes: :func:`centred_rows` into ``out``, then the float64 row norms."""
    with np.errstate(over="ignore", invalid="ignore"):  # the fast path checks ranges later
        u = centred_rows(frame, x, out)
        norms = np.einsum("ij,ij->i", u, u, dtype=np.float64)
    return u, norms


def frame_rows(frame: Frame, x: np.ndarray, out: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Framed rows w_i = (x_i - shift) 2**-exp and their squared norms, in one pass.

    Parameters
    ----------
    frame : Frame
        Its ``shift`` and ``exp`` (None counts as 0), as in :func:`centred_rows`.
    x : ndarray of shape (m, d), float32 or float64
    out : ndarray of shape (>= m, d), x's dtype
        Buffer the framed rows are written into (may not overlap ``x``).

    Returns
    -------
    w : ndarray of shape (m, d)
        A view of ``out``, holding exactly what :func:`centred_rows` returns.
    norms : ndarray of shape (m,), float64
        ||w_i||^2, summed in float64 (each square of a float32 w is exact there).
    """
    buf = out[: x.shape[0]]
    shift = frame.shift.astype(x.dtype)
    scale = _power_of_two(frame.exp or 0, x.dtype)
    loop = _compiled
    usable = (
        scale is not None
        and x.flags.c_contiguous
        and buf.flags.c_contiguous
        and buf.dtype == x.dtype
        and x.size > 0
    )
    if loop is None or not usable:
        return frame_rows_numpy(frame, x, out)
    norms = np.empty(x.shape[0])
    try:
        loop(x, shift, scale, buf, norms)
    except Exception as err:  # compiling failed (no writable cache folder, say): numpy instead
        _disable(err)
        return frame_rows_numpy(frame, x, out)
    return buf, norms


def _disable(err: Exception) -> None:
    """Use the numpy passes from now on in this process, and say why once."""
    global _compiled
    _compiled = None
    warnings.warn(
        f"exact CKA falls back to numpy passes (slower, same numbers): numba failed with "
        f"{type(err).__name__}: {err}",
        RuntimeWarning,
        stacklevel=3,
    )


__all__ = ["frame_rows", "frame_rows_numpy"]
