"""Settings shared by the PFT variants (:mod:`empirical.experiment.pft`), and their SGD."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import torch
from torch import nn

from empirical.experiment.training import LocalConfig

__all__ = ["ALL_VARIANTS", "FLEXP", "VARIANTS", "EpochCallback", "PFTConfig", "sgd"]

VARIANTS: tuple[str, ...] = ("ft", "lp", "lpft", "proximal", "sparse", "soup", "lss", "split")
# FlexP trains all clients of a seed together (empirical.experiment.flexp), so it is not a
# per-client ``personalize`` variant; experiments accept it beside VARIANTS.
FLEXP = "flexp"
ALL_VARIANTS: tuple[str, ...] = (*VARIANTS, FLEXP)

# Called after every fine-tuning epoch e = 1..epochs with the current personalized model.
EpochCallback = Callable[[int, nn.Module], None]


@dataclass(frozen=True)
class PFTConfig:
    """Settings shared by the PFT variants.

    Parameters
    ----------
    epochs : int
        Fine-tuning epochs (>= 1; [CLOSER] uses 15).
    local : LocalConfig
        SGD settings and flood level.
    lp_epochs : int
        Head-only epochs of ``lpft`` (in [1, epochs)).
    mu : float
        Proximal coefficient (>= 0).
    sparsity : float
        Fraction of parameters ``sparse`` keeps frozen, in [0, 1).
    n_ingredients : int
        Runs averaged by ``soup`` and ``lss`` (>= 2).
    lss_affinity, lss_diversity : float
        LSS weights ``lambda_a > 2 lambda_d >= 0`` (the bound keeps the objective bounded below).
    lss_weight_steps : int
        Adam steps optimizing the LSS interpolation weights on local data (>= 0).
    split_front, split_back : int
        Client blocks before / after the shared middle of ``split`` (cut depths).
    split_beta : float
        Alignment weight beta (>= 0; FlexP-like default 0.25).
    split_align : str
        ``"kl"`` (softmax over hidden units) or ``"l2"``.
    """

    epochs: int = 15
    local: LocalConfig = field(default_factory=lambda: LocalConfig(lr=0.01))
    lp_epochs: int = 5
    mu: float = 0.1
    sparsity: float = 0.9
    n_ingredients: int = 3
    lss_affinity: float = 1.0
    lss_diversity: float = 0.1
    lss_weight_steps: int = 30
    split_front: int = 1
    split_back: int = 1
    split_beta: float = 0.25
    split_align: str = "kl"

    def __post_init__(self) -> None:
        if self.epochs < 1:
            raise ValueError(f"epochs must be >= 1, got {self.epochs}")
        if not 1 <= self.lp_epochs < max(self.epochs, 2):
            raise ValueError(
                f"lp_epochs must be in [1, epochs={self.epochs}), got {self.lp_epochs}"
            )
        if not self.mu >= 0:
            raise ValueError(f"mu must be >= 0, got {self.mu}")
        if not 0.0 <= self.sparsity < 1.0:
            raise ValueError(f"sparsity must be in [0, 1), got {self.sparsity}")
        if self.n_ingredients < 2:
            raise ValueError(f"n_ingredients must be >= 2, got {self.n_ingredients}")
        if not (self.lss_diversity >= 0 and self.lss_affinity > 2 * self.lss_diversity):
            raise ValueError(
                f"need lss_affinity > 2 * lss_diversity >= 0, got lss_affinity="
                f"{self.lss_affinity}, lss_diversity={self.lss_diversity}"
            )
        if self.lss_weight_steps < 0:
            raise ValueError(f"lss_weight_steps must be >= 0, got {self.lss_weight_steps}")
        if self.split_front < 1 or self.split_back < 0:
            raise ValueError(
                f"split_front must be >= 1 and split_back >= 0, got {self.split_front}, "
                f"{self.split_back}"
            )
        if not self.split_beta >= 0:
            raise ValueError(f"split_beta must be >= 0, got {self.split_beta}")
        if self.split_align not in ("kl", "l2"):
            raise ValueError(f"split_align must be 'kl' or 'l2', got {self.split_align!r}")


def sgd(params: list[nn.Parameter], config: LocalConfig) -> torch.optim.SGD:
    """SGD over exactly ``params`` (the parameters a variant may move)."""
    return torch.optim.SGD(params, lr=config.lr, momentum=config.momentum)
