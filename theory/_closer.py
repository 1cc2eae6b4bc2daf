"""Hypotheses, predictions and simulator checks of [CLOSER] Lemma 4.3 and Theorems 4.4-4.5."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import numpy as np
from numpy.typing import NDArray

from synthetic.config import SimConfig
from synthetic.fedavg import ideal_global_model
from synthetic.methods import Hyper, run_method
from synthetic.problem import client_objectives, draw_problem
from synthetic.simulation import clients_of, simulate
from theory.closed_forms import (
    lemma43_rows,
    thm44_losses,
    thm45_coefficients,
    thm45_intervals,
    thm45_lambda_stars,
)
from theory.records import CheckRecord, all_finite, compare, diverged_record

Array = NDArray[np.float64]
COVARIATE_MEANS: tuple[str, ...] = ("own", "shared", "random", "basis", "mix")
LOSS_KEYS: tuple[str, ...] = ("global_loss", "global_loss_others", "local_loss")
#: Name of the paper's conclusion evaluated over the other clients only (empirical "Global").
OTHERS = "paper's conclusion over the other clients"
SIM_DIVERGED = "the simulated FT step diverged (parameters beyond the simulator's bound 1e100)"
FORM_OVERFLOW = "the closed form overflows float64 at this step size (FT diverges)"


def _one_step_population(claim: str, config: SimConfig) -> list[str]:
    failures = []
    if config.global_model != "ideal":
        failures.append(
            f"{claim} assumes the idealized global model; global_model is {config.global_model!r}"
        )
    if config.n is not None:
        failures.append(f"{claim} assumes population losses (n=none); n is {config.n}")
    if config.steps != 1:
        failures.append(f"{claim} is a one-step statement (steps=1); steps is {config.steps}")
    if config.flood is not None:
        failures.append(f"{claim} assumes no flooding (flood=none); flood is {config.flood}")
    return failures


def lemma43_hypotheses(config: SimConfig) -> list[str]:
    """Failed hypotheses of [CLOSER] Lemma 4.3 (empty when they all hold)."""
    failures = _one_step_population("lemma-4.3", config)
    if config.covariate != "isotropic":
        failures.insert(
            0, f"lemma-4.3 assumes isotropic inputs; covariate model is {config.covariate!r}"
        )
    return failures


def thm44_hypotheses(config: SimConfig, claim: str = "thm-4.4") -> list[str]:
    """Failed hypotheses of [CLOSER] Theorem 4.4."""
    failures = _one_step_population(claim, config)
    if config.covariate != "isotropic":
        failures.insert(
            0, f"{claim} assumes isotropic inputs; covariate model is {config.covariate!r}"
        )
    if config.ridge != 0:
        failures.append(f"{claim} assumes exact linear probing (ridge=0); ridge is {config.ridge}")
    if config.C < 2:
        failures.append(f"{claim} compares global losses over C >= 2 clients; C is {config.C}")
    return failures


def thm45_hypotheses(config: SimConfig, claim: str = "thm-4.5") -> list[str]:
    """Failed hypotheses of [CLOSER] Theorem 4.5."""
    failures = _one_step_population(claim, config)
    if config.covariate not in COVARIATE_MEANS:
        failures.insert(
            0,
            f"{claim} assumes inputs x_i = e_i + eps z (covariate one of "
            f"{', '.join(COVARIATE_MEANS)}); covariate model is {config.covariate!r}",
        )
    if config.eps <= 0:
        failures.append(
            f"{claim} needs eps > 0 so that linear probing is exact; eps is {config.eps}"
        )
    if config.ridge != 0:
        failures.append(f"{claim} assumes exact linear probing (ridge=0); ridge is {config.ridge}")
    if config.C < 2:
        failures.append(f"{claim} compares global losses over C >= 2 clients; C is {config.C}")
    return failures


def _simulated_losses(config: SimConfig) -> tuple[dict[str, Array], bool]:
    """Simulated ft/lpft losses per fine-tuning client (keys '<metric>_<method>'), diverged."""
    frame = simulate([config], ["ft", "lpft"], metrics=list(LOSS_KEYS))
    out: dict[str, Array] = {}
    for method in ("ft", "lpft"):
        for metric in LOSS_KEYS:
            rows = frame[(frame["method"] == method) & (frame["metric"] == metric)]
            out[f"{metric}_{method}"] = rows.sort_values("client")["value"].to_numpy(float)
    return out, bool(frame["diverged"].any())


# ---------------------------------------------------------------- Lemma 4.3


def lemma43_predict(config: SimConfig) -> dict[str, Any]:
    """Predicted (B_FT, V_FT) of every fine-tuning client ([CLOSER] Lemma 4.3)."""
    problem = draw_problem(config)
    rows = [
        lemma43_rows(
            problem.b_star, problem.v_com, int(i), config.lam, config.eta, config.loss_scale
        )
        for i in clients_of(config)
    ]
    return {"B_ft": np.stack([b for b, _ in rows]), "V_ft": np.stack([v for _, v in rows])}


def lemma43_check(config: SimConfig, rng: np.random.Generator) -> CheckRecord:
    """One FT step of the simulator versus Lemma 4.3's rows (exact identity; rng unused)."""
    del rng
    problem = draw_problem(config)
    clients = clients_of(config)
    v0, b0 = ideal_global_model(problem)
    fit = run_method(
        "ft", v0, b0, client_objectives(problem, clients), Hyper(config.eta, 1, config.loss_scale)
    )
    predicted = lemma43_predict(config)
    return compare("lemma-4.3", config, predicted, {"B_ft": fit.B, "V_ft": fit.V})


