"""The audit of a user's claim, and the expected cost of each audit (the progress bar).

A user's claim is drawn from its own space (:func:`theory._samplers.sample_space`) and
checked for its closed form (``closed-form``, when it has one), its function
(``user-claim``) and, when it reads ``global_loss``, its function with the loss over the
other clients only (``user-claim-others``).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

import numpy as np

from synthetic.config import SimConfig
from theory._samplers import sample_space
from theory.declare import USER_CLAIM, Claim
from theory.records import CheckRecord

if TYPE_CHECKING:
    from theory.audit import AuditRow

#: CPU milliseconds per checked configuration, measured on the project's shared 2-core machine
#: (check plus, for kumar-prop-3.2, the federated reading); the progress bar advances by these
#: so that its ETA does not treat a kumar-balance check (40 ms) like a lemma-4.3 one (1 ms).
COST_MS: dict[str, float] = {
    "lemma-4.3": 1.0, "thm-4.4": 10.0, "thm-4.5": 12.0, "kumar-span": 4.0,
    "kumar-balance": 40.0, "kumar-prop-3.2": 20.0, "kumar-thm-3.1": 15.0,
    "kumar-thm-3.1-tight": 14.0,
}  # fmt: skip
#: CPU milliseconds per failure characterized at matched local loss (at most MATCHED_CAP).
MATCHED_MS: dict[str, float] = {"thm-4.4": 100.0, "kumar-prop-3.2": 40.0}
#: A user's claim: one simulation per configuration and convention (a guess; ratios only).
USER_COST_MS = 5.0


def expected_cost(claim: Claim, budget: int) -> tuple[float, float]:
    """(per configuration, after the loop) expected milliseconds of one (claim, prior)."""
    from theory._audit_details import MATCHED_CAP

    if not claim.full_check:
        return USER_COST_MS * (2 if "global_loss" in claim.metrics else 1), 0.0
    after = MATCHED_MS.get(claim.id, 0.0) * min(budget, MATCHED_CAP)
    return COST_MS.get(claim.id, 10.0), after


def searched_fields(claim: Claim) -> list[str]:
    """Numeric fields the claim's space varies (ranges, log ranges, numeric choices; d)."""
    from theory.space import LogRange, is_range

    out = ["d"] if "d" not in claim.space else []
    for name, spec in claim.space.items():
        numeric_choices = (
            isinstance(spec, tuple)
            and not is_range(spec)
            and len({v for v in spec if isinstance(v, (int, float)) and not isinstance(v, bool)})
            > 1
        )
        if isinstance(spec, LogRange) or is_range(spec) or numeric_choices:
            out.append(name)
    return out


def ranges(configs: Sequence[SimConfig], fields: Sequence[str]) -> dict[str, list[float]]:
    """``field -> [min, max]`` over ``configs`` (numeric values only; empty when none).

    ``eps``, ``mix`` and ``rho`` count only configurations whose geometry uses them.

    A region summary of where a user's claim fails and where it holds: overlapping ranges
    mean no single field separates the two.
    """
    used = {"eps": lambda c: c.covariate != "isotropic", "mix": lambda c: c.covariate == "mix",
            "rho": lambda c: c.covariate == "overlap"}  # fmt: skip
    out: dict[str, list[float]] = {}
    for name in fields:
        keep = used.get(name, lambda c: True)
        values = [getattr(c, name) for c in configs if keep(c)]
        numbers = [float(v) for v in values if isinstance(v, (int, float))]
        if numbers:
            out[name] = [min(numbers), max(numbers)]
    return out


def audit_user(
    claim: Claim,
    budget: int,
    rng: np.random.Generator,
    prior: str,
    tick: Callable[[], object] | None,
) -> list[AuditRow]:
    """Audit a user's claim: its closed form (if any) and its function, both conventions."""
    from theory.audit import AuditRow, changed_fields, simplicity  # audit imports this module

    kinds = (["closed-form"] if claim.closed_form is not None else []) + ["user-claim"]
    if "global_loss" in claim.metrics:
        kinds.append("user-claim-others")
    found: dict[str, list[tuple[SimConfig, CheckRecord]]] = {kind: [] for kind in kinds}
    held: dict[str, list[SimConfig]] = {kind: [] for kind in kinds}
    tried = dict.fromkeys(kinds, 0)
    diverged = 0
    for _ in range(budget):
        if tick is not None:
            tick()
        config = sample_space(claim, rng, prior)
        record = claim.check(config, rng)
        if record.diverged:
            diverged += 1
            continue
        verdicts = record.verdicts()
        outcomes = {"closed-form": verdicts.get("closed form"), "user-claim": verdicts[USER_CLAIM]}
        records = {"closed-form": record, "user-claim": record}
        if "user-claim-others" in kinds:
            other = claim.check(config, rng, convention="others")
            outcomes["user-claim-others"] = other.verdicts()[USER_CLAIM]
            records["user-claim-others"] = other
        for kind in kinds:
            tried[kind] += 1
            if not outcomes[kind]:
                found[kind].append((config, records[kind]))
            else:
                held[kind].append(config)
    rows = []
    for kind in kinds:
        hits = found[kind]
        simplest = min(hits, key=lambda h: simplicity(h[0])) if hits else None
        summary = None
        if simplest is not None:
            summary = {"set": changed_fields(simplest[0], claim.default),
                       "failing_values": simplest[1].extra.get("failing_values", {})}  # fmt: skip
        fields = searched_fields(claim)
        details = {"ranges_where_it_fails": ranges([c for c, _ in hits], fields),
                   "ranges_where_it_holds": ranges(held[kind], fields)}  # fmt: skip
        rows.append(AuditRow(claim.id, kind, tried[kind], len(hits), summary, diverged, details,
                             prior))  # fmt: skip
    return rows


__all__ = [
    "COST_MS",
    "MATCHED_MS",
    "USER_COST_MS",
    "audit_user",
    "expected_cost",
    "ranges",
    "searched_fields",
]
