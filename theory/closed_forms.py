r"""Numeric closed forms derived in :mod:`theory.derivations` ([CLOSER] Lemma 4.3, Thms 4.4-4.5).

These are the simplified sympy results written out in numpy (no sympy import, so figures and
the audit stay fast); ``tests/theory/test_theory_symbolic.py`` checks each against the
lambdified sympy expression and against the simulator. Every function honours the loss
normalization c_L (``config.loss_scale``: 1 for ``mse``, 1/2 for ``half_mse``), which enters
the step size as 2 c_L eta.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

from synthetic.config import ConfigError, SimConfig
from theory._roots import (
    TIE_RTOL,
    ZERO_RTOL,
    Interval,
    LambdaStar,
    finite_coefficients,
    lambda_star,
    lpft_wins_intervals,
)
from theory.thm45_forms import (
    Thm45Coefficients,
    thm45_coefficients,
    thm45_intervals,
    thm45_lambda_stars,
)

Array = NDArray[np.float64]


def _loss_scale(loss: str) -> float:
    if loss == "mse":
        return 1.0
    if loss == "half_mse":
        return 0.5
    raise ConfigError(f"loss={loss!r} is invalid: expected one of mse, half_mse")


def tau(eta: ArrayLike, s: ArrayLike, loss_scale: float = 1.0) -> Array:
    r"""Effective FT step along u_i: :math:`\tau = 2 c_L \eta s` ([CLOSER] Thm 4.4).

    Parameters
    ----------
    eta, s : float or ndarray
        Step size and s = 1 + ||V*_com||^2 (broadcast).
    loss_scale : float
        c_L.

    Returns
    -------
    ndarray
    """
    return 2.0 * loss_scale * np.asarray(eta, dtype=float) * np.asarray(s, dtype=float)


def thm44_losses_from(
    lam: ArrayLike, eta: ArrayLike, s: ArrayLike, C: ArrayLike, loss_scale: float = 1.0
) -> dict[str, Array]:
    r"""[CLOSER] Theorem 4.4 closed forms (isotropic inputs, one FT step), vectorized.

    With :math:`\tau = 2 c_L \eta s`:

    .. math:: G_{FT} = c_L\lambda^2 (1 - 2\tau/C + \tau^2), \quad
              G_{LPFT} = 2 c_L \lambda^2 (C-1)/C,

    over the others :math:`c_L\lambda^2(1+\tau^2)` and :math:`2 c_L\lambda^2`, locally
    :math:`c_L\lambda^2(1-\tau)^2` and 0.

    Parameters
    ----------
    lam, eta, s, C : float or ndarray
        Broadcast against each other.
    loss_scale : float
        c_L.

    Returns
    -------
    dict of str to ndarray
        ``global_loss_ft``, ``global_loss_lpft``, ``global_loss_others_ft``,
        ``global_loss_others_lpft``, ``local_loss_ft``, ``local_loss_lpft``, ``tau``,
        ``lpft_wins`` (G_LPFT <= G_FT, exact sign of the factored difference).
    """
    lam = np.asarray(lam, dtype=float)
    C = np.asarray(C, dtype=float)
    t = tau(eta, s, loss_scale)
    scale = loss_scale * lam**2
    # An overflowing step size gives inf (a diverged step), never an exception.
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        return _thm44_values(scale, t, C)


def _thm44_values(scale: Array, t: Array, C: Array) -> dict[str, Array]:
    others_ft = scale * (1.0 + t**2)
    others_lpft = 2.0 * scale * np.ones_like(t)
    out = {
        "global_loss_ft": scale * (1.0 - 2.0 * t / C + t**2),
        "global_loss_lpft": 2.0 * scale * (C - 1.0) / C * np.ones_like(t),
        "global_loss_others_ft": np.where(C > 1, others_ft, np.nan),
        "global_loss_others_lpft": np.where(C > 1, others_lpft, np.nan),
        "local_loss_ft": scale * (1.0 - t) ** 2,
        "local_loss_lpft": np.zeros_like(scale * t),
        "tau": t * np.ones_like(scale),
    }
    # G_FT - G_LPFT = c_L lambda^2 (tau - 1)(tau + 1 - 2/C), decided on the factored form.
    out["lpft_wins"] = scale * (t - 1.0) * (t + 1.0 - 2.0 / C) >= 0.0
    return out


def thm44_losses(config: SimConfig | Mapping[str, Any]) -> dict[str, Any]:
    """[CLOSER] Theorem 4.4 quantities for a configuration (see :func:`thm44_losses_from`).

    Parameters
    ----------
    config : SimConfig or mapping
        A configuration, or a mapping with ``lam``, ``eta``, ``C`` and either ``s`` or
        ``vcom_norm`` (optional ``loss``, default ``mse``); values may be arrays.

    Returns
    -------
    dict
        ``s``, ``eta``, ``lam``, ``C``, ``loss`` and the entries of :func:`thm44_losses_from`
        (Python floats/bools for scalar input).
    """
    s: Any
    if isinstance(config, SimConfig):
        lam, eta, s, C, loss = config.lam, config.eta, config.s, config.C, config.loss
    else:
        missing = [key for key in ("lam", "eta", "C") if key not in config]
        if missing or ("s" not in config and "vcom_norm" not in config):
            raise ConfigError(
                f"thm44_losses parameters {sorted(config)} are invalid: expected lam, eta, C "
                "and s or vcom_norm"
            )
        lam, eta, C = config["lam"], config["eta"], config["C"]
        s = config["s"] if "s" in config else 1.0 + np.asarray(config["vcom_norm"]) ** 2
        loss = str(config.get("loss", "mse"))
    values = thm44_losses_from(lam, eta, s, C, _loss_scale(loss))
    out: dict[str, Any] = {"s": s, "eta": eta, "lam": lam, "C": C, "loss": loss}
    for key, value in values.items():
        out[key] = value.item() if np.ndim(value) == 0 else value
    return out


def lpft_wins_boundary(eta: ArrayLike, loss: str = "mse") -> Array:
    r"""Boundary of the region where LP-FT's global loss is lower ([CLOSER] Thm 4.4, derived).

    LP-FT wins (for C >= 2, lambda > 0) iff 2 c_L eta s >= 1, s = 1 + ||V*_com||^2, i.e. iff

    .. math:: \|V^*_{com}\|^2 \ge \frac{1}{2 c_L \eta} - 1.

    Parameters
    ----------
    eta : float or ndarray
        Step sizes (> 0; eta = 0 gives +inf).
    loss : {'mse', 'half_mse'}

    Returns
    -------
    ndarray
        The threshold on ||V*_com||^2 (negative: LP-FT wins for every V*_com).
    """
    eta = np.asarray(eta, dtype=float)
    with np.errstate(divide="ignore"):
        return 1.0 / (2.0 * _loss_scale(loss) * eta) - 1.0


def lemma43_rows(
    b_star: Array, v_com: Array, client: int, lam: float, eta: float, loss_scale: float = 1.0
) -> tuple[Array, Array]:
    r"""Predicted one-step FT parameters in the isotropic case ([CLOSER] Lemma 4.3).

    .. math:: (B_{FT})_j = b^*_j + 2 c_L \eta \lambda (V_0)_j u_i, \quad
              V_{FT} = V_0 + 2 c_L \eta \lambda e_{m+i}, \quad V_0 = [V^*_{com}; 0].

    Only the m shared rows move (by multiples of u_i); the client rows stay b^*_j.

    Parameters
    ----------
    b_star : ndarray of shape (k, d)
    v_com : ndarray of shape (m,)
    client : int
        i (0-based), u_i = b^*_{m+i}.
    lam, eta, loss_scale : float

    Returns
    -------
    B_ft : ndarray of shape (k, d)
    V_ft : ndarray of shape (k,)
    """
    k = b_star.shape[0]
    m = v_com.shape[0]
    if not 0 <= client < k - m:
        raise ConfigError(f"client={client!r} is invalid: expected 0..{k - m - 1}")
    v0 = np.concatenate([v_com, np.zeros(k - m)])
    a = 2.0 * loss_scale * eta * lam
    B_ft = b_star + a * np.outer(v0, b_star[m + client])
    V_ft = v0.copy()
    V_ft[m + client] += a
    return B_ft, V_ft


__all__ = [
    "TIE_RTOL",
    "ZERO_RTOL",
    "Interval",
    "LambdaStar",
    "Thm45Coefficients",
    "finite_coefficients",
    "lambda_star",
    "lemma43_rows",
    "lpft_wins_boundary",
    "lpft_wins_intervals",
    "tau",
    "thm44_losses",
    "thm44_losses_from",
    "thm45_coefficients",
    "thm45_intervals",
    "thm45_lambda_stars",
]
