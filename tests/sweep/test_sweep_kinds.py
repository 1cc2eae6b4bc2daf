"""The theory and experiment kinds of ``feddistort sweep`` (feddistort.sweep.kinds)."""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from feddistort.cli import main
from feddistort.sweep.engine import run_sweep
from feddistort.sweep.registry import job_from_mapping
from synthetic.config import ConfigError, SimConfig
from theory.claims import get_claim
from theory.closed_forms import tau

BASE = {"covariate": "isotropic", "d": 12, "m": 3, "C": 4, "lam": 1.0, "vcom_norm": 1.0}
# tau = 2 c_L eta s with s = 1 + ||V*_com||^2 = 2: the boundary tau = 1 is at eta = 0.25.
ETAS = [0.1, 0.2, 0.3, 0.4]
THEORY = {
    "kind": "theory",
    "claims": ["thm-4.4", "lemma-4.3"],
    "base": BASE,
    "grid": {"eta": ETAS, "covariate": ["isotropic", "own"]},
    "chunk": 3,
}


def _plain(frame: pd.DataFrame) -> pd.DataFrame:
    """Categorical (dictionary-encoded) columns as plain strings, for comparisons."""
    return frame.astype({c: str for c in frame.columns if frame[c].dtype == "category"})


def _theory(tmp_path: Path, name: str, backend: str) -> bytes:
    report = run_sweep(job_from_mapping(THEORY), tmp_path / name, backend=backend)
    assert report.failed == {}
    assert report.chunks == 3  # 8 configurations in chunks of 3
    assert report.results is not None
    return report.results.read_bytes()


def test_theory_sweep_rows_and_backends(tmp_path: Path) -> None:
    serial = _theory(tmp_path, "serial", "serial")
    assert _theory(tmp_path, "loky", "loky") == serial
    rows = pd.read_parquet(tmp_path / "serial" / "results.parquet")
    assert len(rows) == len(ETAS) * 2 * 2  # configurations x claims
    assert set(SimConfig().to_dict()) <= set(rows.columns)
    for _, row in rows.iterrows():
        config = SimConfig(**{**BASE, "eta": row["eta"], "covariate": row["covariate"]})
        failures = get_claim(row["claim"]).hypotheses(config)
        if failures:  # outside the hypotheses: a reason, no check
            assert row["skipped"] == "; ".join(failures)
            assert pd.isna(row["holds"])
            continue
        assert row["skipped"] == ""
        assert row["holds"] is True
        assert float(row["max_abs_error"]) <= float(row["tolerance"])
        if row["claim"] == "thm-4.4":
            t = float(tau(row["eta"], 1.0 + BASE["vcom_norm"] ** 2, config.loss_scale))
            assert row["conclusion_holds"] is bool(t >= 1.0)
    thm = rows[(rows["claim"] == "thm-4.4") & (rows["skipped"] == "")]
    assert sorted(thm["eta"]) == ETAS  # both sides of 2 eta s = 1 were checked
    assert set(thm["conclusion_holds"]) == {True, False}
    assert (rows[rows["covariate"] == "own"]["skipped"] != "").any()


def test_theory_sweep_resume_reuses_shards(tmp_path: Path) -> None:
    first = _theory(tmp_path, "run", "serial")
    report = run_sweep(job_from_mapping(THEORY), tmp_path / "run", backend="serial")
    assert (report.reused, report.computed) == (3, 0)
    assert report.results is not None
    assert report.results.read_bytes() == first


@pytest.mark.slow
def test_experiment_sweep_resumes_and_is_deterministic(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "exp"
    args = [
        "sweep",
        "--kind",
        "experiment",
        "--presets",
        "digits-iid",
        "--seeds",
        "2",
        "--quick",
        "--variants",
        "ft,lp",
        "--backend",
        "serial",
        "--no-progress",
        "--out",
        str(out),
    ]
    assert main([*args[:6], "1", *args[7:]]) == 0  # seed 0 alone first
    first = (out / "results.parquet").read_bytes()
    capsys.readouterr()
    # The folder holds seeds=1: the 2-seed spec is refused there (spec.json differs).
    assert main(args) == 2
    assert "different sweep" in capsys.readouterr().err
    out2 = tmp_path / "exp2"
    args[-1] = str(out2)
    assert main(args) == 0
    assert "0 reused, 2 computed" in capsys.readouterr().out
    shards = sorted((out2 / "shards").glob("*.parquet"))
    assert len(shards) == 2
    mtimes = {p: p.stat().st_mtime_ns for p in shards}
    result = (out2 / "results.parquet").read_bytes()
    assert main(args) == 0
    assert "2 reused, 0 computed" in capsys.readouterr().out
    assert {p: p.stat().st_mtime_ns for p in shards} == mtimes
    assert (out2 / "results.parquet").read_bytes() == result
    # Losing one shard recomputes that unit only, to the same bytes (deterministic training).
    victim = shards[1]
    victim.unlink()
    assert main(args) == 0
    assert "1 reused, 1 computed" in capsys.readouterr().out
    assert (out2 / "results.parquet").read_bytes() == result
    assert shards[0].stat().st_mtime_ns == mtimes[shards[0]]
    table = _plain(pd.read_parquet(out2 / "results.parquet"))
    assert list(table.columns) == ["preset", "seed", "variant", "client", "metric", "value"]
    assert sorted(table["seed"].unique()) == [0, 1]
    assert set(table["variant"]) == {"fedavg", "ft", "lp"}
    assert set(table["preset"]) == {"digits-iid-quick"}
    # Seed 0 of the 2-seed sweep equals the 1-seed sweep (same unit, independent run).
    seed0 = table[table["seed"] == 0].reset_index(drop=True)
    alone = _plain(pd.read_parquet(io.BytesIO(first)))
    pd.testing.assert_frame_equal(seed0, alone)
    assert np.isfinite(table["value"]).all()
    spec = json.loads((out2 / "spec.json").read_text())
    assert spec["kind"] == "experiment"
    assert spec["variants"] == ["ft", "lp"]


@pytest.mark.parametrize(
    ("argv", "needle"),
    [
        (["--kind", "bogus"], "kind='bogus' is invalid"),
        (["--kind", "theory", "--claims", "thm-9.9"], "claims='thm-9.9' is invalid"),
        (["--kind", "theory"], "claims is missing"),
        (["--kind", "experiment", "--presets", "digits-nope"], "presets='digits-nope' is invalid"),
        (["--kind", "experiment", "--presets", "digits-iid", "--variants", "xx"], "variants='xx'"),
        (["--kind", "experiment", "--presets", "digits-iid", "--grid", "eta=0.1,0.2"], "'grid'"),
        (["--kind", "theory", "--claims", "thm-4.4", "--methods", "ft"], "'methods'"),
    ],
)
def test_bad_kind_input_exits_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], argv: list[str], needle: str
) -> None:
    code = main(["sweep", *argv, "--backend", "serial", "--out", str(tmp_path / "o")])
    err = capsys.readouterr().err
    assert code == 2
    assert needle in err
    assert "Traceback" not in err
    assert not (tmp_path / "o").exists()  # refused before anything is written


def test_unknown_kind_in_spec_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="expected one of simulate, theory, experiment"):
        job_from_mapping({"kind": 3})
