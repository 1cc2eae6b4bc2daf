"""Serial, loky and Dask sweeps write byte-identical results, equal to a direct simulation."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from feddistort.cli import main
from feddistort.sweep.engine import run_sweep
from feddistort.sweep.spec import SweepSpec
from synthetic.config import SimConfig
from synthetic.simulation import simulate

# Chunks batch fewer configurations than one big simulate call; BLAS may round differently.
RTOL, ATOL = 1e-10, 1e-12

SPEC = SweepSpec(
    base=SimConfig(d=9, m=2, C=3),
    grid={"lam": [0.0, 0.5, 1.5], "covariate": ["isotropic", "own"]},
    seeds=2,
    methods=("ft", "lpft", "global"),
    metrics=("local_loss", "feature_distortion_fro"),
    chunk=5,
)


def _run(tmp_path: Path, name: str, **kwargs: object) -> bytes:
    report = run_sweep(SPEC, tmp_path / name, **kwargs)  # type: ignore[arg-type]
    assert report.failed == {}
    assert report.chunks == 3  # 12 configurations in chunks of 5
    assert report.computed == 3
    assert report.results is not None
    return report.results.read_bytes()


@pytest.mark.slow
def test_serial_loky_dask_identical(tmp_path: Path) -> None:
    distributed = pytest.importorskip("dask.distributed")
    serial = _run(tmp_path, "serial", backend="serial")
    loky1 = _run(tmp_path, "loky1", backend="loky", workers=1)
    loky2 = _run(tmp_path, "loky2", backend="loky", workers=2)
    with distributed.LocalCluster(
        n_workers=1, threads_per_worker=2, processes=False, dashboard_address=None
    ) as cluster:
        dask = _run(tmp_path, "dask", backend="dask", scheduler=cluster.scheduler_address)
    assert serial == loky1 == loky2 == dask
    # Independent check: the table is the direct simulation of every configuration, in order.
    expected = simulate(SPEC.configs(), SPEC.methods, metrics=SPEC.metrics)
    got = pd.read_parquet(tmp_path / "serial" / "results.parquet")
    assert list(got.columns) == list(expected.columns)
    assert len(got) == len(expected)
    for col in ("lam", "seed", "client"):
        np.testing.assert_array_equal(got[col].to_numpy(), expected[col].to_numpy())
    assert (got["covariate"] == expected["covariate"]).all()
    for col in ("method", "metric"):
        assert isinstance(got[col].dtype, pd.CategoricalDtype)  # dictionary-encoded in Parquet
        assert (got[col].astype(str) == expected[col].astype(str)).all()
    np.testing.assert_allclose(
        got["value"].to_numpy(float), expected["value"].to_numpy(float), rtol=RTOL, atol=ATOL
    )


def test_cli_serial_matches_library(tmp_path: Path) -> None:
    lib = _run(tmp_path, "lib", backend="serial")
    argv = [
        "sweep",
        "--backend",
        "serial",
        "--no-progress",
        "--out",
        str(tmp_path / "cli"),
        "--set",
        "d=9",
        "--set",
        "m=2",
        "--set",
        "C=3",
        "--grid",
        "lam=0,0.5,1.5",
        "--grid",
        "covariate=isotropic,own",
        "--seeds",
        "2",
        "--methods",
        "ft,lpft,global",
        "--metrics",
        "local_loss,feature_distortion_fro",
        "--chunk",
        "5",
    ]
    assert main(argv) == 0
    assert (tmp_path / "cli" / "results.parquet").read_bytes() == lib


def test_ray_missing_is_a_clear_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    try:
        import ray  # noqa: F401
    except ImportError:
        pass
    else:
        pytest.skip("ray is installed; the missing-package path cannot be exercised")
    argv = ["sweep", "--backend", "ray", "--no-progress", "--out", str(tmp_path / "r")]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert "--backend ray is unavailable" in err
    assert "feddistort[ray]" in err
    assert not (tmp_path / "r").exists()


def test_scheduler_needs_a_cluster_backend(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["sweep", "--backend", "loky", "--scheduler", "tcp://x:1", "--out", str(tmp_path)]
    assert main(argv) == 2
    assert "--scheduler 'tcp://x:1' is invalid with --backend loky" in capsys.readouterr().err


@pytest.mark.slow
def test_dask_local_workers_keep_glibc_malloc_defaults_and_our_environ() -> None:
    pytest.importorskip("dask.distributed")
    import os

    from feddistort.sweep.backends import run_tasks

    before = dict(os.environ)
    names = ["MALLOC_TRIM_THRESHOLD_", "OMP_NUM_THREADS"]
    got = set(run_tasks(os.getenv, names, backend="dask", workers=1))
    # Dask's default (MALLOC_TRIM_THRESHOLD_=65536) made simulator chunks 3-4x slower.
    threads = os.environ.get("OMP_NUM_THREADS", str(max(1, os.cpu_count() or 1)))
    assert got == {before.get("MALLOC_TRIM_THRESHOLD_"), threads}
    assert dict(os.environ) == before  # the nanny's variables do not leak into this process


@pytest.mark.slow
def test_dask_local_workers_run_without_the_dashboard_only_threads() -> None:
    # The worker profiler (GIL every 10 ms) and the fast system monitor only feed the
    # dashboard, which we never start; with as many workers as cores they slowed the sweep.
    pytest.importorskip("dask.distributed")
    import dask

    from feddistort.sweep.backends import run_tasks

    keys = [
        "distributed.worker.profile.enabled",
        "distributed.admin.system-monitor.interval",
        "distributed.admin.tick.interval",
    ]
    before = [dask.config.get(k) for k in keys]
    got = set(run_tasks(dask.config.get, keys, backend="dask", workers=1))
    assert got == {False, "2s", "200ms"}
    assert [dask.config.get(k) for k in keys] == before  # this process keeps its own
