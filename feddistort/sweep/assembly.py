"""The results file of a finished sweep: every shard, in chunk order."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from feddistort_io import atomic_write_text
from synthetic.config import ConfigError

# The results files a sweep may write (their temporaries are removed by the next run).
RESULT_NAMES: tuple[str, ...] = ("results.csv",)


def assemble(out: Path, texts: Sequence[str]) -> Path:
    """Concatenate shard texts (one header) into ``out/results.csv``, atomically.

    Raises
    ------
    ConfigError
        When shards disagree on their header (they come from different specs).
    """
    header = texts[0].split("\n", 1)[0]
    body: list[str] = [header + "\n"]
    for text in texts:
        head, _, rest = text.partition("\n")
        if head != header:
            raise ConfigError(f"shard header {head!r} is invalid: expected {header!r}")
        body.append(rest)
    return atomic_write_text(out / "results.csv", "".join(body))


__all__ = ["RESULT_NAMES", "assemble"]
