"""Paired distortion metrics, Procrustes and principal angles."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from empirical._moments import centred_moments
from empirical.cka import CKAState, _cka_update
from empirical.metrics import (
    delta_l2,
    mean_cosine_distance,
    principal_angles,
    procrustes_distance,
    relative_l2,
)
from empirical.similarity import _angles_from_moments, mean_principal_angle


def test_delta_l2_matches_direct_computation() -> None:
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(40, 6)), rng.normal(size=(40, 6))
    direct = sum(math.sqrt(sum((x[i, j] - y[i, j]) ** 2 for j in range(6))) for i in range(40)) / 40
    assert delta_l2(x, y) == pytest.approx(direct, rel=1e-12)
    assert delta_l2(torch.tensor(x, dtype=torch.float32), y.astype(np.float32)) == pytest.approx(
        direct, rel=1e-6
    )
    # Unsquared: distances 3 and 5 average to 4, not sqrt((9 + 25) / 2).
    assert delta_l2(np.zeros((2, 2)), np.array([[3.0, 0.0], [3.0, 4.0]])) == 4.0


def test_relative_l2_and_cosine() -> None:
    rng = np.random.default_rng(1)
    x = rng.normal(size=(30, 4))
    assert relative_l2(x, 3 * x) == pytest.approx(2.0, rel=1e-12)
    assert mean_cosine_distance(x, 5 * x) == pytest.approx(0.0, abs=1e-12)
    assert mean_cosine_distance(x, -x) == pytest.approx(2.0, abs=1e-12)
    z = np.zeros((3, 2))
    assert relative_l2(z, z) == 0.0
    assert relative_l2(z, np.ones((3, 2))) == math.inf
    assert mean_cosine_distance(z, z) == 0.0
    assert mean_cosine_distance(z, np.ones((3, 2))) == 1.0


def test_paired_metrics_need_equal_width() -> None:
    with pytest.raises(ValueError, match="same number of columns"):
        delta_l2(np.zeros((3, 2)), np.zeros((3, 4)))


def test_procrustes_zero_under_rotation_scale_offset_and_positive_otherwise() -> None:
    rng = np.random.default_rng(2)
    x = rng.normal(size=(100, 5))
    q, _ = np.linalg.qr(rng.normal(size=(5, 5)))
    assert procrustes_distance(x, 4.0 * x @ q + 2.0) == pytest.approx(0.0, abs=1e-6)
    other = rng.normal(size=(100, 5))
    # Independent reference: solve the Procrustes problem with scipy's orthogonal_procrustes.
    from scipy.linalg import orthogonal_procrustes

    a = (x - x.mean(0)) / np.linalg.norm(x - x.mean(0))
    b = (other - other.mean(0)) / np.linalg.norm(other - other.mean(0))
    r, _ = orthogonal_procrustes(b, a)
    ref = np.linalg.norm(a - b @ r)
    assert procrustes_distance(x, other) == pytest.approx(ref, abs=1e-10)
    assert procrustes_distance(np.ones((5, 2)), x[:5]) == pytest.approx(math.sqrt(2))


def test_principal_angles_of_subspace_with_itself_are_zero() -> None:
    rng = np.random.default_rng(3)
    x = rng.normal(size=(80, 6))
    mixed = x @ rng.normal(size=(6, 6)) + 1.0  # same column space, different basis
    np.testing.assert_allclose(principal_angles(x, mixed, r=6), 0.0, atol=1e-7)
    np.testing.assert_allclose(principal_angles(x, x, r=3), 0.0, atol=1e-7)


def test_principal_angles_known_value_and_moment_form() -> None:
    rng = np.random.default_rng(4)
    n = 200
    a = rng.normal(size=n)
    b = rng.normal(size=n)
    a, b = a - a.mean(), b - b.mean()
    b = b - (a @ b) / (a @ a) * a  # b orthogonal to a
    theta = 0.3
    y = np.cos(theta) * a / np.linalg.norm(a) + np.sin(theta) * b / np.linalg.norm(b)
    got = principal_angles(a[:, None], y[:, None], r=1)
    assert got[0] == pytest.approx(theta, abs=1e-10)
    x2, y2 = rng.normal(size=(n, 5)), rng.normal(size=(n, 4))
    m = centred_moments(_cka_update(CKAState(), torch.tensor(x2), torch.tensor(y2)))
    np.testing.assert_allclose(_angles_from_moments(m, 3), principal_angles(x2, y2, 3), atol=1e-8)
    assert mean_principal_angle(m, 3) == pytest.approx(principal_angles(x2, y2, 3).mean())


def test_principal_angles_rank_check() -> None:
    x = np.random.default_rng(5).normal(size=(20, 2))
    with pytest.raises(ValueError, match="r=3"):
        principal_angles(x, x, r=3)
