"""What a sweep hands to its workers: chunk tasks, their outcomes and the shard keys.

A :class:`ChunkTask` is picklable (module-level compute function, plain data), so every backend
of :mod:`feddistort.sweep.backends` runs it the same way. :func:`chunk_key` names the shard of
a chunk by what it computes, so a changed spec or package version never reuses a shard.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

# A chunk's compute function: (configurations, methods, metrics) -> its tidy pandas DataFrame.
Compute = Callable[[Sequence[Mapping[str, Any]], Sequence[str], Sequence[str]], Any]


def package_version() -> str:
    """The version that enters every shard key and ``spec.json``."""
    from feddistort_io import __version__

    return __version__


def compute_chunk(
    configs: Sequence[Mapping[str, Any]], methods: Sequence[str], metrics: Sequence[str]
) -> Any:
    """Simulate one chunk and return its tidy table (the shard's content).

    Parameters
    ----------
    configs : sequence of mapping
        :meth:`SimConfig.to_dict` of each configuration of the chunk.
    methods, metrics : sequence of str

    Returns
    -------
    pandas.DataFrame
        ``simulate(configs, methods, metrics=metrics)``.
    """
    from synthetic.config import SimConfig
    from synthetic.simulation import simulate

    return simulate([SimConfig(**c) for c in configs], methods, metrics=metrics)


@dataclass(frozen=True)
class ChunkTask:
    """One chunk to compute: position, shard key and the inputs of its compute function."""

    index: int
    key: str
    configs: tuple[dict[str, Any], ...]
    methods: tuple[str, ...]
    metrics: tuple[str, ...]
    compute: Compute = compute_chunk


@dataclass(frozen=True)
class ChunkOutcome:
    """Result of one attempt: the shard's Parquet bytes, or the error message."""

    index: int
    data: bytes | None
    error: str | None


def attempt_chunk(task: ChunkTask) -> ChunkOutcome:
    """Run a task and encode its shard in the worker; errors are caught and returned.

    One failing chunk thus does not stop the others.
    """
    from feddistort.sweep.shards import encode_shard

    try:
        frame = task.compute(task.configs, task.methods, task.metrics)
        return ChunkOutcome(task.index, encode_shard(frame, task.key), None)
    except Exception as err:  # reported with the chunk's configurations
        return ChunkOutcome(task.index, None, f"{type(err).__name__}: {err}")


def chunk_key(
    configs: Sequence[Mapping[str, Any]],
    methods: Sequence[str],
    metrics: Sequence[str],
    kind: str = "simulate",
) -> str:
    """The shard key: sha256 (first 24 hex digits) of configurations, methods, metrics, version.

    ``kind`` enters the hash for kinds other than ``simulate`` (whose keys it leaves as they
    were), so two kinds never share a shard.
    """
    payload: dict[str, Any] = {
        "configs": list(configs),
        "methods": list(methods),
        "metrics": list(metrics),
        "version": package_version(),
    }
    if kind != "simulate":
        payload["kind"] = kind
    text = json.dumps(payload, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:24]


class SweepJob(Protocol):
    """What :func:`feddistort.sweep.engine.run_sweep` needs from a sweep of any kind."""

    def tasks(self, out: Path) -> list[ChunkTask]:
        """The chunks, in result order; ``out`` is the sweep folder (for per-chunk work)."""
        ...

    def label(self, config: Mapping[str, Any]) -> str:
        """A short description of one configuration of a chunk (for failure reports)."""
        ...

    def to_dict(self) -> dict[str, Any]:
        """The JSON written to ``spec.json`` (must include ``kind`` and the version)."""
        ...


__all__ = [
    "ChunkOutcome",
    "ChunkTask",
    "Compute",
    "SweepJob",
    "attempt_chunk",
    "chunk_key",
    "compute_chunk",
    "package_version",
]
