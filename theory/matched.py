r"""FT and LP-FT compared at matched local loss in the two-layer linear model (simulator).

FT and LP-FT personalize by different amounts at one step size, so a lower global loss can
just mean "moved less". This module removes that confound for one configuration: it traces
FT's (local loss, global loss) frontier over a knob (step size ``eta`` at fixed steps, or the
number of ``steps`` at fixed eta), starting from the global model (knob 0), and reads FT's
global loss off the frontier where its local loss equals LP-FT's ([CLOSER] Fig. 3(b) compares
at equal local loss with flooding; [CLOSER] Thm 4.4 in the isotropic model: both methods move
w along w_0 + t u_i, so at equal local loss their global losses are equal).

Verdicts: ``equal`` (within :data:`GLOBAL_RTOL`), ``lpft-lower``, ``ft-lower``, or
``unmatched`` (FT's frontier never comes within :data:`MATCH_RTOL` of LP-FT's local loss over
the traced range, so no matched comparison exists there).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from synthetic.config import ConfigError, SimConfig
from synthetic.fedavg import ideal_global_model
from synthetic.methods import Hyper, run_method
from synthetic.metrics import client_losses
from synthetic.problem import Problem, client_objectives, draw_problem
from synthetic.simulation import clients_of, expand_grid, simulate

Array = NDArray[np.float64]

KNOBS: tuple[str, ...] = ("eta", "steps")
METRICS: tuple[str, ...] = ("global_loss", "global_loss_others")
#: FT's local loss counts as equal to LP-FT's within this fraction of the global model's.
#: Global losses move by O(sqrt(local mismatch)), so this must be far below GLOBAL_RTOL^2.
MATCH_RTOL = 1e-12
#: Global losses within this relative difference count as equal.
GLOBAL_RTOL = 1e-5
#: Sub-grid points and rounds that refine a bracket of the step-size knob.
REFINE_POINTS, REFINE_ROUNDS = 17, 3


@dataclass(frozen=True)
class Matched:
    """FT versus LP-FT at LP-FT's local loss, for one fine-tuning client.

    Parameters
    ----------
    client : int
    knob : str
        ``eta`` or ``steps``.
    target_local, lpft_global : float
        LP-FT's local and global loss at the configuration.
    ft_local, ft_global : float
        FT's local and global loss at the configuration itself (before matching).
    ft_local_min, ft_global_at_min : float
        FT's lowest local loss over the traced range and its global loss there.
    matched_knob, matched_global : float or None
        The knob value where FT's local loss equals LP-FT's and FT's global loss there
        (None when unmatched).
    verdict : str
        ``equal``, ``lpft-lower``, ``ft-lower`` or ``unmatched``.
    """

    client: int
    knob: str
    target_local: float
    lpft_global: float
    ft_local: float
    ft_global: float
    ft_local_min: float
    ft_global_at_min: float
    matched_knob: float | None
    matched_global: float | None
    verdict: str


def _losses(problem: Problem, clients: NDArray[np.int_], V: Array, B: Array, c_l: float,
            metric: str) -> tuple[Array, Array]:  # fmt: skip
    """(local, global) losses of predictors with leading axes (..., P)."""
    w = (np.swapaxes(B, -1, -2) @ V[..., None])[..., 0]
    per = client_losses(problem, w, c_l)  # (..., P, C)
    own = per[..., np.arange(len(clients)), clients]
    C = per.shape[-1]
    total = per.sum(axis=-1)
    glob = total / C if metric == "global_loss" else (total - own) / (C - 1)
    return own, glob


def trace_steps(config: SimConfig, max_steps: int, metric: str = "global_loss"
                ) -> tuple[Array, Array, Array]:  # fmt: skip
    """FT's frontier over the number of steps 0..max_steps (one gradient-descent trajectory).

    Returns
    -------
    steps : ndarray of shape (T,)
    local, global : ndarray of shape (T, P)
        Population losses of every iterate (NaN once it diverges).
    """
    problem = draw_problem(config)
    clients = clients_of(config)
    v0, b0 = ideal_global_model(problem)
    hp = Hyper(config.eta, max_steps, config.loss_scale)
    fit = run_method("ft", v0, b0, client_objectives(problem, clients), hp, trajectory=True)
    assert fit.V_path is not None
    assert fit.B_path is not None
    with np.errstate(over="ignore", invalid="ignore"):
        local, glob = _losses(problem, clients, fit.V_path, fit.B_path, config.loss_scale, metric)
    bad = ~(np.isfinite(local) & np.isfinite(glob))
    return np.arange(max_steps + 1, dtype=float), np.where(bad, np.nan, local), np.where(
        bad, np.nan, glob)  # fmt: skip


def trace_eta(config: SimConfig, etas: Array, metric: str = "global_loss"
              ) -> tuple[Array, Array, Array]:  # fmt: skip
    """FT's frontier over step sizes ``etas`` at ``config.steps`` (the vectorized simulator).

    Returns
    -------
    etas : ndarray of shape (T,)
    local, global : ndarray of shape (T, P)
        NaN where the simulator flags divergence.
    """
    configs = expand_grid(config, {"eta": [float(e) for e in etas]})
    frame = simulate(configs, ["ft"], metrics=["local_loss", metric])
    n_cli = len(clients_of(config))
    local = frame[frame["metric"] == "local_loss"]["value"].to_numpy(float).reshape(-1, n_cli)
    glob = frame[frame["metric"] == metric]["value"].to_numpy(float).reshape(-1, n_cli)
    return np.asarray(etas, dtype=float), local, glob


def lpft_point(config: SimConfig, metric: str = "global_loss") -> tuple[Array, Array]:
    """LP-FT's (local, global) losses at the configuration, per fine-tuning client."""
    frame = simulate([config], ["lpft", "ft"], metrics=["local_loss", metric])
    rows = frame[frame["method"] == "lpft"]
    local = rows[rows["metric"] == "local_loss"]["value"].to_numpy(float)
    return local, rows[rows["metric"] == metric]["value"].to_numpy(float)


