"""Fit checkpoint tensors to the model they belong to (no file reading here).

:func:`fit_state_dict` maps the tensors onto the model's state_dict: ``module.``
(DataParallel/DDP) and ``_orig_mod.`` (torch.compile) prefixes are removed; Flower's unnamed
arrays are taken by position with every shape checked; PFLlib's ``BaseHeadSplit`` keys
(``base.<body>``, ``head.<classifier>``) are mapped onto a plain model; dtypes are cast to the
model's (a float-averaged ``num_batches_tracked`` becomes an integer again); missing buffers
can be filled from a reference (FL-bench's ``buffers: local``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from empirical.formats import CheckpointError, RawCheckpoint


class StateDictMismatchError(CheckpointError):
    """The state_dict does not fit the architecture; missing/unexpected keys are named."""


STRIP_PREFIXES: tuple[str, ...] = ("module.", "_orig_mod.")
COUNTER_NAMES: tuple[str, ...] = ("num_batches_tracked",)
"""Last key components of integer counters: never weights, never in a metric."""


def is_counter(key: str) -> bool:
    """Whether ``key`` names a counter buffer (``bn.num_batches_tracked``), by name."""
    return key.rsplit(".", 1)[-1] in COUNTER_NAMES


def normalize_keys(state_dict: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Strip ``module.`` (DataParallel/DDP) and ``_orig_mod.`` (torch.compile) prefixes.

    Parameters
    ----------
    state_dict : mapping str -> Tensor

    Returns
    -------
    dict str -> Tensor
        Same tensors; every key with those leading prefixes (repeated, any order) removed.
    """
    out: dict[str, torch.Tensor] = {}
    for key, value in state_dict.items():
        k = key
        while k.startswith(STRIP_PREFIXES):
            k = k.split(".", 1)[1]
        if k in out:
            raise CheckpointError(f"key {key!r} collides with another key after normalization")
        out[k] = value
    return out


def _by_position(
    expected: Mapping[str, torch.Tensor], arrays: Mapping[str, torch.Tensor], source: str
) -> dict[str, torch.Tensor]:
    keys, values = list(expected), list(arrays.values())
    for i, (key, value) in enumerate(zip(keys, values, strict=False)):
        if tuple(value.shape) != tuple(expected[key].shape):
            raise StateDictMismatchError(
                f"{source}: array arr_{i} has shape {tuple(value.shape)} but position {i} of the "
                f"model's state_dict is {key!r} with shape {tuple(expected[key].shape)}; expected "
                "the arrays in state_dict order (Flower: [v for _, v in state_dict().items()])"
            )
    if len(values) != len(keys):
        raise StateDictMismatchError(
            f"{source}: holds {len(values)} arrays but the model's state_dict has {len(keys)} "
            f"entries; expected one array per entry, in state_dict order"
        )
    return dict(zip(keys, values, strict=True))


def _base_head(expected: Mapping[str, Any], state: dict[str, torch.Tensor]) -> dict[str, Any]:
    """Map PFLlib ``BaseHeadSplit`` keys (``base.X``, ``head.Y``) onto a plain model."""
    if any(k in expected for k in state) or not all(
        k.startswith(("base.", "head.")) for k in state
    ):
        return state
    body = {k[len("base.") :]: v for k, v in state.items() if k.startswith("base.")}
    rest = [k for k in expected if k not in body]
    head = {k[len("head.") :]: v for k, v in state.items() if k.startswith("head.")}
    prefixes = {k.rsplit(".", 1)[0] for k in rest if "." in k}
    for prefix in sorted(prefixes):
        mapped = {f"{prefix}.{k}": v for k, v in head.items()}
        if set(mapped) == set(rest):
            return {**body, **mapped}
    return state


@dataclass(frozen=True)
class FitReport:
    """What :func:`fit_state_dict` did beyond copying: filled and cast keys."""

    filled: list[str] = field(default_factory=list)
    cast: list[str] = field(default_factory=list)


def fit_state_dict(
    model: nn.Module,
    raw: RawCheckpoint | Mapping[str, torch.Tensor],
    *,
    source: str,
    strict: bool = True,
    fill_from: Mapping[str, torch.Tensor] | None = None,
) -> tuple[dict[str, torch.Tensor], FitReport]:
    """Map checkpoint tensors onto ``model``'s state_dict and check them.

    Parameters
    ----------
    model : nn.Module
    raw : RawCheckpoint or mapping str -> Tensor
    source : str
        The checkpoint, for messages.
    strict : bool
        Require every key of the model; with False, missing keys keep the model's values.
    fill_from : mapping str -> Tensor, optional
        Missing *buffers* (never parameters) are taken from here (FL-bench ``buffers: local``
        files lack them on one side); each is listed in :attr:`FitReport.filled`.

    Returns
    -------
    (dict str -> Tensor, FitReport)
        The state to load (model's key order, counters cast to the model's dtype).

    Raises
    ------
    StateDictMismatchError
        Names the missing, unexpected and mis-shaped keys.
    """
    expected = model.state_dict()
    if isinstance(raw, RawCheckpoint) and raw.positional:
        state = _by_position(expected, raw.tensors, source)
    else:
        tensors = raw.tensors if isinstance(raw, RawCheckpoint) else raw
        state = _base_head(expected, normalize_keys(tensors))
    buffers = {name for name, _ in model.named_buffers()}
    filled: list[str] = []
    if fill_from is not None:
        for key in expected:
            if key not in state and key in buffers and key in fill_from:
                state[key] = fill_from[key]
                filled.append(key)
    missing = [k for k in expected if k not in state]
    unexpected = [k for k in state if k not in expected]
    shapes = [
        f"{k} {tuple(state[k].shape)} vs model {tuple(v.shape)}"
        for k, v in expected.items()
        if k in state and tuple(state[k].shape) != tuple(v.shape)
    ]
    problems = []
    if strict and missing:
        hint = (
            " (FL-bench 'buffers: local' files lack the buffers: --fill-buffers / "
            "fill_buffers=True takes them from the other checkpoint)"
        )
        only_buffers = all(k in buffers for k in missing)
        problems.append(
            f"missing keys ({len(missing)}): {', '.join(missing[:10])}"
            + (hint if only_buffers and fill_from is None else "")
        )
    if strict and unexpected:
        problems.append(f"unexpected keys ({len(unexpected)}): {', '.join(unexpected[:10])}")
    if shapes:
        problems.append(f"shape mismatches ({len(shapes)}): {'; '.join(shapes[:10])}")
    if problems:
        raise StateDictMismatchError(
            f"{source} does not fit the model architecture: " + " | ".join(problems)
        )
    cast = [k for k in state if k in expected and state[k].dtype != expected[k].dtype]
    out = {
        k: (state[k].to(expected[k].dtype) if k in cast else state[k])
        for k in expected
        if k in state
    }
    return out, FitReport(filled, cast)


__all__ = [
    "COUNTER_NAMES",
    "FitReport",
    "StateDictMismatchError",
    "fit_state_dict",
    "is_counter",
    "normalize_keys",
]
