"""Local training with loss flooding, evaluation, and FedAvg on CPU.

Everything is seeded through an explicit :class:`torch.Generator` (mini-batch order, client
sampling); with CPU kernels this makes runs bit-reproducible.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import torch
from numpy.typing import NDArray
from torch import nn

__all__ = [
    "FedAvgConfig",
    "LocalConfig",
    "accuracy",
    "fedavg",
    "flood",
    "predict_features",
    "train_epoch",
]

# Extra objective added to the (flooded) cross-entropy: (model, x_batch, y_batch) -> scalar.
Regularizer = Callable[[nn.Module, torch.Tensor, torch.Tensor], torch.Tensor]


@dataclass(frozen=True)
class LocalConfig:
    """SGD settings for local training.

    Parameters
    ----------
    lr : float
        Learning rate (> 0).
    batch_size : int
        Mini-batch size (>= 1).
    momentum : float
        SGD momentum in [0, 1).
    flood_level : float or None
        Flooding level ``b >= 0`` ([Ishida et al. 2020]); ``None`` disables flooding.
    """

    lr: float = 0.05
    batch_size: int = 32
    momentum: float = 0.9
    flood_level: float | None = None

    def __post_init__(self) -> None:
        if not self.lr > 0:
            raise ValueError(f"lr must be > 0, got {self.lr}")
        if self.batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {self.batch_size}")
        if not 0.0 <= self.momentum < 1.0:
            raise ValueError(f"momentum must be in [0, 1), got {self.momentum}")
        if self.flood_level is not None and not self.flood_level >= 0:
            raise ValueError(f"flood_level must be >= 0 or None, got {self.flood_level}")


@dataclass(frozen=True)
class FedAvgConfig:
    """FedAvg settings.

    Parameters
    ----------
    rounds : int
        Communication rounds (>= 1).
    local_epochs : int
        Local epochs per round (>= 1).
    participation : float
        Fraction of clients sampled per round, in (0, 1] (at least one client).
    local : LocalConfig
        Local SGD settings (flooding is not used by FedAvg).
    """

    rounds: int = 30
    local_epochs: int = 1
    participation: float = 1.0
    local: LocalConfig = LocalConfig()

    def __post_init__(self) -> None:
        if self.rounds < 1:
            raise ValueError(f"rounds must be >= 1, got {self.rounds}")
        if self.local_epochs < 1:
            raise ValueError(f"local_epochs must be >= 1, got {self.local_epochs}")
        if not 0.0 < self.participation <= 1.0:
            raise ValueError(f"participation must be in (0, 1], got {self.participation}")


def flood(loss: torch.Tensor, level: float | None) -> torch.Tensor:
    r"""Loss flooding: gradient ascent once the loss falls below the level.

    .. math:: \tilde L = |L - b| + b

    Source: Ishida et al., *Do We Need Zero Training Loss After Achieving Zero Training Error?*,
    ICML 2020 (used by [CLOSER] Sec. 4 to compare FT and LP-FT at equal local loss).

    Parameters
    ----------
    loss : Tensor, scalar
        Training loss ``L``.
    level : float or None
        Flood level ``b``; ``None`` returns ``loss`` unchanged.

    Returns
    -------
    Tensor, scalar
        Flooded loss (same value as ``L`` when ``L >= b``; gradient sign flipped below).
    """
    if level is None:
        return loss
    return (loss - level).abs() + level


def train_epoch(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    optimizer: torch.optim.Optimizer,
    config: LocalConfig,
    generator: torch.Generator,
    regularizer: Regularizer | None = None,
    after_step: Callable[[], None] | None = None,
) -> float:
    """One epoch of mini-batch training on flooded cross-entropy plus an optional regularizer.

    Parameters
    ----------
    model : nn.Module
        Model trained in place.
    x : Tensor of shape (n, ...)
        Inputs.
    y : Tensor of shape (n,), int64
        Labels.
    optimizer : torch.optim.Optimizer
        Holds exactly the parameters allowed to move.
    config : LocalConfig
        Batch size and flood level.
    generator : torch.Generator
        Mini-batch order.
    regularizer : callable, optional
        ``(model, xb, yb) -> scalar`` added to the flooded loss.
    after_step : callable, optional
        Called after every optimizer step (e.g. to re-impose a mask).

    Returns
    -------
    float
        Mean unflooded cross-entropy over the epoch's batches.
    """
    model.train()
    order = torch.randperm(len(y), generator=generator)
    losses = []
    for start in range(0, len(y), config.batch_size):
        batch = order[start : start + config.batch_size]
        xb, yb = x[batch], y[batch]
        ce = nn.functional.cross_entropy(model(xb), yb)
        loss = flood(ce, config.flood_level)
        if regularizer is not None:
            loss = loss + regularizer(model, xb, yb)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        if after_step is not None:
            after_step()
        losses.append(float(ce.detach()))
    return float(np.mean(losses))


@torch.no_grad()
def accuracy(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    """Top-1 accuracy.

    Parameters
    ----------
    model : nn.Module
        Classifier.
    x : Tensor of shape (n, ...)
        Inputs.
    y : Tensor of shape (n,)
        Labels.

    Returns
    -------
    float
        Fraction of correct predictions in [0, 1].
    """
    model.eval()
    return float((model(x).argmax(dim=1) == y).double().mean())


@torch.no_grad()
def predict_features(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """Penultimate features ``model.features(x)`` (the input of ``head``).

    Parameters
    ----------
    model : nn.Module
        Model from :mod:`empirical.experiment.models`.
    x : Tensor of shape (n, ...)
        Inputs.

    Returns
    -------
    Tensor of shape (n, feature_dim)
        Features.
    """
    model.eval()
    features: nn.Module = model.features  # type: ignore[assignment]
    return features(x)


def fedavg(
    model: nn.Module,
    clients: Sequence[tuple[torch.Tensor, torch.Tensor]],
    config: FedAvgConfig,
    generator: torch.Generator,
    on_round: Callable[[int, nn.Module], None] | None = None,
) -> nn.Module:
    r"""Federated averaging (McMahan et al. 2017) from ``model``'s initial weights.

    Each round samples ``max(1, round(participation * C))`` clients, runs ``local_epochs`` of SGD
    on each from the current global weights, and sets the global weights to the
    sample-size-weighted average:

    .. math:: \theta_G \leftarrow \sum_{i \in S} \frac{n_i}{\sum_{j \in S} n_j} \theta_i

    Parameters
    ----------
    model : nn.Module
        Initial global model (left unchanged; a trained copy is returned).
    clients : sequence of (Tensor, Tensor)
        Each client's training ``(x, y)``.
    config : FedAvgConfig
        Rounds, local epochs, participation, local SGD.
    generator : torch.Generator
        Client sampling and mini-batch order.
    on_round : callable, optional
        ``(round, global_model)`` after every round.

    Returns
    -------
    nn.Module
        Trained global model.
    """
    global_model = copy.deepcopy(model)
    n_pick = max(1, int(round(config.participation * len(clients))))
    sizes = np.array([len(y) for _, y in clients], dtype=np.float64)
    for rnd in range(config.rounds):
        picked = torch.randperm(len(clients), generator=generator)[:n_pick].sort().values.tolist()
        weights: NDArray[np.float64] = sizes[picked] / sizes[picked].sum()
        start = copy.deepcopy(global_model.state_dict())
        avg = {k: torch.zeros_like(v, dtype=torch.float64) for k, v in start.items()}
        for w, c in zip(weights, picked, strict=True):
            local = copy.deepcopy(global_model)
            local.load_state_dict(start)
            opt = torch.optim.SGD(
                local.parameters(), lr=config.local.lr, momentum=config.local.momentum
            )
            x, y = clients[c]
            for _ in range(config.local_epochs):
                train_epoch(local, x, y, opt, config.local, generator)
            for k, v in local.state_dict().items():
                avg[k] += float(w) * v.double()
        global_model.load_state_dict({k: v.to(start[k].dtype) for k, v in avg.items()})
        if on_round is not None:
            on_round(rnd, global_model)
    return global_model
