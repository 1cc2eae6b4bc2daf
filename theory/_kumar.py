"""Hypotheses and simulator checks of [KUMAR]'s span lemma, balancedness, Prop. 3.2 and Thm 3.1.

All four use client i's training objective (finite samples when ``n`` is set, population
otherwise) and the simulator's gradient descent with trajectories; "OOD error" is
[KUMAR]'s isotropic risk L_ood(V, B) = ||w^*_i - B^T V||^2 to the client's own target.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

from synthetic.config import SimConfig
from synthetic.fedavg import ideal_global_model
from synthetic.methods import Hyper, gradients, run_method
from synthetic.problem import Objective, Problem, client_objectives, draw_problem
from synthetic.simulation import clients_of
from theory._kumar_flow import (
    BALANCE_REFINE,
    DIVERGED,
    PAPER_POWER,
    TIGHT_POWER,
    balance_drift,
    drift_shrinks_linearly,
    thm31_flow_check,
)
from theory.records import EXACT_ATOL, EXACT_RTOL, CheckRecord, compare, diverged_record

Array = NDArray[np.float64]

#: Tolerance of "zero OOD error" relative to ||w*_i||^2 (pseudo-inverse LP in float64).
LP_EXACT_RTOL = 1e-8


def _base(claim: str, config: SimConfig) -> list[str]:
    failures = []
    if config.global_model != "ideal":
        failures.append(
            f"{claim} starts from the pretrained B_0 = B* (global_model='ideal'); "
            f"global_model is {config.global_model!r}"
        )
    if config.flood is not None:
        failures.append(
            f"{claim} assumes plain gradient descent (flood=none); flood is {config.flood}"
        )
    if config.steps < 1:
        failures.append(f"{claim} needs at least one gradient step; steps is {config.steps}")
    return failures


def span_hypotheses(config: SimConfig) -> list[str]:
    """Failed hypotheses of [KUMAR]'s span lemma (finite samples with n < d)."""
    failures = _base("kumar-span", config)
    if config.n is None or config.n >= config.d:
        failures.insert(
            0, f"kumar-span assumes finite samples with n < d = {config.d}; n is {config.n}"
        )
    return failures


def balance_hypotheses(config: SimConfig) -> list[str]:
    """Failed hypotheses of the one-step balancedness identity (none beyond plain GD)."""
    return _base("kumar-balance", config)


def prop32_hypotheses(config: SimConfig) -> list[str]:
    """Failed hypotheses of [KUMAR] Prop. 3.2 (perfect features, exact LP)."""
    failures = _base("kumar-prop-3.2", config)
    if config.ridge != 0:
        failures.append(
            f"kumar-prop-3.2 assumes exact linear probing (ridge=0); ridge is {config.ridge}"
        )
    if config.lam == 0 and config.vcom_norm == 0:
        failures.append(
            "kumar-prop-3.2 compares with FT from a random head of norm ||V*_i||, which needs "
            "||V*_i|| > 0 (lam > 0 or vcom_norm > 0); both are 0"
        )
    if config.n is None or not config.k <= config.n < config.d:
        failures.insert(
            0,
            f"kumar-prop-3.2 assumes finite samples with k = {config.k} <= n < d = {config.d} "
            f"(exact probing, overparameterized FT); n is {config.n}",
        )
    return failures


def thm31_hypotheses(config: SimConfig, claim: str = "kumar-thm-3.1") -> list[str]:
    """Failed hypotheses of [KUMAR] Thm 3.1 (n samples with dim rowspace(X)^perp >= k)."""
    failures = _base(claim, config)
    if config.n is None or config.n + config.k > config.d:
        failures.insert(
            0,
            f"{claim} assumes finite samples with n <= d - k = {config.d - config.k} "
            f"(so that cos theta_k(R, S^perp) can be > 0); n is {config.n}",
        )
    return failures


def _setup(config: SimConfig) -> tuple[Problem, NDArray[np.int_], Array, Array, Hyper]:
    problem = draw_problem(config)
    v0, b0 = ideal_global_model(problem)
    return problem, clients_of(config), v0, b0, Hyper(config.eta, config.steps, config.loss_scale)


def _diverged(config: SimConfig, claim: str, *arrays: Array) -> CheckRecord | None:
    if all(np.all(np.isfinite(a)) for a in arrays):
        return None
    return diverged_record(claim, config, DIVERGED)


