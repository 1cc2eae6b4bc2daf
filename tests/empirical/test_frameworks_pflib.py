"""PFLlib's checkpoints: whole models (``torch.save(model)``) and ``BaseHeadSplit`` keys.

PFLlib saves the global model object itself; its FedAvgCNN has conv blocks and an ``fc1`` block
ending in ``ReLU(inplace=True)``; its personalized algorithms wrap a model as ``base`` (the
body, classifier replaced by Identity) + ``head``. Whole models are read by the restricted
unpickler (nothing imported, nothing run). The models here are our own
(tests/empirical/_framework_models.py), with the same key layout.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from torch import nn

from feddistort.cli import main

sys.path.insert(0, str(Path(__file__).parent))
from _framework_models import PflibCNN, images, perturbed, split  # noqa: E402

SPEC = "_framework_models:PflibCNN"
LAYERS = ["conv1.0", "conv1.1", "fc1.0", "fc1.1", "fc:in"]


@pytest.fixture
def pflib_run(tmp_path: Path) -> tuple[Path, dict[str, PflibCNN]]:
    torch.manual_seed(2)
    nets = {"global": PflibCNN()}
    for c in range(2):
        ft = PflibCNN()
        ft.load_state_dict(perturbed(nets["global"], "", 0.1 * (c + 1), seed=c))
        nets[f"c{c}"] = ft.eval()
    for name, net in nets.items():
        torch.save(net, tmp_path / f"{name}-whole.pt")  # PFLlib: the model object
        torch.save(net.state_dict(), tmp_path / f"{name}-sd.pt")
        torch.save(split(_copy(net)), tmp_path / f"{name}-split-whole.pt")
        torch.save(split(_copy(net)).state_dict(), tmp_path / f"{name}-split-sd.pt")
    np.savez(tmp_path / "data.npz", x=images(48, seed=3))
    return tmp_path, nets


def _copy(net: PflibCNN) -> PflibCNN:
    out = PflibCNN()
    out.load_state_dict(net.state_dict())
    return out


def _table(d: Path, kind: str, *extra: str) -> pd.DataFrame:
    out = d / f"{kind}.csv"
    code = main([
        "distortion", "--model", SPEC, "--global", str(d / f"global-{kind}.pt"),
        "--client", f"c0={d / f'c0-{kind}.pt'}", "--client", f"c1={d / f'c1-{kind}.pt'}",
        "--data", f"*={d / 'data.npz'}", "--layers", *LAYERS, "--no-progress",
        "--out", str(out), *extra,
    ])  # fmt: skip
    assert code == 0
    return pd.read_csv(out)


@pytest.mark.parametrize("kind", ["whole", "split-whole", "split-sd"])
def test_whole_and_split_models_give_the_state_dict_numbers_exactly(pflib_run, kind) -> None:  # type: ignore[no-untyped-def]
    d, _ = pflib_run
    ref = _table(d, "sd")
    got = _table(d, kind)
    pd.testing.assert_frame_equal(got, ref, check_exact=True)
    assert (ref.status == "ok").all()
    assert ref[ref.metric == "weight_l2"].value.gt(0).all()  # every layer moved


def test_inplace_relu_features_are_the_modules_own_outputs(pflib_run) -> None:  # type: ignore[no-untyped-def]
    d, nets = pflib_run
    x = torch.from_numpy(images(48, seed=3))
    for spatial in ("mean", "flatten"):
        table = _table(d, "whole", "--metrics", "delta_l2", "--spatial", spatial)
        for c in ("c0", "c1"):
            got = table[table.client == c].set_index("layer").value
            g, k = nets["global"], nets[c]
            with torch.no_grad():
                # Linear and conv outputs computed alone: no ReLU can clamp them.
                lin = [m.fc1[0](torch.flatten(m.conv2(m.conv1(x)), 1)) for m in (g, k)]
                conv = [m.conv1[0](x) for m in (g, k)]
            assert float(lin[0].min()) < 0  # the unclamped output has negative values
            ref_lin = float((lin[0].double() - lin[1].double()).norm(dim=1).mean())
            assert got["fc1.0"] == pytest.approx(ref_lin, rel=1e-5)
            reduce = (lambda t: t.flatten(2).mean(2)) if spatial == "mean" else (
                lambda t: t.flatten(1))  # fmt: skip
            ref_conv = float((reduce(conv[0]).double() - reduce(conv[1]).double())
                             .norm(dim=1).mean())  # fmt: skip
            assert got["conv1.0"] == pytest.approx(ref_conv, rel=1e-5)
            # the ReLU's own output is clamped, so its distortion is a different number
            assert got["fc1.0"] > got["fc1.1"] * (1 + 1e-3)
            assert got["fc1.1"] == pytest.approx(got["fc:in"], rel=1e-12)


class _Touch:
    """A pickled object whose unpickling would create ``path`` (runs code when loaded)."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def __reduce__(self):  # type: ignore[no-untyped-def]
        return (open, (str(self.path), "w"))


def test_a_payload_anywhere_never_runs(pflib_run, capsys) -> None:  # type: ignore[no-untyped-def]
    d, nets = pflib_run
    marker = d / "PAYLOAD_RAN"
    for c in ("c0", "c1"):
        net = _copy(nets[c])
        net.note = _Touch(marker)  # an attribute of the root module
        net.fc1.extra = {"nested": [_Touch(marker)]}  # deep inside a submodule's __dict__
        net.fc1[1].register_forward_hook(_Hook(marker))  # a pickled hook object
        torch.save(net, d / f"{c}-whole.pt")
    ref = _table(d, "sd")
    got = _table(d, "whole")
    pd.testing.assert_frame_equal(got, ref, check_exact=True)
    assert not marker.exists()
    # A payload where a parameter should be: refused, one line, still nothing run.
    net = _copy(nets["c0"])
    net.fc._parameters["bias"] = _Touch(marker)  # type: ignore[assignment]
    torch.save(net, d / "c0-whole.pt")
    code = main(["distortion", "--model", SPEC, "--global", str(d / "global-whole.pt"),
                 "--client", f"c0={d / 'c0-whole.pt'}", "--data", f"*={d / 'data.npz'}",
                 "--no-progress", "--out", str(d / "bad.csv")])  # fmt: skip
    assert code == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1
    assert "c0-whole.pt: refusing to load" in err
    assert "would run code" in err
    assert not marker.exists()
    assert not (d / "bad.csv").exists()


class _Hook:
    def __init__(self, path: Path) -> None:
        self.payload = _Touch(path)

    def __call__(self, *args: object) -> None:
        pass


def test_split_keys_that_do_not_fit_are_named(pflib_run, capsys) -> None:  # type: ignore[no-untyped-def]
    d, nets = pflib_run
    sd = split(_copy(nets["c0"])).state_dict()
    sd["head.extra"] = torch.zeros(1)
    torch.save(sd, d / "c0-split-sd.pt")
    code = main(["distortion", "--model", SPEC, "--global", str(d / "global-sd.pt"),
                 "--client", f"c0={d / 'c0-split-sd.pt'}", "--data", f"*={d / 'data.npz'}",
                 "--no-progress", "--out", str(d / "r.csv")])  # fmt: skip
    assert code == 2
    err = capsys.readouterr().err
    assert "does not fit the model architecture" in err
    assert "base.conv1.0.weight" in err


def test_identity_is_what_split_removes() -> None:
    model = split(PflibCNN())
    assert isinstance(model.base.fc, nn.Identity)
    assert [k for k in model.state_dict() if k.startswith("head.")] == ["head.weight", "head.bias"]
