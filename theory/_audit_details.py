"""What each audit violation is: FT moved less, and the verdict at matched local loss."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from typing import Any

import numpy as np

from synthetic.config import SimConfig
from theory.closed_forms import thm44_losses
from theory.matched import matched_local_loss
from theory.records import CheckRecord

#: Violations per (claim, kind, prior) on which the matched-local-loss comparison is run.
MATCHED_CAP = 40
Hits = Sequence[tuple[SimConfig, CheckRecord]]


def _losses(config: SimConfig) -> dict[str, np.ndarray] | None:
    """Simulated ft/lpft local and global (D_G) losses per client (None: diverged)."""
    from synthetic.simulation import simulate

    frame = simulate([config], ["ft", "lpft"], metrics=["local_loss", "global_loss"])
    if frame["diverged"].any():
        return None
    out = {}
    for (method, metric), rows in frame.groupby(["method", "metric"]):
        out[f"{metric}_{method}"] = rows.sort_values("client")["value"].to_numpy(float)
    return out


def federated_reading(config: SimConfig) -> bool | None:
    """LP-FT's global loss <= FT's, both from the idealized global model (None: diverged)."""
    losses = _losses(config)
    if losses is None:
        return None
    ft, lpft = losses["global_loss_ft"], losses["global_loss_lpft"]
    return bool(np.all(lpft <= ft + 1e-9 * max(1.0, float(np.max(np.abs(ft))))))


def _ft_local_higher(config: SimConfig) -> bool:
    """FT's local loss is above LP-FT's for every client whose global loss FT beats."""
    losses = _losses(config)
    assert losses is not None
    beats = losses["global_loss_ft"] < losses["global_loss_lpft"]
    higher = losses["local_loss_ft"] > losses["local_loss_lpft"]
    return bool(np.all(higher[beats]))


def _frac(k: int, n: int) -> str:
    return f"{k}/{n}"


def _matched(hits: Hits, knob: str) -> dict[str, Any]:
    """Verdict counts per client at matched local loss over the first MATCHED_CAP hits."""
    verdicts: Counter[str] = Counter()
    lower_at_min = unmatched = 0
    for config, _ in hits[:MATCHED_CAP]:
        for m in matched_local_loss(config, knob):
            verdicts[m.verdict] += 1
            if m.verdict == "unmatched":
                unmatched += 1
                lower_at_min += m.ft_global_at_min < m.lpft_global
    out: dict[str, Any] = {
        "knob": knob,
        "configurations": min(len(hits), MATCHED_CAP),
        "verdicts_per_client": dict(verdicts),
    }
    if unmatched:
        out["unmatched_ft_global_still_lower_at_lowest_local"] = _frac(lower_at_min, unmatched)
    return out


def _regimes(seen: Hits) -> dict[str, Any]:
    dg: Counter[str] = Counter()
    others: Counter[str] = Counter()
    dg_not_others = dg_exists = 0
    for config, _ in seen:
        from theory.claims import get_claim

        pred = get_claim("thm-4.5").predict(config)
        dg.update(pred["lambda_star_regime"])
        others.update(pred["lambda_star_others_regime"])
        for a, b in zip(pred["lambda_star_exists"], pred["lambda_star_others_exists"],
                        strict=True):  # fmt: skip
            dg_exists += a
            dg_not_others += a and not b
    return {
        "regimes_per_client": dict(dg),
        "regimes_per_client_others": dict(others),
        "lambda_star_under_D_G_but_none_under_others": _frac(dg_not_others, dg_exists),
    }


def characterize(claim_id: str, kind: str, hits: Hits, seen: Hits) -> dict[str, Any]:
    """Kind-specific details of the violations ``hits`` among all checked ``seen``."""
    details: dict[str, Any] = {}
    if claim_id == "thm-4.4" and kind.startswith("conclusion"):
        explained = sum(not thm44_losses(c)["lpft_wins"] for c, _ in hits)
        details["explained_by_2_cL_eta_s_lt_1"] = _frac(explained, len(hits))
        moved_less = sum(thm44_losses(c)["tau"] < 1 for c, _ in hits)
        details["ft_moved_less_tau_lt_1"] = _frac(moved_less, len(hits))
        higher = sum(
            bool(np.all(r.measured["local_loss_ft"] > r.measured["local_loss_lpft"]))
            for _, r in hits
        )
        details["ft_local_higher"] = _frac(higher, len(hits))
        if kind == "conclusion" and hits:
            details["matched_local_loss"] = _matched(hits, "eta")
    if claim_id == "thm-4.5" and kind == "conclusion":
        details.update(_regimes(seen))
    if claim_id == "kumar-prop-3.2" and kind == "federated-reading":
        higher = sum(_ft_local_higher(c) for c, _ in hits)
        details["ft_local_higher"] = _frac(higher, len(hits))
        if hits:
            details["matched_local_loss"] = _matched(hits, "steps")
    if claim_id in ("kumar-thm-3.1", "kumar-thm-3.1-tight") and kind == "bound":
        ratios = [float(r.extra["bound_over_measured"]) for _, r in seen]
        details["max_bound_over_measured"] = round(max(ratios, default=0.0), 4)
    if claim_id == "kumar-balance" and kind == "conclusion":
        dev = [abs(float(r.measured["flow_drift_ratio"]) - 0.5) for _, r in seen
               if np.isfinite(r.measured["flow_drift_ratio"])]  # fmt: skip
        details["max_abs_drift_ratio_minus_half"] = round(max(dev, default=0.0), 4)
    return details
