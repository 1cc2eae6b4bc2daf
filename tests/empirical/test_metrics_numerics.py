"""Numerics of the representation metrics: every case of issue 11 Sec. 4 and invariances over
scales 1e-300..1e300 and offsets up to 1e8 x the spread, against independent float64 formulas.

The references below are written out with numpy from the definitions (Gram matrices for CKA,
Song et al. 2012 Eq. 5 for the unbiased HSIC, an SVD for Procrustes) on O(1) data, so they
share no code with empirical/.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from empirical.cka import StreamingLinearCKA, linear_cka
from empirical.metrics import delta_l2, mean_cosine_distance, relative_l2
from empirical.minibatch import minibatch_cka
from empirical.similarity import principal_angles, procrustes_distance

EPS = float(np.finfo(np.float64).eps)


def _pair(seed: int, n: int = 200, d1: int = 6, d2: int = 4) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, d1))
    y = np.tanh(x @ rng.normal(size=(d1, d2))) + 0.3 * rng.normal(size=(n, d2))
    return x, y


def _hsic_song(k: np.ndarray, l_: np.ndarray) -> float:
    m = k.shape[0]
    k, l_ = k.copy(), l_.copy()
    np.fill_diagonal(k, 0.0)
    np.fill_diagonal(l_, 0.0)
    one = np.ones(m)
    return float(
        np.trace(k @ l_)
        + (one @ k @ one) * (one @ l_ @ one) / ((m - 1) * (m - 2))
        - 2.0 / (m - 2) * (one @ k @ l_ @ one)
    ) / (m * (m - 3))


def ref_cka(x: np.ndarray, y: np.ndarray, debiased: bool = False) -> float:
    """Kornblith et al. 2019 Eq. 3-4 with n x n Gram matrices (biased) or Song's HSIC_1."""
    k, l_ = x @ x.T, y @ y.T
    if debiased:
        return _hsic_song(k, l_) / math.sqrt(_hsic_song(k, k) * _hsic_song(l_, l_))
    kc = k - k.mean(0) - k.mean(1)[:, None] + k.mean()  # H K H with H = I - 11^T / n
    lc = l_ - l_.mean(0) - l_.mean(1)[:, None] + l_.mean()
    return float(np.sum(kc * lc) / math.sqrt(np.sum(kc * kc) * np.sum(lc * lc)))


def ref_procrustes(x: np.ndarray, y: np.ndarray) -> float:
    a, b = x - x.mean(0), y - y.mean(0)
    a, b = a / np.linalg.norm(a), b / np.linalg.norm(b)
    return math.sqrt(max(2.0 - 2.0 * np.linalg.svd(a.T @ b, compute_uv=False).sum(), 0.0))


def ref_minibatch(x: np.ndarray, y: np.ndarray, m: int) -> float:
    h = np.zeros(3)
    for s in range(0, x.shape[0] - m + 1, m):
        k, l_ = x[s : s + m] @ x[s : s + m].T, y[s : s + m] @ y[s : s + m].T
        h += [_hsic_song(k, l_), _hsic_song(k, k), _hsic_song(l_, l_)]
    return float(h[0] / math.sqrt(h[1] * h[2]))


# --- the failing cases of issue 11, one regression test each ---------------------------------


@pytest.mark.parametrize("scale", [1e37, 1e100, 1e-45, 1e300, 1e-300])
@pytest.mark.parametrize("debiased", [False, True])
def test_cka_is_scale_invariant_at_extreme_scales(scale: float, debiased: bool) -> None:
    # Before: 0.0 at 1e37, NaN at 1e100, ZeroDivisionError at 1e-45.
    x, y = _pair(0)
    ref = ref_cka(x, y, debiased)
    assert linear_cka(scale * x, scale * y, debiased) == pytest.approx(ref, abs=1e-12)
    assert linear_cka(scale * x, y, debiased) == pytest.approx(ref, abs=1e-12)


