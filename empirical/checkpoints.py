"""Load checkpoints saved by any FL code base and fit them to the model they belong to.

Reading never runs code (see :mod:`empirical.formats`): ``weights_only=True``, safetensors,
NumPy arrays, or a restricted unpickler for whole pickled models. ``trust=True`` switches to
plain ``torch.load(weights_only=False)``, which runs whatever code the file names.

Fitting the tensors to a model (key prefixes, Flower's positional arrays, PFLlib's
``base.``/``head.`` keys, dtypes, missing buffers) is :mod:`empirical.checkpoints_fit`.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from torch import nn

from empirical.checkpoints_fit import (
    COUNTER_NAMES,
    FitReport,
    StateDictMismatchError,
    _by_position,
    fit_state_dict,
    is_counter,
    normalize_keys,
)
from empirical.formats import (
    CheckpointError,
    CorruptCheckpointError,
    RawCheckpoint,
    UnsafeCheckpointError,
    read_checkpoint,
)
from empirical.model_spec import ModelSpec, resolve_model_spec


def load_raw(
    path: str | Path, *, trust: bool = False, state_key: str | None = None
) -> RawCheckpoint:
    """Read a checkpoint file (any supported format) without fitting it to a model."""
    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"checkpoint {str(p)!r} does not exist or is not a file")
    raw = read_checkpoint(p, trust=trust, state_key=state_key)
    if raw.positional:
        return raw
    return RawCheckpoint(normalize_keys(raw.tensors), False, raw.format, raw.ignored)


def load_state_dict(
    path: str | Path,
    *,
    trust: bool = False,
    state_key: str | None = None,
    model: nn.Module | None = None,
) -> dict[str, torch.Tensor]:
    """Read a state_dict from a checkpoint file.

    Parameters
    ----------
    path : str or Path
        A ``torch.save`` file (state_dict, nested dict, FL-bench package or whole model),
        safetensors or ``.npz``; the format is recognized by content, whatever the name.
    trust : bool
        Use ``torch.load(weights_only=False)``, which can run arbitrary code from the file.
    state_key : str, optional
        Key of the nested state_dict (``a/b`` for deeper nesting).
    model : nn.Module, optional
        Needed for unnamed arrays (Flower): they are mapped onto its state_dict by position.

    Returns
    -------
    dict str -> Tensor
        On CPU, keys normalized by :func:`normalize_keys`.

    Raises
    ------
    FileNotFoundError
        The file does not exist.
    CorruptCheckpointError, UnsafeCheckpointError, CheckpointError
        Unreadable file; a pickle that would run code and holds no readable state_dict; no
        state_dict inside.
    """
    raw = load_raw(path, trust=trust, state_key=state_key)
    if raw.positional:
        if model is None:
            raise CheckpointError(
                f"{path}: holds {len(raw.tensors)} unnamed arrays (arr_0, arr_1, ...: "
                "Flower's np.savez(path, *ndarrays)); pass the model to map them by position"
            )
        return _by_position(model.state_dict(), raw.tensors, str(path))
    return raw.tensors


def check_state_dict(
    model: nn.Module, state_dict: Mapping[str, torch.Tensor], *, strict: bool = True, source: str
) -> None:
    """Raise :class:`StateDictMismatchError` naming missing, unexpected and mis-shaped keys."""
    fit_state_dict(model, state_dict, source=source, strict=strict)


def load_model(
    spec: str | ModelSpec,
    checkpoint: str | Path,
    *,
    model_kwargs: Mapping[str, Any] | None = None,
    trust: bool = False,
    strict: bool = True,
    state_key: str | None = None,
) -> nn.Module:
    """Build the architecture from ``spec`` and load ``checkpoint`` into it.

    Parameters
    ----------
    spec : str or ModelSpec
        ``package.module:callable``, a registry name or a ``model.json`` path
        (see :func:`empirical.model_spec.resolve_model_spec`).
    checkpoint : str or Path
        Checkpoint file (see :func:`load_state_dict`).
    model_kwargs : mapping, optional
        Constructor keyword arguments (override those of ``spec``).
    trust : bool
        Use ``torch.load(weights_only=False)``: can run arbitrary code from the file.
    strict : bool
        Require exactly the model's keys.
    state_key : str, optional
        Key of the nested state_dict.

    Returns
    -------
    nn.Module
        The model with the checkpoint's weights, in eval mode, on CPU.
    """
    resolved = spec if isinstance(spec, ModelSpec) else resolve_model_spec(spec, model_kwargs)
    model = resolved.build()
    raw = load_raw(checkpoint, trust=trust, state_key=state_key)
    state, _ = fit_state_dict(model, raw, source=str(checkpoint), strict=strict)
    model.load_state_dict(state, strict=strict)
    return model.eval()


__all__ = [
    "COUNTER_NAMES",
    "CheckpointError",
    "CorruptCheckpointError",
    "FitReport",
    "StateDictMismatchError",
    "UnsafeCheckpointError",
    "check_state_dict",
    "fit_state_dict",
    "is_counter",
    "load_model",
    "load_raw",
    "load_state_dict",
    "normalize_keys",
]
