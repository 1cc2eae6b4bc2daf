"""Personalized fine-tuning (PFT) variants of [CLOSER] Sec. 4 (docs/theory.md Sec. 4).

Every variant starts from the FedAvg model ``theta_G`` and trains on one client's data:

``ft``        all parameters.
``lp``        the ``head`` only (every ``features.*`` parameter stays bit-identical).
``lpft``      ``lp_epochs`` of LP, then the remaining epochs of FT ([KUMAR]).
``proximal``  FT with the penalty ``mu/2 ||theta - theta_G||^2`` (after FedProx).
``sparse``    FT of a SNIP mask: the ``1 - sparsity`` fraction of parameters with the largest
              ``|g * theta|`` at ``theta_G`` (g: gradient of the local loss); all others stay
              bit-identical.
``soup``      uniform weight average of ``n_ingredients`` FT runs with different batch orders
              (:mod:`empirical.experiment.soups`).
``lss``       Local Superior Soups (:mod:`empirical.experiment.soups`).
``split``     FlexP-style U-shaped split with an alignment term (:mod:`empirical.experiment.split`).

Loss flooding (``LocalConfig.flood_level``) applies to the cross-entropy of every variant.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable

import torch
from torch import nn

from empirical.experiment.pft_config import VARIANTS, EpochCallback, PFTConfig, sgd
from empirical.experiment.soups import lss, soup
from empirical.experiment.split import split_finetune
from empirical.experiment.training import train_epoch

__all__ = ["VARIANTS", "EpochCallback", "PFTConfig", "personalize", "snip_mask"]


def _train(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    params: list[nn.Parameter],
    config: PFTConfig,
    generator: torch.Generator,
    epochs: range,
    on_epoch: EpochCallback | None,
    regularizer: Callable[[nn.Module, torch.Tensor, torch.Tensor], torch.Tensor] | None = None,
    after_step: Callable[[], None] | None = None,
) -> None:
    opt = sgd(params, config.local)
    for epoch in epochs:
        train_epoch(model, x, y, opt, config.local, generator, regularizer, after_step)
        if on_epoch is not None:
            on_epoch(epoch, model)


def snip_mask(
    model: nn.Module, x: torch.Tensor, y: torch.Tensor, sparsity: float
) -> dict[str, torch.Tensor]:
    r"""SNIP saliency mask: keep the top ``1 - sparsity`` fraction of ``|g * theta|``.

    .. math:: s_j = |\partial L / \partial \theta_j \cdot \theta_j|

    Source: Lee et al., *SNIP*, ICLR 2019, as used for Sparse FT in [CLOSER] Sec. 4. The
    gradient is of the mean cross-entropy over all of ``(x, y)``; ties at the threshold are broken
    by index so exactly ``ceil((1 - sparsity) N)`` entries are kept.

    Parameters
    ----------
    model : nn.Module
        Model at ``theta_G`` (not modified).
    x : Tensor of shape (n, ...)
        Local inputs.
    y : Tensor of shape (n,)
        Local labels.
    sparsity : float
        Fraction of parameters left frozen, in [0, 1).

    Returns
    -------
    dict of str to bool Tensor
        Per parameter name, ``True`` where the entry may move.
    """
    probe = copy.deepcopy(model)
    probe.zero_grad(set_to_none=True)
    nn.functional.cross_entropy(probe(x), y).backward()
    names, scores = [], []
    for name, p in probe.named_parameters():
        grad = p.grad if p.grad is not None else torch.zeros_like(p)
        names.append(name)
        scores.append((grad * p).abs().flatten())
    flat = torch.cat(scores)
    keep = math.ceil((1.0 - sparsity) * flat.numel())
    chosen = torch.zeros(flat.numel(), dtype=torch.bool)
    chosen[torch.argsort(flat, descending=True, stable=True)[:keep]] = True
    masks, start = {}, 0
    for name, s in zip(names, scores, strict=True):
        shape = dict(probe.named_parameters())[name].shape
        masks[name] = chosen[start : start + s.numel()].reshape(shape)
        start += s.numel()
    return masks


def personalize(
    variant: str,
    global_model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    config: PFTConfig,
    generator: torch.Generator,
    on_epoch: EpochCallback | None = None,
) -> nn.Module:
    """Fine-tune a copy of the global model on one client's data with a PFT variant.

    Parameters
    ----------
    variant : str
        One of :data:`VARIANTS`.
    global_model : nn.Module
        FedAvg model ``theta_G`` (left unchanged).
    x : Tensor of shape (n, ...)
        Client training inputs.
    y : Tensor of shape (n,)
        Client training labels.
    config : PFTConfig
        Variant settings.
    generator : torch.Generator
        Mini-batch orders (and every other random choice).
    on_epoch : callable, optional
        ``(epoch, model)`` after every epoch 1..epochs.

    Returns
    -------
    nn.Module
        The personalized model ``theta_c``.
    """
    if variant not in VARIANTS:
        raise ValueError(f"unknown variant {variant!r}; expected one of {VARIANTS}")
    if variant in ("soup", "lss"):
        return (soup if variant == "soup" else lss)(global_model, x, y, config, generator, on_epoch)
    if variant == "split":
        return split_finetune(global_model, x, y, config, generator, on_epoch)
    model = copy.deepcopy(global_model)
    head: nn.Module = model.head  # type: ignore[assignment]
    everything = list(model.parameters())
    if variant == "ft":
        _train(model, x, y, everything, config, generator, range(1, config.epochs + 1), on_epoch)
    elif variant == "lp":
        _train(model, x, y, list(head.parameters()), config, generator,
               range(1, config.epochs + 1), on_epoch)  # fmt: skip
    elif variant == "lpft":
        _train(model, x, y, list(head.parameters()), config, generator,
               range(1, config.lp_epochs + 1), on_epoch)  # fmt: skip
        _train(model, x, y, everything, config, generator,
               range(config.lp_epochs + 1, config.epochs + 1), on_epoch)  # fmt: skip
    elif variant == "proximal":
        anchor = [p.detach().clone() for p in everything]

        def proximal(m: nn.Module, xb: torch.Tensor, yb: torch.Tensor) -> torch.Tensor:
            drift = sum(((p - a) ** 2).sum() for p, a in zip(everything, anchor, strict=True))
            return 0.5 * config.mu * drift  # type: ignore[return-value]

        _train(model, x, y, everything, config, generator, range(1, config.epochs + 1),
               on_epoch, regularizer=proximal)  # fmt: skip
    else:  # sparse
        masks = snip_mask(model, x, y, config.sparsity)
        named = dict(model.named_parameters())
        frozen = {n: p.detach().clone() for n, p in named.items()}

        @torch.no_grad()
        def reimpose() -> None:
            for n, p in named.items():
                p.copy_(torch.where(masks[n], p, frozen[n]))

        hooks = [p.register_hook(lambda g, m=masks[n]: g * m) for n, p in named.items()]
        _train(model, x, y, everything, config, generator, range(1, config.epochs + 1),
               on_epoch, after_step=reimpose)  # fmt: skip
        for handle in hooks:
            handle.remove()
    return model
