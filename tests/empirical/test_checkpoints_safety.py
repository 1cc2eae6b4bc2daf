"""Files that could run code: model.json names, whole pickled models, payloads, legacy pickles."""

from __future__ import annotations

import io
import json
import os
import pickle
import sys
import types
from pathlib import Path

import numpy as np
import pytest
import torch

from empirical.checkpoints import UnsafeCheckpointError, load_state_dict
from empirical.model_spec import UntrustedModelError, model_json, resolve_model_spec
from feddistort.cli import build_parser, main

sys.path.insert(0, str(Path(__file__).parent))
from _distortion_models import SmallCNN, TinyMLP  # noqa: E402


class _Touch:
    """Pickles as a call of os.system creating ``target``: it must never run."""

    def __init__(self, target: Path) -> None:
        self.target = str(target)

    def __reduce__(self):  # type: ignore[no-untyped-def]
        return (os.system, (f"touch {self.target}",))


def _same(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> None:
    assert list(a) == list(b)
    for k in a:
        assert a[k].dtype == b[k].dtype, k
        assert torch.equal(a[k], b[k]), k


@pytest.mark.parametrize("name", ["subprocess:run", "os:system"])
def test_model_json_naming_code_is_refused_and_runs_nothing(tmp_path: Path, name: str) -> None:
    marker = tmp_path / "RAN"
    kwargs = {"args": ["touch", str(marker)]} if name == "subprocess:run" else {}
    if name == "os:system":
        kwargs = {"command": f"touch {marker}"}
    desc = tmp_path / "model.json"
    desc.write_text(json.dumps({"model": name, "kwargs": kwargs}))
    with pytest.raises(UntrustedModelError, match=r"--allow-module .*Nothing was imported"):
        resolve_model_spec(str(desc))
    torch.save(TinyMLP().state_dict(), tmp_path / "g.pt")
    np.save(tmp_path / "x.npy", np.zeros((8, 6), dtype=np.float32))
    argv = ["distortion", "--model", str(desc), "--global", str(tmp_path / "g.pt"),
            "--client", f"a={tmp_path / 'g.pt'}", "--data", f"*={tmp_path / 'x.npy'}",
            "--no-progress", "--out", str(tmp_path / "r.csv")]  # fmt: skip
    assert main(argv) == 2
    assert not marker.exists()
    assert not (tmp_path / "r.csv").exists()


def test_model_json_allow_module_and_trust(tmp_path: Path) -> None:
    desc = tmp_path / "model.json"
    desc.write_text(json.dumps({"model": "_distortion_models:TinyMLP", "kwargs": {"hidden": 5}}))
    with pytest.raises(UntrustedModelError, match="--allow-module _distortion_models"):
        resolve_model_spec(str(desc))
    spec = resolve_model_spec(str(desc), allow_modules=["_distortion_models"])
    assert spec.build().fc1.weight.shape == (5, 6)
    assert resolve_model_spec(str(desc), trust_json=True).kwargs == {"hidden": 5}
    # A prefix that is not a package boundary does not allow the module.
    with pytest.raises(UntrustedModelError):
        resolve_model_spec(str(desc), allow_modules=["_distortion"])
    # Typed on the command line, a module:callable stays allowed.
    assert resolve_model_spec("_distortion_models:TinyMLP").factory is TinyMLP


def test_model_json_versions_and_client_parts(tmp_path: Path) -> None:
    models = pytest.importorskip("empirical.experiment.models")
    name = sorted(models.MODEL_REGISTRY)[0]
    v1 = tmp_path / "v1.json"
    v1.write_text(json.dumps({"model": name, "kwargs": {}, "parts": {"h": ["head."]}}))
    spec1 = resolve_model_spec(str(v1))
    assert spec1.parts == {"h": ["head."]}
    assert spec1.client_parts == {}
    v2 = tmp_path / "v2.json"
    desc = model_json(name, {}, {"h": ["head."]}, {"3": {"front": ["a."], "back": ["b."]}})
    assert desc["version"] == 2
    v2.write_text(json.dumps(desc))
    spec2 = resolve_model_spec(str(v2))
    assert spec2.parts_for("3") == {"front": ["a."], "back": ["b."]}
    assert spec2.parts_for("0") == {"h": ["head."]}
    v9 = tmp_path / "v9.json"
    v9.write_text(json.dumps({**desc, "version": 9}))
    with pytest.raises(ValueError, match="version=9 is invalid"):
        resolve_model_spec(str(v9))
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({**desc, "client_parts": {"1": {"x": "a."}}}))
    with pytest.raises(ValueError, match=r"client_parts\['1'\]"):
        resolve_model_spec(str(bad))


