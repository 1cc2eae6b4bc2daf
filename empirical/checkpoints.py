"""Load checkpoints saved by any FL code base and rebuild the model they belong to.

PyTorch files (.pt/.pth/.bin, zip or legacy format) are read with ``weights_only=True``; a file
that needs arbitrary unpickling is refused (:class:`UnsafeCheckpointError`) unless the caller
opts in with ``trust=True``. safetensors files never run code. A state_dict may be nested under a
common key (``state_dict``, ``model``, ``model_state_dict``, ``net``, ...); ``module.``
(DataParallel/DDP) and ``_orig_mod.`` (torch.compile) prefixes are removed.
"""

from __future__ import annotations

import io
import pickletools
import zipfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from torch import nn

from empirical.model_spec import ModelSpec, resolve_model_spec


class CheckpointError(ValueError):
    """A checkpoint cannot be used; the message names the file and the reason."""


class CorruptCheckpointError(CheckpointError):
    """The file is not a readable PyTorch or safetensors checkpoint."""


class UnsafeCheckpointError(CheckpointError):
    """Loading the file would run arbitrary code (pickled objects beyond tensors)."""


class StateDictMismatchError(CheckpointError):
    """The state_dict does not fit the architecture; missing/unexpected keys are named."""


NESTED_KEYS: tuple[str, ...] = (
    "state_dict", "model_state_dict", "model", "net", "network", "model_state", "module",
    "params", "weights", "ema_state_dict", "student",
)  # fmt: skip
"""Keys under which training code commonly nests the state_dict, tried in this order."""

STRIP_PREFIXES: tuple[str, ...] = ("module.", "_orig_mod.")


def _pickle_globals(path: Path) -> list[str] | None:
    """Globals a pickle would import, read with pickletools (nothing is executed).

    Returns None when the bytes are not a parseable pickle (a corrupt file).
    """
    data = path.read_bytes()
    if zipfile.is_zipfile(path):
        with zipfile.ZipFile(path) as zf:
            names = [n for n in zf.namelist() if n.endswith("data.pkl")]
            if not names:
                return None
            data = zf.read(names[0])
    found: list[str] = []
    strings: list[str] = []
    try:
        for op, arg, _ in pickletools.genops(io.BytesIO(data)):
            if isinstance(arg, str):
                strings.append(arg)
            if op.name == "GLOBAL" and isinstance(arg, str):
                found.append(arg.replace(" ", "."))
            elif op.name == "STACK_GLOBAL" and len(strings) >= 2:
                found.append(f"{strings[-2]}.{strings[-1]}")
            if op.name == "STOP":
                break
    except Exception:
        return None
    return found


def _torch_load(path: Path, trust: bool) -> Any:
    if trust:
        return torch.load(path, map_location="cpu", weights_only=False)
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # noqa: BLE001 (torch raises many types on bad bytes)
        names = _pickle_globals(path)
        safe = {"collections.OrderedDict", "torch._utils._rebuild_tensor_v2"}
        risky = sorted({g for g in names or [] if g not in safe and not g.startswith("torch.")})
        if names is None or not risky:
            raise CorruptCheckpointError(
                f"{path}: not a readable PyTorch checkpoint ({type(err).__name__}: "
                f"{str(err).splitlines()[-1] if str(err) else err!r}); expected a file written "
                "by torch.save or safetensors"
            ) from None
        raise UnsafeCheckpointError(
            f"{path}: refusing to load: the file holds pickled Python objects beyond tensors "
            f"({', '.join(risky[:5])}), and unpickling them can run arbitrary code. Re-save the "
            "state_dict alone (torch.save(model.state_dict(), path)) or, only if you trust the "
            "file's origin, pass trust=True / --trust-checkpoint"
        ) from None


