"""Checkpoint loading: formats, nesting, prefixes, safety, mismatches, model specs, inputs."""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import save_file

from empirical.checkpoints import (
    CorruptCheckpointError,
    StateDictMismatchError,
    UnsafeCheckpointError,
    load_model,
    load_state_dict,
)
from empirical.inputs import load_inputs
from empirical.model_spec import resolve_model_spec

# pytest runs with --import-mode=importlib: make the helper models importable by spec string.
sys.path.insert(0, str(Path(__file__).parent))
from _distortion_models import TinyCNN, TinyMLP  # noqa: E402


def _sd() -> dict[str, torch.Tensor]:
    torch.manual_seed(0)
    return {k: v.clone() for k, v in TinyMLP().state_dict().items()}


def _same(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> None:
    assert sorted(a) == sorted(b)
    for k in a:
        assert torch.equal(a[k], b[k]), k


@pytest.mark.parametrize(
    "wrap",
    [
        lambda sd: sd,
        lambda sd: {"epoch": 3, "state_dict": sd},
        lambda sd: {"model_state_dict": sd, "optimizer": {"lr": 0.1}},
        lambda sd: {"net": {f"module.{k}": v for k, v in sd.items()}},
        lambda sd: {f"_orig_mod.module.{k}": v for k, v in sd.items()},
    ],
)
@pytest.mark.parametrize("suffix", [".pt", ".pth", ".bin"])
def test_pytorch_formats_and_nesting(tmp_path: Path, wrap, suffix: str) -> None:  # type: ignore[no-untyped-def]
    sd = _sd()
    path = tmp_path / f"ckpt{suffix}"
    torch.save(wrap(sd), path)
    _same(load_state_dict(path), sd)


def test_safetensors_and_legacy_format(tmp_path: Path) -> None:
    sd = _sd()
    save_file({f"module.{k}": v for k, v in sd.items()}, str(tmp_path / "m.safetensors"))
    _same(load_state_dict(tmp_path / "m.safetensors"), sd)
    torch.save(sd, tmp_path / "legacy.pt", _use_new_zipfile_serialization=False)
    _same(load_state_dict(tmp_path / "legacy.pt"), sd)


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="nope.pt"):
        load_state_dict(tmp_path / "nope.pt")


@pytest.mark.parametrize("name", ["bad.pt", "bad.safetensors"])
def test_corrupt_file(tmp_path: Path, name: str) -> None:
    path = tmp_path / name
    path.write_bytes(np.random.default_rng(0).bytes(300))
    with pytest.raises(CorruptCheckpointError, match="not a readable"):
        load_state_dict(path)


def test_truncated_checkpoint_is_corrupt(tmp_path: Path) -> None:
    path = tmp_path / "t.pt"
    torch.save(_sd(), path)
    path.write_bytes(path.read_bytes()[:200])
    with pytest.raises(CorruptCheckpointError):
        load_state_dict(path)


class _CreatesFile:
    def __init__(self, target: str) -> None:
        self.target = target

    def __reduce__(self):  # type: ignore[no-untyped-def]
        return (open, (self.target, "w"))


def test_malicious_pickle_is_refused_and_runs_nothing(tmp_path: Path) -> None:
    marker = tmp_path / "PWNED"
    path = tmp_path / "evil.pt"
    torch.save({"state_dict": _sd(), "payload": _CreatesFile(str(marker))}, path)
    assert not marker.exists()
    _same(load_state_dict(path), _sd())  # read safely: the payload stays an inert placeholder
    assert not marker.exists()
    torch.save(_CreatesFile(str(marker)), path)  # nothing but the payload
    with pytest.raises(UnsafeCheckpointError, match="trust-checkpoint") as info:
        load_state_dict(path)
    assert "open" in str(info.value)
    assert not marker.exists()


def test_trust_opt_in_loads_pickled_objects(tmp_path: Path) -> None:
    path = tmp_path / "with_args.pt"
    torch.save({"state_dict": _sd(), "args": argparse.Namespace(lr=0.1)}, path)
    _same(load_state_dict(path), _sd())
    _same(load_state_dict(path, trust=True), _sd())


