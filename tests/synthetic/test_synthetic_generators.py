"""Property tests of the generators: orthonormal rows, second moments, overlap fractions."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from synthetic import (
    COVARIATES,
    ConfigError,
    SimConfig,
    draw_problem,
    explicit_inputs,
    sample_inputs,
    second_moment,
)
from synthetic.generators import apply_inputs, quadratic_form

EXACT = 1e-12  # float64 identities on O(1) quantities

dims = st.tuples(st.integers(1, 4), st.integers(1, 5), st.integers(0, 6)).map(
    lambda t: {"m": t[0], "C": t[1], "d": t[0] + 2 * t[1] + t[2]}
)


@given(dims=dims, seed=st.integers(0, 2**31), cov=st.sampled_from(COVARIATES))
def test_ground_truth_orthonormal_and_heads(dims, seed, cov):
    config = SimConfig(**dims, seed=seed, covariate=cov, lam=0.7, vcom_norm=1.3)
    p = draw_problem(config)
    np.testing.assert_allclose(p.b_star @ p.b_star.T, np.eye(config.k), atol=EXACT)
    assert np.linalg.norm(p.v_com) == pytest.approx(1.3, rel=1e-12)
    expected = np.zeros((config.C, config.k))
    expected[:, : config.m] = p.v_com
    expected[np.arange(config.C), config.m + np.arange(config.C)] = 0.7
    np.testing.assert_allclose(p.heads, expected, atol=0)


@given(dims=dims, seed=st.integers(0, 2**31), cov=st.sampled_from(COVARIATES))
def test_second_moment_forms_agree(dims, seed, cov):
    config = SimConfig(**dims, seed=seed, covariate=cov, eps=0.4, rho=0.3, mix=0.6)
    inputs = draw_problem(config).inputs
    S = second_moment(inputs)
    v = np.random.default_rng(seed).standard_normal((config.C, config.d))
    np.testing.assert_allclose(apply_inputs(inputs, v), np.einsum("cij,cj->ci", S, v), atol=EXACT)
    np.testing.assert_allclose(
        quadratic_form(inputs, v), np.einsum("ci,cij,cj->c", v, S, v), atol=EXACT
    )
    np.testing.assert_allclose(S, np.swapaxes(S, -1, -2), atol=0)


@given(dims=dims, seed=st.integers(0, 2**31))
def test_covariate_means_follow_geometry(dims, seed):
    base = SimConfig(**dims, seed=seed, eps=0.3)
    p_own = draw_problem(base.replace(covariate="own"))
    u = p_own.b_star[base.m :]
    np.testing.assert_allclose(p_own.inputs.mean, u, atol=0)
    # S_i = e_i e_i^T + eps^2 I  ([CLOSER] Sec. 4.2)
    S = second_moment(p_own.inputs)
    expected = u[:, :, None] * u[:, None, :] + 0.09 * np.eye(base.d)
    np.testing.assert_allclose(S, expected, atol=EXACT)
    shared = draw_problem(base.replace(covariate="shared")).inputs.mean
    proj = shared @ p_own.b_star[: base.m].T @ p_own.b_star[: base.m]
    np.testing.assert_allclose(proj, shared, atol=1e-12)  # inside the shared feature rows
    mixed = draw_problem(base.replace(covariate="mix", mix=0.0)).inputs.mean
    np.testing.assert_allclose(mixed, u, atol=1e-12)
    for cov in ("shared", "random", "basis", "mix"):
        mean = draw_problem(base.replace(covariate=cov)).inputs.mean
        np.testing.assert_allclose(np.linalg.norm(mean, axis=1), 1.0, rtol=1e-12)


@given(
    m=st.integers(1, 3),
    C=st.integers(1, 4),
    extra=st.integers(0, 6),
    rho=st.floats(0.0, 1.0),
    seed=st.integers(0, 2**31),
)
def test_overlap_fraction_is_rho(m, C, extra, rho, seed):
    d = m + 2 * C + extra
    config = SimConfig(d=d, m=m, C=C, covariate="overlap", rho=rho, eps=0.0, seed=seed)
    p = draw_problem(config)
    S = second_moment(p.inputs)
    P = p.b_star.T @ p.b_star
    # Energy fraction in rowspace(B*) equals rho for every client.
    frac = np.einsum("ij,cji->c", P, S) / np.trace(S, axis1=1, axis2=2)
    np.testing.assert_allclose(frac, rho, atol=1e-12)
    # Private parts do not overlap across clients: (I-P) S_i (I-P) S_j (I-P) = 0 for i != j.
    Q = np.eye(d) - P
    for i in range(C):
        for j in range(C):
            if i != j:
                np.testing.assert_allclose(Q @ S[i] @ Q @ S[j] @ Q, 0.0, atol=1e-12)


def test_overlap_needs_room():
    with pytest.raises(ConfigError, match=r"d=7 .*overlap"):
        SimConfig(d=7, m=3, C=4, covariate="overlap", rho=0.5)


@pytest.mark.slow
@settings(max_examples=10)
@given(seed=st.integers(0, 2**31), cov=st.sampled_from(["own", "mix", "overlap", "isotropic"]))
def test_samples_match_second_moment(seed, cov):
    """Empirical second moments of 20,000 draws match S_i within 5 standard errors."""
    config = SimConfig(d=10, m=2, C=3, covariate=cov, eps=0.5, seed=seed)
    inputs = draw_problem(config).inputs
    n = 20_000
    x = sample_inputs(inputs, n, np.random.default_rng(seed))
    outer = x[:, :, :, None] * x[:, :, None, :]
    est = outer.mean(axis=1)
    se = outer.std(axis=1) / np.sqrt(n)
    assert np.all(np.abs(est - second_moment(inputs)) <= 5 * se + 1e-12)


def test_explicit_inputs_round_trip():
    rng = np.random.default_rng(0)
    A = rng.standard_normal((2, 5, 5))
    covs = A @ np.swapaxes(A, 1, 2)
    means = rng.standard_normal((2, 5))
    inputs = explicit_inputs(means, covs)
    expected = covs + means[:, :, None] * means[:, None, :]
    np.testing.assert_allclose(second_moment(inputs), expected, atol=1e-10)
    with pytest.raises(ConfigError, match="positive semi-definite"):
        explicit_inputs(means, -covs)
    with pytest.raises(ConfigError, match="shape"):
        explicit_inputs(means, covs[:, :4, :4])


def test_same_seed_same_draws_and_common_numbers_across_lam():
    a = draw_problem(SimConfig(seed=3, n=20, lam=0.5))
    b = draw_problem(SimConfig(seed=3, n=20, lam=0.5))
    c = draw_problem(SimConfig(seed=3, n=20, lam=1.5))
    d = draw_problem(SimConfig(seed=4, n=20, lam=0.5))
    assert a.x is not None
    assert b.x is not None
    assert c.x is not None
    assert d.x is not None
    np.testing.assert_array_equal(a.x, b.x)
    np.testing.assert_array_equal(a.b_star, c.b_star)  # common random numbers across lam
    np.testing.assert_array_equal(a.x, c.x)
    assert not np.array_equal(a.y, c.y)
    assert not np.array_equal(a.b_star, d.b_star)
