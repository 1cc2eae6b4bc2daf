"""Symbolic derivations and executable claims of the two-layer linear theory ([CLOSER], [KUMAR]).

- :mod:`theory.derivations` (imports sympy): the derivations themselves.
- :mod:`theory.closed_forms`: the derived closed forms in numpy, for figures and checks.
- :mod:`theory.claims`: the registry of executable claims (``lemma-4.3``, ``thm-4.4``,
  ``thm-4.5``, ``kumar-span``, ``kumar-balance``, ``kumar-prop-3.2``, ``kumar-thm-3.1``).
- :mod:`theory.audit`: the search for configurations where a claim's conclusion fails.
- :func:`claim` (:mod:`theory.declare`): declare your own claim; :func:`property_search`
  (:mod:`theory.search`) searches it for a shrunk counterexample with hypothesis;
  :mod:`theory.strategies` (the only module importing hypothesis) draws valid configurations.

Names load lazily (PEP 562): importing :mod:`theory` imports neither sympy nor the simulator.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from feddistort_io import lazy_exports

if TYPE_CHECKING:
    from theory.audit import AuditRow, audit_claim, format_table  # noqa: F401
    from theory.claims import (  # noqa: F401
        BUILTIN,
        CLAIMS,
        check_claim,
        claim_ids,
        get_claim,
        predict_claim,
        require_hypotheses,
    )
    from theory.closed_forms import (  # noqa: F401
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
    from theory.declare import Claim, ClaimError, claim  # noqa: F401
    from theory.records import CheckRecord  # noqa: F401
    from theory.resolve import resolve_claim  # noqa: F401
    from theory.results import Frontier, Results  # noqa: F401
    from theory.search import SearchResult, property_search  # noqa: F401
    from theory.space import log  # noqa: F401

# Public name -> the module that defines it (loaded on first use, PEP 562).
_EXPORTS: dict[str, str] = {
    "AuditRow": "theory.audit",
    "audit_claim": "theory.audit",
    "format_table": "theory.audit",
    "BUILTIN": "theory.claims",
    "CLAIMS": "theory.claims",
    "Claim": "theory.declare",
    "ClaimError": "theory.declare",
    "claim": "theory.declare",
    "log": "theory.space",
    "resolve_claim": "theory.resolve",
    "Frontier": "theory.results",
    "Results": "theory.results",
    "SearchResult": "theory.search",
    "property_search": "theory.search",
    "check_claim": "theory.claims",
    "claim_ids": "theory.claims",
    "get_claim": "theory.claims",
    "predict_claim": "theory.claims",
    "require_hypotheses": "theory.claims",
    "LambdaStar": "theory.closed_forms",
    "Thm45Coefficients": "theory.closed_forms",
    "lambda_star": "theory.closed_forms",
    "lemma43_rows": "theory.closed_forms",
    "lpft_wins_boundary": "theory.closed_forms",
    "tau": "theory.closed_forms",
    "thm44_losses": "theory.closed_forms",
    "thm44_losses_from": "theory.closed_forms",
    "thm45_coefficients": "theory.closed_forms",
    "CheckRecord": "theory.records",
}

__all__ = sorted(_EXPORTS)

__getattr__, __dir__ = lazy_exports(__name__, globals(), _EXPORTS)
