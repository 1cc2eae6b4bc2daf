"""Search each claim's hypotheses for violations, and say what every violation is.

For every claim and every prior of :data:`theory._samplers.PRIORS` the audit draws
``budget`` random configurations *inside the claim's hypotheses* from one explicit
``numpy.random.Generator``, runs ``check`` and counts findings of these kinds:

- ``closed-form`` (``bound`` for inequalities): the derived closed form disagrees with the
  simulator (a derivation bug), or the bound is violated;
- ``conclusion``: the paper's conclusion, as the paper states it, fails on the simulation
  (global loss over D_G); ``conclusion-others``: the same over the other clients only;
- ``federated-reading`` (``kumar-prop-3.2`` only): LP-FT's global loss over D_G exceeds FT's
  when both start from the idealized global model, with many small steps or n < d samples;
- ``user-claim`` (a user's :func:`theory.claim`): the claim's function fails;
  ``user-claim-others``: the same with ``global_loss`` over the other clients only (when the
  claim reads ``global_loss``). A user's claim is drawn from its own space
  (:func:`theory._samplers.sample_space`).

A fraction of failures is a property of the prior, not of the claim, so each row carries its
prior, and each claim its exact condition where one is known (:data:`EXACT_CONDITIONS`).
Each failure is characterized: whether FT's local loss is higher (FT moved less), and the
verdict at matched local loss (:func:`theory.matched.matched_local_loss`).
"""

from __future__ import annotations

import functools
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from synthetic.config import SimConfig
from theory._audit_details import characterize, federated_reading
from theory._audit_text import audit_failures, format_table, write_atomic
from theory._audit_user import COST_MS, MATCHED_MS, audit_user, expected_cost
from theory._samplers import PRIORS, SAMPLERS
from theory.claims import CLAIMS, claim_ids, get_claim
from theory.closed_forms import thm44_losses
from theory.declare import Claim
from theory.records import CheckRecord, jsonable

SCHEMA_VERSION = 2
#: Each claim's exact region of validity where one is known (otherwise: what decides it).
EXACT_CONDITIONS: dict[str, str] = {
    "lemma-4.3": "an identity: holds for every configuration in the hypotheses",
    "thm-4.4": "LP-FT's global loss <= FT's iff 2 c_L eta s >= 1 (C >= 2, lambda > 0; at C = 2 "
    "also the tie tau = 0), over D_G and over the other clients alike",
    "thm-4.5": "lambda* exists iff a2 > b2 (D_G) or a2_others > b2_others (other clients), "
    "coefficients of the derived closed form; no closed condition on the raw parameters",
    "kumar-span": "an identity: holds for every configuration in the hypotheses",
    "kumar-balance": "an identity per step; invariance holds in the gradient-flow limit",
    "kumar-prop-3.2": "closed form: exact (LP gives w*_i, FT's gradient is 0); the federated "
    "reading has no known exact region",
    "kumar-thm-3.1": "a proved inequality ([KUMAR] eq. 3.7) under the hypotheses",
    "kumar-thm-3.1-tight": "no proof: an empirical observation of this toolkit",
}
BOUNDS = ("kumar-thm-3.1", "kumar-thm-3.1-tight")
USER_EXACT = "a user's claim: no exact condition known to the toolkit"


def simplicity(config: SimConfig) -> tuple[float, ...]:
    """Sort key of counterexamples: small dimensions, few steps, few samples first."""
    return (config.d, config.C, config.m, config.steps, config.n or 0, config.seed)


@dataclass(frozen=True)
class AuditRow:
    """Findings of one kind for one claim under one prior.

    Parameters
    ----------
    claim, kind, prior : str
        Claim id, finding kind (``closed-form``, ``bound``, ``conclusion``,
        ``conclusion-others``, ``federated-reading``) and prior (:data:`PRIORS`).
    tried : int
        Configurations checked (diverged runs excluded, counted in ``diverged``).
    violations : int
    simplest : dict or None
        The simplest violating configuration (changed fields only) and its record summary.
    diverged : int
    details : dict
        What the violations are (kind-specific counts, e.g. ``ft_local_higher``).
    """

    claim: str
    kind: str
    tried: int
    violations: int
    simplest: dict[str, Any] | None
    diverged: int = 0
    details: dict[str, Any] = field(default_factory=dict)
    prior: str = "eta-log-uniform"

    @property
    def fraction(self) -> float | None:
        """Violations / tried (None when nothing was tried)."""
        return self.violations / self.tried if self.tried else None

    def to_dict(self) -> dict[str, Any]:
        """JSON-serializable form (the fields plus ``fraction``)."""
        return jsonable({**self.__dict__, "fraction": self.fraction})


