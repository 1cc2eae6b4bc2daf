"""Memory estimates of a simulation, checked before anything is allocated.

A request such as ``d=10**12`` or ``10**8`` seeds would otherwise fail with a MemoryError
after minutes of work. :func:`check_budget` estimates the bytes a run needs (the largest
vectorized batch plus the tidy result) from the configuration alone and refuses, with the
estimate, when it exceeds the memory available on this machine.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping, Sequence
from typing import Any

from synthetic._validation import ConfigError

_BYTES = 8  # float64
_ROW_BYTES = 400  # one tidy row in a DataFrame: ~35 columns of 8 bytes plus pandas overhead
_CONFIG_BYTES = 2_000  # one SimConfig or its dict in memory
_SIZE_FIELDS: tuple[str, ...] = ("d", "m", "C", "n", "n_soup", "n_mc", "fed_rounds")


def available_memory() -> int:
    """Bytes of memory available to a new allocation (MemAvailable, else free physical pages)."""
    try:
        with open("/proc/meminfo", encoding="ascii") as handle:
            for line in handle:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        return int(os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE"))
    except (OSError, ValueError, AttributeError):  # pragma: no cover - non-POSIX
        return 2**62


def config_bytes(values: Mapping[str, Any], n_methods: int) -> int:
    """Peak bytes of the arrays of one configuration inside a vectorized batch.

    Counts the dominant arrays: the fine-tuned features (P x k x d per method, a few live
    copies), the inputs and their factors (C x d x k), the per-client losses (P x C x d),
    finite samples (C x n x d), dense sample second moments (P x d x d, times the soup
    ingredients), the Monte-Carlo draws (C x n_mc x k) and FedAvg's participation masks
    (fed_rounds x C bytes).

    Parameters
    ----------
    values : mapping
        Configuration fields (the size fields may be the largest of a grid).
    n_methods : int

    Returns
    -------
    int
    """
    d, m, C = int(values["d"]), int(values["m"]), int(values["C"])
    k = m + C
    P = C if values.get("client") is None else 1
    n = values.get("n")
    floats = 8 * P * k * d + 2 * P * C * d * (k + 2) + C * d * (k + 2)
    floats += C * int(values.get("n_mc", 128)) * k
    if values.get("global_model") == "fedavg":  # participation masks, one byte per round and client
        floats += int(values.get("fed_rounds", 0)) * C // _BYTES + 1
    if n is not None:
        floats += 2 * C * int(n) * d + P * d * d * (1 + int(values.get("n_soup", 1)))
    floats = floats * max(1, min(n_methods, 2))  # one method's arrays live at a time, plus one
    return _BYTES * floats


def _largest(base: Mapping[str, Any], grid: Mapping[str, Sequence[Any]]) -> dict[str, Any]:
    values = dict(base)
    for key in _SIZE_FIELDS:
        if key in grid:
            numbers = [v for v in grid[key] if isinstance(v, (int, float))]
            if numbers:
                values[key] = max(numbers)
    return values


def _gb(n_bytes: float) -> str:
    return f"{n_bytes / 1e9:.3g} GB"


def check_budget(
    base: Mapping[str, Any],
    grid: Mapping[str, Sequence[Any]],
    seeds: int,
    *,
    n_methods: int,
    n_metrics: int,
    chunk_size: int,
    keep_rows: bool = True,
    available: int | None = None,
) -> int:
    """Refuse a simulation whose estimated memory exceeds what is available.

    Parameters
    ----------
    base : mapping
        Configuration fields (``SimConfig.to_dict()``).
    grid : mapping of field to values
    seeds : int
    n_methods, n_metrics : int
    chunk_size : int
        Configurations per vectorized batch.
    keep_rows : bool
        The whole tidy table is held in memory (``simulate``); a sweep streams it to disk and
        keeps only its configurations.
    available : int, optional
        Bytes available (default: :func:`available_memory`).

    Returns
    -------
    int
        The estimate in bytes.

    Raises
    ------
    ConfigError
        When the estimate exceeds the memory available; the message gives both and says what
        to reduce.
    """
    n_configs = math.prod(len(v) for v in grid.values()) * seeds
    values = _largest(base, grid)
    P = int(values["C"]) if values.get("client") is None else 1
    batch = min(chunk_size, n_configs) * config_bytes(values, n_methods)
    rows = n_configs * P * (n_methods + 1) * (n_metrics + 2)
    total = batch + n_configs * _CONFIG_BYTES + (rows * _ROW_BYTES if keep_rows else 0)
    limit = available_memory() if available is None else available
    if total > limit:
        raise ConfigError(
            f"the simulation needs about {_gb(total)} of memory ({n_configs:,} configuration(s), "
            f"d={values['d']}, C={values['C']}, n={values.get('n')}; a batch of "
            f"{min(chunk_size, n_configs):,} needs {_gb(batch)}) but about {_gb(limit)} is "
            "available: expected fewer --seeds or grid points, a smaller d, C or n, or a "
            "smaller --chunk-size (or `feddistort sweep`, which streams results to disk)"
        )
    return total
