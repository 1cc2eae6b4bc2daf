"""Private: compiled single passes of exact CKA (framing a chunk; reducing a d x d sum).

The debiased CKA needs, for every framed row w_i = (x_i - shift) 2**-exp, both w_i itself (for
the products) and a_i = ||w_i||^2 (for the row statistics). numpy needs two passes over the
chunk for that (the subtraction, then ``einsum('ij,ij->i')``), each one a full trip through
memory at the widths where CKA is slow; a compiled loop does both while the row is in cache.
The loop is compiled by numba on first use (cached on disk); without numba, or for inputs the
loop does not take (non-contiguous rows, a scale outside the dtype's normal range), the numpy
passes give the same w and the same a_i up to the order of the float64 summation.

Exact CKA frames X and Y together (:func:`frame_pair`): row by row, four rows at a time, the
loop frames x_i and y_i and, while they are in cache, adds them to the column sums (and, for
the debiased CKA, the sums weighted by a_i and b_i) in float64. numpy takes them as a GEMM
with one coefficient row per sum after the chunk is framed: one more read of the framed chunk,
which at n = 50,000, d = 512 comes from memory (the chunk is larger than the cache; measured
about 10 ms of 45 for the framing and the sums together). The biased CKA takes the same pass
without the weighted sums.

A third loop reduces a d1 x d2 sum S of the input dtype to (||S||_F^2, S b) in float64 in
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


def _frame_row(x: Any, shift: Any, scale: Any, out: Any, i: int) -> float:
    """out[i, j] = (x[i, j] - shift[j]) * scale in x's dtype; returns sum_j out[i, j]^2 (f64).

    ``scale`` is a power of two of x's dtype, so the product is exactly numpy's ``ldexp``.
    """
    acc = 0.0
    for j in range(x.shape[1]):
        w = (x[i, j] - shift[j]) * scale
        out[i, j] = w
        wd = np.float64(w)
        acc += wd * wd
    return acc


def _frame_rows_loop(x: Any, shift: Any, scale: Any, out: Any, norms: Any) -> None:
    """Every row of ``x`` framed into ``out`` (see :func:`_frame_row`), its norm in ``norms``."""
    for i in range(x.shape[0]):
        norms[i] = _frame_row_c(x, shift, scale, out, i)


def _add_rows(w: Any, i: int, r: int, a: Any, b: Any, acc: Any, weighted: bool) -> None:
    """Add the float64 sums of rows i..i+r-1 of ``w`` to ``acc``.

    acc[0] += sum_k w_k; with ``weighted`` also acc[1] += sum_k a_k w_k and acc[2] += sum_k
    b_k w_k. r = 4 is unrolled: each entry of ``acc`` is then read and written once per four
    rows (the loop is bound by those accesses, not by the flops).
    """
    if r == 4:
        a0, a1, a2, a3 = a[i], a[i + 1], a[i + 2], a[i + 3]
        b0, b1, b2, b3 = b[i], b[i + 1], b[i + 2], b[i + 3]
        for j in range(w.shape[1]):
            w0, w1 = np.float64(w[i, j]), np.float64(w[i + 1, j])
            w2, w3 = np.float64(w[i + 2, j]), np.float64(w[i + 3, j])
            acc[0, j] += (w0 + w1) + (w2 + w3)
            if weighted:
                acc[1, j] += (a0 * w0 + a1 * w1) + (a2 * w2 + a3 * w3)
                acc[2, j] += (b0 * w0 + b1 * w1) + (b2 * w2 + b3 * w3)
        return
    for k in range(i, i + r):
        for j in range(w.shape[1]):
            wk = np.float64(w[k, j])
            acc[0, j] += wk
            if weighted:
                acc[1, j] += a[k] * wk
                acc[2, j] += b[k] * wk


def _frame_pair_loop(
    x: Any, sx: Any, cx: Any, y: Any, sy: Any, cy: Any, u: Any, v: Any,
    a: Any, b: Any, su: Any, sv: Any, weighted: bool,
) -> None:  # fmt: skip
    """Frame paired rows and add their float64 sums, four rows at a time while in cache.

    x_i -> u_i and y_i -> v_i with their norms a_i, b_i as :func:`_frame_rows_loop` does on
    each side; the sums of u go to ``su`` and those of v to ``sv`` (see :func:`_add_rows`).
    """
    n = x.shape[0]
    for i in range(0, n, 4):
        r = min(4, n - i)
        for k in range(i, i + r):
            a[k] = _frame_row_c(x, sx, cx, u, k)
            b[k] = _frame_row_c(y, sy, cy, v, k)
        _add_rows_c(u, i, r, a, b, su, weighted)
        _add_rows_c(v, i, r, a, b, sv, weighted)


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


# The helpers first: a compiled loop calls the compiled helpers by these names.
_frame_row_c = _jit(_frame_row)
_add_rows_c = _jit(_add_rows)
_compiled = _jit(_frame_rows_loop)
_compiled_pair = _jit(_frame_pair_loop)
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


def _loop_takes(x: np.ndarray, buf: np.ndarray, scale: np.floating[Any] | None) -> bool:
    """Whether the framing loops take rows ``x`` into ``buf`` (else the numpy passes run)."""
    return (
        scale is not None
        and x.flags.c_contiguous
        and buf.flags.c_contiguous
        and buf.dtype == x.dtype
        and x.size > 0
    )


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
    if loop is None or not _loop_takes(x, buf, scale):
        return frame_rows_numpy(frame, x, out)
    norms = np.empty(x.shape[0])
    try:
        loop(x, shift, scale, buf, norms)
    except Exception as err:  # compiling failed (no writable cache folder, say): numpy instead
        _disable(err)
        return frame_rows_numpy(frame, x, out)
    return buf, norms


def frame_pair_numpy(
    fx: Frame, x: np.ndarray, bx: np.ndarray, fy: Frame, y: np.ndarray, by: np.ndarray,
    weighted: bool,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:  # fmt: skip
    """The reference of :func:`frame_pair`: :func:`frame_rows` on each side, then the sums.

    The sums are one GEMM per side in the input dtype (a coefficient row per sum), converted
    to float64.
    """
    u, a = frame_rows(fx, x, bx)
    v, b = frame_rows(fy, y, by)
    su, sv = row_sums_numpy(u, v, (a, b) if weighted else None)
    return u, v, a, b, su, sv


def row_sums_numpy(
    u: np.ndarray, v: np.ndarray, norms: tuple[np.ndarray, np.ndarray] | None
) -> tuple[np.ndarray, np.ndarray]:
    """The sums of :func:`frame_pair` from framed rows u (m, d1), v (m, d2), in numpy.

    One GEMM per side in the input dtype, a coefficient row per sum (1, then a_i and b_i when
    ``norms`` = (a, b) is given), converted to float64: shapes (k, d1) and (k, d2), k = 3 with
    ``norms``, 1 without.
    """
    m = u.shape[0]
    coef = np.ones((1, m)) if norms is None else np.stack([np.ones(m), *norms])
    with np.errstate(over="ignore", invalid="ignore"):  # the fast path checks ranges later
        su = (coef.astype(u.dtype) @ u).astype(np.float64)
        sv = (coef.astype(v.dtype) @ v).astype(np.float64)
    return su, sv


def frame_pair(
    fx: Frame, x: np.ndarray, bx: np.ndarray, fy: Frame, y: np.ndarray, by: np.ndarray,
    weighted: bool,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:  # fmt: skip
    """Paired rows framed as by :func:`frame_rows`, with their norms and sums, in one pass.

    Parameters
    ----------
    fx, fy : Frame
    x : ndarray of shape (m, d1), float32 or float64
    bx : ndarray of shape (>= m, d1), x's dtype
        Buffer for the framed rows u_i of x (may not overlap ``x``).
    y, by : likewise, shape (m, d2)
    weighted : bool
        Also the sums weighted by the row norms (the debiased estimator needs them).

    Returns
    -------
    u : ndarray of shape (m, d1)
        A view of ``bx``, exactly what :func:`frame_rows` gives.
    v : ndarray of shape (m, d2)
    a, b : ndarray of shape (m,), float64
        ||u_i||^2 and ||v_i||^2.
    su : ndarray of shape (k, d1), float64
        sum_i u_i, and with ``weighted`` (k = 3) sum_i a_i u_i and sum_i b_i u_i; k = 1
        otherwise. Summed in float64 (each product of float32 values is exact there); the
        numpy reference (:func:`frame_pair_numpy`, for the same cases as :func:`frame_rows`)
        sums in the input dtype, which agrees to that dtype's rounding.
    sv : ndarray of shape (k, d2), float64
        The same for v.
    """
    m = x.shape[0]
    ux, uy = bx[:m], by[:m]
    scx = _power_of_two(fx.exp or 0, x.dtype)
    scy = _power_of_two(fy.exp or 0, y.dtype)
    usable = x.dtype == y.dtype and _loop_takes(x, ux, scx) and _loop_takes(y, uy, scy)
    loop = _compiled_pair
    if loop is None or not usable:
        return frame_pair_numpy(fx, x, bx, fy, y, by, weighted)
    a, b = np.empty(m), np.empty(m)
    k = 3 if weighted else 1
    su, sv = np.zeros((k, x.shape[1])), np.zeros((k, y.shape[1]))
    sx, sy = fx.shift.astype(x.dtype), fy.shift.astype(y.dtype)
    try:
        loop(x, sx, scx, y, sy, scy, ux, uy, a, b, su, sv, weighted)
    except Exception as err:  # compiling failed (see frame_rows): numpy instead
        _disable(err)
        return frame_pair_numpy(fx, x, bx, fy, y, by, weighted)
    return ux, uy, a, b, su, sv


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
    global _compiled, _compiled_pair, _compiled_square
    _compiled = _compiled_pair = _compiled_square = None
    warnings.warn(
        f"exact CKA falls back to numpy passes (slower, same numbers): numba failed with "
        f"{type(err).__name__}: {err}",
        RuntimeWarning,
        stacklevel=3,
    )


__all__ = [
    "frame_pair",
    "frame_pair_numpy",
    "frame_rows",
    "frame_rows_numpy",
    "row_sums_numpy",
    "square_and_apply",
    "square_and_apply_numpy",
]
