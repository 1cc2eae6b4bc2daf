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
from _distortion_models import InplaceNet, SmallCNN, TinyCNN, TinyMLP  # noqa: E402

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


def test_inplace_activation_does_not_overwrite_captured_features() -> None:
    torch.manual_seed(3)
    model = InplaceNet()
    x = _x(40)
    feats = extract_features(model, x, ["fc1", "act", "head:in"])
    with torch.no_grad():
        pre = model.fc1(x)  # computed independently, no hooks
    assert bool((pre < 0).any())  # the ReLU has something to clamp
    torch.testing.assert_close(feats["fc1"], pre, rtol=0, atol=0)
    torch.testing.assert_close(feats["act"], pre.clamp_min(0), rtol=0, atol=0)
    torch.testing.assert_close(feats["head:in"], pre.clamp_min(0), rtol=0, atol=0)


@pytest.mark.parametrize("spatial", ["mean", "flatten"])
def test_inplace_conv_block_features_every_layer(spatial: str) -> None:
    torch.manual_seed(4)
    model = SmallCNN().eval()
    with torch.no_grad():
        model.conv1[1].running_mean.uniform_(-0.5, 0.5)
    x = torch.randn(7, 1, 6, 6, generator=torch.Generator().manual_seed(1))
    layers = ["conv1.0", "conv1.1", "conv1.2", "fc1.0", "fc1.1", "fc:in"]
    feats = extract_features(model, x, layers, spatial=spatial)  # type: ignore[arg-type]
    with torch.no_grad():
        c0 = model.conv1[0](x)
        c1 = model.conv1[1](c0)
        c2 = torch.relu(c1)
        f0 = model.fc1[0](model.pool(c2).flatten(1))
        f1 = torch.relu(f0)

    def red(t: torch.Tensor) -> torch.Tensor:
        return t.flatten(2).mean(2) if spatial == "mean" else t.flatten(1)

    want = {"conv1.0": red(c0), "conv1.1": red(c1), "conv1.2": red(c2), "fc1.0": f0,
            "fc1.1": f1, "fc:in": f1}  # fmt: skip
    assert bool((c1 < 0).any())
    assert bool((f0 < 0).any())
    for name, ref in want.items():
        torch.testing.assert_close(feats[name], ref, rtol=1e-6, atol=1e-6, msg=name)


def test_inplace_delta_of_linear_differs_from_its_relu(tmp_path: Path) -> None:
    torch.manual_seed(5)
    model = InplaceNet()
    torch.save(model.state_dict(), tmp_path / "g.pt")
    with torch.no_grad():
        model.fc1.weight.add_(0.5 * torch.randn_like(model.fc1.weight))
    torch.save(model.state_dict(), tmp_path / "c.pt")
    table = compare_checkpoints("_distortion_models:InplaceNet", tmp_path / "g.pt",
                                {"a": tmp_path / "c.pt"}, {"*": _x(64)}, layers=["fc1", "act"],
                                metrics=["delta_l2"])  # fmt: skip
    val = table.set_index("layer")["value"]
    g, c = InplaceNet(), InplaceNet()
    g.load_state_dict(torch.load(tmp_path / "g.pt", weights_only=True))
    c.load_state_dict(torch.load(tmp_path / "c.pt", weights_only=True))
    with torch.no_grad():
        ref = delta_l2(g.fc1(_x(64)), c.fc1(_x(64)))
    assert val["fc1"] == pytest.approx(ref, rel=1e-6)
    assert val["fc1"] > val["act"] * (1 + 1e-3)


def _bn_pair(tmp_path: Path, g_float: bool, c_float: bool) -> tuple[Path, Path, SmallCNN]:
    torch.manual_seed(6)
    model = SmallCNN()
    sd = {k: v.clone() for k, v in model.state_dict().items()}
    model.train()
    for _ in range(40):  # 40 local steps of BatchNorm statistics
        model(torch.randn(8, 1, 6, 6))
    client = {k: v.clone() for k, v in model.state_dict().items()}
    assert int(client["conv1.1.num_batches_tracked"]) == 40
    for state, as_float in ((sd, g_float), (client, c_float)):
        if as_float:  # what federated averaging does to the counter
            state["conv1.1.num_batches_tracked"] = state["conv1.1.num_batches_tracked"].float()
    torch.save(sd, tmp_path / "g.pt")
    torch.save(client, tmp_path / "c.pt")
    return tmp_path / "g.pt", tmp_path / "c.pt", model


@pytest.mark.parametrize(("g_float", "c_float"), [(False, False), (True, True), (False, True)])
def test_batchnorm_counter_never_enters_weight_metrics(
    tmp_path: Path, g_float: bool, c_float: bool
) -> None:
    g, c, model = _bn_pair(tmp_path, g_float, c_float)
    table = compare_checkpoints("_distortion_models:SmallCNN", g, {"a": c}, {"*": _x4()},
                                metrics=["weight_l2", "delta_l2"])  # fmt: skip
    assert (table.status == "ok").all()
    w = table[table.metric == "weight_l2"].set_index(["layer", "kind"])["value"]
    # Parameters did not change; the running statistics did; the counter is nowhere.
    assert w["conv1.1", "parameter"] == 0.0
    assert w["all", "parameter"] == 0.0
    gsd = torch.load(g, weights_only=True)
    csd = torch.load(c, weights_only=True)
    stats = ["conv1.1.running_mean", "conv1.1.running_var"]
    ref = math.sqrt(sum(float(((gsd[k].double() - csd[k].double()) ** 2).sum()) for k in stats))
    assert w["conv1.1", "buffer"] == pytest.approx(ref, rel=1e-12)
    assert w["all", "buffer"] == pytest.approx(ref, rel=1e-12)
    n = table[(table.metric == "weight_l2")].set_index(["layer", "kind"])["n"]
    assert n["conv1.1", "buffer"] == 8  # 4 means + 4 variances, no counter
    assert (table[table.metric == "delta_l2"].kind == "feature").all()
    # weight rows follow the model's order
    layers = list(dict.fromkeys(table[(table.metric == "weight_l2") &
                                      (table.kind == "parameter")].layer))  # fmt: skip
    assert layers[:4] == ["conv1.0", "conv1.1", "fc1.0", "fc"]


