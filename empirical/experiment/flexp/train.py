r"""FlexP training: per-client U-shaped cuts, ``frozen`` or ``shared`` server middle, alignment.

Every client ``c`` starts from the global model ``theta_G`` with its own cut ``front_c:back_c``
and trains its own parts (``client_front``, ``client_back``, ``head``); client parts are never
averaged. The objective is the (flooded) cross-entropy plus, when ``beta > 0``,

.. math:: \beta \sum_{k} A\big(z^{(k)}_c(x),\ \mathrm{sg}[z^{(k)}_G(x)]\big)

over the client-owned depths ``k`` (``align_depth``): ``first`` = the first cut (output of the
client front); ``client`` = the first cut and, when ``back_c >= 1``, the client back's output
(penultimate features), evaluated on the *detached* server activation. ``A`` is
:func:`empirical.experiment.split.alignment_loss` (KL over softmaxed hidden units, or L2), the
target ``z_G`` comes from a frozen copy of ``theta_G`` and ``sg`` stops its gradient, so the
alignment gradient reaches only the client's own parts ([FLEXP]'s term as described publicly;
docs/theory.md Sec. 5 in docs/flexp.md's words).

Server modes:

``frozen``  each client trains alone; the middle stays at ``theta_G`` bit for bit. With one cut
            and ``align_depth="first"`` this is the ``split`` variant, step for step.
``shared``  one server copy of the feature blocks; epoch by epoch, clients 0, 1, ... each run one
            local epoch in turn, updating their own parts and the blocks of *their* middle in
            that copy (sequential, aggregation-free). One SGD holds every parameter, so each
            client keeps its own momentum and the server keeps one momentum per block across
            clients. Every client is evaluated with the final middle.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
from torch import nn

from empirical.experiment.flexp.config import FlexPConfig
from empirical.experiment.flexp.partition import Cut, block_assignment
from empirical.experiment.pft_config import PFTConfig
from empirical.experiment.split import alignment_loss
from empirical.experiment.training import Regularizer, train_epoch

__all__ = [
    "ClientEpochCallback",
    "FlexPResult",
    "UModel",
    "alignment_regularizer",
    "alignment_term",
    "flexp_train",
]

# (epoch, client, model) after every epoch of a client (epoch 1..epochs).
ClientEpochCallback = Callable[[int, int, nn.Module], None]


class UModel(nn.Module):
    """A client's view of the U: its blocks and head around (possibly shared) middle blocks.

    Same module names as the registry models (``features.k``, ``head``), so its state_dict
    is a full checkpoint of the personalized model.
    """

    def __init__(self, blocks: Sequence[nn.Module], head: nn.Module) -> None:
        super().__init__()
        self.features = nn.Sequential(*blocks)
        self.head = head

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Class logits ``head(features(x))``, shape (n, num_classes)."""
        return self.head(self.features(x))


@dataclass(frozen=True)
class FlexPResult:
    """Outcome of :func:`flexp_train`.

    Attributes
    ----------
    models : list of nn.Module
        Per client, the personalized model as evaluated (its parts + the final middle).
    cuts : list of Cut
    server : nn.Sequential or None
        ``shared`` mode: the one server copy of the blocks (those in no client's middle stay at
        ``theta_G``). ``frozen``: None (each model's middle is ``theta_G``).
    """

    models: list[nn.Module]
    cuts: list[Cut]
    server: nn.Sequential | None


def _frozen_copy(module: nn.Module) -> nn.Module:
    twin = copy.deepcopy(module).eval()
    for p in twin.parameters():
        p.requires_grad_(False)
    return twin


def alignment_term(
    model: nn.Module, global_model: nn.Module, cut: Cut, config: FlexPConfig
) -> Regularizer | None:
    """The alignment regularizer of one client (None when ``beta == 0``).

    Parameters
    ----------
    model : nn.Module
        The client's model (its ``features`` may hold shared server blocks).
    global_model : nn.Module
        ``theta_G``; a frozen copy is taken (no gradient ever reaches it).
    cut : Cut
    config : FlexPConfig
        ``beta``, ``align``, ``align_depth``.

    Returns
    -------
    callable ``(model, xb, yb) -> scalar`` or None
    """
    return None if config.beta == 0 else alignment_regularizer(model, global_model, cut, config)