@pytest.mark.parametrize("legacy", [False, True])
def test_whole_pickled_model_is_read_without_running_code(tmp_path: Path, legacy: bool) -> None:
    torch.manual_seed(0)
    model = SmallCNN()
    model(torch.randn(5, 1, 6, 6))  # BatchNorm statistics and counter change
    marker = tmp_path / "PWNED"
    model.payload = _Touch(marker)  # a payload inside the module tree
    path = tmp_path / "whole.pt"
    torch.save(model, path, _use_new_zipfile_serialization=not legacy)
    got = load_state_dict(path)
    assert not marker.exists()
    _same(got, dict(model.state_dict()))  # exactly the state_dict route


def test_whole_model_of_a_module_that_cannot_be_imported(tmp_path: Path) -> None:
    # The class lives in a module that exists only while saving: reading must not import it.
    ghost = types.ModuleType("ghost_models_for_test")
    exec(  # noqa: S102 (defines a module-level class for the pickle)
        "import torch\nclass Net(torch.nn.Module):\n"
        "    def __init__(self):\n        super().__init__()\n"
        "        self.fc = torch.nn.Linear(3, 2)\n        self.bn = torch.nn.BatchNorm1d(2)\n",
        ghost.__dict__,
    )
    sys.modules[ghost.__name__] = ghost
    try:
        net = ghost.Net()
        torch.save(net, tmp_path / "ghost.pt")
    finally:
        del sys.modules[ghost.__name__]
    with pytest.raises(Exception, match="ghost_models_for_test"):
        torch.load(tmp_path / "ghost.pt", weights_only=False)  # the unsafe route needs it
    _same(load_state_dict(tmp_path / "ghost.pt"), dict(net.state_dict()))
    assert ghost.__name__ not in sys.modules


def test_payload_anywhere_never_runs(tmp_path: Path) -> None:
    marker = tmp_path / "PWNED"
    sd = TinyMLP().state_dict()
    files = {
        "nested.pt": lambda p: torch.save({"state_dict": sd, "x": [{"y": _Touch(marker)}]}, p),
        "legacy.pt": lambda p: torch.save(
            {"state_dict": sd, "x": _Touch(marker)}, p, _use_new_zipfile_serialization=False
        ),
        "plain.pkl": lambda p: p.write_bytes(pickle.dumps({"model": sd, "x": _Touch(marker)})),
    }
    for name, write in files.items():
        path = tmp_path / name
        write(path)
        _same(load_state_dict(path), dict(sd))
        assert not marker.exists(), name


@pytest.mark.parametrize("legacy", [False, True])
def test_pickle_that_only_runs_code_is_refused(tmp_path: Path, legacy: bool) -> None:
    marker = tmp_path / "PWNED"
    path = tmp_path / "evil.pt"
    torch.save(_Touch(marker), path, _use_new_zipfile_serialization=not legacy)
    with pytest.raises(UnsafeCheckpointError, match=r"refusing .*system.*would run code") as info:
        load_state_dict(path)
    assert "corrupt" not in str(info.value)
    assert not marker.exists()
    buf = io.BytesIO(pickle.dumps(_Touch(marker)))
    (tmp_path / "evil.pkl").write_bytes(buf.getvalue())
    with pytest.raises(UnsafeCheckpointError, match="would run code"):
        load_state_dict(tmp_path / "evil.pkl")
    assert not marker.exists()


def test_trust_checkpoint_help_says_it_runs_code() -> None:
    sub = build_parser()._subparsers._group_actions[0].choices["distortion"]  # type: ignore[union-attr]
    text = " ".join(sub.format_help().split())
    assert "CAN RUN ARBITRARY CODE" in text
    readme = " ".join((Path(__file__).parents[2] / "README.md").read_text().split())
    assert "--trust-checkpoint" in readme
    assert "can run arbitrary code" in readme
