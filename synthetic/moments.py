"""Structured second moments S = e e^T + F F^T + s^2 I of client inputs, applied without forming S.

:class:`InputModel` keeps a client's input distribution as its mean, a low-rank factor and an
isotropic scale, so S v costs O(d q) and v^T S v needs no d x d matrix ([CLOSER] Sec. 4.1-4.2).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

Array = NDArray[np.float64]


@dataclass(frozen=True)
class InputModel:
    r"""Client input distributions x = mean + factor z + scale xi, z, xi standard normal.

    Parameters
    ----------
    mean : ndarray of shape (..., C, d)
        Client means e_i.
    factor : ndarray of shape (..., C, d, q)
        Low-rank covariance factors (q may be 0).
    scale : ndarray of shape (..., C)
        Isotropic noise scale.

    Notes
    -----
    The second moment is

    .. math:: S_i = e_i e_i^T + F_i F_i^T + s_i^2 I_d,

    e.g. S_i = I (isotropic, [CLOSER] Sec. 4.1) or S_i = e_i e_i^T + eps^2 I (Sec. 4.2).
    """

    mean: Array
    factor: Array
    scale: Array

    @property
    def d(self) -> int:
        """Input dimension."""
        return int(self.mean.shape[-1])


def second_moment(inputs: InputModel) -> Array:
    r"""Dense second moments S_i = E[x x^T].

    .. math:: S_i = e_i e_i^T + F_i F_i^T + s_i^2 I_d

    Returns
    -------
    ndarray of shape (..., C, d, d)
    """
    mean, factor, scale = inputs.mean, inputs.factor, inputs.scale
    eye = np.eye(mean.shape[-1])
    return (
        mean[..., :, None] * mean[..., None, :]
        + factor @ np.swapaxes(factor, -1, -2)
        + (scale**2)[..., None, None] * eye
    )


def _align(inputs: InputModel, extra: int) -> tuple[Array, Array, Array]:
    """Insert ``extra`` unit axes before the client axis of every array of ``inputs``."""
    c_axis = inputs.scale.ndim - 1
    axes = tuple(range(c_axis, c_axis + extra))
    return (
        np.expand_dims(inputs.mean, axes),
        np.expand_dims(inputs.factor, axes),
        np.expand_dims(inputs.scale, axes),
    )


def apply_inputs(inputs: InputModel, v: Array, extra: int = 0) -> Array:
    """S v in O(d q) for S = e e^T + F F^T + s^2 I of batch shape (...).

    Parameters
    ----------
    inputs : InputModel
        Batch shape (...).
    v : ndarray of shape (..., [extra axes], d)
        The ``extra`` axes follow the batch axes (e.g. the k rows of a feature matrix).

    Returns
    -------
    ndarray, same shape as ``v``
    """
    mean = inputs.mean.reshape(inputs.mean.shape[:-1] + (1,) * extra + inputs.mean.shape[-1:])
    scale = inputs.scale.reshape(inputs.scale.shape + (1,) * extra)
    out = mean * np.sum(mean * v, axis=-1, keepdims=True) + (scale**2)[..., None] * v
    if inputs.factor.shape[-1]:
        fac = inputs.factor.reshape(
            inputs.factor.shape[:-2] + (1,) * extra + inputs.factor.shape[-2:]
        )
        out = out + (fac @ (np.swapaxes(fac, -1, -2) @ v[..., None]))[..., 0]
    return out


def quadratic_form(inputs: InputModel, v: Array) -> Array:
    """Quadratic forms v^T S_i v without forming S_i.

    Parameters
    ----------
    inputs : InputModel
        Batch shape (..., C).
    v : ndarray of shape (..., C, d) or (..., P, C, d)

    Returns
    -------
    ndarray of shape v.shape[:-1]
        (e_i . v)^2 + ||F_i^T v||^2 + s_i^2 ||v||^2.
    """
    mean, factor, scale = _align(inputs, v.ndim - inputs.mean.ndim)
    out = scale**2 * np.einsum("...d,...d->...", v, v)
    if np.any(inputs.mean):  # zero means (isotropic, overlap) add nothing
        out = out + np.einsum("...d,...d->...", mean, v) ** 2
    if factor.shape[-1]:
        out = out + np.sum(np.einsum("...dq,...d->...q", factor, v) ** 2, axis=-1)
    return out


__all__ = ["InputModel", "apply_inputs", "quadratic_form", "second_moment"]
