"""Private: the float64 sufficient statistics of exact linear CKA and how a batch is added.

See :mod:`empirical.cka` for the estimator and :mod:`empirical._numerics` for the frames.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field

import numpy as np
import torch

from empirical._kernels import frame_pair, row_sums_numpy
from empirical._numerics import (
    CHUNK,
    Frame,
    as_features,
    check_rows,
    in_range,
    new_frame,
    scaled_rows,
)

DEGREES: dict[str, tuple[int, int]] = {
    "su": (1, 0), "sv": (0, 1), "suu": (2, 0), "svv": (0, 2), "suv": (1, 1),
    "sau": (3, 0), "sbu": (1, 2), "sav": (2, 1), "sbv": (0, 3),
    "saa": (4, 0), "sbb": (0, 4), "sab": (2, 2),
}  # fmt: skip
"""Degree of each sum in the rows of X and of Y (how it changes when a frame is rescaled)."""


@dataclass
class CKAState:
    """Float64 sufficient statistics of paired features X (n, d1) and Y (n, d2).

    Attributes are sums over the rows seen so far of the framed rows u = (x - s_x) 2**-e_x,
    v = (y - s_y) 2**-e_y (``frame_x``, ``frame_y``): ``su`` (d1,), ``sv`` (d2,), ``suu`` =
    U^T U (d1, d1), ``svv`` (d2, d2), ``suv`` = U^T V (d1, d2). With ``row_stats`` (needed by
    the debiased estimator only) also the row norms a_i = ||u_i||^2, b_i = ||v_i||^2 in
    ``saa, sbb, sab`` and the vectors ``sau`` = sum a_i u_i, ``sbu``, ``sav``, ``sbv``.
    ``low_rows``: rows whose products the d x d sums hold in the input dtype (0 once they
    are float64; see ``MATRICES``).
    """

    row_stats: bool = True
    n: int = 0
    low_rows: int = 0
    frame_x: Frame | None = None
    frame_y: Frame | None = None
    sums: dict[str, np.ndarray] = field(default_factory=dict)


def _init_sums(state: CKAState, x: np.ndarray, y: np.ndarray) -> None:
    state.frame_x, state.frame_y = new_frame(x, "X"), new_frame(y, "Y")
    d1, d2 = x.shape[1], y.shape[1]
    names = {"su": (d1,), "sv": (d2,), "suu": (d1, d1), "svv": (d2, d2), "suv": (d1, d2)}
    if state.row_stats:
        names |= {"sau": (d1,), "sbu": (d1,), "sav": (d2,), "sbv": (d2,)}
        names |= {"saa": (), "sbb": (), "sab": ()}
    state.sums = {k: np.zeros(shape, dtype=np.float64) for k, shape in names.items()}


MATRICES = frozenset({"suu", "svv", "suv"})
"""The d x d sums: held in the input dtype while they sum the products of at most CHUNK rows
(the precision of a single product of CHUNK rows: each later chunk adds one rounding in place),
float64 afterwards (see :func:`_add_chunks`). Every other sum is float64 from the start."""


def _rescale(state: CKAState, rx: int, ry: int) -> None:
    """Express the sums in a frame whose exponents grew by -rx, -ry (exact: powers of two)."""
    for key, total in state.sums.items():
        px, py = DEGREES[key]
        state.sums[key] = np.ldexp(total.astype(np.float64, copy=False), px * rx + py * ry)


def _cka_update(
    state: CKAState, x: np.ndarray | torch.Tensor, y: np.ndarray | torch.Tensor
) -> CKAState:
    """Add a batch of paired rows ``x`` (m, d1), ``y`` (m, d2) to ``state`` (in place).

    Cost: the three products U^T U (syrk), V^T V (syrk), U^T V (GEMM) in the input precision,
    chunk by chunk, plus O(m (d1 + d2)) for the shift, the scale and the column sums (and the
    row norms when ``row_stats``).

    Raises
    ------
    ValueError
        Complex, non-finite or unpaired rows, or widths that differ from the first batch.
    """
    xa, ya = as_features(x, "X"), as_features(y, "Y")
    check_rows(xa, ya)
    if xa.shape[0] == 0:
        return state
    if state.frame_x is None or state.frame_y is None:
        _init_sums(state, xa, ya)
    elif xa.shape[1] != state.sums["su"].shape[0] or ya.shape[1] != state.sums["sv"].shape[0]:
        raise ValueError(
            f"batch feature dimensions ({xa.shape[1]}, {ya.shape[1]}) differ from the first "
            f"batch ({state.sums['su'].shape[0]}, {state.sums['sv'].shape[0]})"
        )
    assert state.frame_x is not None
    assert state.frame_y is not None
    rows = chunk_rows(xa, ya)
    if xa.shape[0] > rows:  # several chunks: keep the state unchanged if one is refused
        first = state.n == 0  # nothing accumulated yet: restart from a fresh frame instead
        saved = (
            {} if first else {k: v.copy() for k, v in state.sums.items()},
            state.frame_x.exp,
            state.frame_y.exp,
            state.low_rows,
        )
        try:
            return _add_chunks(state, xa, ya, rows)
        except ValueError:
            if first:
                _init_sums(state, xa, ya)
                state.low_rows = 0
            else:
                state.sums = saved[0]
                state.frame_x.exp, state.frame_y.exp, state.low_rows = saved[1:]
            raise
    return _add_chunks(state, xa, ya, rows)


_LOCAL = threading.local()

BUFFER_BYTES = 64 << 20
"""Centring buffers up to this size are kept per thread between calls (at most two, one for X
and one for Y): fresh pages cost more than the centring itself on some machines."""


def _buffer(side: str, rows: int, cols: int, dtype: np.dtype) -> np.ndarray:
    """A (rows, cols) scratch array of ``dtype``, reused across calls in this thread."""
    size = rows * cols
    held = getattr(_LOCAL, side, None)
    if held is not None and held.dtype == dtype and held.size >= size:
        return held[:size].reshape(rows, cols)
    buf = np.empty(size, dtype)
    if buf.nbytes <= BUFFER_BYTES:
        setattr(_LOCAL, side, buf)
    return buf.reshape(rows, cols)


def chunk_rows(xa: np.ndarray, ya: np.ndarray) -> int:
    """Rows per chunk of paired features ``xa`` (n, d1), ``ya`` (n, d2).

    At most CHUNK, and few enough that each centring buffer fits BUFFER_BYTES (so that it is
    kept between calls; MIN_ROWS at least); balanced: n rows are split into ceil(n / cap)
    equal chunks rather than full chunks and a small remainder.
    """
    widest = max(xa.shape[1] * xa.itemsize, ya.shape[1] * ya.itemsize, 1)
    cap = min(CHUNK, max(MIN_ROWS, BUFFER_BYTES // widest))
    n = max(xa.shape[0], 1)
    return -(-n // -(-n // cap))


MIN_ROWS = 256
"""Fewest rows per chunk, however wide the features (a product of fewer rows runs slowly)."""


def _add_chunks(state: CKAState, xa: np.ndarray, ya: np.ndarray, rows: int) -> CKAState:
    fx, fy = state.frame_x, state.frame_y
    assert fx is not None
    assert fy is not None
    rows = min(rows, xa.shape[0])
    bx, by = _buffer("x", rows, xa.shape[1], xa.dtype), _buffer("y", rows, ya.shape[1], ya.dtype)
    for start in range(0, xa.shape[0], rows):
        xc, yc = xa[start : start + rows], ya[start : start + rows]
        first = state.n == 0 and start == 0
        # Later chunks multiply into kept scratch matrices (never stored: _accumulate adds
        # them), so that no chunk but the first pays for fresh d x d pages.
        scratch = None if first else _scratch(xa.shape[1], ya.shape[1], xa.dtype, ya.dtype)
        # Fast path: centre, multiply, then check the products' range (the diagonal bounds
        # every entry); redo the chunk with its own scale only when they are out of range.
        # One fused pass over both sides gives the framed rows, their norms and their float64
        # sums (see _kernels); the d x d products are BLAS calls on the framed rows.
        u, v, a, b, su, sv = frame_pair(fx, xc, bx, fy, yc, by, state.row_stats)
        with np.errstate(all="ignore"):  # an overflow here only sends the chunk to the slow path
            prods = _products(u, v, state.row_stats, scratch, (a, b), (su, sv))
        if not _usable(prods, fx, fy):
            u, rx = scaled_rows(fx, xc, bx)
            v, ry = scaled_rows(fy, yc, by)
            if rx or ry:
                _rescale(state, rx, ry)
            prods = _products(u, v, state.row_stats, scratch)
        _accumulate(state, prods, first=first, rows=xc.shape[0])
    state.n += int(xa.shape[0])
    return state


def _accumulate(state: CKAState, prods: dict[str, np.ndarray], first: bool, rows: int) -> None:
    """Add one chunk's sums to the state's (see ``MATRICES`` for the d x d ones)."""
    low = state.low_rows > 0 and state.low_rows + rows <= CHUNK
    for key, value in prods.items():
        if first:  # no zeros to read
            # The d x d products stay in the input dtype (exact: a float32 value converts to
            # float64 without rounding): fresh float64 copies would cost more than the
            # products at large d.
            state.sums[key] = value if key in MATRICES else np.asarray(value, np.float64)
        elif state.sums[key].dtype == np.float64:
            state.sums[key] += value
        elif low and value.dtype == state.sums[key].dtype:
            state.sums[key] += value  # in place, in the input dtype
        else:
            state.sums[key] = np.add(state.sums[key], value, dtype=np.float64)
    held = state.sums["suu"].dtype != np.float64
    state.low_rows = (rows if first else state.low_rows + rows) if held else 0


def _usable(prods: dict[str, np.ndarray], fx: Frame, fy: Frame) -> bool:
    """Whether fast-path products are in range (so exact up to rounding) and finite."""
    if fx.exp is None or fy.exp is None:
        return False
    if not in_range(float(prods["suu"].diagonal().max(initial=0.0)), fx.dtype):
        return False
    if not in_range(float(prods["svv"].diagonal().max(initial=0.0)), fy.dtype):
        return False
    # |suv_ij| <= sqrt(suu_ii svv_jj) (Cauchy-Schwarz): in range with the diagonals.
    vectors = ("su", "sv", "sau", "sbu", "sav", "sbv")
    return all(bool(np.isfinite(prods[k]).all()) for k in vectors if k in prods)


def _scratch(d1: int, d2: int, dx: np.dtype, dy: np.dtype) -> dict[str, np.ndarray] | None:
    """Kept (d1, d1), (d2, d2), (d1, d2) matrices for a chunk's products (see :func:`_buffer`).

    None when together they would take more than BUFFER_BYTES (then each product gets fresh
    memory).
    """
    shapes = {"suu": (d1, d1, dx), "svv": (d2, d2, dy), "suv": (d1, d2, np.result_type(dx, dy))}
    if sum(a * b * np.dtype(t).itemsize for a, b, t in shapes.values()) > BUFFER_BYTES:
        return None
    return {key: _buffer(key, a, b, np.dtype(t)) for key, (a, b, t) in shapes.items()}


def _products(
    u: np.ndarray,
    v: np.ndarray,
    row_stats: bool,
    out: dict[str, np.ndarray] | None = None,
    norms: tuple[np.ndarray, np.ndarray] | None = None,
    sums: tuple[np.ndarray, np.ndarray] | None = None,
) -> dict[str, np.ndarray]:
    """The sums of one chunk of framed rows, products in the input dtype.

    The d x d products are written into ``out``'s matrices when given (see :func:`_scratch`).
    ``norms``: the float64 row norms (||u_i||^2, ||v_i||^2) when already known; ``sums``: the
    float64 row sums of u and v (:func:`~empirical._kernels.frame_pair`) when already known.
    """
    if out is None:
        out = {"suu": u.T @ u, "svv": v.T @ v, "suv": u.T @ v}  # syrk, syrk, GEMM
    else:
        out = {
            "suu": np.matmul(u.T, u, out=out["suu"]),
            "svv": np.matmul(v.T, v, out=out["svv"]),
            "suv": np.matmul(u.T, v, out=out["suv"]),
        }
    if row_stats and norms is None:
        norms = (
            np.einsum("ij,ij->i", u, u, dtype=np.float64),
            np.einsum("ij,ij->i", v, v, dtype=np.float64),
        )
    cu, cv = sums if sums is not None else row_sums_numpy(u, v, norms if row_stats else None)
    if not row_stats:
        out["su"], out["sv"] = cu[0], cv[0]
        return out
    assert norms is not None
    a64, b64 = norms
    out |= {"su": cu[0], "sau": cu[1], "sbu": cu[2], "sv": cv[0], "sav": cv[1], "sbv": cv[2]}
    out |= {"saa": a64 @ a64, "sbb": b64 @ b64, "sab": a64 @ b64}
    return out
