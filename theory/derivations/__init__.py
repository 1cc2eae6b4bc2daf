"""Symbolic (sympy) derivations of the two-layer linear theory ([CLOSER] Sec. 4, [KUMAR] Sec. 3).

Importing this subpackage imports sympy; ``import theory`` does not. Each module reads as a
derivation: it states the objects, applies the calculus or algebra step by step, and returns the
simplified result together with the checks that were made.

- :mod:`theory.derivations.gradients`: population gradients, the one-step update from the
  idealized global model, and the [KUMAR] span lemma and one-step balancedness identity.
- :mod:`theory.derivations.concept`: [CLOSER] Lemma 4.3 and Theorem 4.4 (isotropic inputs).
- :mod:`theory.derivations.covariate`: [CLOSER] Theorem 4.5 (x_i = e_i + eps z).
"""

from theory.derivations.concept import Thm44Derivation, derive_lemma43, derive_thm44
from theory.derivations.covariate import Thm45Derivation, derive_thm45
from theory.derivations.gradients import (
    GradientDerivation,
    OneStepDerivation,
    derive_balance_step,
    derive_gradients,
    derive_one_step,
    derive_span_lemma,
)

__all__ = [
    "GradientDerivation",
    "OneStepDerivation",
    "Thm44Derivation",
    "Thm45Derivation",
    "derive_balance_step",
    "derive_gradients",
    "derive_lemma43",
    "derive_one_step",
    "derive_span_lemma",
    "derive_thm44",
    "derive_thm45",
]
