"""The registry of executable claims ([CLOSER] Lemma 4.3, Thms 4.4-4.5; [KUMAR] Sec. 3).

A claim bundles its source, a one-line statement, the paper's conclusion as the paper states
it, a hypotheses check on a :class:`synthetic.SimConfig`, a closed-form ``predict`` and a
``check`` that runs the simulator and compares. ``check`` never silently accepts a
configuration outside the hypotheses: :func:`require_hypotheses` raises a
:class:`synthetic.ConfigError` naming the failing hypothesis.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from synthetic.config import ConfigError, SimConfig
from theory import _closer, _kumar, _kumar_flow
from theory.records import CheckRecord


@dataclass(frozen=True)
class Claim:
    """One executable statement.

    Parameters
    ----------
    id : str
        Registry id, e.g. ``thm-4.4``.
    source : str
        Citation, e.g. ``[CLOSER] Theorem 4.4``.
    statement : str
        One line: what is checked against the simulator.
    paper_conclusion : str
        The conclusion as the paper states it (what the audit tries to violate).
    hypotheses : callable
        ``config -> list of failure messages`` (empty when the claim applies).
    predict : callable
        ``config -> dict`` of closed-form quantities.
    check : callable
        ``(config, rng) -> CheckRecord``.
    default : SimConfig
        A configuration within the hypotheses (the CLI's base configuration).
    """

    id: str
    source: str
    statement: str
    paper_conclusion: str
    hypotheses: Callable[[SimConfig], list[str]]
    predict: Callable[[SimConfig], dict[str, Any]]
    check: Callable[[SimConfig, np.random.Generator], CheckRecord]
    default: SimConfig


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

CLAIMS: dict[str, Claim] = {
    c.id: c
    for c in (
        Claim(
            "lemma-4.3",
            "[CLOSER] Lemma 4.3",
            "one FT step from ([V*_com; 0], B*) on isotropic inputs gives row j of B: "
            "b*_j + 2 c_L eta lambda (V_0)_j u_i, and V_0 + 2 c_L eta lambda e_{m+i}",
            "shared feature rows absorb the client's own direction u_i in proportion to the "
            "shared head weight (federated feature distortion)",
            _closer.lemma43_hypotheses,
            _closer.lemma43_predict,
            _closer.lemma43_check,
            _ISO,
        ),
        Claim(
            "thm-4.4",
            "[CLOSER] Theorem 4.4",
            "isotropic concept shift, one step: FT's global loss (D_G) is "
            "c_L lam^2 (1 - 2 tau/C + tau^2), LP-FT's 2 c_L lam^2 (C-1)/C, tau = 2 c_L eta s",
            "LP-FT (no feature distortion) has a lower global loss than FT",
            _closer.thm44_hypotheses,
            _closer.thm44_predict,
            _closer.thm44_check,
            _ISO,
        ),
        Claim(
            "thm-4.5",
            "[CLOSER] Theorem 4.5",
            "x_i = e_i + eps z, one step: FT's global loss is a2 lam^2 + a3 lam^3 + a4 lam^4, "
            "LP-FT's b2 lam^2",
            "there is lambda* > 0 such that LP-FT has the lower global loss for all "
            "lambda <= lambda*",
            _closer.thm45_hypotheses,
            _closer.thm45_predict,
            _closer.thm45_check,
            _COV,
        ),
        Claim(
            "kumar-span",
            "[KUMAR] Sec. 3 (span lemma)",
            "every GD step on B adds rows in rowspace(X): B_t u = B_0 u for u orthogonal to "
            "rowspace(X), all t (FT and LP-FT)",
            "features outside the span of the training inputs never change",
            _kumar.span_hypotheses,
            _no_prediction("kumar-span"),
            _kumar.span_check,
            _SAMPLES,
        ),
        Claim(
            "kumar-balance",
            "[KUMAR] Sec. 3 (balancedness)",
            "one GD step changes V V^T - B B^T by exactly eta^2 (g_V g_V^T - g_B g_B^T)",
            "V V^T - B B^T is invariant under gradient flow (checked on the flow: over a fixed "
            "time the drift halves when the step halves)",
            _kumar.balance_hypotheses,
            _no_prediction("kumar-balance"),
            _kumar.balance_check,
            _SAMPLES,
        ),
        Claim(
            "kumar-prop-3.2",
            "[KUMAR] Proposition 3.2",
            "with perfect features (B_0 = B*) LP-FT has zero OOD error at every step; FT from "
            "a random head has positive OOD error",
            "LP-FT preserves the pretrained features and beats FT out of distribution",
            _kumar.prop32_hypotheses,
            _no_prediction("kumar-prop-3.2"),
            _kumar.prop32_check,
            _SAMPLES,
        ),
        Claim(
            "kumar-thm-3.1",
            "[KUMAR] Theorem 3.1",
            "[KUMAR] eq. 3.7: sqrt(L_ood(FT_t)) >= cos theta_k(R, S^perp) / sqrt(k) * "
            "min(phi, phi^2/||w*||) / (1 + ||w*||)^2 along gradient flow (many small steps; "
            "B_0 = B*, Sigma_ood = I)",
            "FT's OOD error stays bounded below when the head starts misaligned",
            _kumar.thm31_hypotheses,
            _thm31_predict(_kumar_flow.PAPER_POWER),
            _kumar.thm31_check,
            _SAMPLES,
        ),
        Claim(
            "kumar-thm-3.1-tight",
            "feddistort, empirical (tighter than [KUMAR] Theorem 3.1; not proved)",
            "EMPIRICAL: the eq. 3.7 bound with (1 + ||w*||) in place of (1 + ||w*||)^2 also "
            "holds along gradient flow (B_0 = B*, Sigma_ood = I)",
            "an observation of this toolkit, stronger than the theorem: not the paper's claim",
            _tight_hypotheses,
            _thm31_predict(_kumar_flow.TIGHT_POWER),
            _kumar.thm31_tight_check,
            _SAMPLES,
        ),
    )
}


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
    failures = claim.hypotheses(config)
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
