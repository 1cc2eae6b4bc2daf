"""Symbolic derivations and executable claims of the two-layer linear theory ([CLOSER], [KUMAR]).

- :mod:`theory.derivations` (imports sympy; not imported here): the derivations themselves.
- :mod:`theory.closed_forms`: the derived closed forms in numpy, for figures and checks.
- :mod:`theory.claims`: the registry of executable claims (``lemma-4.3``, ``thm-4.4``,
  ``thm-4.5``, ``kumar-span``, ``kumar-balance``, ``kumar-prop-3.2``, ``kumar-thm-3.1``).
- :mod:`theory.audit`: the search for configurations where a claim's conclusion fails.
"""

from theory.audit import AuditRow, audit, audit_claim, format_table
from theory.claims import (
    CLAIMS,
    Claim,
    check_claim,
    claim_ids,
    get_claim,
    predict_claim,
    require_hypotheses,
)
from theory.closed_forms import (
    LambdaStar,
    Thm45Coefficients,
    lambda_star,
    lemma43_rows,
    lpft_wins_boundary,
    tau,
    thm44_losses,
    thm44_losses_from,
    thm45_coefficients,
)
from theory.records import CheckRecord

__all__ = [
    "CLAIMS",
    "AuditRow",
    "CheckRecord",
    "Claim",
    "LambdaStar",
    "Thm45Coefficients",
    "audit",
    "audit_claim",
    "check_claim",
    "claim_ids",
    "format_table",
    "get_claim",
    "lambda_star",
    "lemma43_rows",
    "lpft_wins_boundary",
    "predict_claim",
    "require_hypotheses",
    "tau",
    "thm44_losses",
    "thm44_losses_from",
    "thm45_coefficients",
]
