"""Shards on disk: one finished chunk is ``shards/<key>.parquet`` plus its sidecar ``<key>.json``.

A worker turns its chunk's table into Parquet bytes (:func:`encode_shard`: zstd, the columns of
:data:`CATEGORICAL` dictionary-encoded, the key in the file's metadata); the driver writes them
(:func:`write_shard`). The sidecar holds the shard's key, row count and sha256 and is written
last, so a shard without a valid sidecar is not finished. A shard is bound to its key twice: in
the sidecar and inside the Parquet file; a shard (with or without its sidecar) copied over
another key's files is refused like a corrupted one, so that chunk is recomputed. Both files
are written atomically (:func:`feddistort_io.atomic_write_bytes`).
"""

from __future__ import annotations

import hashlib
import io
import json
from pathlib import Path
from typing import Any

from feddistort_io import atomic_write_bytes, atomic_write_json

# String columns stored dictionary-encoded (pandas reads them back as categoricals).
CATEGORICAL: tuple[str, ...] = ("method", "metric", "claim", "variant")
KEY_METADATA = b"feddistort.key"
COMPRESSION = "zstd"
SUFFIX = ".parquet"


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def arrow_table(frame: Any) -> Any:
    """A pandas DataFrame as the Arrow table of a shard (no index, no pandas metadata).

    String columns become ``string``; the :data:`CATEGORICAL` ones are dictionary-encoded.
    """
    import pyarrow as pa
    import pyarrow.compute as pc

    table = pa.Table.from_pandas(frame, preserve_index=False)
    for i, name in enumerate(table.column_names):
        column = table.column(i)
        if pa.types.is_large_string(column.type) or pa.types.is_string_view(column.type):
            column = column.cast(pa.string())
        if name in CATEGORICAL and pa.types.is_string(column.type):
            column = pc.dictionary_encode(column)
        table = table.set_column(i, name, column)
    return table.replace_schema_metadata(None)


def encode_shard(frame: Any, key: str) -> bytes:
    """The Parquet bytes of one shard: :func:`arrow_table` of ``frame``, ``key`` in the metadata.

    The bytes depend on the table and the pyarrow version only, so every backend and worker
    writes the same shard.
    """
    import pyarrow.parquet as pq

    table = arrow_table(frame).replace_schema_metadata({KEY_METADATA: key.encode()})
    buffer = io.BytesIO()
    pq.write_table(table, buffer, compression=COMPRESSION)
    return buffer.getvalue()


def shard_path(folder: Path, key: str) -> Path:
    """Where the shard of ``key`` lives in ``folder``."""
    return folder / f"{key}{SUFFIX}"


def write_shard(folder: Path, key: str, data: bytes) -> None:
    """Write ``<key>.parquet`` then its sidecar ``<key>.json`` (key, rows, sha256), atomically."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    rows = pq.read_metadata(pa.BufferReader(data)).num_rows
    atomic_write_bytes(shard_path(folder, key), data)
    atomic_write_json(folder / f"{key}.json", {"key": key, "rows": rows, "sha256": _sha256(data)})


def read_shard(folder: Path, key: str) -> bytes | None:
    """The finished shard of ``key``, or None: missing, incomplete, corrupted or another key's."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        data = shard_path(folder, key).read_bytes()
        meta = json.loads((folder / f"{key}.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(meta, dict) or meta.get("key") != key or meta.get("sha256") != _sha256(data):
        return None
    try:
        footer = pq.read_metadata(pa.BufferReader(data))
    except (OSError, ValueError, pa.ArrowException):
        return None
    if (footer.metadata or {}).get(KEY_METADATA) != key.encode() or meta.get("rows") != (
        footer.num_rows
    ):
        return None
    return data


__all__ = [
    "CATEGORICAL",
    "arrow_table",
    "encode_shard",
    "read_shard",
    "shard_path",
    "write_shard",
]
