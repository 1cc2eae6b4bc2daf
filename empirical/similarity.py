"""Orthogonal Procrustes distance and principal angles between top-r feature subspaces.

Both are functions of the centred second moments (X~^T X~, Y~^T Y~, X~^T Y~), so the
comparison pipeline computes them from the same streaming sums as exact linear CKA.
"""

from __future__ import annotations

import math

import numpy as np
import scipy.linalg
import torch

from empirical._moments import CentredMoments, centred_moments
from empirical._numerics import as_features, check_finite, check_rows, pow2_scaled
from empirical.cka import CKAState, _cka_update

RANK_RTOL = 1e-10
"""An eigenvalue of X~^T X~ counts toward the rank when it exceeds RANK_RTOL times the largest."""


def _procrustes_from_moments(m: CentredMoments) -> float:
    """Procrustes distance from centred moments; see :func:`procrustes_distance`."""
    if m.constant_x or m.constant_y:
        return 0.0 if (m.constant_x and m.constant_y) else math.sqrt(2.0)
    # Frame units (powers of two) cancel in the ratio; every factor is O(1)..O(n d).
    nuclear = float(np.linalg.svd(m.cxy, compute_uv=False).sum())
    cos_sum = nuclear / (math.sqrt(m.tr_x) * math.sqrt(m.tr_y))
    return math.sqrt(max(2.0 - 2.0 * cos_sum, 0.0))


def procrustes_distance(X: np.ndarray | torch.Tensor, Y: np.ndarray | torch.Tensor) -> float:
    r"""Orthogonal Procrustes distance between centred, unit-Frobenius-norm representations.

    .. math::
        d_P(X, Y) = \min_{Q^\top Q = I} \|\hat X - \hat Y Q\|_F
        = \sqrt{2 - 2\,\|\hat X^\top \hat Y\|_*},
        \qquad \hat X = \tilde X / \|\tilde X\|_F,

    (Schönemann 1966; the form used by Ding et al. 2021 and Williams et al. 2021). Unequal
    widths are handled by zero padding, which leaves the nuclear norm unchanged.

    Parameters
    ----------
    X : ndarray or Tensor of shape (n, d1)
    Y : ndarray or Tensor of shape (n, d2)

    Returns
    -------
    float
        In [0, sqrt(2)]; 0 iff the centred representations agree up to rotation and scale.
        Constant features: 0.0 if both X and Y are constant, sqrt(2) if only one is.
    """
    return _procrustes_from_moments(centred_moments(_cka_update(CKAState(row_stats=False), X, Y)))


def _top_eig(c: np.ndarray, r: int) -> tuple[np.ndarray, np.ndarray, int]:
    vals, vecs = np.linalg.eigh(c)
    vals, vecs = vals[::-1], vecs[:, ::-1]
    top = float(vals[0]) if vals.size else 0.0
    rank = int((vals > RANK_RTOL * top).sum()) if top > 0 else 0
    return vals[:r], vecs[:, :r], rank


def _angles_from_moments(m: CentredMoments, r: int) -> np.ndarray:
    """Principal angles from centred moments: cos = sigma(Lx^-1/2 Vx^T Cxy Vy Ly^-1/2)."""
    lx, vx, rank_x = _top_eig(m.cxx, r)
    ly, vy, rank_y = _top_eig(m.cyy, r)
    if r > min(rank_x, rank_y):
        raise ValueError(
            f"r={r} is invalid: expected 1 <= r <= min(rank X, rank Y) = "
            f"{min(rank_x, rank_y)} (ranks {rank_x} and {rank_y})"
        )
    cross = (vx.T @ m.cxy @ vy) / np.sqrt(np.outer(lx, ly))
    cos = np.clip(np.linalg.svd(cross, compute_uv=False), -1.0, 1.0)
    return np.sort(np.arccos(cos))


def mean_principal_angle(m: CentredMoments, r: int) -> float:
    """Mean principal angle with r clipped to the common rank; constant-feature convention.

    Returns 0.0 when both representations are constant and pi/2 when only one is.
    """
    if m.constant_x or m.constant_y:
        return 0.0 if (m.constant_x and m.constant_y) else math.pi / 2
    rank = min(_top_eig(m.cxx, 0)[2], _top_eig(m.cyy, 0)[2])
    return float(np.mean(_angles_from_moments(m, min(r, rank))))


def principal_angles(
    X: np.ndarray | torch.Tensor, Y: np.ndarray | torch.Tensor, r: int = 10
) -> np.ndarray:
    r"""Principal angles between the spans of the top-r principal components of X and Y.

    The subspaces live in sample space (R^n): span(U_X,r), the first r left singular vectors of
    the centred X~, so X and Y may have different widths and the angles are invariant to
    rotations and scaling of either feature space (as in SVCCA, Raghu et al. 2017).

    .. math:: \cos\theta_k = \sigma_k\big(U_{X,r}^\top U_{Y,r}\big), \quad k = 1..r

    computed with the Björck-Golub algorithm (scipy.linalg.subspace_angles), accurate for
    small angles.

    Parameters
    ----------
    X : ndarray or Tensor of shape (n, d1)
    Y : ndarray or Tensor of shape (n, d2)
    r : int
        Subspace dimension, 1 <= r <= min(rank X~, rank Y~).

    Returns
    -------
    ndarray of shape (r,)
        Angles in radians, ascending, in [0, pi/2].
    """
    if r < 1:
        raise ValueError(f"r={r} is invalid: expected an integer >= 1")
    xa, ya = as_features(X, "X"), as_features(Y, "Y")
    check_rows(xa, ya)
    bases = []
    for name, a in (("X", xa), ("Y", ya)):
        check_finite(a, name)
        # Scale (exactly, by a power of two) before centring so that no square overflows.
        t64, _ = pow2_scaled(a.astype(np.float64))
        t64 = t64 - t64.mean(0)
        u, s, _ = np.linalg.svd(t64, full_matrices=False)
        rank = int((s > RANK_RTOL**0.5 * s[0]).sum()) if s.size and s[0] > 0 else 0
        if r > rank:
            raise ValueError(f"r={r} is invalid: expected r <= rank of centred {name} = {rank}")
        bases.append(u[:, :r])
    return np.sort(scipy.linalg.subspace_angles(bases[0], bases[1]))


__all__ = ["mean_principal_angle", "principal_angles", "procrustes_distance"]