def crossing(knob: Array, local: Array, glob: Array, target: float, tol: float
             ) -> tuple[int, int, bool] | None:  # fmt: skip
    """Bracket of the first point where FT's local loss reaches ``target`` along the knob.

    Returns (lo, hi, touching): indices of a bracket where local - target changes sign
    (``touching`` False), or around the first local minimum when the curve only touches
    the target from above (``touching`` True); None when the curve stays above it.
    """
    f = np.where(np.isnan(local), np.inf, local - target)
    hits = np.flatnonzero(f <= tol)
    first_min = next((j for j in range(1, len(f) - 1) if f[j] < f[j - 1] and f[j] <= f[j + 1]),
                     None)  # fmt: skip
    if hits.size and (first_min is None or hits[0] <= first_min + 1):
        j = int(hits[0])
        return (max(j - 1, 0), j, False)
    if first_min is not None:
        return (first_min - 1, first_min + 1, True)
    return None


def _quadratic_at(k: Array, y: Array, x: float) -> float:
    coef = np.polyfit(k, y, min(2, len(k) - 1))
    return float(np.polyval(coef, x))


def _solve(k: Array, local: Array, glob: Array, target: float, touching: bool
           ) -> tuple[float, float, float]:  # fmt: skip
    """(knob, local, global) at the target (crossing) or at the minimum (touching)."""
    order = np.argsort(np.where(np.isnan(local), np.inf, np.abs(local - target)))[:3]
    kk, ll, gg = k[order], local[order], glob[order]
    if len(kk) < 3 or np.ptp(kk) == 0:
        return float(kk[0]), float(ll[0]), float(gg[0])
    a, b, c = np.polyfit(kk, ll, 2)
    if touching:
        x = -b / (2 * a) if a > 0 else float(kk[0])
    else:
        roots = np.roots([a, b, c - target]) if a != 0 else np.array([(target - c) / b])
        real = roots[np.isreal(roots)].real
        inside = real[(real >= kk.min()) & (real <= kk.max())]
        x = float(inside[0]) if inside.size else float(kk[0])
    x = float(np.clip(x, kk.min(), kk.max()))
    return x, _quadratic_at(kk, ll, x), _quadratic_at(kk, gg, x)


def _verdict(matched_global: float | None, lpft_global: float) -> str:
    if matched_global is None:
        return "unmatched"
    scale = max(abs(matched_global), abs(lpft_global), 1e-300)
    if abs(matched_global - lpft_global) <= GLOBAL_RTOL * scale:
        return "equal"
    return "lpft-lower" if lpft_global < matched_global else "ft-lower"


