"""Small models for the distortion tests, importable as ``_distortion_models:TinyMLP``."""

from __future__ import annotations

import torch
from torch import nn


class TinyMLP(nn.Module):
    def __init__(self, d_in: int = 6, hidden: int = 8, classes: int = 3) -> None:
        super().__init__()
        self.fc1 = nn.Linear(d_in, hidden)
        self.act1 = nn.Tanh()
        self.fc2 = nn.Linear(hidden, hidden)
        self.act2 = nn.Tanh()
        self.fc3 = nn.Linear(hidden, hidden)
        self.act3 = nn.Tanh()
        self.head = nn.Linear(hidden, classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.act1(self.fc1(x))
        h = self.act2(self.fc2(h))
        h = self.act3(self.fc3(h))
        return self.head(h)


class TinyCNN(nn.Module):
    def __init__(self, channels: int = 4, classes: int = 3) -> None:
        super().__init__()
        self.conv = nn.Conv2d(1, channels, 3, padding=1)
        self.pool = nn.AdaptiveAvgPool2d(2)
        self.head = nn.Linear(channels * 4, classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.pool(torch.relu(self.conv(x))).flatten(1))


class InplaceNet(nn.Module):
    """Linear -> ReLU(inplace=True) -> Linear, and a conv block with an in-place ReLU."""

    def __init__(self, d_in: int = 6, hidden: int = 8, classes: int = 3) -> None:
        super().__init__()
        self.fc1 = nn.Linear(d_in, hidden)
        self.act = nn.ReLU(inplace=True)
        self.head = nn.Linear(hidden, classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.act(self.fc1(x)))


class SmallCNN(nn.Module):
    """A FedAvgCNN-like layout (Sequential conv blocks with in-place ReLU, BatchNorm, fc)."""

    def __init__(self, channels: int = 4, classes: int = 3) -> None:
        super().__init__()
        self.conv1 = nn.Sequential(
            nn.Conv2d(1, channels, 3, padding=1), nn.BatchNorm2d(channels), nn.ReLU(inplace=True)
        )
        self.pool = nn.AdaptiveAvgPool2d(2)
        self.fc1 = nn.Sequential(nn.Linear(channels * 4, 8), nn.ReLU(inplace=True))
        self.fc = nn.Linear(8, classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.fc1(self.pool(self.conv1(x)).flatten(1)))


class BaseHead(nn.Module):
    """A model split into ``base`` (body, its classifier replaced) and ``head`` (classifier)."""

    def __init__(self, base: nn.Module, head: nn.Module) -> None:
        super().__init__()
        self.base = base
        self.head = head

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.base(x))


def split_small_cnn(**kwargs: int) -> BaseHead:
    body = SmallCNN(**kwargs)
    head = body.fc
    body.fc = nn.Identity()  # type: ignore[assignment]
    return BaseHead(body, head)


def broken(**kwargs: int) -> nn.Module:
    raise RuntimeError("this factory always fails")
