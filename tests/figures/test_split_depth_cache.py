"""The split-depth study cache is reused only for the very same study configuration."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

import empirical.experiment.flexp.study as study_module
from figures import split_depth_figures as sdf


def _fake_frame(config: Any) -> pd.DataFrame:
    rows = [{"shift": s, "seed": seed, "mode": m, "cut": c, "client_blocks": 1, "beta": b,
             "client": 0, "metric": "local", "value": 0.5}
            for s in config.shifts for seed in config.seeds for m in config.modes
            for c in config.cuts for b in config.betas]  # fmt: skip
    return pd.DataFrame(rows)


@pytest.fixture
def calls(monkeypatch: pytest.MonkeyPatch) -> list[Any]:
    seen: list[Any] = []

    def fake(config: Any, progress: Any = None) -> pd.DataFrame:
        seen.append(config)
        return _fake_frame(config)

    monkeypatch.setattr(study_module, "split_depth_study", fake)
    return seen


@pytest.mark.parametrize(
    ("key", "value"),
    [("real_quick", False), ("real_epochs", 1), ("real_rounds", 2),
     ("real_align_depth", "first"), ("betas", [0.0, 0.5, 1.0]), ("cuts", ["1:0", "2:1"])],
)  # fmt: skip
def test_changed_setting_reruns_the_study(calls: list[Any], tmp_path: Path, key: str,
                                          value: Any) -> None:  # fmt: skip
    settings = sdf.split_depth_settings(True)
    sdf._real_frame(settings, tmp_path)
    sdf._real_frame(settings, tmp_path)
    assert len(calls) == 1  # same settings: cached
    changed = {**settings, key: value}
    sdf._real_frame(changed, tmp_path)
    assert len(calls) == 2, f"{key} changed but the cached study was reused"
    stored = json.loads((tmp_path / "split_depth_study.json").read_text())
    assert stored == sdf.study_signature(calls[-1])
    sdf._real_frame(changed, tmp_path)
    assert len(calls) == 2


def test_missing_or_corrupt_config_reruns(calls: list[Any], tmp_path: Path) -> None:
    settings = sdf.split_depth_settings(True)
    sdf._real_frame(settings, tmp_path)
    (tmp_path / "split_depth_study.json").write_text("{not json")
    sdf._real_frame(settings, tmp_path)
    (tmp_path / "split_depth_study.json").unlink()
    sdf._real_frame(settings, tmp_path)
    assert len(calls) == 3


def test_signature_holds_every_study_field() -> None:
    import dataclasses

    from empirical.experiment.flexp.study import StudyConfig

    signature = sdf.study_signature(StudyConfig())
    assert set(signature) == {f.name for f in dataclasses.fields(StudyConfig)}


def test_caption_hard_codes_no_run_size() -> None:
    caption = sdf.SPEC.caption
    for text in ("3 clients", "10 FedAvg", "3 epochs", "1:0, 1:1 or 2:1"):
        assert text not in caption
