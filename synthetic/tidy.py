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
        """The tidy frame of every configuration added, in the order of ``configs``.

        Each column is written once into its final block (one 2-D array per dtype, handed to
        pandas as is), so the frame costs one pass over its memory and no consolidation copy.
        """
        where = [self._blocks[i] for i in range(len(configs))]
        blocks = [self._batches[b] for b, _ in where]
        counts = np.array([len(block["client"]) for block in blocks])
        n_rows = int(counts.sum())
        per_row: list[NDArray[np.intp]] = []  # the configuration of each row, built on demand

        def rows_config() -> NDArray[np.intp]:
            if not per_row:
                per_row.append(np.repeat(np.arange(len(configs)), counts))
            return per_row[0]

        writers: list[tuple[str, Any, Any]] = []  # (name, numpy dtype or None, writer or array)
        for f in field_names():
            if f == "client":
                continue
            vals = [getattr(c, f) for c in configs]
            if isinstance(vals[0], str):
                distinct = list(dict.fromkeys(vals))
                index = {v: i for i, v in enumerate(distinct)}
                codes = np.array([index[v] for v in vals], dtype=np.intp)
                writers.append((f, None, _text(distinct, codes[rows_config()])))
                continue
            arr = np.array(vals, dtype=object if None in vals else None)
            if arr.dtype != object and np.all(arr == arr[0]):  # constant: fill, no index
                writers.append((f, arr.dtype, lambda out, v=arr[0]: out.fill(v)))
            else:
                writers.append(
                    (f, arr.dtype, lambda out, a=arr: np.take(a, rows_config(), out=out))
                )
        pieces = {key: [block[key] for block in blocks] for key in ("client", "method", "metric")}
        writers.append(("client", np.dtype(np.int64),
                        lambda out: np.concatenate(pieces["client"], out=out)))  # fmt: skip
        names = list(self._names)
        for key in ("method", "metric"):
            writers.append((key, None, _text(names, np.concatenate(pieces[key]))))
        values = [self._batches[b]["value"][r] for b, r in where]
        flags = [self._batches[b]["diverged"][r] for b, r in where]
        writers.append(("value", np.dtype(np.float64),
                        lambda out: np.concatenate(values, out=out)))  # fmt: skip
        writers.append(("diverged", np.dtype(np.bool_),
                        lambda out: np.concatenate(flags, out=out)))  # fmt: skip
        return _assemble(writers, n_rows)


def _assemble(writers: list[tuple[str, Any, Any]], n_rows: int) -> pd.DataFrame:
    """A DataFrame from its columns, one 2-D block per numpy dtype, written in place."""
    from pandas.api.internals import create_dataframe_from_blocks

    by_dtype: dict[Any, list[int]] = {}
    parts: list[tuple[Any, NDArray[np.intp]]] = []
    for position, (_, dtype, _) in enumerate(writers):
        if dtype is None:
            parts.append((writers[position][2], np.array([position])))
        else:
            by_dtype.setdefault(dtype, []).append(position)
    for dtype, positions in by_dtype.items():
        block = np.empty((len(positions), n_rows), dtype=dtype)
        for row, position in enumerate(positions):
            writers[position][2](block[row])
        parts.append((block, np.array(positions)))
    columns = pd.Index([name for name, _, _ in writers])
    return create_dataframe_from_blocks(parts, index=pd.RangeIndex(n_rows), columns=columns)


def batch_frame(configs: Sequence[SimConfig], result: BatchResult) -> pd.DataFrame:
    """Tidy rows of one batch: one per (configuration, client, method, metric), in that order."""
    builder = TidyBuilder()
    builder.add(range(len(configs)), result)
    return builder.frame(configs)


__all__ = ["TidyBuilder", "batch_frame"]