def alignment_regularizer(
    model: nn.Module, global_model: nn.Module, cut: Cut, config: FlexPConfig
) -> Regularizer:
    """The alignment regularizer built for any ``beta``, 0 included (beta 0 gives the zero loss).

    :func:`alignment_term` skips it at ``beta == 0``; this builds it so that a test can check
    the skip changes nothing (value and gradient 0 at beta 0 by computation).
    """
    features: nn.Sequential = model.features  # type: ignore[assignment]
    n = len(features)
    g_features = _frozen_copy(global_model.features)  # type: ignore[arg-type]
    assert isinstance(g_features, nn.Sequential)
    g_front = g_features[: cut.front]
    front = features[: cut.front]
    middle = features[cut.front : n - cut.back]
    back = features[n - cut.back :]
    at_back = config.align_depth == "client" and cut.back >= 1

    def align(m: nn.Module, xb: torch.Tensor, yb: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            z_global = g_front(xb)
        z_front = front(xb)
        loss = config.beta * alignment_loss(z_front, z_global, config.align)
        if at_back:
            with torch.no_grad():
                g_pen = g_features(xb)
            z_back = back(middle(z_front).detach())
            loss = loss + config.beta * alignment_loss(z_back, g_pen, config.align)
        return loss

    return align


def _client_params(model: nn.Module, cut: Cut) -> list[nn.Parameter]:
    features: nn.Sequential = model.features  # type: ignore[assignment]
    head: nn.Module = model.head  # type: ignore[assignment]
    parts = block_assignment(len(features), cut)
    own = [*parts["client_front"], *parts["client_back"]]
    return [p for i in own for p in features[i].parameters()] + list(head.parameters())


def flexp_train(
    global_model: nn.Module,
    clients: Sequence[tuple[torch.Tensor, torch.Tensor]],
    cuts: Sequence[Cut],
    config: FlexPConfig,
    pft: PFTConfig,
    generators: Sequence[torch.Generator],
    on_epoch: ClientEpochCallback | None = None,
) -> FlexPResult:
    """Train every client's parts (and, in ``shared`` mode, the one server middle).

    Parameters
    ----------
    global_model : nn.Module
        ``theta_G`` (left unchanged).
    clients : sequence of (Tensor (n_c, ...), Tensor (n_c,))
        Each client's training data, visited in this order in ``shared`` mode.
    cuts : sequence of Cut
        One per client.
    config : FlexPConfig
        Server mode and alignment.
    pft : PFTConfig
        ``epochs`` and ``local`` (SGD, batch size, flooding).
    generators : sequence of torch.Generator
        One per client (its mini-batch order).
    on_epoch : callable, optional
        ``(epoch, client, model)`` after each epoch (``shared``: after every client has run
        that epoch, so the logged model holds the current middle).

    Returns
    -------
    FlexPResult
    """
    if not len(clients) == len(cuts) == len(generators):
        raise ValueError(
            f"got {len(clients)} clients, {len(cuts)} cuts and {len(generators)} generators: "
            "expected one of each per client"
        )
    n = len(global_model.features)  # type: ignore[arg-type]
    for cut in cuts:
        cut.check(n)
    if config.server_mode == "frozen":
        models: list[nn.Module] = []
        for c, ((x, y), cut, gen) in enumerate(zip(clients, cuts, generators, strict=True)):
            model = copy.deepcopy(global_model)
            opt = torch.optim.SGD(_client_params(model, cut), lr=pft.local.lr,
                                  momentum=pft.local.momentum)  # fmt: skip
            reg = alignment_term(model, global_model, cut, config)
            for epoch in range(1, pft.epochs + 1):
                train_epoch(model, x, y, opt, pft.local, gen, regularizer=reg)
                if on_epoch is not None:
                    on_epoch(epoch, c, model)
            models.append(model)
        return FlexPResult(models, list(cuts), None)
    server = copy.deepcopy(global_model.features)
    assert isinstance(server, nn.Sequential)
    views: list[nn.Module] = []
    params: list[nn.Parameter] = []
    for cut in cuts:
        own = copy.deepcopy(global_model)
        middle = block_assignment(n, cut)["server_middle"]
        own_blocks: nn.Sequential = own.features  # type: ignore[assignment]
        blocks = [server[i] if i in middle else own_blocks[i] for i in range(n)]
        view = UModel(blocks, own.head)  # type: ignore[arg-type]
        views.append(view)
        params += _client_params(view, cut)
    params += list(server.parameters())
    opt = torch.optim.SGD(params, lr=pft.local.lr, momentum=pft.local.momentum)
    regs = [
        alignment_term(v, global_model, cut, config) for v, cut in zip(views, cuts, strict=True)
    ]
    for epoch in range(1, pft.epochs + 1):
        for (x, y), member, gen, reg in zip(clients, views, generators, regs, strict=True):
            train_epoch(member, x, y, opt, pft.local, gen, regularizer=reg)
        if on_epoch is not None:
            for c, member in enumerate(views):
                on_epoch(epoch, c, member)
    return FlexPResult(views, list(cuts), server)
