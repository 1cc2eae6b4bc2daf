"""The ``digits-step-size`` preset: its sweep, the shared LP phase, and the sweep kind's units."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest
import torch

from empirical.experiment import ExperimentConfig, make_preset, run_experiment
from empirical.experiment.data import ClientDataConfig
from empirical.experiment.pft_config import PFTConfig
from empirical.experiment.training import FedAvgConfig, LocalConfig
from feddistort.sweep.kinds import ExperimentSweep


@pytest.fixture(autouse=True)
def _single_thread() -> Iterator[None]:
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.mark.parametrize("quick", [True, False])
def test_preset_sweeps_five_rates_over_two_decades_ft_lpft_lp_two_shifts(quick: bool) -> None:
    config = make_preset("digits-step-size", quick=quick)
    assert len(config.ft_lrs) >= 5
    assert max(config.ft_lrs) / min(config.ft_lrs) >= 100
    assert set(config.variants) == {"ft", "lp", "lpft"}
    assert config.shift_units == ("covariate", "concept")
    assert config.pft.local.lr in config.ft_lrs  # the presets' rate is one of the swept ones
    runs = config.variant_runs()
    assert ("lp", None) in runs
    assert sum(v == "lpft" for v, _ in runs) == len(config.ft_lrs)


def _tiny(ft_lrs: tuple[float, ...]) -> ExperimentConfig:
    local = LocalConfig(lr=0.01, batch_size=64, momentum=0.9)
    return ExperimentConfig(
        preset="tiny-lr",
        data=ClientDataConfig(n_clients=2, shifts=("covariate",)),
        fedavg=FedAvgConfig(rounds=1, local=local),
        pft=PFTConfig(epochs=3, local=local, lp_epochs=2),
        variants=("lpft",),
        ft_lrs=ft_lrs,
    )


def _unit_bytes(out: Path, tag: str) -> dict[str, bytes]:
    files = [*(out / "runs" / "seed0" / tag).iterdir(),
             *(out / "checkpoints" / "seed0" / tag).iterdir()]  # fmt: skip
    return {p.name: p.read_bytes() for p in files if p.name != "done.json"}


@pytest.mark.slow
def test_shared_lp_phase_is_bit_identical_to_recomputing_it(tmp_path: Path) -> None:
    """LP-FT's LP phase, computed once and shared by two rates, equals two separate runs."""
    shared = tmp_path / "shared"
    run_experiment(_tiny((0.003, 0.03)), shared, [0], progress=False)
    for lr in (0.003, 0.03):
        alone = tmp_path / f"alone{lr}"
        run_experiment(_tiny((lr,)), alone, [0], progress=False)
        for name, data in _unit_bytes(alone, f"lpft-lr{lr:g}").items():
            # metrics.csv/epochs.csv carry the same preset name; checkpoints are raw tensors
            assert _unit_bytes(shared, f"lpft-lr{lr:g}")[name] == data, name
    epochs = pd.read_csv(shared / "epochs.csv")
    lp_phase = epochs[epochs["epoch"] <= 2].drop(columns="ft_lr")
    by_lr = [g.reset_index(drop=True) for _, g in lp_phase.groupby(epochs["ft_lr"])]
    pd.testing.assert_frame_equal(by_lr[0], by_lr[1])  # the LP epochs do not depend on the rate
    late = epochs[epochs["epoch"] == 3].groupby("ft_lr")["value"].sum()
    assert late.iloc[0] != late.iloc[1]  # negative control: the FT phase does


@pytest.mark.slow
def test_lpft_at_the_presets_rate_equals_unswept_lpft(tmp_path: Path) -> None:
    swept = tmp_path / "swept"
    run_experiment(_tiny((0.01,)), swept, [0], progress=False)
    plain = tmp_path / "plain"
    run_experiment(_tiny(()), plain, [0], progress=False)
    a = _unit_bytes(swept, "lpft-lr0.01")
    b = _unit_bytes(plain, "lpft")
    assert {k: v for k, v in a.items() if k.endswith(".safetensors")} == {
        k: v for k, v in b.items() if k.endswith(".safetensors")
    }


def test_sweep_kind_runs_each_shift_of_a_multi_shift_preset_as_its_own_unit(
    tmp_path: Path,
) -> None:
    sweep = ExperimentSweep(("digits-step-size", "digits-iid"), seeds=2, quick=True)
    units = sweep.units()
    multi = [u for u in units if u["preset"] == "digits-step-size"]
    assert [(u["shift"], u["seed"]) for u in multi] == [
        ("covariate", 0), ("covariate", 1), ("concept", 0), ("concept", 1)
    ]  # fmt: skip
    assert all("shift" not in u for u in units if u["preset"] == "digits-iid")
    keys = [t.key for t in sweep.tasks(tmp_path)]
    assert len(set(keys)) == len(keys) == 6
    assert sweep.label(multi[2]) == "preset=digits-step-size shift=concept seed=0"


@pytest.mark.slow
def test_sweep_chunk_of_one_shift_runs_only_that_shift(tmp_path: Path) -> None:
    from feddistort.sweep.kinds import experiment_chunk

    unit = {"preset": "digits-step-size", "seed": 0, "quick": True, "variants": ["lp"],
            "shift": "concept", "work": str(tmp_path / "w")}  # fmt: skip
    frame = experiment_chunk([unit], (), ())  # the chunk's tidy rows (the driver writes Parquet)
    assert set(frame["shift"]) == {"concept"}
    assert set(frame["variant"]) == {"fedavg", "lp"}
    assert not (tmp_path / "w" / "runs" / "covariate").exists()


@pytest.mark.slow
def test_sweep_experiment_kind_runs_the_flexp_variant(tmp_path: Path) -> None:
    """The sweep's experiment kind accepts ``flexp`` (FlexP split personalization) as a variant."""
    from feddistort.sweep.kinds import experiment_chunk
    from feddistort.sweep.registry import job_from_mapping

    job = job_from_mapping(
        {
            "kind": "experiment",
            "presets": ["digits-flexp-budgets"],
            "quick": True,
            "variants": ["flexp"],
        }  # fmt: skip
    )
    assert job.variants == ("flexp",)
    unit = {"preset": "digits-flexp-budgets", "seed": 0, "quick": True, "variants": ["flexp"],
            "work": str(tmp_path / "w")}  # fmt: skip
    frame = experiment_chunk([unit], (), ())
    assert set(frame["variant"]) == {"fedavg", "flexp"}
