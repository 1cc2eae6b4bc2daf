"""Checkpoint file formats, recognized by their content (never by the file name's extension).

- ``torch.save`` files (zip or legacy) and plain pickles: read with ``weights_only=True``, or,
  when they hold other objects (a whole ``torch.save(model)``, an FL-bench client package with
  its evaluation objects), with the restricted unpickler of :mod:`empirical._unpickle`, which
  imports nothing and runs nothing.
- safetensors (any name, e.g. ``.st``).
- NumPy ``.npz``: named arrays (``np.savez(path, **state_dict)``) or Flower's
  ``np.savez(path, *ndarrays)`` (``arr_0``, ``arr_1``, ... in state_dict order, mapped onto the
  model by position later, see :func:`empirical.checkpoints.fit_state_dict`).
"""

from __future__ import annotations

import re
import struct
import warnings
import zipfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from empirical._unpickle import is_module_tree, module_tree_state_dict, restricted_load


class CheckpointError(ValueError):
    """A checkpoint cannot be used; the message names the file and the reason."""


class CorruptCheckpointError(CheckpointError):
    """The file is not a readable PyTorch, safetensors or NumPy checkpoint."""


class UnsafeCheckpointError(CheckpointError):
    """Reading the file would run code (and it holds no state_dict that can be read safely)."""


NESTED_KEYS: tuple[str, ...] = (
    "state_dict", "model_state_dict", "model", "net", "network", "model_state", "module",
    "params", "weights", "ema_state_dict", "student", "public_model_params", "model_params",
    "global_model",
)  # fmt: skip
"""Keys under which training code commonly nests the state_dict, tried in this order."""

FLBENCH_KEYS = ("regular_model_params", "personal_model_params")
"""An FL-bench client ``package()``: the two halves of the client's state_dict."""

_POSITIONAL = re.compile(r"arr_(\d+)")


@dataclass(frozen=True)
class RawCheckpoint:
    """Tensors read from a file, before they are fitted to a model.

    Attributes
    ----------
    tensors : dict str -> Tensor
        Named tensors (for ``positional``: ``arr_0``, ``arr_1``, ... in file order).
    positional : bool
        Names carry no meaning (Flower's ``np.savez(path, *ndarrays)``): map by position.
    format : str
        ``torch``, ``torch-whole-model``, ``safetensors``, ``npz`` or ``pickle``.
    ignored : list of str
        Classes/functions that were not imported (placeholders), for messages.
    """

    tensors: dict[str, torch.Tensor]
    positional: bool = False
    format: str = "torch"
    ignored: list[str] = field(default_factory=list)


def sniff(path: Path) -> str:
    """The format of ``path`` from its first bytes.

    Returns
    -------
    str
        ``zip-torch``, ``torchscript``, ``npz``, ``npy``, ``safetensors`` or ``pickle``
        (anything else: a legacy ``torch.save`` file, a plain pickle or an unreadable file).
    """
    with path.open("rb") as f:
        head = f.read(9)
    size = path.stat().st_size
    if head[:4] in (b"PK\x03\x04", b"PK\x05\x06") and zipfile.is_zipfile(path):
        try:
            with zipfile.ZipFile(path) as zf:
                names = zf.namelist()
        except (zipfile.BadZipFile, OSError):
            return "pickle"
        if any(n.endswith("constants.pkl") for n in names):
            return "torchscript"
        if any(n.endswith("data.pkl") for n in names):
            return "zip-torch"
        if names and all(n.endswith(".npy") for n in names):
            return "npz"
        return "zip-other"
    if head[:6] == b"\x93NUMPY":
        return "npy"
    if len(head) == 9:
        (n_header,) = struct.unpack("<Q", head[:8])
        if 2 <= n_header <= size - 8 and head[8:9] == b"{":
            return "safetensors"
    return "pickle"


