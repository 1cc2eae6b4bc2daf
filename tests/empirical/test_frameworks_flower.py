"""Flower's checkpoints: ``np.savez(path, *ndarrays)`` in state_dict order (arr_0, arr_1, ...).

A Flower client sends ``[v.cpu().numpy() for v in net.state_dict().values()]``; the server's
weighted average turns every array into float, the BatchNorm counter ``num_batches_tracked``
included (a 0-d float64 array), and strategies save the result with ``np.savez(path, *arrays)``.
The models here are our own (tests/empirical/_framework_models.py), with the same key layout.
"""

from __future__ import annotations

import math
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from feddistort.cli import main

sys.path.insert(0, str(Path(__file__).parent))
from _framework_models import BNNet, images, perturbed, train_bn  # noqa: E402

SPEC = "_framework_models:BNNet"


def _ndarrays(state: dict[str, torch.Tensor]) -> list[np.ndarray]:
    """What a Flower client sends: the state_dict's values as numpy arrays, in order."""
    return [v.cpu().numpy() for v in state.values()]


def _fedavg(results: list[tuple[list[np.ndarray], int]]) -> list[np.ndarray]:
    """Weighted average per array, as Flower's FedAvg aggregates (ints become float64)."""
    total = sum(n for _, n in results)
    return [
        sum(layer * n for layer, n in zip(layers, [n for _, n in results], strict=True)) / total
        for layers in zip(*(arrays for arrays, _ in results), strict=True)
    ]


@pytest.fixture
def flower_run(tmp_path: Path) -> tuple[Path, dict[str, dict[str, torch.Tensor]]]:
    """A FedAvg round saved Flower's way, then two fine-tuned clients saved the same way."""
    torch.manual_seed(0)
    net = BNNet()
    states = []
    for c in range(2):
        local = BNNet()
        local.load_state_dict(net.state_dict())
        train_bn(local, steps=5 + 3 * c, seed=c)  # counters 5 and 8
        states.append(local.state_dict())
    averaged = _fedavg([(_ndarrays(s), 10 + 30 * i) for i, s in enumerate(states)])
    assert averaged[list(net.state_dict()).index("bn.num_batches_tracked")].dtype == np.float64
    np.savez(tmp_path / "round-3-weights.npz", *averaged)
    global_net = BNNet()
    global_net.load_state_dict(
        {k: torch.from_numpy(np.asarray(a)).to(v.dtype)
         for (k, v), a in zip(net.state_dict().items(), averaged, strict=True)}
    )  # fmt: skip
    clients = {"global": global_net.state_dict()}
    for c in range(2):
        ft = BNNet()
        ft.load_state_dict(perturbed(global_net, "head", 0.3 * (c + 1), seed=10 + c))
        train_bn(ft, steps=40, seed=20 + c)  # 40 local steps: the counter moves by 40
        clients[f"c{c}"] = ft.state_dict()
        np.savez(tmp_path / f"client-{c}.npz", *_ndarrays(ft.state_dict()))
    np.savez(tmp_path / "data.npz", x=images(40), y=np.zeros(40, dtype=np.int64))
    return tmp_path, clients


def _run(d: Path, *extra: str, global_file: str = "round-3-weights.npz") -> int:
    return main([
        "distortion", "--model", SPEC, "--global", str(d / global_file),
        "--client", f"c0={d / 'client-0.npz'}", "--client", f"c1={d / 'client-1.npz'}",
        "--data", f"*={d / 'data.npz'}", "--no-progress", *extra,
    ])  # fmt: skip


