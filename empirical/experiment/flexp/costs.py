r"""Cost accounting of a U-shaped split (pure functions of a model and a sample shape).

Conventions (ours, stated here and in docs/flexp.md):

- **FLOPs** count multiply-accumulates only: ``FLOPs = 2 x MACs``; an ``nn.Linear(i, o)`` has
  ``i o`` MACs per sample, an ``nn.Conv2d`` ``numel(output) x (C_in / groups) k_h k_w``;
  biases, activations, pooling and flattening count 0. The backward pass costs twice the
  forward, so a trained part costs ``3 x 2 x MACs`` per sample (forward + backward).
- **Communication** per sample at the two cuts of the U: the client sends the activation at the
  first cut (forward) and the gradient at the second cut (backward) and receives the
  activation at the second cut and the gradient at the first cut, so
  ``sent = received = b (a_1 + a_2)`` with ``a_k`` the activation size at cut ``k`` and ``b``
  the bytes per element.
- **Peak activation memory** per sample: everything the client holds for its backward pass,
  ``b x (numel(input) + sum of the outputs of every leaf module of its blocks and head +
  a_2)`` (the received activation ``a_2`` is the input of its back part).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import nn

__all__ = ["BlockProfile", "ClientCost", "client_cost", "profile_model"]


@dataclass(frozen=True)
class BlockProfile:
    """Per-block sizes of a model for one sample.

    Attributes
    ----------
    params : tuple of int, length n_blocks + 1
        Trainable parameters of ``features.0 .. features.{n-1}`` and, last, ``head``.
    macs : tuple of int, length n_blocks + 1
        Multiply-accumulates per sample, same order.
    outputs : tuple of int, length n_blocks
        ``numel`` of each block's output per sample (the activation at a cut after it).
    stored : tuple of int, length n_blocks + 1
        Sum of the per-sample output sizes of the leaf modules inside each block (and head).
    input_numel : int
        Elements of one input sample.
    bytes_per_element : int
        Element size of the parameters (4 for float32).
    """

    params: tuple[int, ...]
    macs: tuple[int, ...]
    outputs: tuple[int, ...]
    stored: tuple[int, ...]
    input_numel: int
    bytes_per_element: int

    @property
    def n_blocks(self) -> int:
        """Number of feature blocks."""
        return len(self.outputs)


def _leaf_macs(module: nn.Module, out: torch.Tensor) -> int:
    if isinstance(module, nn.Linear):
        return module.in_features * module.out_features
    if isinstance(module, nn.Conv2d):
        kh, kw = module.kernel_size
        return out[0].numel() * (module.in_channels // module.groups) * kh * kw
    if any(True for _ in module.parameters(recurse=False)):
        raise ValueError(
            f"cannot count the FLOPs of a {type(module).__name__}: expected only Linear and "
            "Conv2d layers to carry parameters"
        )
    return 0


@torch.no_grad()
def profile_model(model: nn.Module, sample_shape: Sequence[int]) -> BlockProfile:
    """Sizes of every block of a :mod:`empirical.experiment.models` model for one sample.

    Parameters
    ----------
    model : nn.Module
        Model with ``features`` (Sequential of blocks) and ``head``; not modified.
    sample_shape : sequence of int
        Shape of one input sample, e.g. ``(1, 8, 8)``.

    Returns
    -------
    BlockProfile
    """
    features: nn.Sequential = model.features  # type: ignore[assignment]
    head: nn.Module = model.head  # type: ignore[assignment]
    blocks: list[nn.Module] = [*features, head]
    macs = [0] * len(blocks)
    stored = [0] * len(blocks)
    handles = []
    for b, block in enumerate(blocks):
        leaves = [m for m in block.modules() if not list(m.children())]
        for leaf in leaves:

            def hook(m: nn.Module, _: object, out: torch.Tensor, b: int = b) -> None:
                macs[b] += _leaf_macs(m, out)
                stored[b] += out[0].numel()

            handles.append(leaf.register_forward_hook(hook))
    x = torch.zeros((1, *sample_shape), dtype=next(model.parameters()).dtype)
    outputs = []
    was_training = model.training
    model.eval()
    try:
        z = x
        for block in blocks[:-1]:
            z = block(z)
            outputs.append(z[0].numel())
        head(z)
    finally:
        for handle in handles:
            handle.remove()
        model.train(was_training)
    params = [sum(p.numel() for p in blk.parameters() if p.requires_grad) for blk in blocks]
    return BlockProfile(
        params=tuple(params),
        macs=tuple(macs),
        outputs=tuple(outputs),
        stored=tuple(stored),
        input_numel=x[0].numel(),
        bytes_per_element=x.element_size(),
    )


@dataclass(frozen=True)
class ClientCost:
    """Client-side cost of one U-shaped cut, per sample (see the module docstring).

    Attributes
    ----------
    params : int
        Client-side trainable parameters (front, back, head).
    flops : int
        Client FLOPs per sample, forward + backward (``6 x MACs``).
    bytes_sent, bytes_received : int
        Bytes per sample over both cuts (activations and gradients).
    activation_bytes : int
        Peak activation memory on the client per sample.
    """

    params: int
    flops: int
    bytes_sent: int
    bytes_received: int
    activation_bytes: int

    def as_row(self) -> dict[str, int]:
        """The cost columns of the tidy results."""
        return {
            "client_params": self.params,
            "client_flops": self.flops,
            "bytes_sent": self.bytes_sent,
            "bytes_received": self.bytes_received,
            "activation_bytes": self.activation_bytes,
        }


def client_cost(profile: BlockProfile, front: int, back: int) -> ClientCost:
    """Cost of the cut that keeps ``front`` blocks before and ``back`` after the server middle.

    Parameters
    ----------
    profile : BlockProfile
        From :func:`profile_model`.
    front, back : int
        Cut depths, ``1 <= front``, ``0 <= back``, ``front + back < n_blocks``.

    Returns
    -------
    ClientCost
    """
    n = profile.n_blocks
    if front < 1 or back < 0 or front + back >= n:
        raise ValueError(
            f"cut {front}:{back} is invalid: expected front >= 1, back >= 0 and "
            f"front + back < {n} (the model's blocks), so that the server middle is non-empty"
        )
    client = [*range(front), *range(n - back, n), n]  # n = the head
    a1 = profile.outputs[front - 1]
    a2 = profile.outputs[n - back - 1]
    b = profile.bytes_per_element
    stored = profile.input_numel + sum(profile.stored[i] for i in client) + a2
    return ClientCost(
        params=sum(profile.params[i] for i in client),
        flops=6 * sum(profile.macs[i] for i in client),
        bytes_sent=b * (a1 + a2),
        bytes_received=b * (a2 + a1),
        activation_bytes=b * stored,
    )
