"""Hooked feature extraction and the checkpoint comparison round trip."""

from __future__ import annotations

import math
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from torch.utils.data import DataLoader, TensorDataset

from empirical.compare import ALL_METRICS, compare_checkpoints
from empirical.drift import weight_drift
from empirical.features import (
    ForwardError,
    LayerNotFoundError,
    NonFiniteFeaturesError,
    extract_features,
    resolve_layers,
)
from empirical.metrics import delta_l2, linear_cka

sys.path.insert(0, str(Path(__file__).parent))
from _distortion_models import TinyCNN, TinyMLP  # noqa: E402

SPEC = "_distortion_models:TinyMLP"
LAYERS = ["fc1", "fc2", "fc3", "head:in"]


def _hooks(model: torch.nn.Module) -> int:
    return sum(len(m._forward_hooks) + len(m._forward_pre_hooks) for m in model.modules())


def _x(n: int = 50, seed: int = 0) -> torch.Tensor:
    return torch.from_numpy(np.random.default_rng(seed).normal(size=(n, 6)).astype(np.float32))


def test_default_layer_is_input_of_final_linear() -> None:
    torch.manual_seed(0)
    model = TinyMLP()
    x = _x()
    feats = extract_features(model, x)
    assert list(feats) == ["head:in"]
    with torch.no_grad():
        ref = model.act3(model.fc3(model.act2(model.fc2(model.act1(model.fc1(x))))))
    torch.testing.assert_close(feats["head:in"], ref, rtol=0, atol=0)


def test_hooks_removed_and_mode_restored_even_on_error() -> None:
    model = TinyMLP().train()
    extract_features(model, _x(), ["fc*", "head:in"], batch_size=7)
    assert _hooks(model) == 0
    assert model.training
    with pytest.raises(ForwardError, match=r"mat1 and mat2.*\(5, 4\)"):
        extract_features(model, torch.zeros(5, 4), ["fc1"])  # wrong input width
    assert _hooks(model) == 0
    assert model.training


def test_batching_and_input_kinds_agree() -> None:
    model = TinyMLP()
    x = _x(33)
    full = extract_features(model, x, ["fc2"], batch_size=100)["fc2"]
    for data in (x.numpy(), TensorDataset(x, torch.zeros(33)), DataLoader(TensorDataset(x), 5)):
        got = extract_features(model, data, ["fc2"], batch_size=4)["fc2"]
        torch.testing.assert_close(got, full)


def test_globs_and_order() -> None:
    refs = resolve_layers(TinyMLP(), ["head:in", "fc*", "act2"])
    assert [r.label for r in refs] == ["fc1", "fc2", "act2", "fc3", "head:in"]


def test_unknown_layer_lists_nearest_names() -> None:
    with pytest.raises(LayerNotFoundError, match=r"'fc4'.*nearest valid names: ") as info:
        resolve_layers(TinyMLP(), ["fc4"])
    nearest = str(info.value).split("nearest valid names: ")[1].split(", ")
    assert set(nearest) == {"fc1", "fc2", "fc3"}


def test_conv_maps_mean_or_flatten() -> None:
    model = TinyCNN(channels=4)
    x = torch.randn(6, 1, 5, 5, generator=torch.Generator().manual_seed(0))
    mean = extract_features(model, x, ["conv"], spatial="mean")["conv"]
    flat = extract_features(model, x, ["conv"], spatial="flatten")["conv"]
    assert mean.shape == (6, 4)
    assert flat.shape == (6, 4 * 25)
    torch.testing.assert_close(mean, flat.reshape(6, 4, 25).mean(2))


def test_nan_features_name_layer_and_checkpoint() -> None:
    model = TinyMLP()
    with torch.no_grad():
        model.fc2.weight[0, 0] = float("nan")
    extract_features(model, _x(), ["fc1"])  # fine before the NaN weight
    with pytest.raises(NonFiniteFeaturesError, match=r"'fc2' from ckpt-7\.pt"):
        extract_features(model, _x(), ["fc1", "fc2"], source="ckpt-7.pt")


def _save_pair(tmp_path: Path, layer: str) -> tuple[Path, Path]:
    torch.manual_seed(1)
    model = TinyMLP()
    torch.save(model.state_dict(), tmp_path / "global.pt")
    with torch.no_grad():
        getattr(model, layer).weight.add_(0.5 * torch.randn_like(getattr(model, layer).weight))
    torch.save({"model_state_dict": model.state_dict()}, tmp_path / "client.pt")
    return tmp_path / "global.pt", tmp_path / "client.pt"