def test_flower_npz_with_float_counters_end_to_end(flower_run, capsys) -> None:  # type: ignore[no-untyped-def]
    d, states = flower_run
    out = d / "report.csv"
    assert _run(d, "--layers", "fc1", "--metrics", "delta_l2,weight_l2", "--out", str(out)) == 0
    table = pd.read_csv(out)
    assert (table.status == "ok").all()
    g = states["global"]
    for c in ("c0", "c1"):
        rows = table[table.client == c]
        w = rows[rows.metric == "weight_l2"].set_index(["layer", "kind"])
        # Only the head moved among the parameters; an independent float64 sum.
        head = math.sqrt(sum(float(((g[k].double() - states[c][k].double()) ** 2).sum())
                             for k in ("head.weight", "head.bias")))  # fmt: skip
        assert w.loc[("head", "parameter"), "value"] == pytest.approx(head, rel=1e-12)
        assert w.loc[("conv", "parameter"), "value"] == 0.0
        assert w.loc[("all", "parameter"), "value"] == pytest.approx(head, rel=1e-12)
        # running statistics: 4 means + 4 variances, the counter (40 steps) nowhere
        stats = ("bn.running_mean", "bn.running_var")
        ref = math.sqrt(sum(float(((g[k].double() - states[c][k].double()) ** 2).sum())
                            for k in stats))  # fmt: skip
        assert w.loc[("bn", "buffer"), "value"] == pytest.approx(ref, rel=1e-12)
        assert w.loc[("bn", "buffer"), "n"] == 8
        # delta_l2 of fc1 from the models built directly from the state_dicts
        x = torch.from_numpy(images(40))
        nets = []
        for s in (g, states[c]):
            net = BNNet()
            net.load_state_dict(s)
            nets.append(net.eval())
        with torch.no_grad():
            feats = [n.fc1(n.pool(torch.relu(n.bn(n.conv(x)))).flatten(1)) for n in nets]
        ref_delta = float((feats[0].double() - feats[1].double()).norm(dim=1).mean())
        got = rows[rows.metric == "delta_l2"].value.iloc[0]
        assert got == pytest.approx(ref_delta, rel=1e-5)
        assert got > 0  # the BatchNorm statistics differ, so fc1's input differs


def test_identical_checkpoints_give_zero(flower_run) -> None:  # type: ignore[no-untyped-def]
    d, states = flower_run
    # The client's arrays with its counter float-averaged on one side only.
    arrays = _ndarrays(states["c0"])
    arrays[list(states["c0"]).index("bn.num_batches_tracked")] = np.array(40.0)
    np.savez(d / "same.npz", *arrays)
    out = d / "same.csv"
    code = main(["distortion", "--model", SPEC, "--global", str(d / "same.npz"),
                 "--client", f"c0={d / 'client-0.npz'}", "--data", f"*={d / 'data.npz'}",
                 "--layers", "auto", "--metrics", "delta_l2,cka,weight_l2", "--no-progress",
                 "--out", str(out)])  # fmt: skip
    assert code == 0
    table = pd.read_csv(out)
    assert (table.status == "ok").all()
    assert (table[table.metric.isin(["delta_l2", "weight_l2"])].value == 0.0).all()
    assert table[table.metric == "cka"].value.to_numpy() == pytest.approx(1.0, abs=1e-6)


def test_arrays_out_of_order_name_the_first_mismatch(flower_run, capsys) -> None:  # type: ignore[no-untyped-def]
    d, states = flower_run
    arrays = _ndarrays(states["c0"])
    np.savez(d / "client-0.npz", *arrays[::-1])  # reversed: the first shape is wrong
    assert _run(d, "--out", str(d / "r.csv")) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1
    assert "client-0.npz: array arr_0 has shape (3,)" in err
    assert "'conv.weight' with shape (4, 1, 3, 3)" in err
    assert not (d / "r.csv").exists()


def test_missing_array_is_named(flower_run, capsys) -> None:  # type: ignore[no-untyped-def]
    d, states = flower_run
    np.savez(d / "client-1.npz", *_ndarrays(states["c1"])[:-1])
    assert _run(d, "--out", str(d / "r.csv")) == 2
    err = capsys.readouterr().err
    assert "holds 10 arrays but the model's state_dict has 11 entries" in err
