"""Small networks for the federated experiment, with fixed, documented module names.

Every model built here has the same two top-level children:

``features``
    an :class:`torch.nn.Sequential` of *blocks* (``features.0``, ``features.1``, ...). Its output
    is the **penultimate feature** vector, shape ``(n, feature_dim)``, the ``f(theta; x)`` of
    [CLOSER] Sec. 3 used for the feature distortion ``Delta_c``.
``head``
    the final classifier, an :class:`torch.nn.Linear` ``(feature_dim -> num_classes)``. Its input
    is the penultimate feature.

Parameter names therefore start with ``features.{k}.`` or ``head.``, and a U-shaped split
([FLEXP], docs/theory.md Sec. 5: client front / server middle / client back + head) is a
partition of
the block indices, expressed as parameter-name prefixes by :func:`split_parts`. All models take
images of shape ``(n, 1, H, W)`` (float32); the MLP flattens them in its first block.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from torch import nn

__all__ = [
    "MODEL_REGISTRY",
    "DigitsCNN",
    "DigitsMLP",
    "build_model",
    "feature_extractor_prefixes",
    "split_parts",
]


class _Backbone(nn.Module):
    """Common structure: ``features`` (a Sequential of blocks) followed by ``head`` (Linear)."""

    features: nn.Sequential
    head: nn.Linear

    @property
    def n_blocks(self) -> int:
        """Number of feature blocks (valid cut depths are ``0 .. n_blocks``)."""
        return len(self.features)

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        """Penultimate features.

        Parameters
        ----------
        x : Tensor of shape (n, 1, H, W)
            Input images.

        Returns
        -------
        Tensor of shape (n, feature_dim)
            Output of ``features``, the input of ``head``.
        """
        return self.features(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Class logits.

        Parameters
        ----------
        x : Tensor of shape (n, 1, H, W)
            Input images.

        Returns
        -------
        Tensor of shape (n, num_classes)
            ``head(features(x))``.
        """
        return self.head(self.features(x))


class DigitsCNN(_Backbone):
    """Small CNN for ``(n, 1, S, S)`` images: four feature blocks and a linear head.

    Blocks: ``features.0`` conv3x3(1->w)+ReLU; ``features.1`` conv3x3(w->2w)+ReLU+maxpool2;
    ``features.2`` conv3x3(2w->2w)+ReLU; ``features.3`` flatten+linear(2w*(S/2)^2 -> d)+ReLU
    (the penultimate feature layer); ``head`` linear(d -> K).

    Parameters
    ----------
    in_channels : int
        Image channels (1 for digits).
    image_size : int
        Side length S (even).
    num_classes : int
        Number of classes K.
    width : int
        Channels w of the first convolution.
    feature_dim : int
        Penultimate feature dimension d.
    """

    def __init__(
        self,
        in_channels: int = 1,
        image_size: int = 8,
        num_classes: int = 10,
        width: int = 16,
        feature_dim: int = 64,
    ) -> None:
        super().__init__()
        _check_positive(
            in_channels=in_channels,
            image_size=image_size,
            num_classes=num_classes,
            width=width,
            feature_dim=feature_dim,
        )
        if image_size % 2:
            raise ValueError(f"image_size must be even for the 2x2 pooling, got {image_size}")
        half = image_size // 2
        self.features = nn.Sequential(
            nn.Sequential(nn.Conv2d(in_channels, width, 3, padding=1), nn.ReLU()),
            nn.Sequential(nn.Conv2d(width, 2 * width, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2)),
            nn.Sequential(nn.Conv2d(2 * width, 2 * width, 3, padding=1), nn.ReLU()),
            nn.Sequential(nn.Flatten(), nn.Linear(2 * width * half * half, feature_dim), nn.ReLU()),
        )
        self.head = nn.Linear(feature_dim, num_classes)


