"""Metric names and the per-(client, layer) accumulator of :func:`empirical.compare_checkpoints`.

All feature metrics are accumulated batch by batch: paired sums for ``delta_l2`` and its
relatives, float64 moment sums for exact linear CKA, Procrustes and principal angles (O(d^2)
memory per layer), and per-minibatch HSIC sums for ``minibatch_cka`` ([NGUYEN]).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from empirical._moments import centred_moments
from empirical.cka import CKAState, _cka_compute, _cka_update
from empirical.metrics import _paired_compute, _paired_update
from empirical.minibatch import _minibatch_compute, _minibatch_update
from empirical.similarity import _procrustes_from_moments, mean_principal_angle

PAIRED_METRICS = ("delta_l2", "relative_l2", "cosine_distance")
MOMENT_METRICS = ("cka", "cka_debiased", "procrustes", "principal_angle")
FEATURE_METRICS = (*PAIRED_METRICS, *MOMENT_METRICS, "minibatch_cka")
WEIGHT_METRICS = ("weight_l2", "weight_relative_l2", "weight_cosine_distance")
ALL_METRICS = (*FEATURE_METRICS, *WEIGHT_METRICS)
GROUP = 8
"""Complete minibatches of ``minibatch_cka`` processed together (memory: GROUP * m rows)."""
COLUMNS = ["client", "layer", "kind", "metric", "value", "n", "status"]
"""``kind``: feature, parameter or buffer; ``status``: ok, or why a value is missing/partial."""


def check_metrics(metrics: Sequence[str] | None) -> tuple[str, ...]:
    """The chosen metrics without duplicates (all of :data:`ALL_METRICS` when empty)."""
    if not metrics:
        return ALL_METRICS
    bad = [m for m in metrics if m not in ALL_METRICS]
    if bad:
        raise ValueError(f"metrics {bad} are invalid: expected some of {', '.join(ALL_METRICS)}")
    return tuple(dict.fromkeys(metrics))


class LayerAcc:
    """Accumulators of one (client, layer): paired sums, CKA moments, minibatch HSICs.

    Parameters
    ----------
    metrics : tuple of str
        The chosen metrics; only their accumulators do work.
    minibatch_size : int
        Rows per minibatch of ``minibatch_cka``, whatever the forward batch size.
    """

    def __init__(self, metrics: tuple[str, ...], minibatch_size: int) -> None:
        self.metrics = metrics
        self.paired = torch.zeros(5, dtype=torch.float64)
        self.moments = CKAState(row_stats="cka_debiased" in metrics)
        self.minibatch = torch.zeros(4, dtype=torch.float64)
        self.m = minibatch_size
        self.pending: list[tuple[torch.Tensor, torch.Tensor]] = []
        self.n_pending = 0

    def update(self, g: torch.Tensor, c: torch.Tensor) -> None:
        """Add a batch of (b, d) global features ``g`` and client features ``c``."""
        if any(m in self.metrics for m in PAIRED_METRICS):
            _paired_update(self.paired, g, c)
        if any(m in self.metrics for m in MOMENT_METRICS):
            _cka_update(self.moments, g, c)
        if "minibatch_cka" in self.metrics:
            # Minibatches of exactly m rows, whatever the forward batch size.
            self.pending.append((g, c))
            self.n_pending += g.shape[0]
            if self.n_pending >= GROUP * self.m:  # a few minibatches at a time
                self._flush(final=False)

    def _flush(self, final: bool) -> None:
        g = torch.cat([a for a, _ in self.pending])
        c = torch.cat([b for _, b in self.pending])
        k = g.shape[0] // self.m
        full = k * self.m
        if k:  # all complete minibatches at once, as (k, m, d) stacks of Gram products
            _minibatch_update(
                self.minibatch,
                g[:full].reshape(k, self.m, g.shape[1]),
                c[:full].reshape(k, self.m, c.shape[1]),
            )
        g, c = g[full:], c[full:]
        if final and g.shape[0] >= 4:  # a final partial batch, as minibatch_cka does
            _minibatch_update(self.minibatch, g, c)
        self.pending = [(g, c)] if g.shape[0] and not final else []
        self.n_pending = sum(a.shape[0] for a, _ in self.pending)

    def compute(self, r: int) -> dict[str, float]:
        """The chosen metrics; ``r`` is the subspace dimension of ``principal_angle``."""
        metrics = self.metrics
        out: dict[str, float] = {}
        if "minibatch_cka" in metrics and self.pending:
            self._flush(final=True)
        if any(m in metrics for m in PAIRED_METRICS):
            out.update(_paired_compute(self.paired))
        if "cka" in metrics:
            out["cka"] = _cka_compute(self.moments)
        if "cka_debiased" in metrics:
            out["cka_debiased"] = _cka_compute(self.moments, debiased=True)
        if "procrustes" in metrics or "principal_angle" in metrics:
            mom = centred_moments(self.moments)
            out["procrustes"] = _procrustes_from_moments(mom)
            out["principal_angle"] = mean_principal_angle(mom, r)
        if "minibatch_cka" in metrics:
            out["minibatch_cka"] = _minibatch_compute(self.minibatch)
        return {m: v for m, v in out.items() if m in metrics}


__all__ = [
    "ALL_METRICS",
    "COLUMNS",
    "FEATURE_METRICS",
    "MOMENT_METRICS",
    "PAIRED_METRICS",
    "WEIGHT_METRICS",
    "LayerAcc",
    "check_metrics",
]
