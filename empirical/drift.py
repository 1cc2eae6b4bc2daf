"""Weight drift of a fine-tuned model from the global model, per layer and per named part."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import torch
from torch import nn

StateLike = Mapping[str, torch.Tensor] | nn.Module


def _floating(state: StateLike) -> dict[str, torch.Tensor]:
    sd = state.state_dict() if isinstance(state, nn.Module) else state
    return {k: v.detach().to("cpu", torch.float64) for k, v in sd.items() if v.is_floating_point()}


def _stats(pairs: Sequence[tuple[torch.Tensor, torch.Tensor]]) -> dict[str, float]:
    diff2 = sum(float(((a - b) ** 2).sum()) for a, b in pairs)
    ref2 = sum(float((a * a).sum()) for a, _ in pairs)
    oth2 = sum(float((b * b).sum()) for _, b in pairs)
    dot = sum(float((a * b).sum()) for a, b in pairs)
    n = sum(a.numel() for a, _ in pairs)
    rel = math.sqrt(diff2 / ref2) if ref2 > 0 else (0.0 if diff2 == 0 else math.inf)
    if ref2 > 0 and oth2 > 0:
        cos_dist = 1.0 - max(-1.0, min(1.0, dot / math.sqrt(ref2 * oth2)))
    else:
        cos_dist = 0.0 if (ref2 == 0 and oth2 == 0) else 1.0
    return {
        "weight_l2": math.sqrt(diff2),
        "weight_relative_l2": rel,
        "weight_cosine_distance": cos_dist,
        "n": float(n),
    }


def weight_drift(
    reference: StateLike,
    other: StateLike,
    parts: Mapping[str, Sequence[str]] | None = None,
) -> dict[str, dict[str, float]]:
    r"""Distance between two sets of weights, per layer and per named part.

    For a group G of tensors (all floating entries of the state_dict whose key starts with the
    group's prefix, buffers such as BatchNorm statistics included):

    .. math::
        \|\Delta\theta_G\|_2, \quad \frac{\|\Delta\theta_G\|_2}{\|\theta_{G}^{ref}\|_2},
        \quad 1 - \frac{\langle \theta_G^{ref}, \theta_G \rangle}{\|\theta_G^{ref}\|\|\theta_G\|}

    (THEORY.md Sec. 5-6; parts as in [FLEXP]: client-front, server-middle, client-back, head).

    Parameters
    ----------
    reference : mapping str -> Tensor or nn.Module
        Global weights.
    other : mapping str -> Tensor or nn.Module
        Fine-tuned weights with the same keys and shapes.
    parts : mapping str -> sequence of str, optional
        Part name -> parameter-name prefixes; each part is reported as ``part:<name>``.

    Returns
    -------
    dict str -> dict str -> float
        Group (layer = key without its last component, e.g. ``features.0``; ``part:<name>``;
        ``all``) -> {``weight_l2``, ``weight_relative_l2``, ``weight_cosine_distance``, ``n``
        (number of scalars)}. Zero reference: relative is 0 if both are zero else inf; cosine
        distance is 0 if both are zero, 1 if one is.
    """
    ref, oth = _floating(reference), _floating(other)
    if set(ref) != set(oth):
        only = sorted(set(ref) ^ set(oth))
        raise ValueError(f"weights differ in keys: {', '.join(only[:10])}")
    for k in ref:
        if ref[k].shape != oth[k].shape:
            raise ValueError(
                f"weight {k!r} has shape {tuple(oth[k].shape)}, expected {tuple(ref[k].shape)}"
            )
    groups: dict[str, list[str]] = {}
    for k in ref:
        groups.setdefault(k.rsplit(".", 1)[0] if "." in k else k, []).append(k)
    for name, prefixes in (parts or {}).items():
        keys = [k for k in ref if any(k.startswith(p) for p in prefixes)]
        if not keys:
            raise ValueError(f"part {name!r} with prefixes {list(prefixes)} matches no weight")
        groups[f"part:{name}"] = keys
    groups["all"] = list(ref)
    return {g: _stats([(ref[k], oth[k]) for k in keys]) for g, keys in groups.items()}


__all__ = ["weight_drift"]