def _ft_trajectory(
    config: SimConfig, claim: str
) -> tuple[Problem, NDArray[np.int_], Objective, Array, Array] | CheckRecord:
    """FT iterates from the idealized global model, or the claim's "diverged" record.

    Returns (problem, clients, objective, V_path (steps + 1, P, k), B_path (steps + 1, P, k, d)).
    """
    problem, clients, v0, b0, hp = _setup(config)
    objective = client_objectives(problem, clients)
    fit = run_method("ft", v0, b0, objective, hp, trajectory=True)
    assert fit.V_path is not None
    assert fit.B_path is not None
    bad = _diverged(config, claim, fit.V_path, fit.B_path)
    if bad is not None:
        return bad
    return problem, clients, objective, fit.V_path, fit.B_path


def span_check(config: SimConfig, rng: np.random.Generator) -> CheckRecord:
    """B_t u = B_0 u for u ⟂ rowspace(X_i) at every FT and LP-FT step ([KUMAR] span lemma).

    ``rng`` draws the test vector u in the null space of each client's X_i.
    """
    problem, clients, v0, b0, hp = _setup(config)
    assert problem.x is not None
    objective = client_objectives(problem, clients)
    drift: list[float] = []
    paths = []
    for method in ("ft", "lpft"):
        fit = run_method(method, v0, b0, objective, hp, trajectory=True)
        assert fit.B_path is not None
        paths.append(fit.B_path)
    bad = _diverged(config, "kumar-span", *paths)
    if bad is not None:
        return bad
    scale = 0.0
    for p, i in enumerate(clients):
        _, sv, vt = np.linalg.svd(problem.x[i], full_matrices=True)
        rank = int(np.sum(sv > sv[0] * 1e-12))
        null = vt[rank:].T  # (d, d - rank)
        u = null @ rng.standard_normal(null.shape[1])
        u /= np.linalg.norm(u)
        for path in paths:
            moved = path[:, p] @ u - b0 @ u  # (steps + 1, k)
            drift.append(float(np.max(np.abs(moved))))
            scale = max(scale, float(np.max(np.abs(path[:, p]))))
    # Each step adds rows in rowspace(X) plus float64 rounding of size ~1e-16 |B|: even 10^4
    # steps stay far below EXACT_RTOL |B|, so the tolerance does not grow with the step count.
    tol = EXACT_ATOL + EXACT_RTOL * max(1.0, scale)
    err = max(drift)
    return CheckRecord(
        "kumar-span",
        err <= tol,
        {"max_drift_on_null_space": 0.0},
        {"max_drift_on_null_space": err},
        err,
        tol,
        config,
    )


def balance_check(config: SimConfig, rng: np.random.Generator) -> CheckRecord:
    """The one-step balancedness identity on every GD step, and invariance on the flow.

    ``holds``: each GD step changes V V^T - B B^T by exactly eta^2 (g_V g_V^T - g_B g_B^T).
    ``conclusion_holds``: [KUMAR]'s conclusion, invariance under gradient flow, measured on
    the flow itself: over the same time eta * steps, the drift with step eta/16 is half the
    drift with step eta/8 (see :func:`theory._kumar_flow.drift_shrinks_linearly`). rng unused.
    """
    del rng
    run = _ft_trajectory(config, "kumar-balance")
    if isinstance(run, CheckRecord):
        return run
    _, _, objective, V, B = run  # (steps + 1, P, k), (steps + 1, P, k, d)
    imbalance = V[..., :, None] * V[..., None, :] - B @ np.swapaxes(B, -1, -2)
    g_v, g_b, _ = gradients(V[:-1], B[:-1], objective, config.loss_scale)
    predicted = config.eta**2 * (
        g_v[..., :, None] * g_v[..., None, :] - g_b @ np.swapaxes(g_b, -1, -2)
    )
    measured = imbalance[1:] - imbalance[:-1]
    rtol = EXACT_RTOL * max(1.0, float(np.max(np.abs(imbalance))))
    record = compare(
        "kumar-balance",
        config,
        {"imbalance_change": predicted},
        {"imbalance_change": measured},
        rtol=0.0,
        atol=EXACT_ATOL + rtol,
    )
    first, second = (balance_drift(config, r) for r in BALANCE_REFINE)
    if first is None or second is None:
        return diverged_record("kumar-balance", config, DIVERGED)
    (coarse, scale), (fine, _) = first, second
    flow_ok, ratio = drift_shrinks_linearly(coarse, fine, EXACT_ATOL + EXACT_RTOL * scale)
    h = [f"eta/{r}" for r in BALANCE_REFINE]
    return CheckRecord(
        record.claim,
        record.holds,
        {"max_abs_change_predicted": float(np.max(np.abs(predicted), initial=0.0)),
         "flow_drift_ratio": 0.5},
        {"max_abs_change_measured": float(np.max(np.abs(measured), initial=0.0)),
         "flow_drift_ratio": ratio, "flow_drift": [coarse, fine]},
        record.max_abs_error,
        record.tolerance,
        config,
        conclusion_holds=flow_ok,
        notes=f"one GD step moves V V^T - B B^T by O(eta^2); over time eta*steps the drift "
        f"with step {h[0]} is {coarse:.3g}, with {h[1]} {fine:.3g} (ratio {ratio:.3g}; "
        "gradient flow: 1/2 -> invariance)",
    )  # fmt: skip


