"""FlexP training: frozen/shared server modes, alignment gradients, the split special case."""

from __future__ import annotations

import copy
import dataclasses
from collections.abc import Iterator

import numpy as np
import pytest
import torch
from torch import nn

from empirical.experiment.data import ClientDataConfig, make_clients
from empirical.experiment.flexp.config import FlexPConfig
from empirical.experiment.flexp.partition import Cut
from empirical.experiment.flexp.train import alignment_regularizer, alignment_term, flexp_train
from empirical.experiment.models import build_model
from empirical.experiment.pft import personalize
from empirical.experiment.pft_config import PFTConfig
from empirical.experiment.training import LocalConfig, train_epoch

PFT = PFTConfig(epochs=2, local=LocalConfig(lr=0.05), lp_epochs=1)


@pytest.fixture(autouse=True)
def _single_thread() -> Iterator[None]:
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def data() -> list[tuple[torch.Tensor, torch.Tensor]]:
    clients = make_clients(
        ClientDataConfig(n_clients=2, shifts=("covariate",)), np.random.default_rng(0)
    )
    return [(torch.from_numpy(c.x_train[:96]), torch.from_numpy(c.y_train[:96])) for c in clients]


@pytest.fixture(scope="module")
def global_model() -> nn.Module:
    torch.manual_seed(0)
    return build_model("cnn", width=4, feature_dim=16)


def _gens(k: int) -> list[torch.Generator]:
    return [torch.Generator().manual_seed(10 + c) for c in range(k)]


def _state(m: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in m.state_dict().items()}


def _middle(state: dict[str, torch.Tensor], blocks: list[int]) -> dict[str, torch.Tensor]:
    return {k: v for k, v in state.items() if any(k.startswith(f"features.{i}.") for i in blocks)}


def test_frozen_mode_leaves_every_middle_bit_identical(data, global_model) -> None:
    before = _state(global_model)
    cuts = [Cut(1, 1), Cut(2, 0)]
    res = flexp_train(global_model, data, cuts, FlexPConfig(cuts=("1:1", "2:0")), PFT, _gens(2))
    assert res.server is None
    for model, middle, own in zip(res.models, ([1, 2], [2, 3]), ([0, 3], [0, 1]), strict=True):
        state = _state(model)
        for k, v in _middle(state, middle).items():
            assert torch.equal(v, before[k]), k
        assert any(not torch.equal(v, before[k]) for k, v in _middle(state, own).items())
    for k, v in _state(global_model).items():
        assert torch.equal(v, before[k])


def test_frozen_single_cut_first_depth_is_the_split_variant(data, global_model) -> None:
    pft = dataclasses.replace(PFT, split_front=2, split_back=1, split_beta=0.5)
    split = personalize("split", global_model, *data[0], pft, torch.Generator().manual_seed(3))
    cfg = FlexPConfig(cuts=("2:1",), beta=0.5, align_depth="first")
    res = flexp_train(global_model, data[:1], [Cut(2, 1)], cfg, pft,
                      [torch.Generator().manual_seed(3)])  # fmt: skip
    for k, v in _state(split).items():
        assert torch.equal(v, _state(res.models[0])[k]), k


def test_shared_mode_updates_one_middle_and_client_order_matters(data, global_model) -> None:
    before = _state(global_model)
    cfg = FlexPConfig(cuts=("1:1",), server_mode="shared")
    cuts = [Cut(1, 1), Cut(1, 1)]
    a = flexp_train(global_model, data, cuts, cfg, PFT, _gens(2))
    again = flexp_train(global_model, data, cuts, cfg, PFT, _gens(2))
    swapped = flexp_train(global_model, data[::-1], cuts, cfg, PFT, _gens(2)[::-1])
    assert a.server is not None
    assert again.server is not None
    assert swapped.server is not None
    server = {f"features.{k}": v for k, v in _state(a.server).items()}
    assert any(not torch.equal(v, before[k]) for k, v in server.items())
    for s1, s2 in zip(_state(a.server).values(), _state(again.server).values(), strict=True):
        assert torch.equal(s1, s2)  # deterministic
    pairs = zip(_state(a.server).values(), _state(swapped.server).values(), strict=True)
    assert any(not torch.equal(s1, s2) for s1, s2 in pairs)  # order matters
    # both clients are evaluated with the one final middle; their own parts differ (no averaging)
    m0, m1 = (_state(m) for m in a.models)
    for k in _middle(m0, [1, 2]):
        assert torch.equal(m0[k], m1[k])
        assert torch.equal(m0[k], server[k])
    for k in _middle(m0, [0, 3]):
        assert not torch.equal(m0[k], m1[k])


def test_shared_server_blocks_in_no_middle_stay_global(data, global_model) -> None:
    before = _state(global_model)
    cfg = FlexPConfig(cuts=("2:1",), server_mode="shared")
    res = flexp_train(global_model, data, [Cut(2, 1)] * 2, cfg, PFT, _gens(2))
    assert res.server is not None
    for k, v in _state(res.server).items():
        block = int(k.split(".")[0])
        assert torch.equal(v, before[f"features.{k}"]) == (block != 2), k