def matched_local_loss(
    config: SimConfig,
    knob: str = "eta",
    metric: str = "global_loss",
    *,
    span: float = 256.0,
    n_grid: int = 65,  # odd, so that config.eta is a grid point
    max_factor: int = 20,
) -> list[Matched]:
    """FT's global loss at LP-FT's local loss, traced over ``knob`` (see the module docstring).

    Parameters
    ----------
    config : SimConfig
        One configuration (population or finite samples, idealized global model).
    knob : {'eta', 'steps'}
        ``eta``: step sizes 0 and a geometric grid over [eta / span, eta * span] at
        ``config.steps``, refined around the match; ``steps``: every step count
        0..max_factor * config.steps at ``config.eta`` (linear interpolation between steps).
    metric : {'global_loss', 'global_loss_others'}
        Global loss over D_G or over the other clients.
    span, n_grid, max_factor : float, int, int
        Extent of the traced range.

    Returns
    -------
    list of Matched
        One per fine-tuning client.
    """
    if knob not in KNOBS:
        raise ConfigError(f"knob={knob!r} is invalid: expected one of {', '.join(KNOBS)}")
    if metric not in METRICS:
        raise ConfigError(f"metric={metric!r} is invalid: expected one of {', '.join(METRICS)}")
    target, lpft_global = lpft_point(config, metric)
    if knob == "steps":
        ks, local, glob = trace_steps(config, max(1, max_factor * config.steps), metric)
        at = config.steps
    else:
        grid = np.concatenate([[0.0], np.geomspace(config.eta / span, config.eta * span, n_grid)])
        ks, local, glob = trace_eta(config, grid, metric)
        at = int(np.argmin(np.abs(ks - config.eta)))  # n_grid odd: eta is the centre point
    out = []
    for p, client in enumerate(clients_of(config)):
        out.append(_match_one(config, knob, metric, ks, local[:, p], glob[:, p], p, int(client),
                              float(target[p]), float(lpft_global[p]), at))  # fmt: skip
    return out


def _match_one(
    config: SimConfig, knob: str, metric: str, ks: Array, local: Array, glob: Array, p: int,
    client: int, target: float, lpft_global: float, at: int,
) -> Matched:  # fmt: skip
    tol = MATCH_RTOL * max(float(np.nan_to_num(local[0])), abs(target), 1e-300)
    found = crossing(ks, local, glob, target, tol)
    matched_knob = matched_global = None
    j_min = int(np.nanargmin(local))
    ft_min, g_min = float(local[j_min]), float(glob[j_min])
    if found is not None:
        lo, hi, touching = found
        k_lo, k_hi = ks[lo], ks[hi]
        kk, ll, gg = ks[lo : hi + 1], local[lo : hi + 1], glob[lo : hi + 1]
        if knob == "eta":
            for _ in range(REFINE_ROUNDS):  # sub-grid the bracket with the simulator
                kk = np.linspace(k_lo, k_hi, REFINE_POINTS)
                _, ll2, gg2 = trace_eta(config, kk, metric)
                ll, gg = ll2[:, p], gg2[:, p]
                sub = crossing(kk, ll, gg, target, tol)
                if sub is None:
                    break
                lo2, hi2, touching = sub
                k_lo, k_hi = kk[max(lo2 - 1, 0)], kk[min(hi2 + 1, len(kk) - 1)]
            x, l_x, g_x = _solve(kk, ll, gg, target, touching)
        else:  # integer steps: interpolate linearly between consecutive iterates
            j = lo if touching else hi
            if touching:
                x, l_x, g_x = float(ks[lo + 1]), float(local[lo + 1]), float(glob[lo + 1])
            else:
                l0, l1 = local[lo], local[j]
                w = 1.0 if l0 == l1 else float(np.clip((l0 - target) / (l0 - l1), 0.0, 1.0))
                x = float(ks[lo] + w * (ks[j] - ks[lo]))
                l_x, g_x = target, float(glob[lo] + w * (glob[j] - glob[lo]))
        if l_x < ft_min:
            ft_min, g_min = l_x, g_x
        if l_x <= target + tol:
            matched_knob, matched_global = x, g_x
    verdict = _verdict(matched_global, lpft_global)
    return Matched(client, knob, target, lpft_global, float(local[at]), float(glob[at]),
                   ft_min, g_min, matched_knob, matched_global, verdict)  # fmt: skip


__all__ = [
    "GLOBAL_RTOL",
    "KNOBS",
    "MATCH_RTOL",
    "Matched",
    "crossing",
    "lpft_point",
    "matched_local_loss",
    "trace_eta",
    "trace_steps",
]