def changed_fields(config: SimConfig, default: SimConfig | None = None) -> dict[str, Any]:
    """The fields of ``config`` that differ from ``default`` (the SimConfig defaults)."""
    base = (default or SimConfig()).to_dict()
    return {k: v for k, v in config.to_dict().items() if base[k] != v}


def _summary(config: SimConfig, record: CheckRecord) -> dict[str, Any]:
    out = {"set": changed_fields(config), "max_abs_error": record.max_abs_error}
    if record.claim == "thm-4.4":
        pred = thm44_losses(config)
        out.update(tau=pred["tau"], global_loss_ft=pred["global_loss_ft"],
                   global_loss_lpft=pred["global_loss_lpft"])  # fmt: skip
    if record.notes:
        out["notes"] = record.notes
    return out


def _kinds(claim_id: str) -> list[str]:
    kinds = ["bound" if claim_id in BOUNDS else "closed-form", "conclusion"]
    if claim_id in ("thm-4.4", "thm-4.5"):
        kinds.append("conclusion-others")
    if claim_id == "kumar-prop-3.2":
        kinds.append("federated-reading")
    return kinds


def audit_claim(
    claim_id: str | Claim,
    budget: int,
    rng: np.random.Generator,
    prior: str = "eta-log-uniform",
    tick: Callable[[], object] | None = None,
) -> list[AuditRow]:
    """Audit one claim with ``budget`` configurations drawn inside its hypotheses.

    Parameters
    ----------
    claim_id : str or Claim
        A built-in id, or a user's claim (drawn from its own space).
    budget : int
        Number of configurations (>= 1).
    rng : numpy.random.Generator
    prior : str
        A key of :data:`PRIORS`.
    tick : callable, optional
        Called once per configuration (progress).

    Returns
    -------
    list of AuditRow
    """
    claim = claim_id if isinstance(claim_id, Claim) else get_claim(claim_id)
    if budget < 1:
        raise ValueError(f"budget={budget!r} is invalid: expected at least 1 configuration")
    if prior not in PRIORS:
        raise ValueError(f"prior={prior!r} is invalid: expected one of {', '.join(PRIORS)}")
    if not claim.full_check:
        return audit_user(claim, budget, rng, prior, tick)
    claim_id = claim.id
    sampler = SAMPLERS[claim_id]
    kinds = _kinds(claim_id)
    found: dict[str, list[tuple[SimConfig, CheckRecord]]] = {kind: [] for kind in kinds}
    tried = dict.fromkeys(kinds, 0)
    seen: list[tuple[SimConfig, CheckRecord]] = []
    diverged = 0
    for _ in range(budget):
        if tick is not None:
            tick()
        config = sampler(rng, prior)
        while claim.hypotheses(config):  # samplers stay inside; redraw the rare edge case
            config = sampler(rng, prior)
        record = claim.check(config, rng)
        if record.diverged:
            diverged += 1
            continue
        seen.append((config, record))
        tried[kinds[0]] += 1
        if not record.holds:
            found[kinds[0]].append((config, record))
        outcomes = {"conclusion": record.conclusion_holds}
        outcomes["conclusion-others"] = next(iter(record.conclusions.values()), None)
        for kind in ("conclusion", "conclusion-others"):
            if kind in tried and outcomes[kind] is not None:
                tried[kind] += 1
                if not outcomes[kind]:
                    found[kind].append((config, record))
        if claim_id == "kumar-prop-3.2":
            # The samples themselves and their population twin (many small steps, n = none).
            for variant in (config, config.replace(n=None)):
                reading = federated_reading(variant)
                if reading is not None:
                    tried["federated-reading"] += 1
                    if not reading:
                        found["federated-reading"].append((variant, record))
    rows = []
    for kind in kinds:
        hits = found[kind]
        if kind.startswith("conclusion") and tried[kind] == 0:
            continue
        simplest = min(hits, key=lambda h: simplicity(h[0])) if hits else None
        rows.append(
            AuditRow(
                claim_id, kind, tried[kind], len(hits),
                None if simplest is None else _summary(*simplest), diverged,
                characterize(claim_id, kind, hits, seen), prior,
            )
        )  # fmt: skip
    return rows