def _x4(n: int = 24) -> torch.Tensor:
    return torch.randn(n, 1, 6, 6, generator=torch.Generator().manual_seed(9))


def test_weight_problem_gives_status_and_keeps_feature_metrics(tmp_path: Path) -> None:
    g, c = _save_pair(tmp_path, "fc2")
    sd = torch.load(c, weights_only=True)["model_state_dict"]
    del sd["head.bias"]
    torch.save(sd, tmp_path / "partial.pt")
    table = compare_checkpoints(SPEC, g, {"a": tmp_path / "partial.pt", "b": c}, {"*": _x()},
                                metrics=["weight_l2", "delta_l2"], strict=False)  # fmt: skip
    assert table.attrs["warnings"] == [
        "client 'a': weight metrics not computed: weights differ in keys: head.bias"
    ]
    a = table[(table.client == "a") & (table.metric == "weight_l2")]
    assert len(a) == 1
    assert math.isnan(a.value.iloc[0])
    assert "head.bias" in a.status.iloc[0]
    assert table[(table.client == "a") & (table.metric == "delta_l2")].value.notna().all()
    assert (table[table.client == "b"].status == "ok").all()


def test_minibatch_size_is_independent_of_batch_size(tmp_path: Path) -> None:
    from empirical.minibatch import minibatch_cka

    g, c = _save_pair(tmp_path, "fc1")
    x = _x(100)
    values = [
        compare_checkpoints(
            SPEC,
            g,
            {"a": c},
            {"*": x},
            layers=["fc2"],
            metrics=["minibatch_cka"],
            batch_size=b,
            minibatch_size=16,
        ).value.iloc[0]  # fmt: skip
        for b in (7, 16, 100)
    ]
    gm, cm = TinyMLP(), TinyMLP()
    gm.load_state_dict(torch.load(g, weights_only=True))
    cm.load_state_dict(torch.load(c, weights_only=True)["model_state_dict"])
    ref = minibatch_cka(extract_features(gm, x, ["fc2"])["fc2"],
                        extract_features(cm, x, ["fc2"])["fc2"], batch_size=16)  # fmt: skip
    # Same rows in every minibatch whatever the forward batch size; float32 features from
    # forward passes of different batch sizes differ by a few ulps (GEMM blocking), hence 1e-6.
    for v in values:
        assert v == pytest.approx(ref, abs=1e-6)
    other = compare_checkpoints(
        SPEC, g, {"a": c}, {"*": x}, layers=["fc2"], metrics=["minibatch_cka"], minibatch_size=50
    ).value.iloc[0]
    assert abs(other - ref) > 1e-3  # the minibatch size does change the estimate (by ~5e-2)
    # m=5: 20 minibatches, flushed in groups of 8 as they arrive (not only at the end)
    small = [
        compare_checkpoints(SPEC, g, {"a": c}, {"*": x}, layers=["fc2"],
                            metrics=["minibatch_cka"], batch_size=b, minibatch_size=5)
        .value.iloc[0]
        for b in (3, 100)
    ]  # fmt: skip
    ref5 = minibatch_cka(extract_features(gm, x, ["fc2"])["fc2"],
                         extract_features(cm, x, ["fc2"])["fc2"], batch_size=5)  # fmt: skip
    assert small == pytest.approx([ref5, ref5], abs=1e-6)


def test_auto_layers_several_along_the_depth() -> None:
    labels = [r.label for r in resolve_layers(SmallCNN(), "auto")]
    assert labels == ["conv1.0", "fc1.0", "fc:in"]
    assert [r.label for r in resolve_layers(TinyMLP(), "auto")] == LAYERS


def test_parts_are_module_names_not_string_prefixes(tmp_path: Path) -> None:
    # SmallCNN has fc1.0 and fc: the part "fc" must hold fc.weight/fc.bias only, never fc1.*.
    g, c, _ = _bn_pair(tmp_path, False, False)
    sd = torch.load(c, weights_only=True)
    with torch.no_grad():
        sd["fc1.0.weight"] += 0.5  # only fc1 moves
    torch.save(sd, tmp_path / "c_fc1.pt")
    table = compare_checkpoints("_distortion_models:SmallCNN", g, {"a": tmp_path / "c_fc1.pt"},
                                {"*": _x4()}, metrics=["weight_l2"],
                                parts={"head": ["fc"], "body": ["conv1", "fc1."]})  # fmt: skip
    w = table[table.kind == "parameter"].set_index("layer")
    assert w.loc["part:head", "value"] == 0.0
    assert w.loc["part:head", "n"] == 8 * 3 + 3
    assert w.loc["part:body", "value"] == pytest.approx(0.5 * math.sqrt(16 * 8), rel=1e-6)
    bad = compare_checkpoints("_distortion_models:SmallCNN", g, {"a": c}, {"*": _x4()},
                              metrics=["weight_l2", "delta_l2"], parts={"x": ["fcx"]})  # fmt: skip
    assert "part 'x' with prefixes ['fcx'] matches no weight" in bad.attrs["warnings"][0]
    assert bad[bad.metric == "delta_l2"].value.notna().all()