@pytest.mark.parametrize("scale", [1e-30, 1e30, 1e37])
def test_float32_cka_at_extreme_float32_scales(scale: float) -> None:
    x, y = _pair(1, n=2000)
    ref = ref_cka(x, y)
    xs, ys = (scale * x).astype(np.float32), (scale * y).astype(np.float32)
    assert np.isfinite(xs).all()
    assert linear_cka(xs, ys) == pytest.approx(ref, abs=1e-6)


@pytest.mark.parametrize("debiased", [False, True])
def test_large_offset_is_not_mistaken_for_constant(debiased: bool) -> None:
    # Before: linear_cka(100 + 1e-4 X, Y) = 0.0 (a missing relative-variance test).
    x, y = _pair(2)
    ref = ref_cka(x, y, debiased)
    assert ref > 0.3
    # Offset 1e6 spreads: the input itself carries ~1e6 eps of relative error.
    assert linear_cka(100.0 + 1e-4 * x, y, debiased) == pytest.approx(ref, abs=1e-8)


def test_constant_is_decided_relative_to_the_datas_rounding_level() -> None:
    x, _ = _pair(3, n=50)
    ulps = np.random.default_rng(3).integers(0, 3, size=(50, 4))
    near = 1e5 * (1.0 + ulps * EPS)  # differs only in the last bits: constant
    assert linear_cka(near, x) == 0.0
    assert linear_cka(near, near + 7.0) == 1.0
    resolved = 1e5 * (1.0 + 1e3 * ulps * EPS)  # spread of 1e3 ulps: real data
    assert linear_cka(resolved, resolved @ np.diag([1.0, 2.0, 3.0, 4.0])) > 0.5


def test_mixed_float_dtypes_are_accepted() -> None:
    # Before: float32 X with float64 Y raised a raw RuntimeError.
    x, y = _pair(4, n=500)
    x32 = x.astype(np.float32)
    ref = ref_cka(x32.astype(np.float64), y)
    assert linear_cka(x32, y) == pytest.approx(ref, abs=1e-6)
    assert linear_cka(torch.from_numpy(x32), y, debiased=True) == pytest.approx(
        ref_cka(x32.astype(np.float64), y, True), abs=1e-6
    )
    assert minibatch_cka(x32, y, 100) == pytest.approx(
        ref_minibatch(x32.astype(np.float64), y, 100), abs=1e-6
    )
    assert procrustes_distance(x32, torch.from_numpy(y)) == pytest.approx(
        ref_procrustes(x32.astype(np.float64), y), abs=1e-6
    )
    assert delta_l2(x32, x) == pytest.approx(float(np.linalg.norm(x32 - x, axis=1).mean()))


@pytest.mark.parametrize("scale", [1e160, 1e200, 1e300, 1e-200])
def test_procrustes_and_angles_at_extreme_scales(scale: float) -> None:
    # Before: Procrustes 0.0 ("identical") at 1e160, LinAlgError at 1e200.
    x, y = _pair(5)
    assert procrustes_distance(scale * x, scale * y) == pytest.approx(
        ref_procrustes(x, y), abs=1e-12
    )
    np.testing.assert_allclose(
        principal_angles(scale * x, scale * y, r=3), principal_angles(x, y, r=3), atol=1e-10
    )


@pytest.mark.parametrize("scale", [1e200, 1e-200, 1e300])
def test_minibatch_and_paired_metrics_at_extreme_scales(scale: float) -> None:
    x, y = _pair(6, n=256)
    assert minibatch_cka(scale * x, scale * y, 64) == pytest.approx(
        ref_minibatch(x, y[:, :4], 64), abs=1e-12
    )
    z = x + 0.1 * _pair(7, n=256, d1=6)[0]
    assert relative_l2(scale * x, scale * z) == pytest.approx(
        np.linalg.norm(x - z) / np.linalg.norm(x), rel=1e-12
    )
    assert delta_l2(scale * x, scale * z) / scale == pytest.approx(
        np.linalg.norm(x - z, axis=1).mean(), rel=1e-12
    )
    assert mean_cosine_distance(scale * x, scale * z) == pytest.approx(
        mean_cosine_distance(x, z), abs=1e-12
    )


