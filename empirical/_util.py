"""Private helpers shared by the empirical metrics: array conversion and pairing checks."""

from __future__ import annotations

import numpy as np
import torch


def as_2d_tensor(x: np.ndarray | torch.Tensor, name: str) -> torch.Tensor:
    """Return ``x`` as a 2-D floating CPU tensor without copying when possible.

    Parameters
    ----------
    x : ndarray or Tensor of shape (n, d)
        Features, one row per sample.
    name : str
        Name of the argument, used in error messages.

    Returns
    -------
    Tensor of shape (n, d)
        float32 if ``x`` is float32 (or lower precision), float64 otherwise.
    """
    if isinstance(x, np.ndarray):
        t = torch.from_numpy(np.ascontiguousarray(x))
    elif isinstance(x, torch.Tensor):
        t = x.detach().to("cpu")
    else:
        raise TypeError(f"{name} must be a numpy array or a torch tensor, got {type(x).__name__}")
    if t.ndim != 2:
        raise ValueError(f"{name} must have shape (n, d), got shape {tuple(t.shape)}")
    if not (t.is_floating_point()):
        t = t.to(torch.float64)
    elif t.dtype in (torch.float16, torch.bfloat16):
        t = t.to(torch.float32)
    return t


def check_pair(
    x: np.ndarray | torch.Tensor,
    y: np.ndarray | torch.Tensor,
    *,
    same_dim: bool = False,
    finite: bool = True,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Convert a pair of feature matrices and check that their rows are paired.

    Parameters
    ----------
    x, y : ndarray or Tensor of shape (n, d1) and (n, d2)
        Features of the same n samples under two models.
    same_dim : bool
        Also require ``d1 == d2`` (paired metrics such as delta_l2).
    finite : bool
        Check that every value is finite (callers that check their sums instead pass False).

    Returns
    -------
    (Tensor, Tensor)
        Both 2-D (and finite when ``finite``).
    """
    tx, ty = as_2d_tensor(x, "X"), as_2d_tensor(y, "Y")
    if tx.shape[0] != ty.shape[0]:
        raise ValueError(
            f"X and Y must have the same number of rows (samples), got {tx.shape[0]} and "
            f"{ty.shape[0]}"
        )
    if same_dim and tx.shape[1] != ty.shape[1]:
        raise ValueError(
            f"X and Y must have the same number of columns, got {tx.shape[1]} and {ty.shape[1]}"
        )
    for name, t in (("X", tx), ("Y", ty)) if finite else ():
        if not bool(torch.isfinite(t).all()):
            raise ValueError(f"{name} contains NaN or Inf values; metrics need finite features")
    return tx, ty
