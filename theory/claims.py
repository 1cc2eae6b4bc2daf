"""The built-in claims ([CLOSER] Lemma 4.3, Thms 4.4-4.5; [KUMAR] Sec. 3), one explicit tuple.

Each is declared with the public :func:`theory.claim` decorator, as a user's claim is: its
source, a one-line statement, the paper's conclusion as the paper states it, a hypotheses
check on a :class:`synthetic.SimConfig`, a closed form and, since these closed forms concern
parameters and trajectories rather than per-client metrics, a full ``check`` that runs the
simulator and compares (``full_check=True``). ``check`` never silently accepts a
configuration outside the hypotheses: :func:`require_hypotheses` raises a
:class:`synthetic.ConfigError` naming the failing hypothesis.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from synthetic.config import ConfigError, SimConfig
from theory import _closer, _kumar, _kumar_flow
from theory.declare import Claim, claim
from theory.records import CheckRecord
from theory.space import log


def _no_prediction(claim: str) -> Callable[[SimConfig], dict[str, Any]]:
    def predict(config: SimConfig) -> dict[str, Any]:
        """Closed form of an identity claim: the quantity it predicts to vanish."""
        return {"claim": claim, "predicted_change": 0.0}

    return predict


def _thm31_predict(power: int) -> Callable[[SimConfig], dict[str, Any]]:
    def predict(config: SimConfig) -> dict[str, Any]:
        """The lower bound of Thm 3.1 with (1 + ||w*||)^power, per fine-tuning client."""
        from synthetic.problem import draw_problem
        from synthetic.simulation import clients_of

        problem = draw_problem(config)
        rows = [_kumar_flow.thm31_bound(problem, config, int(i), power)
                for i in clients_of(config)]  # fmt: skip
        return {key: [row[key] for row in rows] for key in rows[0]}

    return predict


def _tight_hypotheses(config: SimConfig) -> list[str]:
    return _kumar.thm31_hypotheses(config, "kumar-thm-3.1-tight")


_ISO = SimConfig(covariate="isotropic", d=12, m=3, C=4, lam=1.0, eta=0.2, vcom_norm=1.0)
_COV = SimConfig(covariate="own", d=12, m=3, C=4, lam=1.0, eta=0.2, eps=0.3, client=0)
_SAMPLES = SimConfig(covariate="isotropic", d=20, m=2, C=3, n=8, eta=0.05, steps=50)

# Where `feddistort theory property` searches each claim (inside its hypotheses, mostly):
# lam and ||V*_com|| over the audit samplers' ranges (theory/_samplers.py), so that a search
# and the audit look at the same region (lam = 0 with V*_com = 0 makes every target zero).
_LAM_VCOM = {"lam": (0.1, 3.0), "vcom_norm": (0.0, 2.0)}
_ONE_STEP = {"steps": 1, "n": None, "eta": log(0.01, 1.5), **_LAM_VCOM}
_MANY_STEPS = {"d": (6, 16), "m": (1, 2), "C": (2, 3), "n": (1, 10), "steps": (1, 30),
               "eta": log(0.002, 0.05), **_LAM_VCOM,
               "covariate": ("isotropic", "own", "mix", "random")}  # fmt: skip
_SPACES: dict[str, dict[str, Any]] = {
    "lemma-4.3": {**_ONE_STEP, "covariate": "isotropic"},
    "thm-4.4": {**_ONE_STEP, "covariate": "isotropic"},
    "thm-4.5": {**_ONE_STEP, "covariate": ("own", "shared", "random", "basis", "mix")},
    "kumar-span": _MANY_STEPS,
    "kumar-balance": _MANY_STEPS,
    "kumar-prop-3.2": _MANY_STEPS,
    "kumar-thm-3.1": _MANY_STEPS,
    "kumar-thm-3.1-tight": _MANY_STEPS,
}

LEMMA_43 = claim(
    "lemma-4.3",
    source="[CLOSER] Lemma 4.3",
    statement=(
        "one FT step from ([V*_com; 0], B*) on isotropic inputs gives row j of B: b*_j + "
        "2 c_L eta lambda (V_0)_j u_i, and V_0 + 2 c_L eta lambda e_{m+i}"
    ),
    paper_conclusion=(
        "shared feature rows absorb the client's own direction u_i in proportion to the "
        "shared head weight (federated feature distortion)"
    ),
    hypotheses=_closer.lemma43_hypotheses,
    closed_form=_closer.lemma43_predict,
    default=_ISO,
    space=_SPACES["lemma-4.3"],
    full_check=True,
)(_closer.lemma43_check)

THM_44 = claim(
    "thm-4.4",
    source="[CLOSER] Theorem 4.4",
    statement=(
        "isotropic concept shift, one step: FT's global loss (D_G) is c_L lam^2 (1 - 2 "
        "tau/C + tau^2), LP-FT's 2 c_L lam^2 (C-1)/C, tau = 2 c_L eta s"
    ),
    paper_conclusion="LP-FT (no feature distortion) has a lower global loss than FT",
    hypotheses=_closer.thm44_hypotheses,
    closed_form=_closer.thm44_predict,
    default=_ISO,
    space=_SPACES["thm-4.4"],
    full_check=True,
)(_closer.thm44_check)

THM_45 = claim(
    "thm-4.5",
    source="[CLOSER] Theorem 4.5",
    statement=(
        "x_i = e_i + eps z, one step: FT's global loss is a2 lam^2 + a3 lam^3 + a4 lam^4,"
        " LP-FT's b2 lam^2"
    ),
    paper_conclusion=(
        "there is lambda* > 0 such that LP-FT has the lower global loss for all lambda <= lambda*"
    ),
    hypotheses=_closer.thm45_hypotheses,
    closed_form=_closer.thm45_predict,
    default=_COV,
    space=_SPACES["thm-4.5"],
    full_check=True,
)(_closer.thm45_check)

KUMAR_SPAN = claim(
    "kumar-span",
    source="[KUMAR] Sec. 3 (span lemma)",
    statement=(
        "every GD step on B adds rows in rowspace(X): B_t u = B_0 u for u orthogonal to "
        "rowspace(X), all t (FT and LP-FT)"
    ),
    paper_conclusion="features outside the span of the training inputs never change",
    hypotheses=_kumar.span_hypotheses,
    closed_form=_no_prediction("kumar-span"),
    default=_SAMPLES,
    space=_SPACES["kumar-span"],
    full_check=True,
)(_kumar.span_check)

KUMAR_BALANCE = claim(
    "kumar-balance",
    source="[KUMAR] Sec. 3 (balancedness)",
    statement="one GD step changes V V^T - B B^T by exactly eta^2 (g_V g_V^T - g_B g_B^T)",
    paper_conclusion=(
        "V V^T - B B^T is invariant under gradient flow (checked on the flow: over a "
        "fixed time the drift halves when the step halves)"
    ),
    hypotheses=_kumar.balance_hypotheses,
    closed_form=_no_prediction("kumar-balance"),
    default=_SAMPLES,
    space=_SPACES["kumar-balance"],
    full_check=True,
)(_kumar.balance_check)

KUMAR_PROP_32 = claim(
    "kumar-prop-3.2",
    source="[KUMAR] Proposition 3.2",
    statement=(
        "with perfect features (B_0 = B*) LP-FT has zero OOD error at every step; FT from"
        " a random head has positive OOD error"
    ),
    paper_conclusion="LP-FT preserves the pretrained features and beats FT out of distribution",
    hypotheses=_kumar.prop32_hypotheses,
    closed_form=_no_prediction("kumar-prop-3.2"),
    default=_SAMPLES,
    space=_SPACES["kumar-prop-3.2"],
    full_check=True,
)(_kumar.prop32_check)

KUMAR_THM_31 = claim(
    "kumar-thm-3.1",
    source="[KUMAR] Theorem 3.1",
    statement=(
        "[KUMAR] eq. 3.7: sqrt(L_ood(FT_t)) >= cos theta_k(R, S^perp) / sqrt(k) * "
        "min(phi, phi^2/||w*||) / (1 + ||w*||)^2 along gradient flow (many small steps; "
        "B_0 = B*, Sigma_ood = I)"
    ),
    paper_conclusion="FT's OOD error stays bounded below when the head starts misaligned",
    hypotheses=_kumar.thm31_hypotheses,
    closed_form=_thm31_predict(_kumar_flow.PAPER_POWER),
    default=_SAMPLES,
    space=_SPACES["kumar-thm-3.1"],
    full_check=True,
)(_kumar.thm31_check)

KUMAR_THM_31_TIGHT = claim(
    "kumar-thm-3.1-tight",
    source="feddistort, empirical (tighter than [KUMAR] Theorem 3.1; not proved)",
    statement=(
        "EMPIRICAL: the eq. 3.7 bound with (1 + ||w*||) in place of (1 + ||w*||)^2 also "
        "holds along gradient flow (B_0 = B*, Sigma_ood = I)"
    ),
    paper_conclusion=(
        "an observation of this toolkit, stronger than the theorem: not the paper's claim"
    ),
    hypotheses=_tight_hypotheses,
    closed_form=_thm31_predict(_kumar_flow.TIGHT_POWER),
    default=_SAMPLES,
    space=_SPACES["kumar-thm-3.1-tight"],
    full_check=True,
)(_kumar.thm31_tight_check)

#: The built-in claims, in the order `feddistort theory list` shows them.
BUILTIN: tuple[Claim, ...] = (
    LEMMA_43,
    THM_44,
    THM_45,
    KUMAR_SPAN,
    KUMAR_BALANCE,
    KUMAR_PROP_32,
    KUMAR_THM_31,
    KUMAR_THM_31_TIGHT,
)
CLAIMS: dict[str, Claim] = {c.id: c for c in BUILTIN}


def claim_ids() -> tuple[str, ...]:
    """The registered claim ids, in registry order."""
    return tuple(CLAIMS)


def get_claim(claim_id: str) -> Claim:
    """Look up a claim.

    Raises
    ------
    ConfigError
        Unknown id; the message lists the valid ids.
    """
    if claim_id not in CLAIMS:
        raise ConfigError(
            f"claim={claim_id!r} is invalid: expected one of {', '.join(claim_ids())}"
        )
    return CLAIMS[claim_id]


def require_hypotheses(claim: Claim, config: SimConfig) -> None:
    """Raise a ConfigError naming the first failed hypothesis of ``claim`` on ``config``."""
    failures = claim.unmet(config)
    if failures:
        more = f" (and {len(failures) - 1} more: {'; '.join(failures[1:])})" if failures[1:] else ""
        raise ConfigError(failures[0] + more)


def check_claim(claim_id: str, config: SimConfig, rng: np.random.Generator) -> CheckRecord:
    """Check a claim on a configuration after verifying its hypotheses."""
    claim = get_claim(claim_id)
    require_hypotheses(claim, config)
    return claim.check(config, rng)


def predict_claim(claim_id: str, config: SimConfig) -> dict[str, Any]:
    """Closed-form quantities of a claim after verifying its hypotheses."""
    claim = get_claim(claim_id)
    require_hypotheses(claim, config)
    return claim.predict(config)