def _read_safetensors(path: Path) -> RawCheckpoint:
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    try:
        return RawCheckpoint(load_file(str(path), device="cpu"), format="safetensors")
    except (SafetensorError, OSError, ValueError) as err:
        raise CorruptCheckpointError(f"{path}: not a readable safetensors file ({err})") from None


def _read_npz(path: Path) -> RawCheckpoint:
    try:
        with np.load(path, allow_pickle=False) as z:
            arrays = {k: z[k] for k in z.files}
    except ValueError as err:
        raise CheckpointError(
            f"{path}: the .npz holds pickled Python objects ({err}); expected numeric arrays"
        ) from None
    except (OSError, zipfile.BadZipFile, EOFError) as err:
        raise CorruptCheckpointError(f"{path}: not a readable .npz file ({err})") from None
    bad = [k for k, a in arrays.items() if a.dtype.kind not in "biuf"]
    if bad:
        raise CheckpointError(
            f"{path}: array {bad[0]!r} has dtype {arrays[bad[0]].dtype}; expected numeric arrays"
        )
    indexed = [_POSITIONAL.fullmatch(k) for k in arrays]
    positional = bool(arrays) and all(indexed)
    if positional:
        order = sorted(int(m.group(1)) for m in indexed if m)
        if order != list(range(len(order))):
            raise CheckpointError(f"{path}: arrays arr_* are not numbered 0..{len(order) - 1}")
        names = [f"arr_{i}" for i in order]
    else:
        names = list(arrays)
    # np.require keeps 0-d arrays 0-d (a BatchNorm counter has shape ()); ascontiguousarray
    # would make them (1,), which no longer fits the model.
    tensors = {k: torch.from_numpy(np.require(arrays[k], requirements=("C", "W"))) for k in names}
    return RawCheckpoint(tensors, positional=positional, format="npz")


def _read_pickle(path: Path, trust: bool) -> tuple[Any, list[str], list[str]]:
    """The unpickled object, the placeholder names and the calls that were not made."""
    if trust:
        try:
            return torch.load(path, map_location="cpu", weights_only=False), [], []
        except Exception as err:  # noqa: BLE001 (torch raises many types on bad bytes)
            raise CorruptCheckpointError(
                f"{path}: not a readable PyTorch checkpoint ({err})"
            ) from None
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # protocol notes about plain pickles
            return torch.load(path, map_location="cpu", weights_only=True), [], []
    except Exception as first:  # noqa: BLE001 (weights-only refusals and corrupt files)
        record: list[str] = []
        calls: list[str] = []
        try:
            with path.open("rb") as f:
                return restricted_load(f, record, calls), record, calls
        except Exception:  # noqa: BLE001
            if calls:
                raise UnsafeCheckpointError(_unsafe(path, calls)) from None
            last = str(first).strip().splitlines()[-1] if str(first).strip() else repr(first)
            raise CorruptCheckpointError(
                f"{path}: not a readable PyTorch checkpoint ({type(first).__name__}: {last}); "
                "expected a file written by torch.save, safetensors or numpy.savez"
            ) from None


def _unsafe(path: Path, calls: list[str]) -> str:
    names = ", ".join(sorted(set(calls))[:5])
    return (
        f"{path}: refusing to load: its pickle would call {names}, which would run code, and it "
        "holds no state_dict that can be read without that (nothing was run). Re-save the "
        "state_dict alone (torch.save(model.state_dict(), path)), or pass --trust-checkpoint "
        "(trust=True), which runs the file's code: only for files whose origin you trust"
    )


def _all_tensors(obj: Any) -> bool:
    return (
        isinstance(obj, Mapping)
        and bool(obj)
        and all(isinstance(v, torch.Tensor) for v in obj.values())
    )


