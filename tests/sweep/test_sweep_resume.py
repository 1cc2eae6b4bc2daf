"""Resume: finished shards are reused, damaged ones recomputed, killed runs lose nothing."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest

from feddistort.cli import main
from feddistort.sweep.engine import run_sweep
from feddistort.sweep.shards import read_shard
from feddistort.sweep.spec import SweepSpec, make_tasks
from feddistort.sweep.tasks import compute_chunk
from synthetic.config import ConfigError, SimConfig

SPEC = SweepSpec(
    base=SimConfig(d=9, m=2, C=3),
    grid={"lam": [0.0, 0.5, 1.0, 1.5, 2.0]},
    seeds=2,
    methods=("ft", "lpft"),
    metrics=("local_loss",),
    chunk=3,
)


def _shard(tmp_path: Path, index: int) -> Path:
    return tmp_path / "shards" / f"{make_tasks(SPEC)[index].key}.parquet"


@pytest.mark.parametrize(
    "damage",
    ["truncate", "flip", "no_sidecar", "bad_sidecar", "delete"],
)
def test_damaged_shard_is_recomputed(tmp_path: Path, damage: str) -> None:
    first = run_sweep(SPEC, tmp_path, backend="serial")
    assert (first.chunks, first.computed, first.reused) == (4, 4, 0)
    reference = (tmp_path / "results.parquet").read_bytes()
    shard = _shard(tmp_path, 1)
    data = shard.read_bytes()
    if damage == "truncate":
        shard.write_bytes(data[: len(data) // 2])
    elif damage == "flip":
        middle = len(data) // 2
        shard.write_bytes(data[:middle] + bytes([data[middle] ^ 1]) + data[middle + 1 :])
    elif damage == "no_sidecar":
        shard.with_suffix(".json").unlink()
    elif damage == "bad_sidecar":
        shard.with_suffix(".json").write_text("{not json", encoding="utf-8")
    else:
        shard.unlink()
    assert read_shard(shard.parent, shard.stem) is None
    (tmp_path / "results.parquet").unlink()
    second = run_sweep(SPEC, tmp_path, backend="serial")
    assert (second.computed, second.reused) == (1, 3)
    assert (tmp_path / "results.parquet").read_bytes() == reference
    assert shard.read_bytes() == data


def test_changed_spec_is_refused(tmp_path: Path) -> None:
    run_sweep(SPEC, tmp_path, backend="serial")
    other = SweepSpec(SPEC.base, {"lam": [0.0, 0.5]}, 2, SPEC.methods, SPEC.metrics, 3)
    with pytest.raises(ConfigError, match="holds a different sweep"):
        run_sweep(other, tmp_path, backend="serial")
    # Keys differ as soon as a chunk's configurations or the methods differ.
    assert make_tasks(other)[0].key == make_tasks(SPEC)[0].key  # same first chunk
    assert make_tasks(other)[1].key != make_tasks(SPEC)[1].key
    fewer = SweepSpec(SPEC.base, SPEC.grid, 2, ("ft",), SPEC.metrics, 3)
    assert make_tasks(fewer)[0].key != make_tasks(SPEC)[0].key


class _Flaky:
    """Fail chunks holding lam=1.0 every time, and the chunk starting at lam=2.0 once."""

    def __init__(self) -> None:
        self.attempts: dict[tuple[float, ...], int] = {}

    def __call__(
        self, configs: Sequence[Mapping[str, Any]], methods: Sequence[str], metrics: Sequence[str]
    ) -> str:
        lams = tuple(float(c["lam"]) for c in configs)
        self.attempts[lams] = self.attempts.get(lams, 0) + 1
        if 1.0 in lams:
            raise RuntimeError("boom")
        if lams[0] == 2.0 and self.attempts[lams] == 1:
            raise RuntimeError("transient")
        return compute_chunk(configs, methods, metrics)


def test_failing_chunk_is_retried_then_reported(tmp_path: Path) -> None:
    flaky = _Flaky()
    report = run_sweep(SPEC, tmp_path, backend="serial", retries=2, compute=flaky)
    # Chunks: lam (0,0,0.5) (0.5,1,1) (1.5,1.5,2) (2,); chunk 1 fails 3 times, chunk 3 once.
    assert report.failed == {1: "RuntimeError: boom"}
    assert report.computed == 3
    assert report.results is None
    assert not (tmp_path / "results.parquet").exists()
    assert flaky.attempts == {(0.0, 0.0, 0.5): 1, (0.5, 1.0, 1.0): 3, (1.5, 1.5, 2.0): 1, (2.0,): 2}
    failures = json.loads((tmp_path / "failures.json").read_text())
    assert [f["chunk"] for f in failures] == [1]
    assert [c["lam"] for c in failures[0]["configs"]] == [0.5, 1.0, 1.0]
    # Rerunning with a working chunk function completes and clears the failure report.
    again = run_sweep(SPEC, tmp_path, backend="serial")
    assert (again.reused, again.computed, again.failed) == (3, 1, {})
    assert not (tmp_path / "failures.json").exists()
    assert again.results is not None


def _cmd(out: Path) -> list[str]:
    return [
        sys.executable,
        "-m",
        "feddistort.cli",
        "sweep",
        "--backend",
        "serial",
        "--no-progress",
        "--set",
        "global_model=fedavg",
        "--grid",
        "lam=0:2:60",
        "--chunk",
        "1",
        "--methods",
        "ft",
        "--metrics",
        "local_loss",
        "--out",
        str(out),
    ]


@pytest.mark.slow
def test_sigkill_then_resume_loses_and_duplicates_nothing(tmp_path: Path) -> None:
    env = {**os.environ, "PYTHONHASHSEED": "0"}
    full = tmp_path / "full"
    subprocess.run(_cmd(full), check=True, env=env, capture_output=True, timeout=120)
    killed = tmp_path / "killed"
    proc = subprocess.Popen(
        _cmd(killed), env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    deadline = time.monotonic() + 60
    shards = killed / "shards"
    while time.monotonic() < deadline:
        if shards.is_dir() and len(list(shards.glob("*.json"))) >= 5:
            break
        time.sleep(0.005)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    done_before = {p.stem for p in shards.glob("*.json")}
    assert 5 <= len(done_before) < 60, "the sweep was not interrupted mid-run"
    assert not (killed / "results.parquet").exists()
    before = {k: (shards / f"{k}.parquet").read_bytes() for k in done_before}
    rerun = subprocess.run(_cmd(killed), env=env, capture_output=True, text=True, timeout=120)
    assert rerun.returncode == 0, rerun.stderr
    assert f"{len(done_before)} reused, {60 - len(done_before)} computed" in rerun.stdout
    assert f"took over the stale lock of {killed} (pid {proc.pid}" in rerun.stderr
    assert sorted(p.stem for p in shards.glob("*.json")) == sorted(
        t.key for t in make_tasks(_spec_of(full))
    )
    assert {k: (shards / f"{k}.parquet").read_bytes() for k in done_before} == before
    assert not list(shards.glob(".*.tmp"))
    assert (killed / "results.parquet").read_bytes() == (full / "results.parquet").read_bytes()
    rows = pq.read_metadata(full / "results.parquet").num_rows
    assert rows == 60 * 4  # 60 configurations x 4 clients x 1 method x 1 metric


def _spec_of(out: Path) -> SweepSpec:
    from feddistort.sweep.spec import spec_from_mapping

    return spec_from_mapping(json.loads((out / "spec.json").read_text()))


def test_cli_reports_failed_chunk_exit_1(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import feddistort.sweep.engine as sweep

    def boom(configs: Any, methods: Any, metrics: Any) -> str:
        if any(c["lam"] == 0.5 for c in configs):
            raise RuntimeError("bad chunk")
        return compute_chunk(configs, methods, metrics)

    original = sweep.make_tasks
    monkeypatch.setattr(sweep, "make_tasks", lambda spec, compute=boom: original(spec, boom))
    argv = [
        "sweep",
        "--backend",
        "serial",
        "--no-progress",
        "--retries",
        "1",
        "--grid",
        "lam=0,0.5,1",
        "--chunk",
        "1",
        "--methods",
        "ft",
        "--metrics",
        "local_loss",
        "--out",
        str(tmp_path),
    ]
    assert main(argv) == 1
    err = capsys.readouterr().err
    assert "chunk 1 failed after 2 attempt(s): RuntimeError: bad chunk" in err
    assert "configurations: lam=0.5 seed=0" in err
    assert "1 of 3 chunk(s) failed" in err
    assert not (tmp_path / "results.parquet").exists()


def test_shard_copied_over_another_is_recomputed(tmp_path: Path) -> None:
    run_sweep(SPEC, tmp_path, backend="serial")
    reference = (tmp_path / "results.parquet").read_bytes()
    source, victim = _shard(tmp_path, 0), _shard(tmp_path, 2)
    original = victim.read_bytes()
    # The whole shard of chunk 0 (data and sidecar, whose checksum matches its data) is copied
    # over chunk 2's files: only the key in the sidecar can tell them apart.
    victim.write_bytes(source.read_bytes())
    victim.with_suffix(".json").write_bytes(source.with_suffix(".json").read_bytes())
    assert read_shard(victim.parent, victim.stem) is None
    assert read_shard(source.parent, source.stem) is not None
    again = run_sweep(SPEC, tmp_path, backend="serial")
    assert (again.reused, again.computed) == (3, 1)
    assert victim.read_bytes() == original
    assert (tmp_path / "results.parquet").read_bytes() == reference


_KILL_DURING_ASSEMBLY = """
import os, signal, sys
import feddistort_io
from feddistort.sweep import assembly
from feddistort.sweep.engine import run_sweep
from feddistort.sweep.spec import spec_from_mapping
import json

