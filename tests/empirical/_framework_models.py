"""Tiny models with the state_dict key layouts of the FL frameworks' models (written here).

``PflibCNN`` has the layout of PFLlib's FedAvgCNN (``conv1.0``/``conv2.0`` conv blocks with
in-place ReLU, ``fc1.0`` + in-place ReLU, ``fc``); ``BNNet`` a BatchNorm body with a ``head``
(counters ``num_batches_tracked``, the layout Flower and FL-bench examples save);
``BaseHeadSplit`` the ``base.`` / ``head.`` split PFLlib's personalized algorithms use.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn


class PflibCNN(nn.Module):
    def __init__(self, channels: int = 4, dim: int = 16, classes: int = 3) -> None:
        super().__init__()
        self.conv1 = nn.Sequential(
            nn.Conv2d(1, channels, 3, padding=1), nn.ReLU(inplace=True), nn.MaxPool2d(2)
        )
        self.conv2 = nn.Sequential(
            nn.Conv2d(channels, channels, 3, padding=1), nn.ReLU(inplace=True), nn.MaxPool2d(2)
        )
        self.fc1 = nn.Sequential(nn.Linear(channels * 4, dim), nn.ReLU(inplace=True))
        self.fc = nn.Linear(dim, classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.fc1(torch.flatten(self.conv2(self.conv1(x)), 1)))


class BNNet(nn.Module):
    def __init__(self, channels: int = 4, classes: int = 3) -> None:
        super().__init__()
        self.conv = nn.Conv2d(1, channels, 3, padding=1)
        self.bn = nn.BatchNorm2d(channels)
        self.pool = nn.AdaptiveAvgPool2d(2)
        self.fc1 = nn.Linear(channels * 4, 8)
        self.head = nn.Linear(8, classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.pool(torch.relu(self.bn(self.conv(x)))).flatten(1)
        return self.head(torch.tanh(self.fc1(h)))


class BaseHeadSplit(nn.Module):
    def __init__(self, base: nn.Module, head: nn.Module) -> None:
        super().__init__()
        self.base = base
        self.head = head

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.base(x))


def split(model: PflibCNN) -> BaseHeadSplit:
    """``base`` = the model with ``fc`` replaced by Identity, ``head`` = that ``fc``."""
    head = model.fc
    model.fc = nn.Identity()  # type: ignore[assignment]
    return BaseHeadSplit(model, head)


def images(n: int = 40, seed: int = 0) -> np.ndarray:
    """(n, 1, 8, 8) float32 inputs."""
    return np.random.default_rng(seed).normal(size=(n, 1, 8, 8)).astype(np.float32)


def perturbed(model: nn.Module, prefix: str, scale: float, seed: int) -> dict[str, torch.Tensor]:
    """A copy of ``model``'s state_dict with noise added to the parameters under ``prefix``."""
    g = torch.Generator().manual_seed(seed)
    state = {k: v.clone() for k, v in model.state_dict().items()}
    for k, v in state.items():
        if k.startswith(prefix) and v.is_floating_point() and "running" not in k:
            v.add_(scale * torch.randn(v.shape, generator=g))
    return state


def train_bn(model: nn.Module, steps: int, seed: int) -> None:
    """Run ``steps`` forward passes in train mode (BatchNorm statistics and counters move)."""
    g = torch.Generator().manual_seed(seed)
    model.train()
    with torch.no_grad():
        for _ in range(steps):
            model(torch.randn(16, 1, 8, 8, generator=g))
    model.eval()
