"""Fine-tuning in a step-size sweep: the FT phase at each learning rate, the LP phase shared.

In a sweep (``ExperimentConfig.ft_lrs``) FT runs at the swept rate and LP-FT runs its LP phase
at the preset's rate, then its FT phase at the swept rate. The LP phase does not depend on the
swept rate: with the same generator seed it gives the same model, the same per-epoch values
and the same generator state at every rate. :class:`LPPhaseCache` computes it once per client
and hands each rate a copy of the probed model and of the generator state, so the results are
bit-identical to computing the LP phase again at every rate (a test checks the bytes).
"""

from __future__ import annotations

import copy
import dataclasses
from collections.abc import Callable
from dataclasses import dataclass, field

import torch
from torch import nn

from empirical.experiment.pft import personalize
from empirical.experiment.pft_config import PFTConfig

__all__ = ["LPPhaseCache", "personalize_at_lr"]

# The per-epoch values of a model: evaluate(model) -> {metric: value}.
Evaluate = Callable[[nn.Module], dict[str, float]]
# Where the per-epoch values go: record(epoch, values).
Record = Callable[[int, dict[str, float]], None]


@dataclass
class _LPPhase:
    model: nn.Module
    generator_state: torch.Tensor
    rows: list[tuple[int, dict[str, float]]]


@dataclass
class LPPhaseCache:
    """LP-FT's LP phase per client, computed once and shared by the swept FT learning rates.

    Valid for one seed's clients and one global model: create one per (shift, seed).
    """

    phases: dict[int, _LPPhase] = field(default_factory=dict)
    hits: int = 0

    def lp_phase(
        self,
        client: int,
        global_model: nn.Module,
        x: torch.Tensor,
        y: torch.Tensor,
        pft: PFTConfig,
        generator: torch.Generator,
        evaluate: Evaluate,
        record: Record,
    ) -> nn.Module:
        """The probed model of ``client`` after ``pft.lp_epochs`` of LP at ``pft.local.lr``.

        On the first call for a client the phase is computed (with ``generator``) and kept;
        later calls replay its per-epoch values to ``record``, set ``generator`` to the state
        the phase left, and return a copy of the kept model.
        """
        phase = self.phases.get(client)
        if phase is None:
            rows: list[tuple[int, dict[str, float]]] = []

            def keep(epoch: int, model: nn.Module) -> None:
                rows.append((epoch, evaluate(model)))

            lp = dataclasses.replace(pft, epochs=pft.lp_epochs, lp_epochs=1)
            probed = personalize("lp", global_model, x, y, lp, generator, keep)
            phase = _LPPhase(copy.deepcopy(probed), generator.get_state(), rows)
            self.phases[client] = phase
        else:
            self.hits += 1
            generator.set_state(phase.generator_state)
        for epoch, values in phase.rows:
            record(epoch, dict(values))
        return copy.deepcopy(phase.model)


def personalize_at_lr(
    variant: str,
    ft_lr: float,
    client: int,
    global_model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    pft: PFTConfig,
    generator: torch.Generator,
    evaluate: Evaluate,
    record: Record,
    cache: LPPhaseCache,
) -> nn.Module:
    """Fine-tune one client with ``ft`` or ``lpft`` whose FT phase runs at ``ft_lr``.

    LP-FT is LP for ``lp_epochs`` at ``pft.local.lr`` (from ``cache``), then FT for the
    remaining epochs at ``ft_lr``, on one generator stream: with ``ft_lr`` equal to the
    preset's rate it is bit-identical to :func:`personalize` ``("lpft", ...)``.

    Parameters
    ----------
    variant : str
        ``"ft"`` or ``"lpft"``.
    ft_lr : float
        Learning rate of the FT phase (> 0).
    client : int
        Client index (the key of ``cache``).
    global_model : nn.Module
        FedAvg model (left unchanged).
    x, y : Tensor of shape (n, ...) and (n,)
        The client's training data.
    pft : PFTConfig
        The preset's fine-tuning settings.
    generator : torch.Generator
        Seeded for this (seed, variant, client); mini-batch orders.
    evaluate, record : callable
        ``evaluate(model) -> {metric: value}`` and ``record(epoch, values)``, after every epoch.
    cache : LPPhaseCache
        The seed's shared LP phases.

    Returns
    -------
    nn.Module
        The personalized model.
    """
    fast = dataclasses.replace(pft.local, lr=ft_lr)

    def log(epoch: int, model: nn.Module) -> None:
        record(epoch, evaluate(model))

    if variant == "ft":
        return personalize("ft", global_model, x, y, dataclasses.replace(pft, local=fast),
                           generator, log)  # fmt: skip
    if variant != "lpft":
        raise ValueError(f"variant={variant!r} is invalid in a step-size sweep: expected ft, lpft")
    probed = cache.lp_phase(client, global_model, x, y, pft, generator, evaluate, record)
    rest = dataclasses.replace(pft, epochs=pft.epochs - pft.lp_epochs, lp_epochs=1, local=fast)

    def shifted(epoch: int, model: nn.Module) -> None:
        log(pft.lp_epochs + epoch, model)

    return personalize("ft", probed, x, y, rest, generator, shifted)
