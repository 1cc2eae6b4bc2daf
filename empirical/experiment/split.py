r"""FlexP-style U-shaped split personalization ([FLEXP]; docs/theory.md Sec. 5).

The model's feature blocks are partitioned by :func:`empirical.experiment.models.split_parts`:
the client
keeps the first ``split_front`` blocks (``client_front``) and the last ``split_back`` blocks plus
``head`` (``client_back``, ``head``); the shared middle (``server_middle``) stays at the global
weights, bit-identical. The client's objective adds an alignment term at the first cut, between
the client's activations ``Z_c = front_c(x)`` and what the global layers produce at the same depth
on the same inputs, ``Z_G = front_G(x)`` (no gradient):

.. math:: L = \mathrm{CE} + \beta\, \mathrm{KL}(\mathrm{softmax}(Z_G) \,\|\,
          \mathrm{softmax}(Z_c))

with the softmax over the flattened hidden units of each sample (batch mean), or the ``"l2"``
variant ``beta * mean_i ||Z_c,i - Z_G,i||^2 / D``. Our reading of [FLEXP]'s public description; the
paper's exact equation was not available (docs/theory.md Sec. 5).
"""

from __future__ import annotations

import copy

import torch
from torch import nn

from empirical.experiment.models import split_parts
from empirical.experiment.pft_config import EpochCallback, PFTConfig, sgd
from empirical.experiment.training import train_epoch

__all__ = ["alignment_loss", "split_finetune", "trainable_split_parameters"]


def alignment_loss(z_client: torch.Tensor, z_global: torch.Tensor, kind: str) -> torch.Tensor:
    """Alignment between client and global activations at a cut.

    Parameters
    ----------
    z_client : Tensor of shape (n, ...)
        Client activations (receive gradient).
    z_global : Tensor of shape (n, ...)
        Global activations (treated as constants).
    kind : str
        ``"kl"``: ``KL(softmax(z_global) || softmax(z_client))`` over the flattened hidden units,
        batch mean; ``"l2"``: mean over samples of ``||z_client - z_global||^2 / D``.

    Returns
    -------
    Tensor, scalar
        The alignment loss (0 when the activations coincide).
    """
    zc = z_client.flatten(1)
    zg = z_global.detach().flatten(1)
    if kind == "kl":
        log_p = torch.log_softmax(zg, dim=1)
        log_q = torch.log_softmax(zc, dim=1)
        return (log_p.exp() * (log_p - log_q)).sum(dim=1).mean()
    if kind == "l2":
        return ((zc - zg) ** 2).sum(dim=1).mean() / zc.shape[1]
    raise ValueError(f"alignment kind must be 'kl' or 'l2', got {kind!r}")


def trainable_split_parameters(model: nn.Module, front: int, back: int) -> list[nn.Parameter]:
    """Parameters the client trains in the U-shaped split (front, back and head).

    Parameters
    ----------
    model : nn.Module
        Model from :mod:`empirical.experiment.models`.
    front, back : int
        Cut depths (see :func:`empirical.experiment.models.split_parts`).

    Returns
    -------
    list of nn.Parameter
        Every parameter outside ``server_middle``.
    """
    features: nn.Sequential = model.features  # type: ignore[assignment]
    parts = split_parts(len(features), front, back)
    middle = tuple(parts["server_middle"])
    return [p for n, p in model.named_parameters() if not n.startswith(middle)]


def split_finetune(
    global_model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    config: PFTConfig,
    generator: torch.Generator,
    on_epoch: EpochCallback | None = None,
) -> nn.Module:
    """U-shaped split fine-tuning with alignment at the cut.

    Parameters
    ----------
    global_model : nn.Module
        ``theta_G`` (unchanged).
    x : Tensor of shape (n, ...)
        Local inputs.
    y : Tensor of shape (n,)
        Local labels.
    config : PFTConfig
        ``split_front``, ``split_back``, ``split_beta``, ``split_align``, SGD settings.
    generator : torch.Generator
        Batch order.
    on_epoch : callable, optional
        ``(epoch, model)`` after every epoch.

    Returns
    -------
    nn.Module
        Personalized model; its ``server_middle`` parameters equal ``theta_G``'s bit for bit.
    """
    model = copy.deepcopy(global_model)
    params = trainable_split_parameters(model, config.split_front, config.split_back)
    global_features = copy.deepcopy(global_model.features)
    assert isinstance(global_features, nn.Sequential)
    global_front = global_features[: config.split_front].eval()
    for p in global_front.parameters():
        p.requires_grad_(False)
    features: nn.Sequential = model.features  # type: ignore[assignment]
    front = features[: config.split_front]

    def align(m: nn.Module, xb: torch.Tensor, yb: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            z_global = global_front(xb)
        return config.split_beta * alignment_loss(front(xb), z_global, config.split_align)

    opt = sgd(params, config.local)
    for epoch in range(1, config.epochs + 1):
        train_epoch(model, x, y, opt, config.local, generator, regularizer=align)
        if on_epoch is not None:
            on_epoch(epoch, model)
    return model