def _find_state_dict(obj: Any, path: Path, where: str = "") -> dict[str, torch.Tensor]:
    if isinstance(obj, nn.Module):
        return dict(obj.state_dict())
    if isinstance(obj, Mapping):
        if obj and all(isinstance(v, torch.Tensor) for v in obj.values()):
            return {str(k): v for k, v in obj.items()}
        for key in NESTED_KEYS:
            if key in obj:
                try:
                    return _find_state_dict(obj[key], path, f"{where}[{key!r}]")
                except CheckpointError:
                    continue
        keys = ", ".join(repr(k) for k in list(obj)[:12])
        raise CheckpointError(
            f"{path}{where}: no state_dict found; top-level keys are {keys}; expected a mapping "
            f"of tensors, possibly nested under one of {', '.join(NESTED_KEYS)}"
        )
    raise CheckpointError(
        f"{path}{where}: holds a {type(obj).__name__}, expected a state_dict (mapping name -> "
        "tensor) or a dict nesting one"
    )


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


def load_state_dict(path: str | Path, *, trust: bool = False) -> dict[str, torch.Tensor]:
    """Read a state_dict from a PyTorch or safetensors checkpoint file.

    Parameters
    ----------
    path : str or Path
        ``.safetensors``, or a PyTorch file (``.pt``, ``.pth``, ``.bin``, any other name).
    trust : bool
        Allow arbitrary unpickling (``weights_only=False``). Only for files you trust.

    Returns
    -------
    dict str -> Tensor
        On CPU, keys normalized by :func:`normalize_keys`.

    Raises
    ------
    FileNotFoundError
        The file does not exist.
    CorruptCheckpointError, UnsafeCheckpointError, CheckpointError
        Unreadable file; a pickle that would run code (without ``trust``); no state_dict inside.
    """
    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"checkpoint {str(p)!r} does not exist or is not a file")
    if p.suffix == ".safetensors":
        from safetensors import SafetensorError
        from safetensors.torch import load_file

        try:
            return normalize_keys(load_file(str(p), device="cpu"))
        except (SafetensorError, OSError, ValueError) as err:
            raise CorruptCheckpointError(f"{p}: not a readable safetensors file ({err})") from None
    return normalize_keys(_find_state_dict(_torch_load(p, trust), p))


def check_state_dict(
    model: nn.Module, state_dict: Mapping[str, torch.Tensor], *, strict: bool = True, source: str
) -> None:
    """Raise :class:`StateDictMismatchError` naming missing, unexpected and mis-shaped keys.

    With ``strict=False`` only shape mismatches of shared keys are errors.
    """
    expected = model.state_dict()
    missing = [k for k in expected if k not in state_dict]
    unexpected = [k for k in state_dict if k not in expected]
    shapes = [
        f"{k} {tuple(state_dict[k].shape)} vs model {tuple(v.shape)}"
        for k, v in expected.items()
        if k in state_dict and tuple(state_dict[k].shape) != tuple(v.shape)
    ]
    problems = []
    if strict and missing:
        problems.append(f"missing keys ({len(missing)}): {', '.join(missing[:10])}")
    if strict and unexpected:
        problems.append(f"unexpected keys ({len(unexpected)}): {', '.join(unexpected[:10])}")
    if shapes:
        problems.append(f"shape mismatches ({len(shapes)}): {'; '.join(shapes[:10])}")
    if problems:
        raise StateDictMismatchError(
            f"{source} does not fit the model architecture: " + " | ".join(problems)
        )


def load_model(
    spec: str | ModelSpec,
    checkpoint: str | Path,
    *,
    model_kwargs: Mapping[str, Any] | None = None,
    trust: bool = False,
    strict: bool = True,
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
        Allow arbitrary unpickling of ``checkpoint``.
    strict : bool
        Require exactly the model's keys.

    Returns
    -------
    nn.Module
        The model with the checkpoint's weights, in eval mode, on CPU.
    """
    resolved = spec if isinstance(spec, ModelSpec) else resolve_model_spec(spec, model_kwargs)
    model = resolved.build()
    state = load_state_dict(checkpoint, trust=trust)
    check_state_dict(model, state, strict=strict, source=str(checkpoint))
    model.load_state_dict(state, strict=strict)
    return model.eval()


__all__ = [
    "CheckpointError",
    "CorruptCheckpointError",
    "StateDictMismatchError",
    "UnsafeCheckpointError",
    "check_state_dict",
    "load_model",
    "load_state_dict",
    "normalize_keys",
]
