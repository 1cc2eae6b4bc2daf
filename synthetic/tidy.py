"""The tidy result table, built once from arrays (columnar), in the order of the configurations.

Each batch contributes, per configuration, one block of rows (client, method, metric) with its
values and divergence flags; :class:`TidyBuilder` keeps those arrays and assembles the frame
once at the end: configuration fields are repeated per block, and text columns (method,
metric, covariate, ...) are built by indexing a small array of distinct strings.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd
from numpy.typing import NDArray

from synthetic.batch import BatchResult
from synthetic.config import SimConfig, field_names


def _text(values: Sequence[str], codes: NDArray[np.intp]) -> Any:
    """A string column: the distinct ``values`` indexed by ``codes`` (pandas' own str dtype)."""
    return pd.array(list(values), dtype="str").take(codes.astype(np.int32))


class TidyBuilder:
    """Collect batch results and build the tidy frame once.

    The frame has one row per (configuration, client, method, metric), configurations in the
    order of the ``configs`` given to :meth:`frame`. Columns: every configuration field
    (``client`` holds the fine-tuning client), ``method``, ``metric``, ``value``, ``diverged``.
    """

    def __init__(self) -> None:
        self._names: dict[str, int] = {}  # method and metric names -> codes
        self._blocks: dict[int, tuple[int, int]] = {}  # config index -> (batch, row in batch)
        self._batches: list[dict[str, NDArray[Any]]] = []

    def _code(self, name: str) -> int:
        return self._names.setdefault(name, len(self._names))

    def add(self, indices: Sequence[int], result: BatchResult) -> None:
        """Add the result of the configurations ``indices`` (one batch, in batch order)."""
        methods = list(result.values)
        names = [list(result.values[m]) for m in methods]
        per_client = sum(len(n) for n in names)
        method_codes = np.array([self._code(m) for m, n in zip(methods, names, strict=True)
                                 for _ in n], dtype=np.intp)  # fmt: skip
        metric_codes = np.array([self._code(k) for n in names for k in n], dtype=np.intp)
        values = np.concatenate(
            [np.stack([result.values[m][k] for k in n], axis=-1)
             for m, n in zip(methods, names, strict=True)], axis=-1,
        )  # fmt: skip
        diverged = np.concatenate(
            [np.repeat(result.diverged[m][..., None], len(n), axis=-1)
             for m, n in zip(methods, names, strict=True)], axis=-1,
        )  # fmt: skip
        n_cli = len(result.clients)
        self._batches.append(
            {
                "client": np.repeat(result.clients, per_client),
                "method": np.tile(method_codes, n_cli),
                "metric": np.tile(metric_codes, n_cli),
                "value": values.reshape(len(indices), -1),
                "diverged": diverged.reshape(len(indices), -1),
            }
        )
        for row, index in enumerate(indices):
            self._blocks[int(index)] = (len(self._batches) - 1, row)

    def frame(self, configs: Sequence[SimConfig]) -> pd.DataFrame:
        """The tidy frame of every configuration added, in the order of ``configs``."""
        where = [self._blocks[i] for i in range(len(configs))]
        blocks = [self._batches[b] for b, _ in where]
        counts = np.array([len(block["client"]) for block in blocks])
        columns: dict[str, Any] = {}
        for f in field_names():
            if f == "client":
                continue
            vals = [getattr(c, f) for c in configs]
            if isinstance(vals[0], str):
                distinct = list(dict.fromkeys(vals))
                index = {v: i for i, v in enumerate(distinct)}
                codes = np.array([index[v] for v in vals], dtype=np.intp)
                columns[f] = _text(distinct, np.repeat(codes, counts))
            else:
                arr = np.array(vals, dtype=object if None in vals else None)
                if arr.dtype != object and np.all(arr == arr[0]):  # constant: fill, no repeat
                    columns[f] = np.full(int(counts.sum()), arr[0], dtype=arr.dtype)
                else:
                    columns[f] = np.repeat(arr, counts)
        columns["client"] = np.concatenate([block["client"] for block in blocks])
        names = list(self._names)
        for key in ("method", "metric"):
            columns[key] = _text(names, np.concatenate([block[key] for block in blocks]))
        columns["value"] = np.concatenate([self._batches[b]["value"][r] for b, r in where])
        columns["diverged"] = np.concatenate([self._batches[b]["diverged"][r] for b, r in where])
        return pd.DataFrame(columns)


def batch_frame(configs: Sequence[SimConfig], result: BatchResult) -> pd.DataFrame:
    """Tidy rows of one batch: one per (configuration, client, method, metric), in that order."""
    builder = TidyBuilder()
    builder.add(range(len(configs)), result)
    return builder.frame(configs)


__all__ = ["TidyBuilder", "batch_frame"]
