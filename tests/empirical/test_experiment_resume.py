"""Checksummed resume of the experiment: damaged files are recomputed to their undamaged bytes.

The reference is one finished tiny run (2 clients, 1 FedAvg round, 1 FT epoch, the ``ft``
variant and the ``fedavg`` baseline, one seed). Each test copies it, damages one file, resumes,
and compares the bytes of every file under the output folder with the undamaged run. The
experiment writes no wall-clock times (no timing field is excluded from the comparison).
"""

from __future__ import annotations

import shutil
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import torch

from empirical.experiment import ExperimentConfig, run_experiment
from empirical.experiment.data import ClientDataConfig
from empirical.experiment.pft_config import PFTConfig
from empirical.experiment.training import FedAvgConfig, LocalConfig

SEEDS = [0]
UNIT_METRICS = Path("runs/seed0/ft/metrics.csv")
GLOBAL_CKPT = Path("checkpoints/seed0/global.safetensors")
# The module takes about 7-10 s on the shared 2-core machine (the reference run ~5 s).
pytestmark = pytest.mark.slow


def _tiny() -> ExperimentConfig:
    local = LocalConfig(lr=0.05, batch_size=64, momentum=0.9)
    return ExperimentConfig(
        preset="tiny",
        data=ClientDataConfig(n_clients=2, shifts=("covariate",)),
        fedavg=FedAvgConfig(rounds=1, local=local),
        pft=PFTConfig(epochs=1, local=local, lp_epochs=1),
        variants=("ft",),
    )


@pytest.fixture(autouse=True)
def _single_thread() -> Iterator[None]:
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def reference(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("reference") / "run"
    report = run_experiment(_tiny(), out, SEEDS, progress=False)
    assert sorted(report.trained) == [(0, "fedavg"), (0, "ft")]
    return out


def _contents(out: Path) -> dict[str, bytes]:
    return {p.relative_to(out).as_posix(): p.read_bytes() for p in out.rglob("*") if p.is_file()}


def _flip_byte(path: Path) -> None:
    data = bytearray(path.read_bytes())
    middle = len(data) // 2
    data[middle] ^= 0x01  # a digit becomes another digit (or a similar character): still CSV
    path.write_bytes(bytes(data))


def _truncate(path: Path) -> None:
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 3])


def _empty(path: Path) -> None:
    path.write_bytes(b"")


@pytest.mark.parametrize(
    ("target", "damage", "retrained"),
    [
        (UNIT_METRICS, _flip_byte, [(0, "ft")]),
        # FedAvg is deterministic: the checkpoint gets its old bytes back and the units built
        # on it stay valid, so none is retrained.
        (GLOBAL_CKPT, _truncate, []),
        (UNIT_METRICS, _empty, [(0, "ft")]),
    ],
    ids=["flipped-byte-metrics", "truncated-global-checkpoint", "empty-metrics"],
)
def test_resume_recomputes_damaged_files_to_the_undamaged_bytes(
    reference: Path,
    tmp_path: Path,
    target: Path,
    damage: Callable[[Path], None],
    retrained: list[tuple[int, str]],
) -> None:
    out = tmp_path / "run"
    shutil.copytree(reference, out)
    before = (out / target).read_bytes()
    damage(out / target)
    assert (out / target).read_bytes() != before  # the damage is real
    report = run_experiment(_tiny(), out, SEEDS, progress=False)
    assert report.damaged == [target.as_posix()]
    assert sorted(report.trained) == retrained
    assert _contents(out) == _contents(reference)


def test_resume_of_an_undamaged_run_recomputes_nothing(reference: Path, tmp_path: Path) -> None:
    out = tmp_path / "run"
    shutil.copytree(reference, out)
    report = run_experiment(_tiny(), out, SEEDS, progress=False)
    assert report.trained == []
    assert report.damaged == []
    assert sorted(report.skipped) == [(0, "fedavg"), (0, "ft")]
    assert _contents(out) == _contents(reference)


def test_a_flipped_byte_that_resume_ignored_would_reach_the_summary(
    reference: Path, tmp_path: Path
) -> None:
    """Negative control: the flipped byte does change the aggregated outputs if reused."""
    from empirical.experiment.results import write_outputs

    out = tmp_path / "run"
    shutil.copytree(reference, out)
    _flip_byte(out / UNIT_METRICS)
    write_outputs(out)  # aggregates what is on disk, checksums unchecked
    assert (out / "metrics.csv").read_bytes() != (reference / "metrics.csv").read_bytes()


def test_npz_bytes_keep_zero_dimensional_arrays():
    """A 0-d array (a BatchNorm counter) is written with shape (), as numpy.savez does."""
    import io

    import numpy as np

    from empirical.experiment.store import npz_bytes

    data = npz_bytes({"count": np.array(40), "w": np.arange(6.0).reshape(2, 3)})
    with np.load(io.BytesIO(data)) as back:
        assert back["count"].shape == ()
        assert int(back["count"]) == 40
        assert back["w"].shape == (2, 3)
    reference = io.BytesIO()
    np.savez(reference, count=np.array(40), w=np.arange(6.0).reshape(2, 3))
    with np.load(io.BytesIO(reference.getvalue())) as ref, np.load(io.BytesIO(data)) as back:
        assert all(np.array_equal(ref[k], back[k]) and ref[k].shape == back[k].shape for k in ref)
