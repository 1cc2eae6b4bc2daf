"""Linear CKA: axioms, invariances, negative control, Gram vs feature form, streaming."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from empirical.cka import StreamingLinearCKA, gram_linear_cka, linear_cka
from empirical.minibatch import hsic_unbiased, minibatch_cka

EXACT_ATOL = 1e-10  # float64 identities on O(1) data
F32_ATOL = 1e-6  # float32 products, float64 accumulation


def _pair(seed: int, n: int = 60, d1: int = 8, d2: int = 5) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, d1))
    y = np.tanh(x @ rng.normal(size=(d1, d2))) + 0.3 * rng.normal(size=(n, d2))
    return x, y


@pytest.mark.parametrize("debiased", [False, True])
def test_identical_inputs_give_one(debiased: bool) -> None:
    x, _ = _pair(0)
    assert linear_cka(x, x, debiased=debiased) == pytest.approx(1.0, abs=EXACT_ATOL)


@pytest.mark.parametrize("debiased", [False, True])
def test_symmetric(debiased: bool) -> None:
    x, y = _pair(1)
    assert linear_cka(x, y, debiased) == pytest.approx(linear_cka(y, x, debiased), abs=1e-12)


@given(seed=st.integers(0, 2**32 - 1), n=st.integers(3, 40), d1=st.integers(1, 6))
@settings(max_examples=25)
def test_biased_in_unit_interval(seed: int, n: int, d1: int) -> None:
    rng = np.random.default_rng(seed)
    value = linear_cka(rng.normal(size=(n, d1)), rng.normal(size=(n, 3)))
    assert 0.0 <= value <= 1.0


@pytest.mark.parametrize("debiased", [False, True])
def test_invariances_and_negative_control(debiased: bool) -> None:
    x, y = _pair(2, n=80, d1=6)
    rng = np.random.default_rng(3)
    q, _ = np.linalg.qr(rng.normal(size=(6, 6)))
    base = linear_cka(x, y, debiased)
    assert linear_cka(x @ q, y, debiased) == pytest.approx(base, abs=EXACT_ATOL)
    assert linear_cka(7.5 * x, y, debiased) == pytest.approx(base, abs=EXACT_ATOL)
    assert linear_cka(x + 40.0, y - 3.0, debiased) == pytest.approx(base, abs=1e-9)
    # A general invertible (ill-conditioned, non-orthogonal) map changes CKA.
    a = np.diag([10.0, 1.0, 0.1, 1.0, 3.0, 0.5]) @ rng.normal(size=(6, 6))
    assert abs(np.linalg.det(a)) > 1e-3
    assert abs(linear_cka(x @ a, y, debiased) - base) > 1e-3


@pytest.mark.parametrize("debiased", [False, True])
def test_gram_form_equals_feature_form(debiased: bool) -> None:
    x, y = _pair(4, n=50)
    assert linear_cka(x, y, debiased) == pytest.approx(
        gram_linear_cka(x, y, debiased), abs=EXACT_ATOL
    )


def test_against_explicit_centering_matrix_formula() -> None:
    # Independent reference: tr(KHLH) / sqrt(tr(KHKH) tr(LHLH)) with numpy only.
    x, y = _pair(5, n=30)
    n = x.shape[0]
    h = np.eye(n) - np.ones((n, n)) / n
    k, l_ = x @ x.T, y @ y.T
    ref = np.trace(k @ h @ l_ @ h) / np.sqrt(np.trace(k @ h @ k @ h) * np.trace(l_ @ h @ l_ @ h))
    assert linear_cka(x, y) == pytest.approx(ref, abs=EXACT_ATOL)


@given(
    seed=st.integers(0, 2**32 - 1),
    cuts=st.lists(st.integers(0, 45), max_size=6),
    debiased=st.booleans(),
)
@settings(max_examples=30)
def test_streaming_equals_one_shot_for_any_batching(
    seed: int, cuts: list[int], debiased: bool
) -> None:
    x, y = _pair(seed % 1000, n=45)
    x = x + 100.0  # a large mean must not hurt the streaming path
    bounds = [0, *sorted(cuts), 45]
    acc = StreamingLinearCKA(debiased=True)
    for lo, hi in zip(bounds[:-1], bounds[1:], strict=True):
        acc.update(x[lo:hi], y[lo:hi])
    assert acc.n == 45
    assert acc.compute(debiased) == pytest.approx(linear_cka(x, y, debiased), abs=1e-9)
    # Gram form on the un-shifted rows (its n x n products lose digits under a large mean).
    ref = gram_linear_cka(x - 100.0, y, debiased)
    assert acc.compute(debiased) == pytest.approx(ref, abs=1e-9)


def test_streaming_debiased_needs_row_statistics() -> None:
    x, y = _pair(14)
    acc = StreamingLinearCKA()
    acc.update(x, y)
    assert acc.compute() == pytest.approx(linear_cka(x, y), abs=1e-12)
    with pytest.raises(ValueError, match="debiased=True"):
        acc.compute(debiased=True)
    with pytest.raises(ValueError, match="dimensions"):
        acc.update(x[:, :3], y)


def test_float32_input_close_to_float64_reference() -> None:
    rng = np.random.default_rng(6)
    x = rng.normal(size=(20000, 32)).astype(np.float32)
    y = (x @ rng.normal(size=(32, 16)).astype(np.float32)) ** 2
    ref = linear_cka(x.astype(np.float64), y.astype(np.float64))
    assert linear_cka(x, y) == pytest.approx(ref, abs=F32_ATOL)
    assert linear_cka(torch.from_numpy(x), torch.from_numpy(y)) == linear_cka(x, y)


def test_debiased_needs_four_samples() -> None:
    x, y = _pair(7, n=3)
    assert 0.0 <= linear_cka(x, y) <= 1.0
    with pytest.raises(ValueError, match="n=4"):
        linear_cka(x, y, debiased=True)


@pytest.mark.parametrize("debiased", [False, True])
def test_constant_features_have_defined_value(debiased: bool) -> None:
    x, _ = _pair(8, n=20)
    const = np.full((20, 4), 3.25)
    assert linear_cka(const, x, debiased) == 0.0
    assert linear_cka(x, np.zeros((20, 2)), debiased) == 0.0
    assert linear_cka(const, np.zeros((20, 2)), debiased) == 1.0


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_nan_and_inf_are_rejected_naming_the_argument(bad: float) -> None:
    x, y = _pair(9)
    clean = x.copy()
    x[3, 1] = bad
    with pytest.raises(ValueError, match="X contains NaN or Inf"):
        linear_cka(x, y)
    with pytest.raises(ValueError, match="Y contains NaN or Inf"):
        linear_cka(y, x, debiased=True)
    acc = StreamingLinearCKA()
    acc.update(clean, y)
    with pytest.raises(ValueError, match="X contains NaN or Inf"):
        acc.update(x, y)
    assert acc.n == clean.shape[0]  # the refused batch left the accumulator unchanged
    assert acc.compute() == pytest.approx(linear_cka(clean, y), abs=1e-12)


def test_row_mismatch_is_rejected() -> None:
    x, y = _pair(10)
    with pytest.raises(ValueError, match="same number of rows"):
        linear_cka(x, y[:-1])


def test_hsic_unbiased_matches_song_formula_by_loops() -> None:
    # Song et al. (2012) Eq. 5 written out with explicit sums over distinct index tuples.
    rng = np.random.default_rng(11)
    m = 7
    x, y = rng.normal(size=(m, 3)), rng.normal(size=(m, 2))
    k, l_ = x @ x.T, y @ y.T
    np.fill_diagonal(k, 0.0)
    np.fill_diagonal(l_, 0.0)
    one = np.ones(m)
    ref = (
        np.trace(k @ l_)
        + (one @ k @ one) * (one @ l_ @ one) / ((m - 1) * (m - 2))
        - 2.0 / (m - 2) * (one @ k @ l_ @ one)
    ) / (m * (m - 3))
    got = hsic_unbiased(torch.tensor(x @ x.T), torch.tensor(y @ y.T))
    assert float(got) == pytest.approx(ref, abs=1e-12)


def test_minibatch_cka_single_batch_equals_debiased_cka() -> None:
    x, y = _pair(12, n=64)
    assert minibatch_cka(x, y, batch_size=64) == pytest.approx(
        linear_cka(x, y, debiased=True), abs=1e-10
    )


def test_minibatch_cka_averages_hsic_over_batches() -> None:
    x, y = _pair(13, n=96)
    xt, yt = torch.tensor(x), torch.tensor(y)
    h = np.zeros(3)
    for b in range(3):
        xb, yb = xt[32 * b : 32 * (b + 1)], yt[32 * b : 32 * (b + 1)]
        k, l_ = xb @ xb.T, yb @ yb.T
        h += [float(hsic_unbiased(k, l_)), float(hsic_unbiased(k, k)), float(hsic_unbiased(l_, l_))]
    ref = h[0] / np.sqrt(h[1] * h[2])
    assert minibatch_cka(x, y, batch_size=32) == pytest.approx(ref, abs=1e-12)
    # It is a different estimator from exact CKA on these data.
    assert abs(minibatch_cka(x, y, batch_size=32) - linear_cka(x, y)) > 1e-4
    with pytest.raises(ValueError, match="batch_size"):
        minibatch_cka(x, y, batch_size=3)


def test_reused_centring_buffers_never_leak_between_calls_or_threads() -> None:
    # The centring buffers are kept per thread between calls (empirical._cka_state._buffer):
    # a call after a larger, a smaller, a float32 and a wider one, and the same calls run in
    # four threads at once, must give exactly the values of the first, serial calls.
    from concurrent.futures import ThreadPoolExecutor

    cases = [_pair(s, n=n, d1=d1) for s, n, d1 in ((1, 500, 8), (2, 50, 3), (3, 800, 12))]
    cases.append((cases[0][0].astype(np.float32), cases[0][1].astype(np.float32)))
    first = [linear_cka(x, y, debiased=True) for x, y in cases]
    again = [linear_cka(x, y, debiased=True) for x, y in reversed(cases)][::-1]
    assert again == first
    with ThreadPoolExecutor(4) as pool:
        threaded = list(pool.map(lambda c: linear_cka(*c, debiased=True), cases * 8))
    assert threaded == first * 8


def test_wide_features_are_centred_in_chunks_that_fit_the_kept_buffers(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    # Features wider than the kept centring buffers are centred in balanced chunks (a fresh
    # buffer per call costs more than the centring on some machines); the d x d sums of up to
    # CHUNK rows stay float32, added in place, then go to float64. Neither changes the value.
    import empirical._cka_state as state_mod

    x, y = _pair(21, n=1000)
    x32, y32 = (x + 50.0).astype(np.float32), y.astype(np.float32)
    whole = [linear_cka(x32, y32), linear_cka(x32, y32, debiased=True)]
    ref = [gram_linear_cka(x, y), gram_linear_cka(x, y, debiased=True)]
    monkeypatch.setattr(state_mod, "BUFFER_BYTES", 8 * 1024)  # 256 rows of 8 float32
    assert state_mod.chunk_rows(x32, y32) == 250  # 1000 rows: 4 equal chunks, not 3 x 256 + 232
    assert state_mod.chunk_rows(x32[:7], y32[:7]) == 7
    acc = StreamingLinearCKA(debiased=True)
    acc.update(x32, y32)
    assert acc.state.sums["suu"].dtype == np.float32
    assert acc.state.low_rows == 1000
    chunked = [acc.compute(False), acc.compute(True)]
    assert chunked == pytest.approx(whole, abs=F32_ATOL)
    assert chunked == pytest.approx(ref, abs=F32_ATOL)
    # Past CHUNK rows the sums go to float64, and a refused batch leaves everything as it was.
    monkeypatch.setattr(state_mod, "CHUNK", 600)
    acc = StreamingLinearCKA(debiased=True)
    acc.update(x32[:500], y32[:500])
    assert (acc.state.sums["suu"].dtype, acc.state.low_rows) == (np.float32, 500)
    before = {k: v.copy() for k, v in acc.state.sums.items()}
    bad = x32[500:].copy()
    bad[-1, 0] = np.nan  # in the last chunk, after two chunks were added in place
    with pytest.raises(ValueError, match="X contains NaN"):
        acc.update(bad, y32[500:])
    assert (acc.n, acc.state.low_rows) == (500, 500)
    assert all(np.array_equal(acc.state.sums[k], v) for k, v in before.items())
    acc.update(x32[500:], y32[500:])
    assert (acc.state.sums["suu"].dtype, acc.state.low_rows) == (np.float64, 0)
    assert [acc.compute(False), acc.compute(True)] == pytest.approx(ref, abs=F32_ATOL)


def test_streaming_moments_are_a_snapshot():
    # update() adds to the state's float64 sums in place: moments taken before an update must
    # not change with it (their centred matrices are built lazily, on first use).
    rng = np.random.default_rng(11)
    x1, y1 = rng.standard_normal((300, 6)), rng.standard_normal((300, 4))
    x2, y2 = rng.standard_normal((200, 6)) + 2.0, rng.standard_normal((200, 4))
    acc = StreamingLinearCKA()
    acc.update(x1, y1)
    acc.update(x1[:10], y1[:10])  # the sums are float64 arrays now, updated in place
    before = acc.moments()
    acc.update(x2, y2)
    alone = StreamingLinearCKA()
    alone.update(x1, y1)
    alone.update(x1[:10], y1[:10])
    expected = alone.moments()
    np.testing.assert_array_equal(before.cxx, expected.cxx)
    np.testing.assert_array_equal(before.cxy, expected.cxy)
    assert before.frobenius2() == expected.frobenius2()
    # negative control: the moments after the update do see the new rows
    assert not np.allclose(acc.moments().cxx, expected.cxx)
