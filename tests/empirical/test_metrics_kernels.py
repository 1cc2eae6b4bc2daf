"""The compiled passes of exact CKA (empirical/_kernels.py) against their numpy references."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import empirical._kernels as kernels
from empirical import linear_cka
from empirical._kernels import (
    frame_pair,
    frame_pair_numpy,
    frame_rows,
    frame_rows_numpy,
    square_and_apply,
    square_and_apply_numpy,
)
from empirical._numerics import Frame

numba_only = pytest.mark.skipif(kernels._compiled is None, reason="numba is not installed")


def _frame(shift: np.ndarray, exp: int | None) -> Frame:
    return Frame(shift=shift.astype(np.float64), dtype=shift.dtype, name="X", exp=exp)


def _case(seed: int, n: int, d: int, dtype: type, offset: float, spread: float):
    rng = np.random.default_rng(seed)
    x = (offset + spread * rng.standard_normal((n, d))).astype(dtype)
    shift = x[: max(1, n // 2)].mean(0).astype(dtype)
    return x, shift


def _break(monkeypatch, name: str) -> None:
    """Make the compiled pass ``name`` fail as a failed compile does (no writable cache folder,
    say); every compiled pass is restored after the test, since one failure turns all off."""

    def broken(*_args):
        raise RuntimeError("cannot cache function: no locator available")

    for other in ("_compiled", "_compiled_pair", "_compiled_square"):
        monkeypatch.setattr(kernels, other, getattr(kernels, other))
    monkeypatch.setattr(kernels, name, broken)


@settings(max_examples=60, deadline=None)
@given(
    seed=st.integers(0, 2**32 - 1),
    n=st.integers(1, 40),
    d=st.integers(1, 70),
    dtype=st.sampled_from([np.float32, np.float64]),
    offset=st.sampled_from([0.0, 3.0, -1e4, 1e8]),
    log_spread=st.integers(-30, 30),
    exp=st.integers(-40, 40),
)
def test_fused_pass_equals_the_numpy_passes(seed, n, d, dtype, offset, log_spread, exp):
    x, shift = _case(seed, n, d, dtype, offset, 2.0**log_spread)
    u, a = frame_rows(_frame(shift, exp), x, np.empty_like(x))
    u_ref, a_ref = frame_rows_numpy(_frame(shift, exp), x, np.empty_like(x))
    # The framed rows are the same rounding of the same subtraction times a power of two.
    np.testing.assert_array_equal(u, u_ref)
    np.testing.assert_array_equal(u, np.ldexp(x - shift, -exp))
    assert a.dtype == np.float64
    # Only the order of the float64 row sums may differ: at most d roundings of eps64.
    np.testing.assert_allclose(a, a_ref, rtol=d * 2.3e-16, atol=0.0)
    np.testing.assert_allclose(a, np.sum(u.astype(np.float64) ** 2, axis=1), rtol=d * 2.3e-16)


@numba_only
def test_the_compiled_loop_is_what_runs(monkeypatch):
    calls = []
    real = kernels._compiled

    def counted(*args):
        calls.append(args[0].shape)
        return real(*args)

    monkeypatch.setattr(kernels, "_compiled", counted)
    x, shift = _case(0, 16, 8, np.float32, 1.0, 1.0)
    frame_rows(_frame(shift, 0), x, np.empty_like(x))
    assert calls == [(16, 8)], "frame_rows did not call the compiled loop"
    assert real.signatures  # and that loop is numba's compiled one


def test_special_values_propagate_as_in_numpy():
    x = np.array([[1.0, np.nan, 2.0], [np.inf, 0.0, 1.0], [1e38, 1e38, -1e38]], np.float32)
    shift = np.zeros(3, np.float32)
    u, a = frame_rows(_frame(shift, 0), x, np.empty_like(x))
    u_ref, a_ref = frame_rows_numpy(_frame(shift, 0), x, np.empty_like(x))
    np.testing.assert_array_equal(u, u_ref)  # NaN positions included
    np.testing.assert_array_equal(a, a_ref)
    assert np.isnan(a[0])
    assert np.isinf(a[1])
    assert np.isfinite(a[2])  # the squares of 1e38 are taken in float64


@pytest.mark.parametrize(
    ("dtype", "exp"),
    [(np.float32, 140), (np.float32, -140), (np.float64, 1100), (np.float64, -1100)],
)
def test_scales_outside_the_dtype_take_the_numpy_passes(dtype, exp):
    # 2**-exp is not a normal number of the dtype: the loop could not hold the scale exactly.
    x, shift = _case(1, 5, 4, dtype, 0.0, 1.0)
    u, a = frame_rows(_frame(shift, exp), x, np.empty_like(x))
    u_ref, a_ref = frame_rows_numpy(_frame(shift, exp), x, np.empty_like(x))
    np.testing.assert_array_equal(u, u_ref)
    np.testing.assert_array_equal(a, a_ref)


def test_non_contiguous_rows_give_the_same_result():
    x, shift = _case(2, 30, 12, np.float64, 5.0, 2.0)
    xf = np.asfortranarray(x)
    u, a = frame_rows(_frame(shift, 3), xf, np.empty_like(x))
    u_ref, a_ref = frame_rows_numpy(_frame(shift, 3), x, np.empty_like(x))
    np.testing.assert_array_equal(u, u_ref)
    np.testing.assert_allclose(a, a_ref, rtol=1e-14)


def test_negative_control_a_wrong_shift_is_seen():
    x, shift = _case(3, 10, 6, np.float64, 2.0, 1.0)
    u, _ = frame_rows(_frame(shift, 0), x, np.empty_like(x))
    wrong, _ = frame_rows_numpy(_frame(shift + 1e-9, 0), x, np.empty_like(x))
    assert not np.array_equal(u, wrong)


@pytest.mark.parametrize("debiased", [False, True])
def test_cka_is_the_same_with_and_without_the_compiled_loop(monkeypatch, debiased):
    rng = np.random.default_rng(4)
    x = (rng.standard_normal((3000, 40)) + 7.0).astype(np.float32)
    y = (np.tanh(x @ rng.standard_normal((40, 30))) + 0.3 * rng.standard_normal((3000, 30))).astype(
        np.float32
    )
    fused = linear_cka(x, y, debiased=debiased)
    monkeypatch.setattr(kernels, "_compiled", None)
    monkeypatch.setattr(kernels, "_compiled_pair", None)
    monkeypatch.setattr(kernels, "_compiled_square", None)
    reference = linear_cka(x, y, debiased=debiased)
    # Same framed rows and the same float32 d x d products; the row norms and the reductions
    # of the d x d sums differ only in float64 summation order (about 1e-15 relative). The
    # column sums (and the norm-weighted ones) are float64 in the loop and float32 GEMMs in
    # the numpy passes: float32 rounding of sums that enter only the centring corrections,
    # measured 8.6e-11 (biased) and 5.5e-10 (debiased) relative here; 1e-8 leaves a margin
    # and stays far below the estimator's 1e-6 budget.
    assert fused == pytest.approx(reference, rel=1e-8, abs=1e-12)


@numba_only
def test_a_failing_compiled_loop_falls_back_with_one_warning(monkeypatch):
    _break(monkeypatch, "_compiled")
    x, shift = _case(5, 8, 5, np.float32, 2.0, 1.0)
    with pytest.warns(RuntimeWarning, match="falls back to numpy passes"):
        u, a = frame_rows(_frame(shift, 0), x, np.empty_like(x))
    assert kernels._compiled is None  # later calls take the numpy passes without a warning
    u_ref, a_ref = frame_rows_numpy(_frame(shift, 0), x, np.empty_like(x))
    np.testing.assert_array_equal(u, u_ref)
    np.testing.assert_array_equal(a, a_ref)


@settings(max_examples=60, deadline=None)
@given(
    seed=st.integers(0, 2**32 - 1),
    d1=st.integers(1, 60),
    d2=st.integers(1, 60),
    dtype=st.sampled_from([np.float32, np.float64]),
    log_scale=st.integers(-60, 60),
)
def test_square_and_apply_equals_the_numpy_blocks(seed, d1, d2, dtype, log_scale):
    rng = np.random.default_rng(seed)
    c = (2.0**log_scale * rng.standard_normal((d1, d2))).astype(dtype)
    b = rng.standard_normal(d2)
    sq, cb = square_and_apply(c, b)
    sq_ref, cb_ref = square_and_apply_numpy(c, b)
    c64 = c.astype(np.float64)
    # Only the order of the float64 sums differs: sq has d1 d2 positive terms (relative error at
    # most that many roundings); a dot product of d2 terms is bounded by d2 eps sum_j |c_ij b_j|.
    assert sq == pytest.approx(sq_ref, rel=d1 * d2 * 2.3e-16)
    assert sq == pytest.approx(float(np.sum(c64 * c64)), rel=d1 * d2 * 2.3e-16)
    bound = d2 * 2.3e-16 * (np.abs(c64) @ np.abs(b))
    assert np.all(np.abs(cb - cb_ref) <= 2 * bound)
    assert np.all(np.abs(cb - c64 @ b) <= 2 * bound)


def test_square_and_apply_takes_float32_entries_to_float64_before_squaring():
    c = np.full((3, 4), 3e30, np.float32)  # squares overflow float32, not float64
    sq, cb = square_and_apply(c, np.ones(4))
    assert sq == pytest.approx(12 * float(np.float32(3e30)) ** 2, rel=1e-15)
    np.testing.assert_allclose(cb, 4 * float(np.float32(3e30)), rtol=1e-15)


def test_square_and_apply_propagates_nan_and_handles_other_layouts():
    c = np.arange(12, dtype=np.float32).reshape(3, 4)
    c[1, 2] = np.nan
    sq, cb = square_and_apply(c, np.ones(4))
    assert np.isnan(sq)
    assert np.isnan(cb[1])
    assert np.isfinite(cb[[0, 2]]).all()
    f = np.asfortranarray(np.arange(12, dtype=np.float64).reshape(3, 4))  # the numpy blocks
    sq_f, cb_f = square_and_apply(f, np.arange(4.0))
    assert sq_f == float(np.sum(f * f))
    np.testing.assert_array_equal(cb_f, f @ np.arange(4.0))


def test_square_and_apply_negative_control_sees_one_changed_entry():
    c = np.ones((8, 8), np.float32)
    changed = c.copy()
    changed[5, 6] = np.float32(1.0) + np.finfo(np.float32).eps
    assert square_and_apply(c, np.ones(8))[0] != square_and_apply(changed, np.ones(8))[0]


@numba_only
def test_the_compiled_reduction_is_what_runs(monkeypatch):
    calls = []
    real = kernels._compiled_square

    def counted(*args):
        calls.append(args[0].shape)
        return real(*args)

    monkeypatch.setattr(kernels, "_compiled_square", counted)
    rng = np.random.default_rng(6)
    x, y = rng.standard_normal((200, 7)), rng.standard_normal((200, 5))
    linear_cka(x, y)
    assert sorted(calls) == [(5, 5), (7, 5), (7, 7)], "CKA did not reduce its sums in the loop"
    assert real.signatures


@numba_only
def test_a_failing_compiled_reduction_falls_back_with_one_warning(monkeypatch):
    _break(monkeypatch, "_compiled_square")
    c = np.arange(20, dtype=np.float32).reshape(4, 5)
    with pytest.warns(RuntimeWarning, match="falls back to numpy passes"):
        sq, cb = square_and_apply(c, np.ones(5))
    assert kernels._compiled_square is None
    assert kernels._compiled is None  # one failure turns every compiled pass off
    assert kernels._compiled_pair is None
    sq_ref, cb_ref = square_and_apply_numpy(c, np.ones(5))
    assert sq == sq_ref
    np.testing.assert_array_equal(cb, cb_ref)


def _sums64(w: np.ndarray, a: np.ndarray, b: np.ndarray, weighted: bool):
    """The float64 sums of frame_pair, written out, and the sums of their absolute terms."""
    w64 = w.astype(np.float64)
    coef = np.stack([np.ones_like(a), a, b]) if weighted else np.ones((1, a.shape[0]))
    return coef @ w64, np.abs(coef) @ np.abs(w64)


@settings(max_examples=60, deadline=None)
@given(
    seed=st.integers(0, 2**32 - 1),
    n=st.integers(1, 41),  # every remainder of the four-row steps
    d1=st.integers(1, 40),
    d2=st.integers(1, 40),
    dtype=st.sampled_from([np.float32, np.float64]),
    offset=st.sampled_from([0.0, 3.0, -1e4]),
    exps=st.tuples(st.integers(-20, 20), st.integers(-20, 20)),
    weighted=st.booleans(),
)
def test_frame_pair_equals_frame_rows_and_float64_sums(
    seed, n, d1, d2, dtype, offset, exps, weighted
):
    x, sx = _case(seed, n, d1, dtype, offset, 1.0)
    y, sy = _case(seed + 1, n, d2, dtype, -offset, 2.0)
    fx, fy = _frame(sx, exps[0]), _frame(sy, exps[1])
    bx, by = np.empty_like(x), np.empty_like(y)
    u, v, a, b, su, sv = frame_pair(fx, x, bx, fy, y, by, weighted)
    u_ref, a_ref = frame_rows_numpy(fx, x, np.empty_like(x))
    v_ref, b_ref = frame_rows_numpy(fy, y, np.empty_like(y))
    np.testing.assert_array_equal(u, u_ref)  # the same rounding of the same subtraction
    np.testing.assert_array_equal(v, v_ref)
    np.testing.assert_allclose(a, a_ref, rtol=d1 * 2.3e-16)
    np.testing.assert_allclose(b, b_ref, rtol=d2 * 2.3e-16)
    assert su.shape == ((3 if weighted else 1), d1)
    assert sv.shape == ((3 if weighted else 1), d2)
    # Float64 sums of n terms (products of float32 values are exact in float64): within n
    # roundings of the sum of the absolute terms, on the compiled loop; the numpy reference
    # sums in the input dtype, within n roundings of that dtype.
    tight = 2.3e-16 if kernels._compiled_pair is not None else np.finfo(dtype).eps
    for got, w in ((su, u), (sv, v)):
        exact, size = _sums64(w, a, b, weighted)
        assert np.all(np.abs(got - exact) <= 2 * n * tight * size + 1e-300)
    ref = frame_pair_numpy(fx, x, np.empty_like(x), fy, y, np.empty_like(y), weighted)
    for got, want, w in ((su, ref[4], u), (sv, ref[5], v)):
        _, size = _sums64(w, a, b, weighted)
        assert np.all(np.abs(got - want) <= 4 * n * np.finfo(dtype).eps * size + 1e-300)


def test_frame_pair_negative_control_sees_one_changed_row():
    x, sx = _case(8, 9, 6, np.float32, 2.0, 1.0)
    y, sy = _case(9, 9, 5, np.float32, 0.0, 1.0)
    fx, fy = _frame(sx, 0), _frame(sy, 0)
    first = frame_pair(fx, x, np.empty_like(x), fy, y, np.empty_like(y), True)
    changed = y.copy()
    changed[8, 4] += np.float32(0.5)  # the last row: the one the four-row steps leave over
    second = frame_pair(fx, x, np.empty_like(x), fy, changed, np.empty_like(y), True)
    assert second[3][8] != first[3][8]  # b_8
    assert not np.array_equal(second[4][2], first[4][2])  # sum b_i u_i of the other side
    assert not np.array_equal(second[5], first[5])


def test_frame_pair_takes_the_numpy_passes_for_other_layouts_and_mixed_dtypes():
    x, sx = _case(10, 13, 6, np.float32, 2.0, 1.0)
    y, sy = _case(11, 13, 5, np.float32, 0.0, 1.0)
    fx, fy = _frame(sx, 1), _frame(sy, -2)
    fortran = np.asfortranarray(x)
    want = frame_pair_numpy(fx, fortran, np.empty_like(x), fy, y, np.empty_like(y), True)
    got = frame_pair(fx, fortran, np.empty_like(x), fy, y, np.empty_like(y), True)
    for g, w in zip(got, want, strict=True):
        np.testing.assert_array_equal(g, w)
    y64 = y.astype(np.float64)
    fy64 = Frame(shift=fy.shift, dtype=np.dtype(np.float64), name="Y", exp=fy.exp)
    got = frame_pair(fx, x, np.empty_like(x), fy64, y64, np.empty_like(y64), True)
    want = frame_pair_numpy(fx, x, np.empty_like(x), fy64, y64, np.empty_like(y64), True)
    for g, w in zip(got, want, strict=True):
        np.testing.assert_array_equal(g, w)


@numba_only
def test_the_compiled_pair_loop_is_what_runs(monkeypatch):
    calls = []
    real = kernels._compiled_pair

    def counted(*args):
        calls.append((args[0].shape, args[3].shape, args[-1]))
        return real(*args)

    monkeypatch.setattr(kernels, "_compiled_pair", counted)
    rng = np.random.default_rng(7)
    x, y = rng.standard_normal((300, 7)), rng.standard_normal((300, 5))
    linear_cka(x, y)
    linear_cka(x, y, debiased=True)
    assert calls == [((300, 7), (300, 5), False), ((300, 7), (300, 5), True)]


@numba_only
def test_a_failing_compiled_pair_loop_falls_back_with_one_warning(monkeypatch):
    _break(monkeypatch, "_compiled_pair")
    x, sx = _case(12, 10, 4, np.float32, 2.0, 1.0)
    y, sy = _case(13, 10, 3, np.float32, 0.0, 1.0)
    fx, fy = _frame(sx, 0), _frame(sy, 0)
    with pytest.warns(RuntimeWarning, match="falls back to numpy passes"):
        got = frame_pair(fx, x, np.empty_like(x), fy, y, np.empty_like(y), True)
    assert kernels._compiled_pair is None
    assert kernels._compiled is None
    want = frame_pair_numpy(fx, x, np.empty_like(x), fy, y, np.empty_like(y), True)
    for g, w in zip(got, want, strict=True):
        np.testing.assert_array_equal(g, w)