def _complex_and_bad_inputs() -> list[object]:
    x, _ = _pair(8, n=20)
    return [x + 1j * x, torch.from_numpy(x + 1j * x), x.astype(np.complex64)]


@pytest.mark.parametrize(
    "metric",
    [
        linear_cka,
        lambda a, b: linear_cka(a, b, debiased=True),
        lambda a, b: minibatch_cka(a, b, 8),
        procrustes_distance,
        lambda a, b: principal_angles(a, b, r=2),
        delta_l2,
        relative_l2,
        mean_cosine_distance,
    ],
)
def test_complex_and_non_finite_input_is_refused_naming_the_argument(metric) -> None:  # type: ignore[no-untyped-def]
    # Before: complex input was cast to real with a warning.
    x, _ = _pair(8, n=20)
    for bad in _complex_and_bad_inputs():
        with pytest.raises(ValueError, match="X has complex dtype"):
            metric(bad, x)
        with pytest.raises(ValueError, match="Y has complex dtype"):
            metric(x, bad)
    for value in (np.nan, np.inf, -np.inf):
        bad = x.copy()
        bad[2, 3] = value
        with pytest.raises(ValueError, match="X contains NaN or Inf"):
            metric(bad, x)
        with pytest.raises(ValueError, match="Y contains NaN or Inf"):
            metric(x, bad)


def test_streamed_float32_batches_far_from_the_first_batch_are_refused_not_wrong() -> None:
    # The reference shift is the first batch's mean; a first batch far from all the others
    # makes the float32 products cancel in the centring: refused, with advice.
    x, y = _pair(9, n=2000)
    x[:4] += 1e4
    x32, y32 = x.astype(np.float32), y.astype(np.float32)
    acc = StreamingLinearCKA()
    acc.update(x32[:4], y32[:4])
    acc.update(x32[4:], y32[4:])
    with pytest.raises(ValueError, match="drifted"):
        acc.compute()
    one_shot = linear_cka(x32, y32)  # one shot: the shift is the mean of all rows
    assert one_shot == pytest.approx(
        ref_cka(x32.astype(np.float64), y32.astype(np.float64)), abs=1e-6
    )
    acc64 = StreamingLinearCKA()  # in float64 the same drift costs nothing measurable
    acc64.update(x[:4], y[:4])
    acc64.update(x[4:], y[4:])
    assert acc64.compute() == pytest.approx(ref_cka(x, y), abs=1e-9)


def test_streaming_survives_a_later_batch_at_a_much_larger_scale() -> None:
    x, y = _pair(10, n=300)
    w = np.ones((300, 1))
    w[150:] = 1e200  # the frame's scale is raised (exactly) when the big batch arrives
    acc = StreamingLinearCKA(debiased=True)
    acc.update(x[:150] * w[:150], y[:150])
    acc.update(x[150:] * w[150:], y[150:])
    ref = linear_cka(x * (w / 1e200), y, debiased=True)
    assert acc.compute() == pytest.approx(ref, abs=1e-12)


def test_float32_sums_are_exact_across_a_rescale_and_later_chunks() -> None:
    # A single float32 chunk keeps its d x d sums in float32 (exact) until a later batch
    # arrives; here the later batch is 1e30 larger, so the frame is rescaled (the float32
    # sums go to float64 first: 2**-degree*e would underflow in float32) and a third batch
    # is added in place to the float64 sums.
    x, y = _pair(11, n=600)
    w = np.ones((600, 1))
    w[200:400] = 1e30
    x32, y32 = (x * w).astype(np.float32), y.astype(np.float32)
    acc = StreamingLinearCKA(debiased=True)
    for i in range(0, 600, 200):
        acc.update(x32[i : i + 200], y32[i : i + 200])
    assert acc.state.sums["suu"].dtype == np.float64
    ref64 = ref_cka(x32.astype(np.float64), y32.astype(np.float64))
    assert acc.compute(debiased=False) == pytest.approx(ref64, abs=1e-6)
    one = StreamingLinearCKA()
    one.update(x32[:200], y32[:200])
    assert one.state.sums["suu"].dtype == np.float32  # one chunk: no float64 copy yet
    assert one.compute() == pytest.approx(ref_cka(x[:200], y[:200]), abs=1e-6)


