"""FL-bench's checkpoints: ``public_model_params`` and client ``package()`` dicts.

The server's ``public_model_params`` hold the model's trainable parameters only (its
``named_parameters``, no buffers); a client's ``package()`` splits its state_dict into
``regular_model_params`` (the shared ones) and ``personal_model_params`` (a personal head, and
the BatchNorm buffers under ``buffers: local``), next to optimizer state and evaluation results.
The models here are our own (tests/empirical/_framework_models.py), with the same key layout.
"""

from __future__ import annotations

import math
import sys
from collections import OrderedDict
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from feddistort.cli import main

sys.path.insert(0, str(Path(__file__).parent))
from _framework_models import BNNet, images, perturbed, train_bn  # noqa: E402

SPEC = "_framework_models:BNNet"


def _package(state: dict[str, torch.Tensor], personal: tuple[str, ...]) -> dict[str, object]:
    """A client package: the state_dict split in two, plus the non-tensor entries."""
    buffers = {k for k in state if k.startswith("bn.running") or k.endswith("tracked")}
    mine = {k for k in state if k.startswith(personal)} | buffers
    return {
        "weight": 40,
        "eval_results": {"before": {"accuracy": 0.5}, "after": {"accuracy": 0.75}},
        "regular_model_params": OrderedDict((k, v) for k, v in state.items() if k not in mine),
        "personal_model_params": OrderedDict((k, v) for k, v in state.items() if k in mine),
        "optimizer_state": {"state": {}, "param_groups": [{"lr": 0.01, "params": [0, 1]}]},
    }


@pytest.fixture
def flbench_run(tmp_path: Path) -> tuple[Path, BNNet, dict[str, dict[str, torch.Tensor]]]:
    torch.manual_seed(1)
    global_net = BNNet()
    params = OrderedDict((k, p.detach().clone()) for k, p in global_net.named_parameters())
    torch.save(params, tmp_path / "global.pt")  # the saved public_model_params
    torch.save({"public_model_params": params, "current_epoch": 3}, tmp_path / "ckpt.pt")
    states = {}
    for c in range(2):
        ft = BNNet()
        ft.load_state_dict(perturbed(global_net, "head", 0.2 * (c + 1), seed=c))
        train_bn(ft, steps=40, seed=5 + c)
        states[f"c{c}"] = ft.state_dict()
        torch.save(_package(ft.state_dict(), ("head",)), tmp_path / f"client-{c}.pt")
    np.save(tmp_path / "x.npy", images(32))
    return tmp_path, global_net, states


def _run(d: Path, global_file: str, *extra: str) -> int:
    return main([
        "distortion", "--model", SPEC, "--global", str(d / global_file),
        "--client", f"c0={d / 'client-0.pt'}", "--client", f"c1={d / 'client-1.pt'}",
        "--data", f"*={d / 'x.npy'}", "--no-progress", *extra,
    ])  # fmt: skip


@pytest.mark.parametrize("global_file", ["global.pt", "ckpt.pt"])
def test_packages_merged_and_buffers_filled_from_the_client(flbench_run, global_file) -> None:  # type: ignore[no-untyped-def]
    d, global_net, states = flbench_run
    out = d / "report.csv"
    code = _run(d, global_file, "--fill-buffers", "--layers", "fc1", "head",
                "--metrics", "delta_l2,weight_l2", "--parts", "head=head", "body=conv,bn,fc1",
                "--out", str(out))  # fmt: skip
    assert code == 0
    table = pd.read_csv(out)
    g = dict(global_net.named_parameters())
    for c in ("c0", "c1"):
        rows = table[table.client == c]
        w = rows[rows.metric == "weight_l2"].set_index("layer")
        assert (w.kind == "parameter").all()  # buffers were filled in, so never compared
        assert w.status.str.contains("3 buffers filled in, not compared").all()
        head = math.sqrt(sum(float(((g[k].detach().double() - states[c][k].double()) ** 2).sum())
                             for k in ("head.weight", "head.bias")))  # fmt: skip
        assert w.loc["part:head", "value"] == pytest.approx(head, rel=1e-12)
        assert w.loc["part:body", "value"] == 0.0  # the regular parameters did not move
        assert w.loc["part:body", "n"] == 40 + 8 + 136
        # The global model as this client sees it: its parameters, the client's buffers; so
        # fc1 (before the head) gives identical features and only the head differs.
        f = rows[rows.metric == "delta_l2"].set_index("layer").value
        assert f["fc1"] == 0.0
        seen = BNNet()
        seen.load_state_dict({**states[c], **{k: v.detach() for k, v in g.items()}})
        ft = BNNet()
        ft.load_state_dict(states[c])
        x = torch.from_numpy(images(32))
        with torch.no_grad():
            ref = float((seen.eval()(x).double() - ft.eval()(x).double()).norm(dim=1).mean())
        assert f["head"] == pytest.approx(ref, rel=1e-5)
        assert f["head"] > 0


def test_without_fill_buffers_the_missing_buffers_are_named(flbench_run, capsys) -> None:  # type: ignore[no-untyped-def]
    d, _, _ = flbench_run
    assert _run(d, "global.pt", "--out", str(d / "r.csv")) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1
    assert "global.pt does not fit the model architecture: missing keys (3): bn.running_mean" in err
    assert "--fill-buffers" in err


def test_a_missing_parameter_is_never_filled(flbench_run, capsys) -> None:  # type: ignore[no-untyped-def]
    d, _, states = flbench_run
    package = _package(states["c0"], ("head",))
    del package["personal_model_params"]["head.bias"]  # type: ignore[attr-defined]
    torch.save(package, d / "client-0.pt")
    assert _run(d, "global.pt", "--fill-buffers", "--out", str(d / "r.csv")) == 2
    assert "client-0.pt does not fit the model architecture: missing keys (1): head.bias" in (
        capsys.readouterr().err
    )


def test_state_key_picks_a_nested_state_dict(flbench_run) -> None:  # type: ignore[no-untyped-def]
    d, global_net, states = flbench_run
    torch.save({"round": 3, "global": {"public": dict(global_net.state_dict())}}, d / "g.pt")
    for c in range(2):
        torch.save({"round": 3, "global": {"public": states[f"c{c}"]}}, d / f"client-{c}.pt")
    out = d / "nested.csv"
    assert _run(d, "g.pt", "--state-key", "global/public", "--metrics", "weight_l2",
                "--out", str(out)) == 0  # fmt: skip
    table = pd.read_csv(out).set_index(["client", "layer", "kind"])
    assert table.loc[("c0", "conv", "parameter"), "value"] == 0.0
    assert table.loc[("c0", "head", "parameter"), "value"] > 0
