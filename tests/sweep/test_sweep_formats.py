"""Results formats: results.parquet and the --format csv export hold the same table."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from feddistort.cli import main
from feddistort.sweep.cli import _size
from feddistort.sweep.engine import run_sweep
from feddistort.sweep.registry import job_from_mapping
from feddistort.sweep.spec import SweepSpec
from synthetic.config import SimConfig

SPEC = SweepSpec(
    base=SimConfig(d=9, m=2, C=3),
    # lam mixes integers and floats across chunks, n mixes None and integers: column types
    # inferred per shard differ, and the results file unifies them.
    grid={"lam": [0, 1, 1.5], "n": [None, 40]},
    seeds=2,
    methods=("ft", "lpft", "global"),
    metrics=("local_loss", "head_change"),
    chunk=2,
)


def _plain(frame: pd.DataFrame) -> pd.DataFrame:
    return frame.astype({c: object for c in frame.columns if frame[c].dtype == "category"})


def _same_table(parquet: Path, csv: Path) -> pd.DataFrame:
    from_parquet = pd.read_parquet(parquet)
    from_csv = pd.read_csv(csv)
    assert list(from_csv.columns) == list(from_parquet.columns)
    assert len(from_csv) == len(from_parquet) == pq.read_metadata(parquet).num_rows
    for col in from_parquet.columns:
        left, right = from_parquet[col], from_csv[col]
        if left.dtype == "category" or left.dtype == object or left.dtype == "str":
            # CSV cannot tell an empty string from a missing value: both read back as NaN.
            as_text = [c.astype(object).where(c.notna(), "").astype(str) for c in (left, right)]
            assert (as_text[0] == as_text[1]).all(), col
        else:  # floats are written with round-trip precision: equal, not close
            np.testing.assert_array_equal(left.to_numpy(float), right.to_numpy(float), col)
    return from_parquet


def test_parquet_and_csv_exports_are_equal(tmp_path: Path) -> None:
    first = run_sweep(SPEC, tmp_path, backend="serial")
    assert first.results == tmp_path / "results.parquet"
    # The CSV export of the finished sweep reuses every shard.
    export = run_sweep(SPEC, tmp_path, backend="serial", result_format="csv")
    assert (export.reused, export.computed) == (first.chunks, 0)
    assert export.results == tmp_path / "results.csv"
    assert export.rows == first.rows == len(SPEC.configs()) * 3 * 3 * 2
    table = _same_table(tmp_path / "results.parquet", tmp_path / "results.csv")
    schema = pq.read_schema(tmp_path / "results.parquet")
    for col in ("method", "metric"):
        assert pa.types.is_dictionary(schema.field(col).type)
        assert isinstance(table[col].dtype, pd.CategoricalDtype)
    assert schema.field("lam").type == pa.float64()
    assert schema.field("n").type == pa.int64()
    assert sorted(table["n"].dropna().unique()) == [40]
    assert table["n"].isna().sum() == len(table) // 2


def test_theory_export_with_an_all_null_shard_column(tmp_path: Path) -> None:
    spec = {
        "kind": "theory",
        "claims": ["thm-4.4"],
        "base": {"d": 12, "m": 3, "C": 4},
        "grid": {"covariate": ["isotropic", "own"]},
        "chunk": 1,
    }
    job = job_from_mapping(spec)
    report = run_sweep(job, tmp_path, backend="serial")
    assert report.results is not None
    kinds = {
        str(pq.read_schema(p).field("holds").type) for p in (tmp_path / "shards").glob("*.parquet")
    }
    assert kinds == {"bool", "null"}  # the skipped configuration's shard has no bool to infer
    assert pq.read_schema(report.results).field("holds").type == pa.bool_()
    run_sweep(job, tmp_path, backend="serial", result_format="csv")
    table = _same_table(tmp_path / "results.parquet", tmp_path / "results.csv")
    assert table["holds"].isna().tolist() == [False, True]


def test_cli_reports_rows_and_size_of_the_file_written(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["sweep", "--backend", "serial", "--no-progress", "--grid", "lam=0,1", "--set", "d=9"]
    for fmt in ("parquet", "csv"):
        assert main([*argv, "--format", fmt, "--out", str(tmp_path)]) == 0
        out = capsys.readouterr().out
        path = tmp_path / f"results.{fmt}"
        rows = pq.read_metadata(tmp_path / "results.parquet").num_rows
        assert f"wrote {path} ({rows} rows, {_size(path.stat().st_size)})" in out
    assert len(pd.read_csv(io.StringIO((tmp_path / "results.csv").read_text()))) == rows


def test_unknown_format_exits_2_before_writing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["sweep", "--format", "xlsx", "--out", str(tmp_path / "o")]) == 2
    assert "--format 'xlsx' is invalid: expected one of parquet, csv" in capsys.readouterr().err
    assert not (tmp_path / "o").exists()


@pytest.mark.parametrize(
    ("size", "text"),
    [(0, "0 B"), (999, "999 B"), (1000, "1.0 kB"), (12_345_678, "12.3 MB"), (2e12, "2000.0 GB")],
)
def test_size_is_written_for_people(size: int, text: str) -> None:
    assert _size(int(size)) == text
