"""Random problem instances: ground truth, client input distributions and samples.

Every function that draws takes an explicit ``numpy.random.Generator``. Client input
distributions are kept in the structured form of :class:`synthetic.moments.InputModel`, so
second moments can be applied in O(d q) instead of O(d^2) ([CLOSER] Sec. 4.1-4.2); that
algebra lives in :mod:`synthetic.moments` (its names are re-exported here).
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

from synthetic.config import ConfigError
from synthetic.moments import InputModel, apply_inputs, quadratic_form, second_moment

Array = NDArray[np.float64]


def orthonormal_rows(k: int, d: int, rng: np.random.Generator) -> Array:
    """Draw a Haar-random matrix with orthonormal rows.

    Parameters
    ----------
    k, d : int
        Shape, ``k <= d``.
    rng : numpy.random.Generator
        Source of randomness.

    Returns
    -------
    ndarray of shape (k, d)
        B with B B^T = I_k.
    """
    if k > d:
        raise ConfigError(f"k={k} is invalid: expected k <= d={d} for orthonormal rows")
    q, r = np.linalg.qr(rng.standard_normal((d, k)))
    signs = np.where(np.diag(r) < 0, -1.0, 1.0)
    return (q * signs).T.copy()


def ground_truth(
    d: int, m: int, C: int, vcom_norm: float, rng: np.random.Generator
) -> tuple[Array, Array]:
    """Draw the shared features B* and the shared head V*_com ([CLOSER] Sec. 4).

    Returns
    -------
    B_star : ndarray of shape (m + C, d)
        Orthonormal rows; row m + i is client i's own direction u_i.
    v_com : ndarray of shape (m,)
        Shared head with ||V*_com|| = ``vcom_norm`` and a uniformly random direction.
    """
    b_star = orthonormal_rows(m + C, d, rng)
    direction = rng.standard_normal(m)
    v_com = vcom_norm * direction / np.linalg.norm(direction)
    return b_star, v_com


def client_heads(v_com: Array, lam: Array | float, C: int) -> Array:
    r"""Client heads V*_i = [V*_com; lambda e_i] ([CLOSER] Sec. 4).

    Parameters
    ----------
    v_com : ndarray of shape (..., m)
    lam : float or ndarray of shape (...)
    C : int

    Returns
    -------
    ndarray of shape (..., C, m + C)
    """
    v_com = np.asarray(v_com, dtype=float)
    lam = np.asarray(lam, dtype=float)
    batch = np.broadcast_shapes(v_com.shape[:-1], lam.shape)
    m = v_com.shape[-1]
    heads = np.zeros((*batch, C, m + C))
    heads[..., :m] = v_com[..., None, :]
    idx = np.arange(C)
    heads[..., idx, m + idx] = lam[..., None]
    return heads


def client_means(
    geometry: str, b_star: Array, m: int, C: int, mix: float, rng: np.random.Generator
) -> Array:
    """Client means e_i of the covariate-shift model x_i = e_i + eps z ([CLOSER] Sec. 4.2).

    Parameters
    ----------
    geometry : {'own', 'shared', 'random', 'basis', 'mix'}
        ``own``: e_i = u_i. ``shared``: a random unit vector in span(b*_1..b*_m).
        ``random``: a uniformly random unit vector. ``basis``: the standard basis vector
        e_{i mod d}. ``mix``: cos(mix pi/2) u_i + sin(mix pi/2) s_i with s_i as in ``shared``.
    b_star : ndarray of shape (m + C, d)
    m, C : int
    mix : float
        Weight in [0, 1] for ``mix`` (0 = own, 1 = shared).
    rng : numpy.random.Generator

    Returns
    -------
    ndarray of shape (C, d)
        Unit-norm client means.
    """
    d = b_star.shape[1]
    own = b_star[m : m + C]
    coeff = rng.standard_normal((C, m))
    shared = (coeff / np.linalg.norm(coeff, axis=1, keepdims=True)) @ b_star[:m]
    random = rng.standard_normal((C, d))
    random /= np.linalg.norm(random, axis=1, keepdims=True)
    if geometry == "own":
        return own.copy()
    if geometry == "shared":
        return shared
    if geometry == "random":
        return random
    if geometry == "basis":
        return np.eye(d)[np.arange(C) % d]
    if geometry == "mix":
        angle = mix * np.pi / 2
        return np.cos(angle) * own + np.sin(angle) * shared
    raise ConfigError(
        f"covariate={geometry!r} is invalid: expected one of own, shared, random, basis, mix"
    )


def overlap_factors(b_star: Array, C: int, rho: float, rng: np.random.Generator) -> Array:
    r"""Covariance factors of partial feature overlap.

    Client i draws x = sqrt(rho / k) B*^T z_1 + sqrt((1 - rho) / p) Q_i z_2, where the Q_i
    (d x p, p = min(k, (d - k) // C)) are mutually orthogonal private subspaces in the
    orthogonal complement of rowspace(B*). Hence tr(P S_i) / tr(S_i) = rho for the projector
    P onto rowspace(B*), every client shares that part, and no two clients share anything else.

    Parameters
    ----------
    b_star : ndarray of shape (k, d)
    C : int
    rho : float
        Overlap fraction in [0, 1].
    rng : numpy.random.Generator

    Returns
    -------
    ndarray of shape (C, d, k + p)
        Factors F_i with S_i = F_i F_i^T (before any added isotropic noise).
    """
    k, d = b_star.shape
    p = min(k, (d - k) // C)
    if p < 1 and rho < 1.0:
        raise ConfigError(
            f"d={d} is invalid: partial overlap with rho={rho} < 1 needs d >= k + C = {k + C}"
        )
    # Orthonormal basis of the complement of rowspace(B*), randomly rotated.
    full = np.linalg.qr(np.concatenate([b_star.T, rng.standard_normal((d, d - k))], axis=1))[0]
    complement = full[:, k:]
    factors = np.zeros((C, d, k + p))
    factors[:, :, :k] = np.sqrt(rho / k) * b_star.T
    if p >= 1:
        for i in range(C):
            factors[i, :, k:] = np.sqrt((1.0 - rho) / p) * complement[:, i * p : (i + 1) * p]
    return factors


def explicit_inputs(means: Array, covariances: Array) -> InputModel:
    """Input model from explicit per-client means and covariances.

    Parameters
    ----------
    means : ndarray of shape (C, d)
    covariances : ndarray of shape (C, d, d)
        Symmetric positive semi-definite.

    Returns
    -------
    InputModel
        With factor F_i = covariance_i^{1/2} (symmetric square root) and zero isotropic scale.
    """
    means = np.asarray(means, dtype=float)
    covariances = np.asarray(covariances, dtype=float)
    if means.ndim != 2 or covariances.shape != (*means.shape, means.shape[1]):
        raise ConfigError(
            f"covariances shape {covariances.shape} is invalid: expected (C, d, d) = "
            f"{(*means.shape, means.shape[-1])} to match means {means.shape}"
        )
    if not np.allclose(covariances, np.swapaxes(covariances, -1, -2)):
        raise ConfigError("covariances are invalid: expected symmetric matrices")
    vals, vecs = np.linalg.eigh(covariances)
    if np.any(vals < -1e-10 * np.maximum(1.0, np.abs(vals).max())):
        raise ConfigError("covariances are invalid: expected positive semi-definite matrices")
    factor = vecs * np.sqrt(np.clip(vals, 0.0, None))[..., None, :]
    return InputModel(mean=means, factor=factor, scale=np.zeros(means.shape[0]))


def input_model(
    covariate: str,
    b_star: Array,
    m: int,
    C: int,
    *,
    eps: float,
    rho: float,
    mix: float,
    rng: np.random.Generator,
) -> InputModel:
    """Client input distributions for a named geometry (see :class:`synthetic.SimConfig`).

    Returns
    -------
    InputModel
        ``isotropic``: S_i = I. ``overlap``: :func:`overlap_factors` plus eps^2 I.
        Otherwise x_i = e_i + eps z with e_i from :func:`client_means`.
    """
    d = b_star.shape[1]
    if covariate == "isotropic":
        return InputModel(np.zeros((C, d)), np.zeros((C, d, 0)), np.ones(C))
    if covariate == "overlap":
        return InputModel(np.zeros((C, d)), overlap_factors(b_star, C, rho, rng), np.full(C, eps))
    means = client_means(covariate, b_star, m, C, mix, rng)
    return InputModel(means, np.zeros((C, d, 0)), np.full(C, eps))


def sample_inputs(inputs: InputModel, n: int, rng: np.random.Generator) -> Array:
    """Draw n inputs per client from an unbatched input model.

    Returns
    -------
    ndarray of shape (C, n, d)
    """
    C, d = inputs.mean.shape
    q = inputs.factor.shape[-1]
    z = rng.standard_normal((C, n, q))
    xi = rng.standard_normal((C, n, d))
    return (
        inputs.mean[:, None, :]
        + np.einsum("cdq,cnq->cnd", inputs.factor, z)
        + inputs.scale[:, None, None] * xi
    )


def sample_labels(x: Array, w_star: Array, sigma: float, rng: np.random.Generator) -> Array:
    """Labels y = w*_i^T x + sigma xi.

    Parameters
    ----------
    x : ndarray of shape (C, n, d)
    w_star : ndarray of shape (C, d)
    sigma : float
    rng : numpy.random.Generator

    Returns
    -------
    ndarray of shape (C, n)
    """
    noise = rng.standard_normal(x.shape[:-1])
    return np.einsum("cnd,cd->cn", x, w_star) + sigma * noise


__all__ = [
    "InputModel",
    "apply_inputs",
    "client_heads",
    "client_means",
    "explicit_inputs",
    "ground_truth",
    "input_model",
    "orthonormal_rows",
    "overlap_factors",
    "quadratic_form",
    "sample_inputs",
    "sample_labels",
    "second_moment",
]
