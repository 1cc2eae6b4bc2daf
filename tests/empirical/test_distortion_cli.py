"""``feddistort distortion`` end to end: CSV + PNG written atomically, bad input exits 2."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from feddistort.cli import main

sys.path.insert(0, str(Path(__file__).parent))
from _distortion_models import TinyMLP  # noqa: E402


@pytest.fixture
def run_dir(tmp_path: Path) -> Path:
    torch.manual_seed(0)
    model = TinyMLP(hidden=5)
    torch.save(model.state_dict(), tmp_path / "global.pt")
    for c in range(2):
        with torch.no_grad():
            model.fc3.weight.add_(0.3)
        torch.save({"state_dict": model.state_dict()}, tmp_path / f"client{c}.pt")
        x = np.random.default_rng(c).normal(size=(40, 6)).astype(np.float32)
        np.savez(tmp_path / f"c{c}.npz", x=x, y=np.zeros(40, dtype=np.int64))
    return tmp_path


def _args(d: Path, *extra: str) -> list[str]:
    return [
        "distortion",
        "--model", "_distortion_models:TinyMLP",
        "--model-kwargs", json.dumps({"hidden": 5}),
        "--global", str(d / "global.pt"),
        "--client", f"c0={d / 'client0.pt'}",
        "--client", f"c1={d / 'client1.pt'}",
        "--data", f"c0={d / 'c0.npz'}",
        "--data", f"c1={d / 'c1.npz'}",
        "--no-progress",
        *extra,
    ]  # fmt: skip


def test_cli_writes_csv_and_heatmap(run_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = run_dir / "out" / "report.csv"
    code = main(_args(run_dir, "--layers", "fc*", "head:in", "--metrics", "delta_l2,cka",
                      "--batch-size", "16", "--out", str(out)))  # fmt: skip
    assert code == 0
    table = pd.read_csv(out)
    assert list(table.columns) == ["client", "layer", "kind", "metric", "value", "n", "status"]
    assert set(table.layer) == {"fc1", "fc2", "fc3", "head:in"}
    assert set(table.metric) == {"delta_l2", "cka"}
    val = table.set_index(["client", "layer", "metric"]).value
    assert val["c0", "fc2", "delta_l2"] == 0.0
    assert val["c1", "fc3", "delta_l2"] > val["c0", "fc3", "delta_l2"] > 0.0
    png = out.with_suffix(".png")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert not [p.name for p in out.parent.iterdir() if p.name.endswith(".tmp")]
    assert "wrote" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (["--global", "/nonexistent/g.pt"], "does not exist"),
        (["--layers", "fc9"], "nearest valid names"),
        (["--model-kwargs", "{bad"], "not valid JSON"),
        (["--model-kwargs", json.dumps({"hidden": 7})], "does not fit the model architecture"),
        (["--metrics", "cka,nope"], "nope"),
    ],
)
def test_cli_bad_input_exits_2(
    run_dir: Path, change: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    out = run_dir / "bad.csv"
    assert main([*_args(run_dir, "--out", str(out)), *change]) == 2
    err = capsys.readouterr().err
    assert "feddistort distortion: error:" in err
    assert message in err
    assert "Traceback" not in err
    assert not out.exists()


def test_cli_reads_pickled_objects_safely_without_opt_in(run_dir: Path) -> None:
    import argparse

    sd = torch.load(run_dir / "client0.pt", weights_only=True)
    torch.save({**sd, "args": argparse.Namespace(lr=1.0)}, run_dir / "client0.pt")
    out = run_dir / "r.csv"
    assert main([*_args(run_dir, "--out", str(out))]) == 0
    assert out.exists()


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (["--heatmap-metric", "nope"], "--heatmap-metric 'nope' is invalid"),
        (["--metrics", "cka", "--heatmap-metric", "delta_l2"], "computed metrics (cka)"),
        (["--model", "_distortion_models:broken"], "this factory always fails"),
    ],
)
def test_cli_refuses_before_computing(
    run_dir: Path, change: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    out = run_dir / "bad.csv"
    assert main([*_args(run_dir, "--out", str(out)), *change]) == 2
    err = capsys.readouterr().err
    assert message in err
    assert "Traceback" not in err
    assert not out.exists()


def test_cli_bad_data_names_checkpoint_and_data(
    run_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    np.save(run_dir / "wide.npy", np.zeros((10, 9), dtype=np.float32))
    np.save(run_dir / "text.npy", np.array(["a", "b"]))
    np.save(run_dir / "obj.npy", np.array([{"a": 1}], dtype=object), allow_pickle=True)
    for name, message in [("wide.npy", "forward pass of"), ("text.npy", "dtype <U1"),
                          ("obj.npy", "Python objects")]:  # fmt: skip
        argv = _args(run_dir, "--out", str(run_dir / "r.csv"))
        argv[argv.index(f"c0={run_dir / 'c0.npz'}")] = f"c0={run_dir / name}"
        assert main(argv) == 2
        err = capsys.readouterr().err
        assert message in err, err
        assert name in err
        assert "Traceback" not in err
        assert len(err.strip().splitlines()) == 1
        if name != "wide.npy":  # read before any forward pass: the line names the client
            assert "data of client 'c0': " in err
        else:  # the forward pass names the checkpoint and the data file
            assert "global.pt on " in err  # the global model runs first


ROOT = Path(__file__).resolve().parents[2]
GUIDE = ROOT / "docs" / "checkpoints.md"


def _slug(heading: str) -> str:
    """GitHub's anchor of a Markdown heading."""
    import re

    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def test_readme_and_docs_links_resolve() -> None:
    import re

    for doc in [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]:
        text = doc.read_text(encoding="utf-8")
        anchors = {_slug(h) for h in re.findall(r"^#+ (.+)$", text, flags=re.M)}
        for target, anchor in re.findall(r"\]\(([^)#\s]*)(?:#([^)\s]*))?\)", text):
            if target.startswith("http"):
                continue
            if target:
                assert (doc.parent / target).exists(), f"{doc.name}: link {target!r} is broken"
            elif anchor:
                assert anchor in anchors, f"{doc.name}: anchor #{anchor} matches no heading"


def test_guide_lists_every_option_and_nested_key() -> None:
    import argparse

    from empirical.formats import NESTED_KEYS
    from feddistort.distortion_cli import register

    sub = argparse.ArgumentParser().add_subparsers()
    register(sub)
    parser = sub.choices["distortion"]
    text = GUIDE.read_text(encoding="utf-8")
    options = text[text.index("## Options") :]
    flags = [s for a in parser._actions for s in a.option_strings if s.startswith("--")]
    missing = [f for f in flags if f != "--help" and f"`{f}" not in options]
    assert not missing, f"docs/checkpoints.md's options table lacks {missing}"
    listed = ", ".join(f"`{k}`" for k in NESTED_KEYS)
    assert listed in " ".join(text.split()), "the nested keys in the guide differ from NESTED_KEYS"