def write_then_die(path, write, binary):
    def killed(handle):
        write(handle)  # the whole file, then SIGKILL before fsync and rename
        handle.flush()
        os.kill(os.getpid(), signal.SIGKILL)
    return feddistort_io.atomic_write(path, killed, binary=binary)

assembly.atomic_write = write_then_die
spec = spec_from_mapping(json.loads(sys.argv[2]))
run_sweep(spec, sys.argv[1], backend="serial")
"""


def test_killed_assembly_leaves_no_orphan_after_the_next_run(tmp_path: Path) -> None:
    spec = json.dumps({k: v for k, v in SPEC.to_dict().items() if k != "version"})
    proc = subprocess.run(
        [sys.executable, "-c", _KILL_DURING_ASSEMBLY, str(tmp_path), spec],
        capture_output=True,
        timeout=120,
    )
    assert proc.returncode == -signal.SIGKILL
    orphans = list(tmp_path.glob(".results.*.tmp"))
    assert len(orphans) == 1  # what a kill -9 during the write leaves behind
    assert not (tmp_path / "results.parquet").exists()
    again = run_sweep(SPEC, tmp_path, backend="serial", notify=lambda _: None)
    assert (again.reused, again.computed) == (4, 0)
    assert not list(tmp_path.glob(".results.*.tmp"))
    assert again.results is not None
    assert again.rows == pq.read_metadata(again.results).num_rows == 10 * 3 * 2