def audit(
    claims: Sequence[str | Claim] | None,
    budget: int,
    rng: np.random.Generator,
    priors: Sequence[str] = tuple(PRIORS),
    progress: bool = False,
) -> list[AuditRow]:
    """Audit several claims (all built-in claims when ``claims`` is None) under each prior.

    ``progress`` shows a bar on stderr, advancing by each claim's expected cost
    (:data:`COST_MS`, :data:`MATCHED_MS`) so that its ETA holds across claims.
    """
    from tqdm.auto import tqdm

    items = list(claims) if claims else list(claim_ids())
    resolved = [c if isinstance(c, Claim) else get_claim(c) for c in items]
    costs = [expected_cost(c, budget) for c in resolved]
    total = sum((per * budget + after) * len(priors) for per, after in costs)
    fmt = "{desc}: {percentage:3.0f}%|{bar}| [{elapsed}<{remaining}] {postfix}"
    bar = tqdm(total=round(total), desc="audit", disable=not progress, leave=False,
               bar_format=fmt)  # fmt: skip
    rows = []
    planned = 0.0
    try:
        for claim, (per, after) in zip(resolved, costs, strict=True):
            for p in priors:
                bar.set_postfix_str(f"{claim.id}, {p}")
                step = functools.partial(bar.update, per)
                rows.extend(audit_claim(claim, budget, rng, p, tick=step))
                planned += per * budget + after
                bar.update(max(0.0, planned - bar.n))
                bar.refresh()  # show each finished (claim, prior), the last one at 100%
    finally:
        bar.close()
    return rows


SCHEMA: dict[str, str] = {
    "schema_version": "2: rows carry prior and fraction; claims carry exact conditions",
    "budget, seed": "configurations per (claim, prior) and the seed of the search",
    "priors": "prior name -> how eta is drawn",
    "exact_conditions": "claim -> its exact region of validity where known",
    "rows[].claim, kind, prior": "claim id; closed-form, bound, conclusion, "
    "conclusion-others or federated-reading; prior name",
    "rows[].tried, violations, fraction, diverged": "counts; fraction = violations / tried",
    "rows[].simplest": "the simplest violating configuration (--set fields) or null",
    "rows[].details": "what the violations are: ft_local_higher (FT moved less), "
    "matched_local_loss verdict counts, regimes, ...",
}


def report_json(rows: Sequence[AuditRow], budget: int, seed: int) -> str:
    """The audit as JSON text (rows plus the settings that reproduce it; see :data:`SCHEMA`)."""
    claims = sorted({r.claim for r in rows})
    return json.dumps(
        {"schema_version": SCHEMA_VERSION, "schema": SCHEMA, "budget": budget, "seed": seed,
         "claims": claims, "priors": {p: PRIORS[p] for p in dict.fromkeys(r.prior for r in rows)},
         "exact_conditions": {c: EXACT_CONDITIONS.get(c, USER_EXACT) for c in claims},
         "rows": [r.to_dict() for r in rows]},
        indent=2,
    )  # fmt: skip


__all__ = [
    "BOUNDS",
    "CLAIMS",
    "COST_MS",
    "EXACT_CONDITIONS",
    "MATCHED_MS",
    "PRIORS",
    "SAMPLERS",
    "SCHEMA",
    "AuditRow",
    "audit",
    "audit_claim",
    "audit_failures",
    "changed_fields",
    "expected_cost",
    "format_table",
    "report_json",
    "simplicity",
    "write_atomic",
]