# ---------------------------------------------------------------- Theorem 4.4

THM44_SIM_KEYS = {
    "global_loss_ft": "global_loss_ft",
    "global_loss_lpft": "global_loss_lpft",
    "global_loss_others_ft": "global_loss_others_ft",
    "global_loss_others_lpft": "global_loss_others_lpft",
    "local_loss_ft": "local_loss_ft",
    "local_loss_lpft": "local_loss_lpft",
}


def thm44_predict(config: SimConfig) -> dict[str, Any]:
    """[CLOSER] Theorem 4.4 closed forms (see :func:`theory.closed_forms.thm44_losses`)."""
    return thm44_losses(config)


def thm44_check(config: SimConfig, rng: np.random.Generator) -> CheckRecord:
    """Theorem 4.4 closed forms versus the simulator, per client (exact; rng unused).

    ``conclusion_holds`` is the paper's conclusion on the *simulated* losses: LP-FT's global
    loss (D_G) is no larger than FT's for every fine-tuning client; ``conclusions`` holds the
    same over the other clients. A step size that overflows gives a ``diverged`` record.
    """
    del rng
    pred = thm44_losses(config)
    n = len(clients_of(config))
    predicted = {key: np.full(n, float(pred[key])) for key in THM44_SIM_KEYS}
    if not all_finite(*predicted.values()):
        return diverged_record("thm-4.4", config, f"{FORM_OVERFLOW} (tau = {pred['tau']:.3g})")
    sim, diverged = _simulated_losses(config)
    if diverged:
        return diverged_record("thm-4.4", config, f"{SIM_DIVERGED} (tau = {pred['tau']:.3g})")
    measured = {key: sim[key] for key in THM44_SIM_KEYS}
    record = compare(
        "thm-4.4",
        config,
        predicted,
        measured,
        conclusion_holds=_lpft_no_worse(measured, "global_loss"),
        notes=f"tau = 2 c_L eta s = {pred['tau']:.6g}; LP-FT wins iff tau >= 1 (C >= 2)",
    )
    return replace(record, conclusions={OTHERS: _lpft_no_worse(measured, "global_loss_others")})


def _lpft_no_worse(measured: dict[str, Array], metric: str) -> bool:
    """LP-FT's simulated loss <= FT's for every client (relative tolerance 1e-9)."""
    ft, lpft = measured[f"{metric}_ft"], measured[f"{metric}_lpft"]
    tol = 1e-9 * max(1.0, float(np.max(np.abs(ft))))
    return bool(np.all(lpft <= ft + tol))


