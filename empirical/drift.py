"""Weight drift of a fine-tuned model from the global model, per layer and per named part."""

from __future__ import annotations

import math
from collections.abc import Collection, Mapping, Sequence

import torch
from torch import nn

StateLike = Mapping[str, torch.Tensor] | nn.Module


COUNTER_NAMES = ("num_batches_tracked",)
"""Last key components of counters: identified by name (their dtype varies), never compared."""

STAT_NAMES = ("running_mean", "running_var")
"""Buffer names recognized when only a mapping (no module) tells what is a buffer."""


def _state(state: StateLike) -> Mapping[str, torch.Tensor]:
    return state.state_dict() if isinstance(state, nn.Module) else state


def _comparable(ref: Mapping[str, torch.Tensor], oth: Mapping[str, torch.Tensor]) -> list[str]:
    """Keys that are weights: not counters (by name), floating on at least one side."""
    keys = [k for k in ref if k.rsplit(".", 1)[-1] not in COUNTER_NAMES]
    only = sorted({k for k in set(ref) ^ set(oth) if k.rsplit(".", 1)[-1] not in COUNTER_NAMES})
    if only:
        raise ValueError(f"weights differ in keys: {', '.join(only[:10])}")
    for k in keys:
        if tuple(ref[k].shape) != tuple(oth[k].shape):
            raise ValueError(
                f"weight {k!r} has shape {tuple(oth[k].shape)}, expected {tuple(ref[k].shape)}"
            )
    return [k for k in keys if ref[k].is_floating_point() or oth[k].is_floating_point()]


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
    *,
    buffers: Collection[str] | None = None,
) -> dict[str, dict[str, float]]:
    r"""Distance between two sets of weights, per layer and per named part.

    For a group G of tensors (the entries of the state_dict whose key starts with the group's
    prefix, cast to float64 on both sides; counters such as ``num_batches_tracked`` never
    enter, whatever their dtype):

    .. math::
        \|\Delta\theta_G\|_2, \quad \frac{\|\Delta\theta_G\|_2}{\|\theta_{G}^{ref}\|_2},
        \quad 1 - \frac{\langle \theta_G^{ref}, \theta_G \rangle}{\|\theta_G^{ref}\|\|\theta_G\|}

    (docs/theory.md Sec. 5-6; parts as in [FLEXP]: client-front, server-middle, client-back,
    head). Parameters and buffers (BatchNorm running statistics) form separate groups.

    Parameters
    ----------
    reference : mapping str -> Tensor or nn.Module
        Global weights.
    other : mapping str -> Tensor or nn.Module
        Fine-tuned weights with the same keys and shapes.
    parts : mapping str -> sequence of str, optional
        Part name -> parameter-name prefixes; each part is reported as ``part:<name>``.
    buffers : collection of str, optional
        Keys that are buffers; default those of ``reference`` if it is a module, else keys
        ending in ``running_mean`` / ``running_var``.

    Returns
    -------
    dict str -> dict str -> float
        Group -> {``weight_l2``, ``weight_relative_l2``, ``weight_cosine_distance``, ``n``
        (number of scalars), ``kind`` (0 parameter, 1 buffer)}. Parameter groups are named by
        layer (key without its last component, e.g. ``features.0``), ``part:<name>`` and
        ``all``; buffer groups the same with `` [buffer]`` appended. Groups follow the order of
        ``reference``'s keys. Zero reference: relative is 0 if both are zero else inf; cosine
        distance is 0 if both are zero, 1 if one is.
    """
    if buffers is None:
        if isinstance(reference, nn.Module):
            buffers = {name for name, _ in reference.named_buffers()}
        else:
            buffers = {k for k in _state(reference) if k.rsplit(".", 1)[-1] in STAT_NAMES}
    ref_sd, oth_sd = _state(reference), _state(other)
    keys = _comparable(ref_sd, oth_sd)
    ref = {k: ref_sd[k].detach().to("cpu", torch.float64) for k in keys}
    oth = {k: oth_sd[k].detach().to("cpu", torch.float64) for k in keys}
    out: dict[str, dict[str, float]] = {}
    for kind, suffix in ((0, ""), (1, " [buffer]")):
        chosen = [k for k in keys if (k in buffers) == bool(kind)]
        if not chosen:
            continue
        groups: dict[str, list[str]] = {}
        for k in chosen:
            groups.setdefault(k.rsplit(".", 1)[0] if "." in k else k, []).append(k)
        for name, prefixes in (parts or {}).items():
            members = [k for k in chosen if any(k.startswith(p) for p in prefixes)]
            if not members and kind == 0 and not any(k.startswith(tuple(prefixes)) for k in keys):
                raise ValueError(f"part {name!r} with prefixes {list(prefixes)} matches no weight")
            if members:
                groups[f"part:{name}"] = members
        groups["all"] = chosen
        for g, members in groups.items():
            out[g + suffix] = {
                **_stats([(ref[k], oth[k]) for k in members]),
                "kind": float(kind),
            }
    return out


__all__ = ["weight_drift"]
