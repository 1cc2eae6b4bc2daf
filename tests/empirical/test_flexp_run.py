"""The ``flexp`` variant in the experiment: files, model.json parts, costs, resume, bad input."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest
import torch
from safetensors.torch import load

from empirical.experiment import make_preset, run_experiment
from empirical.experiment.flexp.config import FlexPConfig
from empirical.experiment.flexp.costs import client_cost, profile_model
from empirical.experiment.models import build_model
from empirical.experiment.training import FedAvgConfig
from feddistort.cli import main


@pytest.fixture(autouse=True)
def _single_thread() -> Iterator[None]:
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _tiny(mode: str) -> object:
    config = make_preset("digits-flexp-budgets", quick=True)
    fed = FedAvgConfig(rounds=2, local=config.fedavg.local)
    pft = dataclasses.replace(config.pft, epochs=1)
    flexp = dataclasses.replace(config.flexp, server_mode=mode)
    return dataclasses.replace(config, fedavg=fed, pft=pft, flexp=flexp)


@pytest.fixture(scope="module")
def shared_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("flexp")
    run_experiment(_tiny("shared"), out, seeds=[0], progress=False)  # type: ignore[arg-type]
    return out


def test_presets_and_config_json() -> None:
    flexp = make_preset("digits-flexp", quick=True)
    assert flexp.variants == ("split", "flexp")
    assert flexp.shift_units == ("covariate", "concept")
    assert "flexp" in flexp.to_json()
    assert "flexp" not in make_preset("digits-covariate", quick=True).to_json()
    budgets = make_preset("digits-flexp-budgets", quick=True)
    assert budgets.flexp.budgets == (1000.0, 6000.0, 40000.0)
    assert len(make_preset("digits-flexp-budgets").flexp.budgets) == 5


@pytest.mark.slow
def test_shared_run_writes_parts_costs_and_one_server_middle(shared_run: Path) -> None:
    ckpt = shared_run / "checkpoints" / "seed0" / "flexp"
    spec = json.loads((ckpt / "model.json").read_text())
    assert spec["version"] == 2
    cuts = {"client0": "1:0", "client1": "2:0", "client2": "2:1"}  # the budget rule's picks
    middles = {"client0": ["features.1.", "features.2.", "features.3."],
               "client1": ["features.2.", "features.3."], "client2": ["features.2."]}  # fmt: skip
    for name, parts in spec["client_parts"].items():
        assert parts["server_middle"] == middles[name]
        assert ("client_back" in parts) == (cuts[name].endswith(":1"))
    table = pd.read_csv(shared_run / "runs" / "seed0" / "flexp" / "clients.csv")
    assert dict(zip("client" + table["client"].astype(str), table["cut"], strict=True)) == cuts
    profile = profile_model(build_model("cnn"), (1, 8, 8))
    for _, row in table.iterrows():
        cost = client_cost(profile, int(row["cut_front"]), int(row["cut_back"])).as_row()
        assert {k: int(row[k]) for k in cost} == cost
    assert table[["local", "global", "delta", "delta_cut", "delta_cut_others"]].notna().all().all()
    server = load((ckpt / "server.safetensors").read_bytes())
    glob = load((shared_run / "checkpoints" / "seed0" / "global.safetensors").read_bytes())
    for c in range(3):
        client = load((ckpt / f"client{c}.safetensors").read_bytes())
        for prefix in middles[f"client{c}"]:  # evaluated with the one final middle
            for k in (k for k in server if k.startswith(prefix)):
                assert torch.equal(client[k], server[k])
    for k in (k for k in server if k.startswith("features.0.")):  # in no client's middle
        assert torch.equal(server[k], glob[k])
    assert any(not torch.equal(server[k], glob[k]) for k in server if "features.2." in k)
    done = json.loads((shared_run / "runs" / "seed0" / "flexp" / "done.json").read_text())
    assert "checkpoints/seed0/flexp/server.safetensors" in done["files"]
    metrics = pd.read_csv(shared_run / "metrics.csv")
    assert {"client_params", "client_flops", "bytes_sent", "activation_bytes"} <= set(
        metrics["metric"]
    )


@pytest.mark.slow
def test_resume_skips_and_repairs_the_server_checkpoint(shared_run: Path) -> None:
    server = shared_run / "checkpoints" / "seed0" / "flexp" / "server.safetensors"
    good = server.read_bytes()
    again = run_experiment(_tiny("shared"), shared_run, seeds=[0], progress=False)  # type: ignore[arg-type]
    assert (0, "flexp") in again.skipped
    server.write_bytes(good[:-3] + b"xyz")
    repaired = run_experiment(_tiny("shared"), shared_run, seeds=[0], progress=False)  # type: ignore[arg-type]
    assert (0, "flexp") in repaired.trained
    assert "checkpoints/seed0/flexp/server.safetensors" in repaired.damaged
    assert server.read_bytes() == good


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (["--cuts", "3:1"], "cut point 3:1 is outside the model"),
        (["--budgets", "10"], "budget params=10 fits no partition"),
        (["--beta", "-1"], "beta=-1.0 is invalid"),
        (["--server-mode", "pooled"], "server_mode='pooled' is invalid"),
        (["--cuts", "1:0,1:1,1:0,2:0"], "4 cut points for 3 clients"),
    ],
)
def test_bad_flexp_input_is_one_line_and_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], options: list[str], message: str
) -> None:
    out = tmp_path / "run"
    out.mkdir()
    (out / "keep.txt").write_text("old")
    argv = ["experiment", "--preset", "digits-flexp-budgets", "--quick", "--out", str(out)]
    assert main([*argv, *options]) == 2
    err = capsys.readouterr().err.strip()
    assert message in err
    assert len(err.splitlines()) == 1
    assert sorted(p.name for p in out.iterdir()) == ["keep.txt"]


def test_flexp_options_need_the_flexp_variant(capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["experiment", "--preset", "digits-covariate", "--quick", "--out", "unused"]
    assert main([*argv, "--beta", "0.5"]) == 2
    assert "do not include flexp" in capsys.readouterr().err


def test_flexp_config_is_refused_when_no_cut_fits() -> None:
    bad = FlexPConfig(cuts=(), budgets=(1.0,))
    with pytest.raises(ValueError, match="fits no partition"):
        make_preset("digits-flexp", quick=True, flexp=bad)


@pytest.mark.slow
def test_distortion_reports_per_part_drift_from_the_units_model_json(
    shared_run: Path, tmp_path: Path
) -> None:
    frozen = tmp_path / "frozen"
    run_experiment(_tiny("frozen"), frozen, seeds=[0], progress=False)  # type: ignore[arg-type]
    assert not (frozen / "checkpoints" / "seed0" / "flexp" / "server.safetensors").exists()
    for out, middle_moves in ((shared_run, True), (frozen, False)):
        ckpt, data = out / "checkpoints" / "seed0", out / "data" / "seed0"
        csv = tmp_path / f"{out.name}.csv"
        argv = ["distortion", "--model", str(ckpt / "flexp" / "model.json"),
                "--global", str(ckpt / "global.safetensors"), "--no-progress",
                "--metrics", "weight_l2", "--out", str(csv)]  # fmt: skip
        for c in range(3):
            argv += ["--client", f"client{c}={ckpt / 'flexp' / f'client{c}.safetensors'}",
                     "--data", f"client{c}={data / f'client{c}.npz'}"]  # fmt: skip
        assert main(argv) == 0
        table = pd.read_csv(csv)
        parts = table[table["layer"].str.startswith("part:")].set_index(["client", "layer"])
        assert parts.loc[("client0", "part:client_front"), "value"] > 0
        assert ("client0", "part:client_back") not in parts.index  # cut 1:0 has no back
        assert parts.loc[("client2", "part:client_back"), "value"] > 0
        for c in range(3):
            moved = parts.loc[(f"client{c}", "part:server_middle"), "value"] > 0
            assert moved == middle_moves
