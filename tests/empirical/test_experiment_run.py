"""The experiment runner and ``feddistort experiment``: outputs, resume, bad input, hand-off."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest
import torch

from empirical.experiment import (
    ExperimentConfig,
    load_epoch_log,
    load_metrics,
    make_preset,
    run_experiment,
)
from feddistort.cli import main

VARIANTS = ("ft", "lp", "split")


@pytest.fixture(autouse=True)
def _single_thread() -> Iterator[None]:
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("exp")
    config = make_preset("digits-covariate", quick=True, variants=VARIANTS)
    report = run_experiment(config, out, seeds=[0, 1], progress=False)
    assert sorted(report.trained) == sorted((s, v) for s in (0, 1) for v in ("fedavg", *VARIANTS))
    return out


def _mtimes(out: Path) -> dict[str, int]:
    return {
        str(p): p.stat().st_mtime_ns
        for p in out.rglob("*")
        if p.is_file() and (p.suffix == ".safetensors" or p.parent.parent.name.startswith("seed"))
    }


@pytest.mark.slow
def test_outputs_layout_and_tidy_tables(run_dir: Path) -> None:
    config = json.loads((run_dir / "config.json").read_text())
    assert config["seeds"] == [0, 1]
    assert config["variants"] == list(VARIANTS)
    spec = json.loads((run_dir / "checkpoints" / "model.json").read_text())
    assert spec["model"] == "cnn"
    assert spec["parts"]["server_middle"] == ["features.1.", "features.2."]
    n_clients = 3
    for seed in (0, 1):
        assert (run_dir / "checkpoints" / f"seed{seed}" / "global.safetensors").exists()
        for c in range(n_clients):
            data = run_dir / "data" / f"seed{seed}" / f"client{c}.npz"
            assert data.exists()
            for v in VARIANTS:
                assert (
                    run_dir / "checkpoints" / f"seed{seed}" / v / f"client{c}.safetensors"
                ).exists()
    metrics = pd.read_csv(run_dir / "metrics.csv")
    keys = ["seed", "client", "variant", "metric"]
    assert not metrics.duplicated(keys).any()
    assert len(metrics) == 2 * n_clients * (len(VARIANTS) + 1) * 5
    wide = metrics.pivot_table(
        index=["seed", "client", "variant"], columns="metric", values="value"
    )
    assert wide["local"].between(0, 1).all()
    # global_all is the mean over all clients, global the mean over the others.
    pd.testing.assert_series_equal(
        wide["global_all"], (wide["local"] + (n_clients - 1) * wide["global"]) / n_clients,
        check_names=False, atol=1e-12,
    )  # fmt: skip
    lp = wide.xs("lp", level="variant")
    assert (lp["delta"] == 0).all()  # LP keeps the features bit-identical
    assert (wide.xs("ft", level="variant")["delta"] > 0).all()
    epochs = load_epoch_log(run_dir)
    assert set(epochs["epoch"]) == {0, 1, 2, 3}
    assert set(epochs["metric"]) == {"local_acc", "global_acc", "delta"}
    assert not epochs.duplicated([*keys, "epoch"]).any()
    last = epochs[(epochs["epoch"] == 3) & (epochs["metric"] == "local_acc")]
    merged = last.merge(metrics[metrics["metric"] == "local"], on=["seed", "client", "variant"])
    pd.testing.assert_series_equal(merged["value_x"], merged["value_y"], check_names=False)
    summary = pd.read_csv(run_dir / "summary.csv")
    assert set(summary["metric"]) >= {"Local", "Global", "C-Std", "Worst", "Average", "Delta"}
    row = summary[(summary["variant"] == "ft") & (summary["metric"] == "Local")].iloc[0]
    assert row["n_seeds"] == 2
    per_seed = wide.xs("ft", level="variant")["local"].groupby(level="seed").mean()
    assert row["mean"] == pytest.approx(per_seed.mean())
    assert row["std"] == pytest.approx(per_seed.std(ddof=1))
    assert "| lp |" in (run_dir / "summary.md").read_text()


@pytest.mark.slow
def test_resume_skips_finished_units_and_recomputes_only_missing_ones(run_dir: Path) -> None:
    config = make_preset("digits-covariate", quick=True, variants=VARIANTS)
    before = _mtimes(run_dir)
    report = run_experiment(config, run_dir, seeds=[0, 1], progress=False)
    assert report.trained == []
    assert len(report.skipped) == 2 * (len(VARIANTS) + 1)
    assert _mtimes(run_dir) == before
    # An interrupted unit (no done marker) is recomputed, and nothing is duplicated.
    (run_dir / "runs" / "seed1" / "lp" / "done.json").unlink()
    report = run_experiment(config, run_dir, seeds=[0, 1], progress=False)
    assert report.trained == [(1, "lp")]
    metrics = load_metrics(run_dir)
    assert not metrics.duplicated(["seed", "client", "variant", "metric"]).any()
    assert len(pd.read_csv(run_dir / "metrics.csv")) == len(metrics)


@pytest.mark.slow
def test_checkpoints_load_in_the_distortion_cli(run_dir: Path, tmp_path: Path) -> None:
    ck = run_dir / "checkpoints" / "seed0"
    argv = ["distortion", "--model", str(run_dir / "checkpoints" / "model.json"),
            "--global", str(ck / "global.safetensors"), "--no-progress",
            "--out", str(tmp_path / "d.csv")]  # fmt: skip
    for c in range(3):
        argv += ["--client", f"{c}={ck / 'ft' / f'client{c}.safetensors'}"]
        argv += ["--data", f"{c}={run_dir / 'data' / 'seed0' / f'client{c}.npz'}"]
    assert main(argv) == 0
    table = pd.read_csv(tmp_path / "d.csv")
    theirs = table[(table["layer"] == "head:in") & (table["metric"] == "delta_l2")]
    ours = load_metrics(run_dir).query("seed == 0 and variant == 'ft' and metric == 'delta'")
    merged = theirs.merge(ours, on="client")
    assert len(merged) == 3
    pd.testing.assert_series_equal(
        merged["value_x"], merged["value_y"], check_names=False, rtol=1e-5
    )
    assert set(table["layer"]) >= {"part:server_middle", "part:client_front", "part:head"}


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--preset", "digits-weather"], "unknown preset 'digits-weather'"),
        (["--preset", "digits-label", "--variants", "ft,magic"], "magic"),
        (["--preset", "digits-label", "--model", "resnet"], "unknown model 'resnet'"),
        (["--preset", "digits-label", "--seeds", "0"], "--seeds must be >= 1, got 0"),
        (
            ["--preset", "digits-label", "--flood", "-0.5"],
            "flood_level must be >= 0 or None, got -0.5",
        ),
    ],
)
def test_cli_bad_input(
    args: list[str], message: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "out"
    assert main(["experiment", *args, "--quick", "--out", str(out)]) == 2
    assert message in capsys.readouterr().err
    assert not out.exists()


def test_cli_refuses_a_different_configuration_and_keeps_existing_files(
    run_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    before = {p: p.read_bytes() for p in [run_dir / "config.json", run_dir / "metrics.csv"]}
    mtimes = _mtimes(run_dir)
    code = main(["experiment", "--preset", "digits-concept", "--quick", "--seeds", "1",
                 "--no-progress", "--out", str(run_dir)])  # fmt: skip
    assert code == 2
    assert "different configuration" in capsys.readouterr().err
    assert {p: p.read_bytes() for p in before} == before
    assert _mtimes(run_dir) == mtimes


def test_config_validation() -> None:
    base = make_preset("digits-label", quick=True)
    with pytest.raises(ValueError, match="variants"):
        ExperimentConfig(preset="x", data=base.data, variants=("ft", "ft"))
    with pytest.raises(ValueError, match="front_depth=3, back_depth=1"):
        ExperimentConfig(
            preset="x", data=base.data, model="mlp", pft=type(base.pft)(split_front=3, split_back=1)
        )
    with pytest.raises(ValueError, match="seeds"):
        run_experiment(base, "/nonexistent/never", seeds=[])


@pytest.mark.slow
def test_quick_cli_run_end_to_end(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "cli"
    argv = ["experiment", "--preset", "digits-concept", "--quick", "--seeds", "1",
            "--variants", "lpft,sparse,soup,lss,proximal", "--model", "mlp", "--no-progress",
            "--out", str(out)]  # fmt: skip
    assert main(argv) == 0
    printed = capsys.readouterr().out
    assert "| lss |" in printed
    assert main(argv) == 0
    assert "trained 0 unit(s), skipped 6 finished" in capsys.readouterr().out


@pytest.mark.slow
def test_runs_are_reproducible_from_the_seed(tmp_path: Path) -> None:
    config = make_preset("digits-label", quick=True, variants=("sparse",))
    run_experiment(config, tmp_path / "a", seeds=[3], progress=False)
    run_experiment(config, tmp_path / "b", seeds=[3], progress=False)
    a, b = load_metrics(tmp_path / "a"), load_metrics(tmp_path / "b")
    pd.testing.assert_frame_equal(a, b)
    assert load_epoch_log(tmp_path / "a").equals(load_epoch_log(tmp_path / "b"))


@pytest.mark.slow
def test_flood_level_reaches_every_variant(tmp_path: Path) -> None:
    out = tmp_path / "flood"
    argv = ["experiment", "--preset", "digits-label", "--quick", "--seeds", "1", "--variants",
            "ft", "--flood", "0.5", "--no-progress", "--out", str(out)]  # fmt: skip
    assert main(argv) == 0
    config = json.loads((out / "config.json").read_text())
    assert config["pft"]["local"]["flood_level"] == 0.5
    assert config["fedavg"]["local"]["flood_level"] is None
    plain = make_preset("digits-label", quick=True, variants=("ft",))
    run_experiment(plain, tmp_path / "plain", seeds=[0], progress=False)
    flooded = load_metrics(out).query("variant == 'ft' and metric == 'delta'")["value"].to_numpy()
    unflooded = load_metrics(tmp_path / "plain").query("variant == 'ft' and metric == 'delta'")
    assert not (flooded == unflooded["value"].to_numpy()).all()  # flooding changed training