def test_beta_zero_equals_training_without_alignment(data, global_model) -> None:
    res = flexp_train(global_model, data[:1], [Cut(1, 1)], FlexPConfig(beta=0.0), PFT, _gens(1))

    model = copy.deepcopy(global_model)
    own = [
        p for n, p in model.named_parameters() if not n.startswith(("features.1.", "features.2."))
    ]
    opt = torch.optim.SGD(own, lr=PFT.local.lr, momentum=PFT.local.momentum)
    gen = _gens(1)[0]
    for _ in range(PFT.epochs):
        train_epoch(model, *data[0], opt, PFT.local, gen)
    for k, v in _state(model).items():
        assert torch.equal(v, _state(res.models[0])[k]), k
    assert alignment_term(model, global_model, Cut(1, 1), FlexPConfig(beta=0.0)) is None


def test_tiny_beta_is_close_to_but_not_equal_to_beta_zero(data, global_model) -> None:
    """Alignment does enter training: beta 1e-6 moves the weights, but only slightly."""
    zero = flexp_train(global_model, data[:1], [Cut(1, 1)], FlexPConfig(beta=0.0), PFT, _gens(1))
    tiny = flexp_train(global_model, data[:1], [Cut(1, 1)], FlexPConfig(beta=1e-6), PFT, _gens(1))
    a, b = _state(zero.models[0]), _state(tiny.models[0])
    assert any(not torch.equal(a[k], b[k]) for k in a)
    for k in a:  # the change is O(beta * lr * steps): measured 4e-9 here
        torch.testing.assert_close(a[k], b[k], rtol=0, atol=1e-5)


@pytest.mark.parametrize("depth", ["first", "client"])
@pytest.mark.parametrize("kind", ["kl", "l2"])
def test_alignment_value_and_gradient_vanish_at_beta_zero(
    data, global_model, depth: str, kind: str
) -> None:
    model = copy.deepcopy(global_model)
    with torch.no_grad():  # away from the alignment minimum, where beta > 0 has a gradient
        for p in model.parameters():
            p.add_(0.05 * torch.randn(p.shape, generator=torch.Generator().manual_seed(1)))
    x = data[0][0][:32]
    for beta in (0.0, 1.0):
        model.zero_grad()
        cfg = FlexPConfig(align=kind, align_depth=depth, beta=beta)
        loss = alignment_regularizer(model, global_model, Cut(1, 1), cfg)(model, x, data[0][1])
        loss.backward()
        norms = [float(p.grad.abs().max()) for p in model.parameters() if p.grad is not None]
        assert norms  # the gradient is computed, not skipped
        if beta == 0:
            assert float(loss.detach()) == 0.0
            assert max(norms) == 0.0
        else:
            assert float(loss.detach()) > 0.0
            assert max(norms) > 0.0


@pytest.mark.parametrize("depth", ["first", "client"])
@pytest.mark.parametrize("kind", ["kl", "l2"])
def test_alignment_gradient_reaches_only_the_clients_own_parts(
    data, global_model, depth: str, kind: str
) -> None:

    model = copy.deepcopy(global_model)
    with torch.no_grad():  # move the client so that the alignment is not at its minimum
        for p in model.parameters():
            p.add_(0.05 * torch.randn(p.shape, generator=torch.Generator().manual_seed(1)))
    cfg = FlexPConfig(align=kind, align_depth=depth, beta=1.0)
    reg = alignment_term(model, global_model, Cut(1, 1), cfg)
    assert reg is not None
    x, y = data[0]
    reg(model, x[:32], y[:32]).backward()
    grads = {n: p.grad for n, p in model.named_parameters()}
    for n, g in grads.items():
        if n.startswith(("features.1.", "features.2.", "head.")):
            assert g is None, n  # server middle (and the head: no alignment there)
    assert grads["features.0.0.weight"] is not None
    assert grads["features.0.0.weight"].abs().sum() > 0
    back = grads["features.3.1.weight"]
    assert (back is not None and back.abs().sum() > 0) == (depth == "client")
    assert all(p.grad is None for p in global_model.parameters())


def test_bad_flexp_settings_name_the_value() -> None:
    with pytest.raises(ValueError, match=r"beta=-0.1 is invalid"):
        FlexPConfig(beta=-0.1)
    with pytest.raises(ValueError, match=r"server_mode='pooled' is invalid"):
        FlexPConfig(server_mode="pooled")
    with pytest.raises(ValueError, match="exactly one"):
        FlexPConfig(cuts=("1:1",), budgets=(100.0,))
    with pytest.raises(ValueError, match="front:back"):
        FlexPConfig(cuts=("1",))
    with pytest.raises(ValueError, match="budgets"):
        FlexPConfig(cuts=(), budgets=(-1.0,))
