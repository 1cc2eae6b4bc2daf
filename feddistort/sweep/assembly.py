"""The results file of a finished sweep: every shard, in chunk order, streamed.

``results.parquet`` (default) or ``results.csv`` (``--format csv``) is written from the shards
one at a time (a :class:`pyarrow.parquet.ParquetWriter` appends each shard's row groups), so
memory stays bounded by one shard whatever the sweep's size. Shards may differ in the inferred
type of a column (a column that is all null in one chunk, integers in one chunk and floats in
another); the file's schema is the permissive union of the shards' schemas
(:func:`pyarrow.unify_schemas`), computed from their footers before any row is read. The file
is written atomically (:func:`feddistort_io.atomic_write`); a killed assembly leaves only a
temporary file, which the next run removes.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import IO, Any

from feddistort.sweep.shards import COMPRESSION
from feddistort_io import atomic_write
from synthetic.config import ConfigError

FORMATS: tuple[str, ...] = ("parquet", "csv")
# The results files a sweep may write (their temporaries are removed by the next run).
RESULT_NAMES: tuple[str, ...] = tuple(f"results.{fmt}" for fmt in FORMATS)


def check_format(fmt: str) -> str:
    """``fmt`` if it is one of :data:`FORMATS`, else a ConfigError naming ``--format``."""
    if fmt not in FORMATS:
        raise ConfigError(f"--format {fmt!r} is invalid: expected one of {', '.join(FORMATS)}")
    return fmt


def result_schema(paths: Sequence[Path]) -> Any:
    """The schema of the results file: the permissive union of the shards' schemas.

    Raises
    ------
    ConfigError
        When shards disagree on their columns (they come from different specs).
    """
    import pyarrow as pa
    import pyarrow.parquet as pq

    schemas = [pq.read_schema(p).remove_metadata() for p in paths]
    names = schemas[0].names
    for path, schema in zip(paths, schemas, strict=True):
        if schema.names != names:
            raise ConfigError(
                f"shard {path.name!r} columns {schema.names} are invalid: expected {names}"
            )
    return pa.unify_schemas(schemas, promote_options="permissive")


def _tables(paths: Sequence[Path], schema: Any) -> Any:
    import pyarrow.parquet as pq

    for path in paths:  # one shard in memory at a time
        yield pq.read_table(path).replace_schema_metadata(None).cast(schema)


def assemble(out: Path, paths: Sequence[Path], fmt: str = "parquet") -> tuple[Path, int]:
    """Stream the shards at ``paths`` (in order) into ``out/results.<fmt>``, atomically.

    Parameters
    ----------
    out : Path
        The sweep folder.
    paths : sequence of Path
        The verified shard files, in chunk order.
    fmt : str
        ``parquet`` (categorical columns stay dictionary-encoded) or ``csv`` (one header, the
        rows of :meth:`pandas.DataFrame.to_csv`, floats with round-trip precision).

    Returns
    -------
    (Path, int)
        The file written and its number of rows.
    """
    import pyarrow.parquet as pq

    check_format(fmt)
    schema = result_schema(paths)
    rows = 0

    def write_parquet(handle: IO[Any]) -> None:
        nonlocal rows
        with pq.ParquetWriter(handle, schema, compression=COMPRESSION) as writer:
            for table in _tables(paths, schema):
                writer.write_table(table)
                rows += table.num_rows

    def write_csv(handle: IO[Any]) -> None:
        nonlocal rows
        for i, table in enumerate(_tables(paths, schema)):
            frame = table.to_pandas(integer_object_nulls=True)  # 5 and "", never 5.0
            handle.write(frame.to_csv(index=False, header=i == 0))
            rows += table.num_rows

    writer = write_parquet if fmt == "parquet" else write_csv
    path = atomic_write(out / f"results.{fmt}", writer, binary=fmt == "parquet")
    return path, rows


__all__ = ["FORMATS", "RESULT_NAMES", "assemble", "check_format", "result_schema"]
