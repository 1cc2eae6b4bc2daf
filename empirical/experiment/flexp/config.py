"""Settings of the ``flexp`` variant (validated, frozen; no torch import)."""

from __future__ import annotations

import math
from dataclasses import dataclass

from empirical.experiment.flexp.partition import BUDGET_KINDS, Cut

__all__ = ["ALIGN_DEPTHS", "ALIGN_KINDS", "SERVER_MODES", "FlexPConfig"]

SERVER_MODES: tuple[str, ...] = ("frozen", "shared")
ALIGN_DEPTHS: tuple[str, ...] = ("first", "client")
ALIGN_KINDS: tuple[str, ...] = ("kl", "l2")


@dataclass(frozen=True)
class FlexPConfig:
    """How the ``flexp`` variant splits, trains and aligns (epochs and SGD: ``PFTConfig``).

    Parameters
    ----------
    cuts : tuple of str
        ``"front:back"`` cut points, one for every client or one per client; empty when
        ``budgets`` is given.
    budgets : tuple of float
        Per-client budgets (one for all, or one per client) of ``budget_kind``; the cut is the
        deepest client share that fits (:mod:`empirical.experiment.flexp.partition`).
    budget_kind : {"params", "flops", "memory"}
        Client-side trainable parameters, FLOPs per sample (forward + backward) or peak
        activation bytes per sample.
    server_mode : {"frozen", "shared"}
        ``frozen``: the middle stays at the global weights (post-hoc PFT). ``shared``: one
        server copy of the blocks, updated by every client in turn (round-robin per epoch in
        client order), never averaged.
    beta : float
        Alignment strength (>= 0; 0 disables alignment).
    align : {"kl", "l2"}
        :func:`empirical.experiment.split.alignment_loss`.
    align_depth : {"first", "client"}
        ``first``: at the first cut only (the ``split`` variant's term). ``client``: at the
        output of every client-owned part, i.e. the first cut and, when ``back >= 1``, the
        client back's output (computed from the detached server activation, so no alignment
        gradient reaches the server middle).
    """

    cuts: tuple[str, ...] = ("1:1",)
    budgets: tuple[float, ...] = ()
    budget_kind: str = "params"
    server_mode: str = "frozen"
    beta: float = 0.25
    align: str = "kl"
    align_depth: str = "client"

    def __post_init__(self) -> None:
        if bool(self.cuts) == bool(self.budgets):
            raise ValueError(
                f"cuts={list(self.cuts)} and budgets={list(self.budgets)}: expected exactly "
                "one of the two to be given"
            )
        for text in self.cuts:
            Cut.parse(text)
        if not all(isinstance(b, (int, float)) and math.isfinite(b) and b > 0
                   for b in self.budgets):  # fmt: skip
            raise ValueError(f"budgets={list(self.budgets)} is invalid: expected finite values > 0")
        checks = (("budget_kind", self.budget_kind, BUDGET_KINDS),
                  ("server_mode", self.server_mode, SERVER_MODES),
                  ("align", self.align, ALIGN_KINDS),
                  ("align_depth", self.align_depth, ALIGN_DEPTHS))  # fmt: skip
        for name, value, allowed in checks:
            if value not in allowed:
                raise ValueError(f"{name}={value!r} is invalid: expected one of {list(allowed)}")
        if not (math.isfinite(self.beta) and self.beta >= 0):
            raise ValueError(f"beta={self.beta!r} is invalid: expected a finite value >= 0")
