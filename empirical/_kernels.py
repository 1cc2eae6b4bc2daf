"""Private: compiled single passes of exact CKA (framing a chunk; reducing a d x d sum).

The debiased CKA needs, for every framed row w_i = (x_i - shift) 2**-exp, both w_i itself (for
the products) and a_i = ||w_i||^2 (for the row statistics). numpy needs two passes over the
chunk for that (the subtraction, then ``einsum('ij,ij->i')``), each one a full trip through
memory at the widths where CKA is slow; a compiled loop does both while the row is in cache.
The loop is compiled by numba on first use (cached on disk); without numba, or for inputs the
loop does not take (non-contiguous rows, a scale outside the dtype's normal range), the numpy
passes give the same w and the same a_i up to the order of the float64 summation. The biased
CKA takes the same pass and ignores the norms (measured faster than numpy's subtraction alone).

The second loop reduces a d1 x d2 sum S of the input dtype to (||S||_F^2, S b) in float64 in
one read of S; numpy needs a float64 copy of each block of rows and then two passes over it
(:func:`square_and_apply_numpy`, the reference, kept for the same cases as above).
"""

from __future__ import annotations

import warnings
from collections.abc import Iterator
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


def _square_apply_loop(c: Any, b: Any, cb: Any) -> float:
    """cb[i] = sum_j c[i, j] b[j] and the return value sum_ij c[i, j]^2, both in float64."""
    total = 0.0
    for i in range(c.shape[0]):
        sq = 0.0
        dot = 0.0
        for j in range(c.shape[1]):
            v = np.float64(c[i, j])
            sq += v * v
            dot += v * b[j]
        cb[i] = dot
        total += sq
    return total


def _jit(fn: Any) -> Any:
    # reassoc lets the row sums be vectorized (lane-wise partial sums: a different float64
    # rounding, no less accurate); no 'nnan'/'ninf', so NaN and Inf propagate as IEEE says.
    if numba is None:
        return None
    return numba.njit(cache=True, nogil=True, boundscheck=False, fastmath={"reassoc", "contract"})(
        fn
    )


_compiled = _jit(_frame_rows_loop)
_compiled_square = _jit(_square_apply_loop)


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


BLOCK = 1 << 16
"""Entries of a float32 sum converted to float64 at a time by the numpy reference (512 KiB, in
one buffer reused block after block): no float64 copy of a whole d x d matrix is built."""


def _row_blocks(c: np.ndarray) -> Iterator[tuple[slice, np.ndarray]]:
    """Row blocks of ``c`` (d1, d2) as float64 arrays (views when ``c`` is float64).

    A block is overwritten by the next one: use it before asking for the next.
    """
    if c.dtype == np.float64:
        yield slice(0, c.shape[0]), c
        return
    step = max(1, BLOCK // max(c.shape[1], 1))
    buf = np.empty((min(step, c.shape[0]), c.shape[1]))
    for i in range(0, c.shape[0], step):
        rows = c[i : i + step]
        blk = buf[: rows.shape[0]]
        np.copyto(blk, rows)
        yield slice(i, i + step), blk


def square_and_apply_numpy(c: np.ndarray, b: np.ndarray) -> tuple[float, np.ndarray]:
    """The reference of :func:`square_and_apply`: float64 row blocks, ``vdot`` and GEMV."""
    sq, cb = 0.0, np.empty(c.shape[0])
    for rows, blk in _row_blocks(c):
        sq += float(np.vdot(blk, blk))
        cb[rows] = blk @ b
    return sq, cb


def square_and_apply(c: np.ndarray, b: np.ndarray) -> tuple[float, np.ndarray]:
    """(||c||_F^2, c b) in float64, in one read of ``c``.

    Parameters
    ----------
    c : ndarray of shape (d1, d2), float32 or float64
        A d x d sum of :class:`~empirical._cka_state.CKAState` (any float dtype; other layouts
        take the numpy reference).
    b : ndarray of shape (d2,), float64

    Returns
    -------
    sq : float
        sum_ij c_ij^2, each entry widened to float64 before it is squared.
    cb : ndarray of shape (d1,), float64
        c b, likewise in float64. Both equal :func:`square_and_apply_numpy` up to the order of
        the float64 summation.
    """
    loop = _compiled_square
    b64 = np.ascontiguousarray(b, dtype=np.float64)
    usable = (
        c.ndim == 2
        and c.dtype in (np.float32, np.float64)
        and c.flags.c_contiguous
        and c.shape[1] == b64.shape[0]
    )
    if loop is None or not usable or c.size == 0:
        return square_and_apply_numpy(c, b64)
    cb = np.empty(c.shape[0])
    try:
        sq = float(loop(c, b64, cb))
    except Exception as err:  # compiling failed: numpy instead (see frame_rows)
        _disable(err)
        return square_and_apply_numpy(c, b64)
    return sq, cb


def _disable(err: Exception) -> None:
    """Use the numpy passes from now on in this process, and say why once."""
    global _compiled, _compiled_square
    _compiled = _compiled_square = None
    warnings.warn(
        f"exact CKA falls back to numpy passes (slower, same numbers): numba failed with "
        f"{type(err).__name__}: {err}",
        RuntimeWarning,
        stacklevel=3,
    )


__all__ = ["frame_rows", "frame_rows_numpy", "square_and_apply", "square_and_apply_numpy"]
