"""Client inputs: arrays from .npz/.npy/.pt files, tensors, Datasets or DataLoaders, in batches."""

from __future__ import annotations

import zipfile
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any, Union

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

Inputs = Union[torch.Tensor, np.ndarray, "Dataset[Any]", "DataLoader[Any]"]
"""Anything :func:`iter_batches` accepts."""


def _pick_x(obj: Any, source: str) -> Any:
    if isinstance(obj, Mapping):
        if "x" in obj:
            return obj["x"]
        if len(obj) == 1:
            return next(iter(obj.values()))
        raise ValueError(
            f"{source}: holds arrays {sorted(map(str, obj))}; expected one named 'x' or a single "
            "array"
        )
    if isinstance(obj, (tuple, list)) and obj and isinstance(obj[0], (torch.Tensor, np.ndarray)):
        return obj[0]
    return obj


def _is_npz(path: Path) -> bool:
    try:
        with zipfile.ZipFile(path) as zf:
            names = zf.namelist()
    except (zipfile.BadZipFile, OSError):
        return False
    return bool(names) and all(n.endswith(".npy") for n in names)


def load_inputs(path: str | Path) -> torch.Tensor:
    """Read a client's inputs from disk.

    Parameters
    ----------
    path : str or Path
        ``.npz`` (array ``x``, or its only array; ``y`` is ignored), ``.npy``, or a PyTorch file
        holding a tensor, a dict with ``x`` or an ``(x, y)`` tuple (read with
        ``weights_only=True``); recognized by content. Text and object arrays are refused.

    Returns
    -------
    Tensor of shape (n, ...)
        float32 (integer inputs are converted without scaling).
    """
    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"data file {str(p)!r} does not exist or is not a file")
    try:
        with p.open("rb") as f:
            head = f.read(6)
        if head[:4] == b"PK\x03\x04" and _is_npz(p):
            with np.load(p, allow_pickle=False) as z:
                x: Any = _pick_x({k: z[k] for k in z.files}, str(p))
        elif head == b"\x93NUMPY":
            x = np.load(p, allow_pickle=False)
        else:
            x = _pick_x(torch.load(p, map_location="cpu", weights_only=True), str(p))
    except ValueError as err:
        if str(p) in str(err):
            raise
        if "pickled" in str(err) or "allow_pickle" in str(err):
            raise ValueError(
                f"{p}: holds Python objects (an object array, pickled); expected a numeric array "
                "of inputs"
            ) from None
        raise ValueError(f"{p}: not a readable .npz/.npy/.pt data file ({err})") from None
    except Exception as err:  # noqa: BLE001 (pickle/zip/torch errors of corrupt files)
        raise ValueError(f"{p}: not a readable .npz/.npy/.pt data file ({err})") from None
    if isinstance(x, np.ndarray):
        if x.dtype.kind not in "biuf":
            raise ValueError(
                f"{p}: holds an array of dtype {x.dtype} (text or objects); expected a numeric "
                "array of inputs"
            )
        x = torch.from_numpy(np.ascontiguousarray(x))
    if not isinstance(x, torch.Tensor) or x.ndim < 1 or x.shape[0] == 0:
        raise ValueError(f"{p}: expected a non-empty array of inputs, got {type(x).__name__}")
    if x.is_complex():
        raise ValueError(f"{p}: holds complex values; expected a real numeric array of inputs")
    return x.to(torch.float32)


def _first(batch: Any) -> torch.Tensor:
    x = _pick_x(batch, "batch")
    if isinstance(x, np.ndarray):
        x = torch.from_numpy(x)
    if not isinstance(x, torch.Tensor):
        raise ValueError(f"a data batch is a {type(x).__name__}, expected a tensor or (x, y)")
    return x if x.is_floating_point() else x.to(torch.float32)


def iter_batches(data: Inputs, batch_size: int) -> Iterator[torch.Tensor]:
    """Yield input batches in a fixed order.

    Parameters
    ----------
    data : Tensor, ndarray, Dataset or DataLoader
        Arrays are sliced; a Dataset is wrapped in an unshuffled DataLoader; a DataLoader is used
        as it is (its own batch size; items ``x``, ``(x, y, ...)`` or ``{"x": ...}``).
    batch_size : int
        Rows per batch for arrays and Datasets, >= 1.

    Yields
    ------
    Tensor of shape (b, ...)
    """
    if batch_size < 1:
        raise ValueError(f"batch_size={batch_size} is invalid: expected an integer >= 1")
    if isinstance(data, np.ndarray):
        data = torch.from_numpy(data)
    if isinstance(data, torch.Tensor):
        for start in range(0, data.shape[0], batch_size):
            yield _first(data[start : start + batch_size])
        return
    loader = data if isinstance(data, DataLoader) else DataLoader(data, batch_size=batch_size)
    for batch in loader:
        yield _first(batch)


def num_samples(data: Inputs) -> int | None:
    """Number of samples when known without iterating (arrays, sized Datasets), else None."""
    if isinstance(data, (torch.Tensor, np.ndarray)):
        return int(data.shape[0])
    if isinstance(data, DataLoader):
        data = data.dataset
    try:
        return len(data)  # type: ignore[arg-type]
    except TypeError:
        return None


__all__ = ["Inputs", "iter_batches", "load_inputs", "num_samples"]