def test_round_trip_drift_only_at_and_after_perturbed_layer(tmp_path: Path) -> None:
    g, c = _save_pair(tmp_path, "fc2")
    x = _x(64)
    table = compare_checkpoints(
        SPEC, g, {"a": c, "same": g}, {"*": x}, layers=LAYERS, batch_size=16
    )
    assert list(table.columns) == ["client", "layer", "kind", "metric", "value", "n", "status"]
    val = table.set_index(["client", "layer", "metric"])["value"]
    # Feature drift: none before fc2, some at fc2 and after.
    assert val["a", "fc1", "delta_l2"] == 0.0
    assert val["a", "fc1", "cka"] == pytest.approx(1.0, abs=1e-9)
    for layer in ["fc2", "fc3", "head:in"]:
        assert val["a", layer, "delta_l2"] > 1e-3
        assert val["a", layer, "cka"] < 1.0 - 1e-6
    # Weight drift: exactly in the perturbed layer.
    assert val["a", "fc2", "weight_l2"] > 0.1
    for layer in ["fc1", "fc3", "head"]:
        assert val["a", layer, "weight_l2"] == 0.0
    # A client identical to the global model has no drift anywhere.
    same = table[(table.client == "same") & table.metric.isin(["delta_l2", "weight_l2"])]
    assert (same.value == 0.0).all()
    # Independent check of the streamed values against the one-shot functions.
    gm, cm = TinyMLP(), TinyMLP()
    gm.load_state_dict(torch.load(g, weights_only=True))
    cm.load_state_dict(torch.load(c, weights_only=True)["model_state_dict"])
    fg, fc = extract_features(gm, x, LAYERS), extract_features(cm, x, LAYERS)
    for layer in LAYERS:
        assert val["a", layer, "delta_l2"] == pytest.approx(delta_l2(fg[layer], fc[layer]))
        assert val["a", layer, "cka"] == pytest.approx(linear_cka(fg[layer], fc[layer]), abs=1e-6)
    assert set(table.metric) == set(ALL_METRICS)
    assert (table[table.metric == "delta_l2"].n == 64).all()


def test_round_trip_parts_and_metric_subset(tmp_path: Path) -> None:
    g, c = _save_pair(tmp_path, "head")
    table = compare_checkpoints(
        SPEC,
        g,
        {"a": c},
        {"a": _x(20)},
        metrics=["delta_l2", "weight_relative_l2"],
        parts={"body": ["fc1.", "fc2.", "fc3."], "head": ["head."]},
    )
    assert set(table.metric) == {"delta_l2", "weight_relative_l2"}
    val = table.set_index(["layer", "metric"])["value"]
    assert val["head:in", "delta_l2"] == 0.0  # the head's input does not see the head
    assert val["part:body", "weight_relative_l2"] == 0.0
    assert val["part:head", "weight_relative_l2"] > 0.0


def test_compare_bad_inputs(tmp_path: Path) -> None:
    g, c = _save_pair(tmp_path, "fc1")
    with pytest.raises(ValueError, match="no data for client 'b'"):
        compare_checkpoints(SPEC, g, {"b": c}, {"a": _x()})
    with pytest.raises(ValueError, match="metrics"):
        compare_checkpoints(SPEC, g, {"a": c}, {"a": _x()}, metrics=["nope"])
    with pytest.raises(ValueError, match="n=4"):
        compare_checkpoints(SPEC, g, {"a": c}, {"a": _x(3)}, metrics=["cka_debiased"])
    with pytest.raises(LayerNotFoundError):
        compare_checkpoints(SPEC, g, {"a": c}, {"a": _x()}, layers=["fc9"])
    shuffled = DataLoader(TensorDataset(_x()), batch_size=8, shuffle=True)
    with pytest.raises(ValueError, match="shuffle=False"):
        compare_checkpoints(SPEC, g, {"a": c}, {"a": shuffled})


def test_constant_features_defined_in_table(tmp_path: Path) -> None:
    torch.manual_seed(2)
    model = TinyMLP()
    with torch.no_grad():
        model.fc3.weight.zero_()  # fc3 output = its bias: constant over samples
    torch.save(model.state_dict(), tmp_path / "g.pt")
    table = compare_checkpoints(SPEC, tmp_path / "g.pt", {"a": tmp_path / "g.pt"}, {"*": _x()},
                                layers=["fc3"])  # fmt: skip
    assert table.value.notna().all()
    val = table.set_index("metric")["value"]
    assert val["cka"] == 1.0
    assert val["procrustes"] == 0.0
    assert val["principal_angle"] == 0.0


def test_weight_drift_values() -> None:
    a = {"l.weight": torch.tensor([3.0, 0.0]), "l.bias": torch.tensor([0.0])}
    b = {"l.weight": torch.tensor([0.0, 4.0]), "l.bias": torch.tensor([0.0])}
    out = weight_drift(a, b)["l"]
    assert out["weight_l2"] == pytest.approx(5.0)
    assert out["weight_relative_l2"] == pytest.approx(5.0 / 3.0)
    assert out["weight_cosine_distance"] == pytest.approx(1.0)
    assert out["n"] == 3
    assert weight_drift(a, a)["all"]["weight_l2"] == 0.0
    with pytest.raises(ValueError, match="matches no weight"):
        weight_drift(a, b, {"x": ["zzz."]})
    assert isinstance(pd.DataFrame(weight_drift(a, b)), pd.DataFrame)
    assert not math.isnan(
        weight_drift({"w": torch.zeros(2)}, {"w": torch.zeros(2)})["w"]["weight_relative_l2"]
    )
