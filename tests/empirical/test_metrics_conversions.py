"""The conversions of docs/metric-conversions.md, one test each.

Each peer quantity is implemented here from the peer's definition, in float64, by a different
route from ours (Gram matrices, an explicit orthogonal fit, eigenvalues); no peer package is
imported except scipy, which is a dependency of the toolkit.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import scipy.linalg
import scipy.spatial
import torch

from empirical.metrics import linear_cka, minibatch_cka, procrustes_distance

TOL = 1e-10  # float64 on O(1) data; the page promises 1e-6 or better


def _pair(seed: int, n: int = 120, d1: int = 7, d2: int = 5) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, d1)) + 2.0
    y = np.tanh(x @ rng.normal(size=(d1, d2))) + 0.4 * rng.normal(size=(n, d2))
    return x, y


def _gram_cosine(x: np.ndarray, y: np.ndarray) -> float:
    """Cosine of the angle between the centred Gram matrices HKH and HLH."""
    h = np.eye(x.shape[0]) - 1.0 / x.shape[0]
    kc, lc = h @ (x @ x.T) @ h, h @ (y @ y.T) @ h
    return float(np.sum(kc * lc) / (np.linalg.norm(kc) * np.linalg.norm(lc)))


def _normalised(a: np.ndarray, width: int) -> np.ndarray:
    a = a - a.mean(0)
    a = a / np.linalg.norm(a)
    return np.pad(a, ((0, 0), (0, width - a.shape[1])))


def _nuclear_by_eigenvalues(x: np.ndarray, y: np.ndarray) -> float:
    """||X^^T Y^||_* as the sum of square roots of the eigenvalues of the smaller of M M^T and
    M^T M (the larger one has exact zeros, whose square roots would amplify rounding)."""
    m = _normalised(x, x.shape[1]).T @ _normalised(y, y.shape[1])
    g = m.T @ m if m.shape[1] <= m.shape[0] else m @ m.T
    return float(np.sqrt(np.clip(np.linalg.eigvalsh(g), 0.0, None)).sum())


@pytest.mark.parametrize("seed", [0, 1])
def test_netrep_cka_score_is_arccos_of_cka(seed: int) -> None:
    x, y = _pair(seed)
    netrep_score = math.acos(_gram_cosine(x, y))  # angle between centred Gram matrices
    assert math.acos(linear_cka(x, y)) == pytest.approx(netrep_score, abs=TOL)


@pytest.mark.parametrize("seed", [2, 3])
def test_anatome_cka_distance_is_one_minus_cka(seed: int) -> None:
    x, y = _pair(seed)
    anatome_distance = 1.0 - _gram_cosine(x, y)
    assert 1.0 - linear_cka(x, y) == pytest.approx(anatome_distance, abs=TOL)


@pytest.mark.parametrize(("seed", "d2"), [(4, 5), (5, 7), (6, 9)])
def test_anatome_opd_gives_our_procrustes_distance_as_sqrt_two_opd(seed: int, d2: int) -> None:
    x, y = _pair(seed, d2=d2)
    w = max(x.shape[1], y.shape[1])
    a, b = _normalised(x, w), _normalised(y, w)
    q, _ = scipy.linalg.orthogonal_procrustes(b, a)  # the explicit orthogonal fit
    opd = 0.5 * float(np.linalg.norm(a - b @ q) ** 2)  # = 1 - ||A^T B||_*
    assert opd == pytest.approx(1.0 - _nuclear_by_eigenvalues(x, y), abs=TOL)
    assert procrustes_distance(x, y) == pytest.approx(math.sqrt(2.0 * opd), abs=TOL)


@pytest.mark.parametrize(("seed", "d2"), [(7, 5), (8, 7)])
def test_netrep_angular_procrustes_gives_ours_as_two_sin_half_theta(seed: int, d2: int) -> None:
    x, y = _pair(seed, d2=d2)
    theta = math.acos(min(_nuclear_by_eigenvalues(x, y), 1.0))
    assert procrustes_distance(x, y) == pytest.approx(2.0 * math.sin(theta / 2.0), abs=TOL)
    assert 2.0 * math.asin(procrustes_distance(x, y) / 2.0) == pytest.approx(theta, abs=1e-8)


@pytest.mark.parametrize("seed", [9, 10])
def test_scipy_procrustes_disparity_is_one_minus_nuclear_squared(seed: int) -> None:
    x, y = _pair(seed, d2=7)  # scipy needs equal shapes
    _, _, disparity = scipy.spatial.procrustes(x, y)
    d_p = procrustes_distance(x, y)
    assert disparity == pytest.approx(1.0 - (1.0 - d_p**2 / 2.0) ** 2, abs=TOL)
    assert disparity == pytest.approx(1.0 - _nuclear_by_eigenvalues(x, y) ** 2, abs=TOL)


def _torch_cka_style_hsic(k: torch.Tensor, l_: torch.Tensor) -> torch.Tensor:
    """Unbiased HSIC written as torch-cka documents it: zeroed diagonals, traces, ones."""
    n = k.shape[0]
    k, l_ = k.clone(), l_.clone()
    k.fill_diagonal_(0.0)
    l_.fill_diagonal_(0.0)
    one = torch.ones(n, 1, dtype=torch.float64)
    value = (
        torch.trace(k @ l_)
        + (one.T @ k @ one @ one.T @ l_ @ one) / ((n - 1) * (n - 2))
        - (one.T @ k @ l_ @ one) * 2.0 / (n - 2)
    )
    return value / (n * (n - 3))


@pytest.mark.parametrize(("seed", "m"), [(11, 16), (12, 40)])
def test_torch_cka_minibatch_equals_ours_on_identical_batches(seed: int, m: int) -> None:
    x, y = _pair(seed, n=120)
    xt, yt = torch.tensor(x), torch.tensor(y)
    h = torch.zeros(3, dtype=torch.float64)  # accumulated over batches, then normalised
    for start in range(0, 120, m):
        xb, yb = xt[start : start + m], yt[start : start + m]
        k, l_ = xb @ xb.T, yb @ yb.T
        h += torch.stack(
            [
                _torch_cka_style_hsic(k, k),
                _torch_cka_style_hsic(k, l_),
                _torch_cka_style_hsic(l_, l_),
            ]
        ).reshape(3)
    peer = float(h[1] / (h[0].sqrt() * h[2].sqrt()))
    assert minibatch_cka(x, y, batch_size=m) == pytest.approx(peer, abs=TOL)
