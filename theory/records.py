"""Records returned by executable claims, and helpers shared by the claim modules."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from synthetic.config import ConfigError, SimConfig

#: Relative tolerance of exact float64 identities (closed form vs simulator, no sampling).
EXACT_RTOL = 1e-9
#: Absolute floor of the tolerance of exact identities.
EXACT_ATOL = 1e-11


def jsonable(value: Any) -> Any:
    """Convert numpy values (and nested containers) to JSON-serializable Python objects."""
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    if isinstance(value, np.ndarray):
        return jsonable(value.tolist())
    if isinstance(value, (np.bool_, bool)):
        return bool(value)
    if isinstance(value, (np.integer,)):
        return int(value)
    if isinstance(value, (np.floating, float)):
        f = float(value)
        return f if math.isfinite(f) else None
    return value


@dataclass(frozen=True)
class CheckRecord:
    """Outcome of comparing a claim's closed form with the simulator on one configuration.

    Parameters
    ----------
    claim : str
        Claim id.
    holds : bool
        Whether every measured quantity is within ``tolerance`` of its prediction (or the
        inequality of the claim holds within ``tolerance``).
    predicted, measured : dict of str to float or list
        Quantities of the closed form and of the simulation, same keys.
    max_abs_error : float
        Largest absolute difference (for inequalities: the largest violation, 0 if none).
    tolerance : float
        The allowed error (named constants scaled by the magnitude of the quantities).
    config : SimConfig
    conclusion_holds : bool or None
        Whether the paper's *conclusion* holds on this configuration (None: not applicable).
    notes : str
        Anything a reader needs to interpret the record (e.g. a regime).
    extra : dict
        Further JSON fields (claim-specific quantities).
    diverged : bool
        The simulation or the closed form overflowed (non-finite values): nothing was
        checked, and ``holds`` / ``conclusion_holds`` carry no information.
    conclusions : dict of str to bool
        Further named conclusions checked besides ``conclusion_holds`` (e.g. the paper's
        conclusion over the other clients only).
    kind : str
        What ``holds`` checks: ``closed form`` (an identity against the simulator),
        ``bound`` (an inequality on the simulation), or ``user's claim`` (a user's claim
        without a closed form: its own verdict).
    """

    claim: str
    holds: bool
    predicted: dict[str, Any]
    measured: dict[str, Any]
    max_abs_error: float
    tolerance: float
    config: SimConfig
    conclusion_holds: bool | None = None
    notes: str = ""
    extra: dict[str, Any] = field(default_factory=dict)
    diverged: bool = False
    conclusions: dict[str, bool] = field(default_factory=dict)
    kind: str = "closed form"

    def verdicts(self) -> dict[str, bool]:
        """Every checked statement and whether it holds (empty when diverged).

        Keys: ``kind`` (closed form or bound), ``paper's conclusion`` when checked, and the
        keys of ``conclusions``.
        """
        if self.diverged:
            return {}
        out = {self.kind: bool(self.holds)}
        if self.conclusion_holds is not None:
            out["paper's conclusion"] = bool(self.conclusion_holds)
        out.update({k: bool(v) for k, v in self.conclusions.items()})
        return out

    def failed(self) -> list[str]:
        """Names of the checked statements that fail (see :meth:`verdicts`)."""
        return [name for name, ok in self.verdicts().items() if not ok]

    def to_dict(self) -> dict[str, Any]:
        """JSON-serializable form.

        Keys: claim, holds, predicted, measured, max_abs_error, tolerance, config,
        conclusion_holds, notes, diverged, kind, conclusions, failed, and ``extra``'s keys.
        """
        return jsonable(
            {
                "claim": self.claim,
                "holds": self.holds,
                "predicted": self.predicted,
                "measured": self.measured,
                "max_abs_error": self.max_abs_error,
                "tolerance": self.tolerance,
                "config": self.config.to_dict(),
                "conclusion_holds": self.conclusion_holds,
                "notes": self.notes,
                "diverged": self.diverged,
                "kind": self.kind,
                "conclusions": self.conclusions,
                "failed": self.failed(),
                **self.extra,
            }
        )


def compare(
    claim: str,
    config: SimConfig,
    predicted: dict[str, Any],
    measured: dict[str, Any],
    *,
    rtol: float = EXACT_RTOL,
    atol: float = EXACT_ATOL,
    conclusion_holds: bool | None = None,
    notes: str = "",
) -> CheckRecord:
    """Compare equal-keyed predictions and measurements elementwise (NaN-aware).

    The tolerance is ``atol + rtol * max |predicted|``; NaN must match NaN.
    """
    errors = []
    scale = 0.0
    for key, pred in predicted.items():
        p = np.asarray(pred, dtype=float)
        q = np.asarray(measured[key], dtype=float)
        if p.shape != q.shape:
            raise ConfigError(f"{claim}: shape of {key} differs: {p.shape} vs {q.shape}")
        both_nan = np.isnan(p) & np.isnan(q)
        diff = np.where(both_nan, 0.0, np.abs(p - q))
        errors.append(float(np.max(np.where(np.isnan(diff), np.inf, diff), initial=0.0)))
        finite = p[np.isfinite(p)]
        scale = max(scale, float(np.max(np.abs(finite), initial=0.0)))
    err = max(errors, default=0.0)
    tol = atol + rtol * scale
    return CheckRecord(
        claim, err <= tol, predicted, measured, err, tol, config, conclusion_holds, notes
    )


def diverged_record(claim: str, config: SimConfig, reason: str) -> CheckRecord:
    """The record of a configuration on which nothing could be checked (overflow).

    Parameters
    ----------
    claim : str
    config : SimConfig
    reason : str
        What overflowed, e.g. ``gradient descent diverged``.
    """
    return CheckRecord(claim, False, {}, {}, float("inf"), 0.0, config, None, reason, diverged=True)


def all_finite(*values: Any) -> bool:
    """Whether every number in ``values`` (arrays, lists or scalars) is finite (NaN-free)."""
    for value in values:
        arr = np.asarray(value, dtype=float)
        if not np.all(np.isfinite(arr)):
            return False
    return True