# --- invariances over the whole float64 range, against the independent references ------------


def _transformed(
    x: np.ndarray, rng: np.random.Generator, log_scale: float, offset: float
) -> np.ndarray:
    """s * x Q + offset * spread * c with Q orthogonal and c a random direction."""
    q, _ = np.linalg.qr(rng.normal(size=(x.shape[1], x.shape[1])))
    c = rng.normal(size=x.shape[1])
    scale = min(10.0**log_scale, 1e296 / (1.0 + offset))  # keep |values| < 1e300
    spread = float(np.std(x))
    return scale * (x @ q) + scale * offset * spread * c


def _tol(offset: float) -> float:
    # The offset input stores the spread with a relative error ~ offset * eps; the metrics
    # amplify that by a modest factor: error / (offset * eps) measured <= 1.9 over 300 random
    # draws of these data (biased, debiased, Procrustes, minibatch); 50 leaves a wide margin.
    return 1e-11 + 50 * EPS * offset


SCALES = st.floats(-300, 300)
OFFSETS = st.one_of(st.just(0.0), st.floats(0.0, 1e8))


@given(
    seed=st.integers(0, 2**32 - 1),
    ls1=SCALES,
    ls2=SCALES,
    off1=OFFSETS,
    off2=OFFSETS,
    d1=st.integers(1, 5),
    debiased=st.booleans(),
)
@settings(max_examples=60, deadline=None)
def test_cka_invariances_over_scales_and_offsets(
    seed: int, ls1: float, ls2: float, off1: float, off2: float, d1: int, debiased: bool
) -> None:
    x, y = _pair(seed % 10_000, n=40, d1=d1, d2=3)
    rng = np.random.default_rng(seed)
    ref = ref_cka(x, y, debiased)
    got = linear_cka(_transformed(x, rng, ls1, off1), _transformed(y, rng, ls2, off2), debiased)
    assert got == pytest.approx(ref, abs=_tol(max(off1, off2)))


@given(
    seed=st.integers(0, 2**32 - 1),
    ls1=SCALES,
    ls2=SCALES,
    off1=OFFSETS,
    off2=OFFSETS,
)
@settings(max_examples=40, deadline=None)
def test_procrustes_and_minibatch_invariances_over_scales_and_offsets(
    seed: int, ls1: float, ls2: float, off1: float, off2: float
) -> None:
    x, y = _pair(seed % 10_000, n=48, d1=4, d2=4)
    rng = np.random.default_rng(seed)
    xt, yt = _transformed(x, rng, ls1, off1), _transformed(y, rng, ls2, off2)
    tol = _tol(max(off1, off2))
    assert procrustes_distance(xt, yt) == pytest.approx(ref_procrustes(x, y), abs=tol)
    assert minibatch_cka(xt, yt, 16) == pytest.approx(ref_minibatch(x, y, 16), abs=tol)


@given(seed=st.integers(0, 2**32 - 1), ls=SCALES, debiased=st.booleans())
@settings(max_examples=30, deadline=None)
def test_negative_control_independent_features_give_low_cka(
    seed: int, ls: float, debiased: bool
) -> None:
    rng = np.random.default_rng(seed)
    n, d = 2000, 8
    x, y = rng.normal(size=(n, d)), rng.normal(size=(n, d))
    s = 10.0**ls
    value = linear_cka(s * x, s * y + 3.0 * s, debiased)
    # Independent features: biased CKA ~ d / n (= 0.004), debiased ~ 0 +- a few / n.
    assert abs(value) < 0.03
    assert linear_cka(s * x, s * (x @ np.linalg.qr(rng.normal(size=(d, d)))[0])) == (
        pytest.approx(1.0, abs=1e-12)
    )
    assert minibatch_cka(s * x, s * y, 256) < 0.05
    assert procrustes_distance(s * x, s * y) > 1.2  # far from 0 (identical up to rotation)
