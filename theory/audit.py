"""Search each claim's hypotheses for violations of its conclusion and of its closed form.

For every claim the audit draws ``budget`` random configurations *inside the claim's
hypotheses* (dimensions, seeds, lambda, eta, eps, ||V*_com||, loss normalization, geometries,
sample sizes, step counts) from one explicit ``numpy.random.Generator``, runs ``check`` and
counts three kinds of findings:

- ``closed-form``: the derived closed form disagrees with the simulator (a derivation bug);
- ``conclusion``: the paper's conclusion, as the paper states it, fails on the simulation;
- ``federated-reading`` (``kumar-prop-3.2`` only): LP-FT's global loss over D_G exceeds FT's
  when both start from the idealized global model, with many small steps or n < d samples.

The simplest counterexample is the violating configuration with the smallest
(d, C, m, steps, n) — the one a reader can reproduce by hand.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from feddistort_io import atomic_write_text
from synthetic.config import SimConfig
from theory.claims import CLAIMS, claim_ids, get_claim
from theory.closed_forms import thm44_losses
from theory.records import CheckRecord, jsonable

Sampler = Callable[[np.random.Generator], SimConfig]


def _dims(rng: np.random.Generator, extra: int = 6) -> dict[str, Any]:
    m = int(rng.integers(1, 5))
    C = int(rng.integers(2, 7))
    return {"m": m, "C": C, "d": m + C + int(rng.integers(0, extra + 1))}


def _common(rng: np.random.Generator) -> dict[str, Any]:
    return {
        "seed": int(rng.integers(0, 10_000)),
        "lam": float(np.round(rng.uniform(0.1, 3.0), 3)),
        "vcom_norm": float(np.round(rng.uniform(0.0, 2.0), 3)),
        "loss": str(rng.choice(["mse", "half_mse"])),
    }


def _eta_one_step(rng: np.random.Generator) -> float:
    return float(np.round(np.exp(rng.uniform(np.log(0.01), np.log(1.5))), 4))


def _sample_iso(rng: np.random.Generator) -> SimConfig:
    return SimConfig(covariate="isotropic", eta=_eta_one_step(rng), **_dims(rng), **_common(rng))


def _sample_cov(rng: np.random.Generator) -> SimConfig:
    return SimConfig(
        covariate=str(rng.choice(["own", "shared", "random", "basis", "mix"])),
        mix=float(np.round(rng.uniform(0, 1), 3)),
        eps=float(np.round(rng.uniform(0.05, 1.0), 3)),
        eta=_eta_one_step(rng),
        **_dims(rng),
        **_common(rng),
    )


def _sample_gd(rng: np.random.Generator) -> SimConfig:
    """Multi-step configurations with a step size below the stability limit of the start."""
    dims = _dims(rng, extra=12)
    common = _common(rng)
    steps = int(rng.choice([1, 5, 20, 100]))
    covariate = str(rng.choice(["isotropic", "own", "mix", "random"]))
    s = 1.0 + common["vcom_norm"] ** 2 + common["lam"] ** 2
    c_l = 0.5 if common["loss"] == "half_mse" else 1.0
    eta = float(np.round(rng.uniform(0.02, 0.4) / (2 * c_l * s), 4))
    k = dims["m"] + dims["C"]
    n = None if rng.random() < 0.3 else int(rng.integers(k, 3 * dims["d"]))
    return SimConfig(covariate=covariate, eps=0.3, eta=eta, steps=steps, n=n, **dims, **common)


def _sample_span(rng: np.random.Generator) -> SimConfig:
    config = _sample_gd(rng)
    n = int(rng.integers(1, config.d))
    return config.replace(n=n)


def _sample_thm31(rng: np.random.Generator) -> SimConfig:
    config = _sample_gd(rng)
    d = config.d + config.k  # room for S^perp of dimension >= k
    n = int(rng.integers(1, d - config.k + 1))
    return config.replace(d=d, n=n)


def _sample_prop32(rng: np.random.Generator) -> SimConfig:
    config = _sample_gd(rng)
    config = config.replace(d=config.d + 1)
    return config.replace(n=int(rng.integers(config.k, config.d)))  # k <= n < d


SAMPLERS: dict[str, Sampler] = {
    "lemma-4.3": _sample_iso,
    "thm-4.4": _sample_iso,
    "thm-4.5": _sample_cov,
    "kumar-span": _sample_span,
    "kumar-balance": lambda rng: _sample_gd(rng),
    "kumar-prop-3.2": _sample_prop32,
    "kumar-thm-3.1": _sample_thm31,
}


def simplicity(config: SimConfig) -> tuple[float, ...]:
    """Sort key of counterexamples: small dimensions, few steps, few samples first."""
    return (config.d, config.C, config.m, config.steps, config.n or 0, config.seed)


@dataclass(frozen=True)
class AuditRow:
    """Findings of one kind for one claim.

    Parameters
    ----------
    claim, kind : str
        Claim id and finding kind (``closed-form``, ``conclusion``, ``federated-reading``).
    tried : int
        Configurations checked (diverged runs excluded, counted in ``diverged``).
    violations : int
    simplest : dict or None
        The simplest violating configuration (changed fields only) and its record summary.
    diverged : int
    details : dict
        Kind-specific counts (e.g. Theorem 4.5 regimes).
    """

    claim: str
    kind: str
    tried: int
    violations: int
    simplest: dict[str, Any] | None
    diverged: int = 0
    details: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """JSON-serializable form."""
        return jsonable(self.__dict__)


def changed_fields(config: SimConfig) -> dict[str, Any]:
    """The fields of ``config`` that differ from the SimConfig defaults."""
    base = SimConfig().to_dict()
    return {k: v for k, v in config.to_dict().items() if base[k] != v}


def _summary(config: SimConfig, record: CheckRecord) -> dict[str, Any]:
    out = {"set": changed_fields(config), "max_abs_error": record.max_abs_error}
    if record.claim == "thm-4.4":
        pred = thm44_losses(config)
        out.update(
            tau=pred["tau"],
            global_loss_ft=pred["global_loss_ft"],
            global_loss_lpft=pred["global_loss_lpft"],
        )
    if record.notes:
        out["notes"] = record.notes
    return out


def _federated_reading(config: SimConfig) -> bool | None:
    """LP-FT's global loss <= FT's, both from the idealized global model (None: diverged)."""
    from synthetic.simulation import simulate

    frame = simulate([config], ["ft", "lpft"])
    rows = frame[frame["metric"] == "global_loss"]
    ft = rows[rows["method"] == "ft"]["value"].to_numpy(float)
    lpft = rows[rows["method"] == "lpft"]["value"].to_numpy(float)
    if not (np.all(np.isfinite(ft)) and np.all(np.isfinite(lpft))):
        return None
    return bool(np.all(lpft <= ft + 1e-9 * max(1.0, float(np.max(np.abs(ft))))))


def audit_claim(claim_id: str, budget: int, rng: np.random.Generator) -> list[AuditRow]:
    """Audit one claim with ``budget`` configurations drawn inside its hypotheses.

    Parameters
    ----------
    claim_id : str
    budget : int
        Number of configurations (>= 1).
    rng : numpy.random.Generator

    Returns
    -------
    list of AuditRow
    """
    claim = get_claim(claim_id)
    if budget < 1:
        raise ValueError(f"budget={budget!r} is invalid: expected at least 1 configuration")
    sampler = SAMPLERS[claim_id]
    found: dict[str, list[tuple[SimConfig, CheckRecord]]] = {
        "closed-form": [],
        "conclusion": [],
        "federated-reading": [],
    }
    tried = {kind: 0 for kind in found}
    diverged = 0
    regimes: dict[str, int] = {}
    explained = 0
    tightest = 0.0  # kumar-thm-3.1: the largest bound / measured ratio seen
    for _ in range(budget):
        config = sampler(rng)
        while claim.hypotheses(config):  # samplers stay inside; redraw the rare edge case
            config = sampler(rng)
        record = claim.check(config, rng)
        if record.notes == "gradient descent diverged":
            diverged += 1
            continue
        tried["closed-form"] += 1
        if not record.holds:
            found["closed-form"].append((config, record))
        if record.conclusion_holds is not None:
            tried["conclusion"] += 1
            if not record.conclusion_holds:
                found["conclusion"].append((config, record))
                if claim_id == "thm-4.4" and not thm44_losses(config)["lpft_wins"]:
                    explained += 1
        if claim_id == "kumar-thm-3.1":
            ratio = np.asarray(record.predicted["lower_bound"]) / np.maximum(
                np.asarray(record.measured["min_sqrt_ood_over_steps"]), 1e-300
            )
            tightest = max(tightest, float(np.max(ratio)))
        if claim_id == "thm-4.5":
            for regime in claim.predict(config)["lambda_star_regime"]:
                regimes[regime] = regimes.get(regime, 0) + 1
        if claim_id == "kumar-prop-3.2":
            # The samples themselves and their population twin (many small steps, n = none).
            for variant in (config, config.replace(n=None)):
                reading = _federated_reading(variant)
                if reading is not None:
                    tried["federated-reading"] += 1
                    if not reading:
                        found["federated-reading"].append((variant, record))
    rows = []
    for kind, hits in found.items():
        if kind == "conclusion" and tried[kind] == 0:
            continue
        if kind == "federated-reading" and claim_id != "kumar-prop-3.2":
            continue
        simplest = min(hits, key=lambda h: simplicity(h[0])) if hits else None
        details: dict[str, Any] = {}
        if claim_id == "thm-4.5" and kind == "conclusion":
            details["regimes_per_client"] = regimes
        if claim_id == "kumar-thm-3.1" and kind == "conclusion":
            details["max_bound_over_measured"] = round(tightest, 4)
        if claim_id == "thm-4.4" and kind == "conclusion":
            details["explained_by_2_cL_eta_s_lt_1"] = f"{explained}/{len(hits)}"
        rows.append(
            AuditRow(
                claim_id,
                kind,
                tried[kind],
                len(hits),
                None if simplest is None else _summary(*simplest),
                diverged,
                details,
            )
        )
    return rows


def audit(claims: Sequence[str] | None, budget: int, rng: np.random.Generator) -> list[AuditRow]:
    """Audit several claims (all registered claims when ``claims`` is None)."""
    ids = list(claims) if claims else list(claim_ids())
    for cid in ids:
        get_claim(cid)
    return [row for cid in ids for row in audit_claim(cid, budget, rng)]


def format_table(rows: Sequence[AuditRow]) -> str:
    """Plain-text table: claim, kind, tried, violations, simplest counterexample."""
    header = ("claim", "kind", "tried", "violations", "simplest counterexample")
    lines = [header]
    for row in rows:
        simplest = (
            "-"
            if row.simplest is None
            else " ".join(f"{k}={v}" for k, v in row.simplest["set"].items())
        )
        lines.append((row.claim, row.kind, str(row.tried), str(row.violations), simplest))
    widths = [max(len(line[i]) for line in lines) for i in range(4)]
    return "\n".join(
        "  ".join(cell.ljust(w) for cell, w in zip(line[:4], widths, strict=False)) + "  " + line[4]
        for line in lines
    )


def write_atomic(path: str | os.PathLike[str], text: str) -> None:
    """Write ``text`` to ``path`` atomically (see :func:`feddistort_io.atomic_write_text`)."""
    atomic_write_text(path, text)


def report_json(rows: Sequence[AuditRow], budget: int, seed: int) -> str:
    """The audit as JSON text (rows plus the settings that reproduce it)."""
    return json.dumps(
        {"budget": budget, "seed": seed, "claims": sorted({r.claim for r in rows}),
         "rows": [r.to_dict() for r in rows]},
        indent=2,
    )  # fmt: skip


__all__ = [
    "CLAIMS",
    "SAMPLERS",
    "AuditRow",
    "audit",
    "audit_claim",
    "changed_fields",
    "format_table",
    "report_json",
    "simplicity",
    "write_atomic",
]