def _ood(problem: Problem, clients: NDArray[np.int_], V: Array, B: Array) -> Array:
    """||w*_i - B^T V||^2 for paths V (T, P, k), B (T, P, k, d); returns (T, P)."""
    w = (np.swapaxes(B, -1, -2) @ V[..., None])[..., 0]
    return np.asarray(np.sum((problem.w_star[clients] - w) ** 2, axis=-1))


def prop32_check(config: SimConfig, rng: np.random.Generator) -> CheckRecord:
    """LP-FT keeps zero OOD error at every step; FT from a random head does not ([KUMAR] 3.2).

    ``rng`` draws the random head of FT: a uniformly random direction with the norm of the
    client's true head ||V*_i||.
    """
    problem, clients, v0, b0, hp = _setup(config)
    objective = client_objectives(problem, clients)
    lpft = run_method("lpft", v0, b0, objective, hp, trajectory=True)
    heads = problem.heads[clients]
    direction = rng.standard_normal(heads.shape)
    v_rand = (
        direction * (np.linalg.norm(heads, axis=-1) / np.linalg.norm(direction, axis=-1))[:, None]
    )
    ft = run_method("ft", v_rand, np.broadcast_to(b0, (len(clients), *b0.shape)), objective, hp)
    assert lpft.V_path is not None
    assert lpft.B_path is not None
    bad = _diverged(config, "kumar-prop-3.2", lpft.V_path, lpft.B_path, ft.V, ft.B)
    if bad is not None:
        return bad
    ood_lpft = float(np.max(_ood(problem, clients, lpft.V_path, lpft.B_path)))
    ood_ft = _ood(problem, clients, ft.V[None], ft.B[None])[0]
    tol = LP_EXACT_RTOL * max(1.0, float(np.max(np.sum(problem.w_star[clients] ** 2, axis=-1))))
    # The closed form: LP-FT's OOD error is exactly 0 at every step. The conclusion: LP-FT
    # beats FT from a random head out of distribution (FT's OOD error stays positive).
    return CheckRecord(
        "kumar-prop-3.2",
        ood_lpft <= tol,
        {"ood_lpft_max_over_steps": 0.0, "ood_ft_random_head_min_is_positive": True},
        {
            "ood_lpft_max_over_steps": ood_lpft,
            "ood_ft_random_head_min": float(np.min(ood_ft)),
        },
        ood_lpft,
        tol,
        config,
        conclusion_holds=bool(np.all(ood_ft > ood_lpft + tol)),
    )


def thm31_check(config: SimConfig, rng: np.random.Generator) -> CheckRecord:
    """[KUMAR] Thm 3.1 (eq. 3.7, (1 + ||w*||)^2) on the approximate gradient flow (rng unused)."""
    del rng
    return thm31_flow_check(config, "kumar-thm-3.1", PAPER_POWER)


def thm31_tight_check(config: SimConfig, rng: np.random.Generator) -> CheckRecord:
    """The toolkit's empirical, tighter bound with (1 + ||w*||) on the flow (rng unused)."""
    del rng
    return thm31_flow_check(config, "kumar-thm-3.1-tight", TIGHT_POWER)