def test_no_state_dict_inside(tmp_path: Path) -> None:
    path = tmp_path / "x.pt"
    torch.save({"epoch": 3, "lr": 0.1}, path)
    with pytest.raises(ValueError, match="no state_dict found.*'epoch'"):
        load_state_dict(path)


def test_state_dict_mismatch_names_keys(tmp_path: Path) -> None:
    path = tmp_path / "cnn.pt"
    torch.save(TinyCNN().state_dict(), path)
    with pytest.raises(StateDictMismatchError) as info:
        load_model("_distortion_models:TinyMLP", path)
    msg = str(info.value)
    assert "missing keys (6): fc1.weight, fc1.bias" in msg
    assert "unexpected keys (2): conv.weight, conv.bias" in msg
    torch.save(TinyMLP(hidden=5).state_dict(), path)
    with pytest.raises(StateDictMismatchError, match=r"fc1.weight \(5, 6\) vs model \(8, 6\)"):
        load_model("_distortion_models:TinyMLP", path)


def test_load_model_round_trip_in_eval_mode(tmp_path: Path) -> None:
    path = tmp_path / "m.pt"
    torch.save(_sd(), path)
    model = load_model("_distortion_models:TinyMLP", path, model_kwargs={"hidden": 8})
    assert not model.training
    _same(model.state_dict(), _sd())


def test_model_specs(tmp_path: Path) -> None:
    lin = resolve_model_spec("torch.nn:Linear", {"in_features": 3, "out_features": 2}).build()
    assert isinstance(lin, torch.nn.Linear)
    assert lin.weight.shape == (2, 3)
    for bad, match in [
        ("torch.nn:NoSuch", "no attribute"),
        ("no_such_pkg.x:f", "cannot import"),
        ("not-a-model", "registry name"),
    ]:
        with pytest.raises(ValueError, match=match):
            resolve_model_spec(bad)
    with pytest.raises(ValueError, match="failed to build"):
        resolve_model_spec("torch.nn:Linear", {"bogus": 1}).build()
    desc = tmp_path / "model.json"
    desc.write_text(
        json.dumps(
            {
                "model": "_distortion_models:TinyMLP",
                "kwargs": {"hidden": 5},
                "parts": {"h": ["head."]},
            }
        )
    )
    spec = resolve_model_spec(str(desc), allow_modules=["_distortion_models"])
    assert spec.parts == {"h": ["head."]}
    assert spec.build().fc1.weight.shape == (5, 6)


def test_registry_spec() -> None:
    models = pytest.importorskip("empirical.experiment.models")
    name = sorted(models.MODEL_REGISTRY)[0]
    spec = resolve_model_spec(name)
    assert spec.factory is models.MODEL_REGISTRY[name]


def test_inputs_formats(tmp_path: Path) -> None:
    x = np.random.default_rng(0).normal(size=(10, 6)).astype(np.float32)
    np.savez(tmp_path / "xy.npz", x=x, y=np.arange(10))
    np.savez(tmp_path / "single.npz", feats=x)
    np.savez(tmp_path / "two.npz", a=x, b=x)
    np.save(tmp_path / "x.npy", x)
    torch.save({"x": torch.from_numpy(x), "y": torch.arange(10)}, tmp_path / "x.pt")
    for name in ["xy.npz", "single.npz", "x.npy", "x.pt"]:
        got = load_inputs(tmp_path / name)
        assert torch.equal(got, torch.from_numpy(x)), name
    with pytest.raises(ValueError, match="expected one named 'x'"):
        load_inputs(tmp_path / "two.npz")
    with pytest.raises(FileNotFoundError):
        load_inputs(tmp_path / "none.npz")
    (tmp_path / "bad.npz").write_bytes(os.urandom(64))
    with pytest.raises(ValueError, match="not a readable"):
        load_inputs(tmp_path / "bad.npz")
