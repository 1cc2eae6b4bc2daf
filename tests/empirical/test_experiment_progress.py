"""Progress of an experiment run (client-epochs, FedAvg rounds included) and its nesting in the
``figures`` bar (issue 13 §4: the bar must move, with an honest ETA, while an experiment runs)."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch

from empirical.experiment import ExperimentConfig, run_experiment
from empirical.experiment.data import ClientDataConfig
from empirical.experiment.pft_config import PFTConfig
from empirical.experiment.training import FedAvgConfig, LocalConfig
from figures._progress import FigureBar

ROUNDS, EPOCHS, CLIENTS = 2, 2, 2
Calls = list[tuple[float, float, str]]


def _tiny() -> ExperimentConfig:
    local = LocalConfig(lr=0.05, batch_size=64, momentum=0.9)
    return ExperimentConfig(
        preset="tiny-progress",
        data=ClientDataConfig(n_clients=CLIENTS, shifts=("covariate",)),
        fedavg=FedAvgConfig(rounds=ROUNDS, local=local),
        pft=PFTConfig(epochs=EPOCHS, local=local, lp_epochs=1),
        variants=("ft",),
    )


@pytest.fixture(autouse=True)
def _single_thread() -> Iterator[None]:
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def first_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Calls]:
    out = tmp_path_factory.mktemp("progress") / "run"
    calls: Calls = []
    run_experiment(_tiny(), out, [0], progress=lambda d, t, label: calls.append((d, t, label)))
    return out, calls


@pytest.mark.slow
def test_hook_counts_fedavg_rounds_and_fine_tuning_in_client_epochs(
    first_run: tuple[Path, Calls],
) -> None:
    _, calls = first_run
    fed = ROUNDS * CLIENTS  # every client each round, one local epoch
    fits = 2 * CLIENTS * EPOCHS  # units fedavg (evaluated like a variant) and ft
    assert {t for _, t, _ in calls} == {fed + fits}  # the plan never changed
    done = [d for d, _, _ in calls]
    assert done == sorted(done)
    assert done[-1] == fed + fits
    labels = [label for _, _, label in calls]
    assert labels[:ROUNDS] == [f"seed 0 FedAvg round {r}/{ROUNDS}" for r in (1, 2)]
    assert done[:ROUNDS] == [CLIENTS, 2 * CLIENTS]  # the bar moves during FedAvg
    assert "seed 0 ft" in labels


@pytest.mark.slow
def test_resume_plans_only_what_it_recomputes(
    first_run: tuple[Path, Calls], tmp_path: Path
) -> None:
    reference, _ = first_run
    out = tmp_path / "run"
    shutil.copytree(reference, out)
    calls: Calls = []
    run_experiment(_tiny(), out, [0], progress=lambda d, t, label: calls.append((d, t, label)))
    assert calls == []  # nothing to do: no progress to report
    ckpt = out / "checkpoints" / "seed0" / "global.safetensors"
    ckpt.write_bytes(ckpt.read_bytes()[:10])  # FedAvg must run again, no unit is retrained
    run_experiment(_tiny(), out, [0], progress=lambda d, t, label: calls.append((d, t, label)))
    assert calls[-1][:2] == (ROUNDS * CLIENTS, ROUNDS * CLIENTS)
    assert all("FedAvg" in label for _, _, label in calls)


def test_figures_bar_advances_within_a_figure_by_the_inner_fraction() -> None:
    bar = FigureBar({"a": 10.0, "b": 30.0}, enabled=False)
    bar.start("a")
    bar.finish("a")
    assert bar.position == 10.0
    bar.start("b")
    hook = bar.inner("b")
    hook(5.0, 20.0, "seed 0 ft")
    assert bar.position == pytest.approx(10.0 + 30.0 * 0.25)
    assert "now b: seed 0 ft (5/20 client-epochs)" in bar.status
    hook(4.0, 20.0, "seed 0 ft")  # a later run of the same figure restarts its count
    assert bar.position == pytest.approx(17.5)  # the bar never goes back
    hook(20.0, 20.0, "done")
    assert bar.position == pytest.approx(10.0 + 30.0 * 0.99)  # not done until the figure is
    bar.finish("b")
    assert bar.position == pytest.approx(40.0)
    bar.close()