class DigitsMLP(_Backbone):
    """MLP for ``(n, 1, S, S)`` images: one block per hidden layer and a linear head.

    Blocks: ``features.0`` flatten+linear(in -> h_0)+ReLU, ``features.k`` linear(h_{k-1} -> h_k)
    +ReLU, the last block maps to ``feature_dim`` (the penultimate layer); ``head`` linear(d -> K).

    Parameters
    ----------
    in_features : int
        Flattened input size (64 for 8x8 digits).
    hidden : sequence of int
        Widths of the hidden blocks before the feature block.
    feature_dim : int
        Penultimate feature dimension d.
    num_classes : int
        Number of classes K.
    """

    def __init__(
        self,
        in_features: int = 64,
        hidden: Sequence[int] = (128, 128),
        feature_dim: int = 64,
        num_classes: int = 10,
    ) -> None:
        super().__init__()
        _check_positive(in_features=in_features, feature_dim=feature_dim, num_classes=num_classes)
        widths = [int(h) for h in hidden]
        if any(h <= 0 for h in widths):
            raise ValueError(f"hidden must hold positive widths, got {list(hidden)}")
        sizes = [in_features, *widths, feature_dim]
        blocks: list[nn.Module] = []
        for k in range(len(sizes) - 1):
            layers: list[nn.Module] = [nn.Flatten()] if k == 0 else []
            layers += [nn.Linear(sizes[k], sizes[k + 1]), nn.ReLU()]
            blocks.append(nn.Sequential(*layers))
        self.features = nn.Sequential(*blocks)
        self.head = nn.Linear(feature_dim, num_classes)


def _check_positive(**values: int) -> None:
    for name, value in values.items():
        if int(value) != value or value <= 0:
            raise ValueError(f"{name} must be a positive integer, got {value!r}")


MODEL_REGISTRY: dict[str, Callable[..., nn.Module]] = {
    "cnn": DigitsCNN,
    "mlp": DigitsMLP,
}


def build_model(name: str, **kwargs: object) -> nn.Module:
    """Build a registered model.

    Parameters
    ----------
    name : str
        Registry name, one of ``MODEL_REGISTRY`` (``"cnn"``, ``"mlp"``).
    **kwargs
        Constructor arguments of the model (see :class:`DigitsCNN`, :class:`DigitsMLP`).

    Returns
    -------
    torch.nn.Module
        Model with children ``features`` (blocks) and ``head`` (Linear).

    Raises
    ------
    ValueError
        If ``name`` is not registered.
    """
    if name not in MODEL_REGISTRY:
        raise ValueError(f"unknown model {name!r}; expected one of {sorted(MODEL_REGISTRY)}")
    return MODEL_REGISTRY[name](**kwargs)


def feature_extractor_prefixes(n_blocks: int) -> list[str]:
    """Parameter-name prefixes of the feature extractor (everything except ``head``).

    Parameters
    ----------
    n_blocks : int
        Number of feature blocks of the model.

    Returns
    -------
    list of str
        ``["features.0.", ..., "features.{n_blocks-1}."]``.
    """
    return [f"features.{k}." for k in range(n_blocks)]


def split_parts(n_blocks: int, front_depth: int, back_depth: int) -> dict[str, list[str]]:
    """Parameter-name prefixes of a U-shaped split ([FLEXP]; docs/theory.md Sec. 5).

    The client keeps the first ``front_depth`` blocks and the last ``back_depth`` blocks plus the
    head; the server runs the shared middle. The four parts partition the parameters.

    Parameters
    ----------
    n_blocks : int
        Number of feature blocks of the model.
    front_depth : int
        Blocks on the client before the first cut (>= 1).
    back_depth : int
        Feature blocks on the client after the second cut (>= 0), besides the head.

    Returns
    -------
    dict of str to list of str
        ``{"client_front", "server_middle", "client_back", "head"}`` to prefixes (each ending in
        ``"."``, so ``"features.1."`` never matches ``features.10``). ``client_back`` may be empty.

    Raises
    ------
    ValueError
        If the middle would be empty or a depth is out of range.
    """
    if front_depth < 1 or back_depth < 0 or front_depth + back_depth >= n_blocks:
        raise ValueError(
            f"split cut (front_depth={front_depth}, back_depth={back_depth}) needs "
            f"1 <= front_depth and 0 <= back_depth and front_depth + back_depth < n_blocks "
            f"(= {n_blocks}), so that the shared middle is non-empty"
        )
    blocks = feature_extractor_prefixes(n_blocks)
    return {
        "client_front": blocks[:front_depth],
        "server_middle": blocks[front_depth : n_blocks - back_depth],
        "client_back": blocks[n_blocks - back_depth :],
        "head": ["head."],
    }
