"""Shards on disk: one finished chunk is ``shards/<key>.csv`` plus its sidecar ``<key>.json``.

The sidecar holds the shard's key, row count and sha256 and is written last, so a shard without
a valid sidecar is not finished. A shard is bound to its key: a shard and sidecar copied over
another key's files (same checksum, another key) are refused like a corrupted shard, so that
chunk is recomputed. Both files are written atomically
(:func:`feddistort_io.atomic_write_text`).
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from feddistort_io import atomic_write_json, atomic_write_text


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def write_shard(folder: Path, key: str, text: str) -> None:
    """Write ``<key>.csv`` then its sidecar ``<key>.json`` (key, rows, sha256), both atomically."""
    atomic_write_text(folder / f"{key}.csv", text)
    rows = text.count("\n") - 1
    atomic_write_json(
        folder / f"{key}.json", {"key": key, "rows": rows, "sha256": _sha256(text.encode())}
    )


def read_shard(folder: Path, key: str) -> str | None:
    """The finished shard of ``key``, or None: missing, incomplete, corrupted or another key's."""
    try:
        data = (folder / f"{key}.csv").read_bytes()
        meta = json.loads((folder / f"{key}.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(meta, dict) or meta.get("key") != key or meta.get("sha256") != _sha256(data):
        return None
    text = data.decode("utf-8")
    if meta.get("rows") != text.count("\n") - 1:
        return None
    return text


__all__ = ["read_shard", "write_shard"]