def find_state_dict(obj: Any, where: str, state_key: str | None = None) -> dict[str, torch.Tensor]:
    """Locate the state_dict inside an unpickled object.

    Parameters
    ----------
    obj : object
        A mapping of tensors; a dict nesting one (:data:`NESTED_KEYS`, or ``state_key``); an
        FL-bench client package (``regular_model_params`` + ``personal_model_params``, merged);
        an ``nn.Module`` or a pickled module tree (read without importing it).
    where : str
        The file, for messages.
    state_key : str, optional
        Key of the nested state_dict (``a/b`` for deeper nesting); overrides the search.

    Returns
    -------
    dict str -> Tensor
    """
    if state_key is not None:
        for key in state_key.split("/"):
            if not isinstance(obj, Mapping) or key not in obj:
                keys = (
                    ", ".join(repr(k) for k in list(obj)[:12]) if isinstance(obj, Mapping) else ""
                )
                raise CheckpointError(
                    f"--state-key {state_key!r}: {where} has no key {key!r}"
                    + (f"; keys there are {keys}" if keys else "")
                )
            obj, where = obj[key], f"{where}[{key!r}]"
        return find_state_dict(obj, where)
    if isinstance(obj, nn.Module):
        return dict(obj.state_dict())
    if is_module_tree(obj):
        try:
            return module_tree_state_dict(obj, lambda msg: f"{where}: {msg}")
        except ValueError as err:
            raise CheckpointError(str(err)) from None
    if not isinstance(obj, Mapping):
        raise CheckpointError(
            f"{where}: holds a {type(obj).__name__}, expected a state_dict (mapping name -> "
            "tensor), a dict nesting one, or a pickled nn.Module"
        )
    if _all_tensors(obj):
        return {str(k): v for k, v in obj.items()}
    if all(k in obj for k in FLBENCH_KEYS):
        merged: dict[str, torch.Tensor] = {}
        for key in FLBENCH_KEYS:
            part = obj[key]
            if part and not _all_tensors(part):
                raise CheckpointError(f"{where}[{key!r}] is not a mapping of tensors")
            merged.update({str(k): v for k, v in dict(part or {}).items()})
        if merged:
            return merged
    for key in NESTED_KEYS:
        if key in obj:
            try:
                return find_state_dict(obj[key], f"{where}[{key!r}]")
            except CheckpointError:
                continue
    keys = ", ".join(repr(k) for k in list(obj)[:12])
    raise CheckpointError(
        f"{where}: no state_dict found; top-level keys are {keys}; expected a mapping of "
        f"tensors, possibly nested under one of {', '.join(NESTED_KEYS)} (or pick one with "
        "--state-key KEY)"
    )


def read_checkpoint(
    path: Path, *, trust: bool = False, state_key: str | None = None
) -> RawCheckpoint:
    """Read the tensors of a checkpoint file of any supported format (see the module doc)."""
    kind = sniff(path)
    if kind == "safetensors":
        return _read_safetensors(path)
    if kind == "npz":
        return _read_npz(path)
    if kind == "npy":
        raise CheckpointError(
            f"{path}: a single .npy array is not a checkpoint; expected a state_dict "
            "(torch.save, safetensors) or a .npz of the model's arrays"
        )
    if kind == "torchscript":
        raise CheckpointError(
            f"{path}: a TorchScript archive (torch.jit.save); load it with torch.jit.load, save "
            "its state_dict() and pass that file"
        )
    if kind == "zip-other":
        raise CorruptCheckpointError(
            f"{path}: a zip archive that is neither a torch.save file nor a .npz"
        )
    obj, ignored, calls = _read_pickle(path, trust)
    try:
        tensors = find_state_dict(obj, str(path), state_key)
    except CheckpointError as err:
        if calls:
            reason = str(err).removeprefix(f"{path}: ")
            raise UnsafeCheckpointError(_unsafe(path, calls) + f" ({reason})") from None
        raise
    whole = is_module_tree(obj) or isinstance(obj, nn.Module)
    return RawCheckpoint(tensors, format="torch-whole-model" if whole else "torch", ignored=ignored)


__all__ = [
    "CheckpointError",
    "CorruptCheckpointError",
    "NESTED_KEYS",
    "RawCheckpoint",
    "UnsafeCheckpointError",
    "find_state_dict",
    "read_checkpoint",
    "sniff",
]
