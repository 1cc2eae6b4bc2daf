"""Formats by content, not by name (safetensors as ``.st``), and ``--model mymodule:make``."""

from __future__ import annotations

import sys
import textwrap
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from safetensors.torch import save_file

from feddistort.cli import main

sys.path.insert(0, str(Path(__file__).parent))
from _framework_models import BNNet, images, perturbed, train_bn  # noqa: E402


def _pair(d: Path) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
    torch.manual_seed(4)
    g = BNNet()
    c = BNNet()
    c.load_state_dict(perturbed(g, "fc1", 0.2, seed=1))
    train_bn(c, steps=3, seed=2)
    np.savez(d / "data.npz", x=images(24))
    return g.state_dict(), c.state_dict()


def _run(d: Path, model: str, g: str, c: str, out: str, *extra: str) -> int:
    return main(["distortion", "--model", model, "--global", str(d / g), "--client",
                 f"c={d / c}", "--data", f"*={d / 'data.npz'}", "--no-progress",
                 "--out", str(d / out), *extra])  # fmt: skip


@pytest.mark.parametrize("names", [("g.st", "c.st"), ("g.pt", "c.bin"), ("g", "c.ckpt")])
def test_safetensors_recognized_by_content_whatever_the_name(tmp_path: Path, names) -> None:  # type: ignore[no-untyped-def]
    g, c = _pair(tmp_path)
    torch.save(g, tmp_path / "ref-g.pt")
    torch.save(c, tmp_path / "ref-c.pt")
    save_file(g, str(tmp_path / names[0]))
    save_file(c, str(tmp_path / names[1]))
    spec = "_framework_models:BNNet"
    assert _run(tmp_path, spec, "ref-g.pt", "ref-c.pt", "ref.csv") == 0
    assert _run(tmp_path, spec, *names, "st.csv") == 0
    ref, got = pd.read_csv(tmp_path / "ref.csv"), pd.read_csv(tmp_path / "st.csv")
    pd.testing.assert_frame_equal(got, ref, check_exact=True)
    assert ref[(ref.layer == "fc1") & (ref.metric == "weight_l2")].value.iloc[0] > 0


def test_model_module_in_the_current_directory(tmp_path: Path, monkeypatch, capsys) -> None:  # type: ignore[no-untyped-def]
    g, c = _pair(tmp_path)
    torch.save(g, tmp_path / "g.pt")
    torch.save(c, tmp_path / "c.pt")
    name = "feddistort_test_cwd_models"  # unique: not importable from anywhere else
    (tmp_path / f"{name}.py").write_text(textwrap.dedent(f"""
        import sys
        sys.path.insert(0, {str(Path(__file__).parent)!r})
        from _framework_models import BNNet

        def make(**kwargs):
            return BNNet(**kwargs)
    """))  # fmt: skip
    assert name not in sys.modules
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    assert _run(tmp_path, f"{name}:make", "g.pt", "c.pt", "r.csv") == 2
    err = capsys.readouterr().err
    assert f"cannot import {name!r}" in err
    assert "current directory" in err
    assert "PYTHONPATH" in err
    monkeypatch.chdir(tmp_path)
    try:
        assert _run(tmp_path, f"{name}:make", "g.pt", "c.pt", "r.csv", "--metrics",
                    "delta_l2,weight_l2") == 0  # fmt: skip
    finally:
        sys.modules.pop(name, None)
    table = pd.read_csv(tmp_path / "r.csv")
    assert (table.status == "ok").all()
    assert table[(table.layer == "conv") & (table.metric == "weight_l2")].value.iloc[0] == 0.0
    assert str(tmp_path) not in sys.path  # the directory was added only while importing


def test_factory_that_raises_is_one_line(tmp_path: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    g, c = _pair(tmp_path)
    torch.save(g, tmp_path / "g.pt")
    torch.save(c, tmp_path / "c.pt")
    code = _run(tmp_path, "_framework_models:BNNet", "g.pt", "c.pt", "r.csv",
                "--model-kwargs", '{"width": 3}')  # fmt: skip
    assert code == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1
    assert "model '_framework_models:BNNet' failed to build with kwargs {'width': 3}" in err
    assert not (tmp_path / "r.csv").exists()