# ---------------------------------------------------------------- Theorem 4.5


def thm45_predict(config: SimConfig) -> dict[str, Any]:
    """[CLOSER] Theorem 4.5 under both conventions: coefficients, lambda*, every interval.

    ``lambda_star*`` and ``lpft_wins_intervals`` are over D_G (all clients, the fine-tuning
    client included); the ``*_others`` keys over the other clients only. Intervals are
    ``[lo, hi]`` lists with ``hi = None`` for +infinity (LP-FT wins again past a second root
    since a4 >= 0). Predicted losses are at ``config.lam``.
    """
    coef = thm45_coefficients(config)
    lam = config.lam
    stars = thm45_lambda_stars(coef, "global")
    others = thm45_lambda_stars(coef, "others")

    def quartic(a2: Array, a3: Array, a4: Array) -> Array:
        with np.errstate(over="ignore", invalid="ignore"):
            return np.asarray(a2 * lam**2 + a3 * lam**3 + a4 * lam**4)

    def intervals(convention: str) -> list[list[list[float | None]]]:
        return [[[lo, hi] for lo, hi in row] for row in thm45_intervals(coef, convention)]

    return {
        "clients": coef.clients,
        "a2": coef.a2,
        "a3": coef.a3,
        "a4": coef.a4,
        "b2": coef.b2,
        "a2_others": coef.a2_others,
        "a3_others": coef.a3_others,
        "a4_others": coef.a4_others,
        "b2_others": coef.b2_others,
        "a2_local": coef.a2_local,
        "a3_local": coef.a3_local,
        "a4_local": coef.a4_local,
        "lambda_star": [s.value for s in stars],
        "lambda_star_exists": [s.exists for s in stars],
        "lambda_star_regime": [s.regime for s in stars],
        "crossover": [s.crossover for s in stars],
        "roots": [list(s.roots) for s in stars],
        "lpft_wins_intervals": intervals("global"),
        "lambda_star_others": [s.value for s in others],
        "lambda_star_others_exists": [s.exists for s in others],
        "lambda_star_others_regime": [s.regime for s in others],
        "roots_others": [list(s.roots) for s in others],
        "lpft_wins_intervals_others": intervals("others"),
        "global_loss_ft": quartic(coef.a2, coef.a3, coef.a4),
        "global_loss_lpft": coef.b2 * lam**2,
        "global_loss_others_ft": quartic(coef.a2_others, coef.a3_others, coef.a4_others),
        "global_loss_others_lpft": coef.b2_others * lam**2,
        "local_loss_ft": quartic(coef.a2_local, coef.a3_local, coef.a4_local),
        "local_loss_lpft": np.zeros_like(coef.b2),
    }


def thm45_check(config: SimConfig, rng: np.random.Generator) -> CheckRecord:
    """Theorem 4.5 closed forms versus the simulator at config.lam (exact; rng unused).

    ``conclusion_holds``: the theorem's conclusion over D_G, a lambda* > 0 exists (a2 > b2)
    for every fine-tuning client; ``conclusions`` holds the same over the other clients
    (a2_others > b2_others). A step size that overflows gives a ``diverged`` record.
    """
    del rng
    pred = thm45_predict(config)
    predicted = {key: np.asarray(pred[key], dtype=float) for key in THM44_SIM_KEYS}
    if "overflow" in pred["lambda_star_regime"] or not all_finite(*predicted.values()):
        return diverged_record("thm-4.5", config, FORM_OVERFLOW)
    sim, diverged = _simulated_losses(config)
    if diverged:
        return diverged_record("thm-4.5", config, SIM_DIVERGED)
    measured = {key: sim[key] for key in THM44_SIM_KEYS}
    record = compare(
        "thm-4.5",
        config,
        predicted,
        measured,
        conclusion_holds=all(pred["lambda_star_exists"]),
        notes="lambda* regimes per client over D_G: "
        + ", ".join(pred["lambda_star_regime"])
        + "; over the other clients: "
        + ", ".join(pred["lambda_star_others_regime"]),
    )
    return replace(record, conclusions={OTHERS: all(pred["lambda_star_others_exists"])})
