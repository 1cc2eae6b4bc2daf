"""FedAvg, local training and loss flooding."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pytest
import torch

from empirical.experiment.data import ClientDataConfig, make_clients
from empirical.experiment.models import build_model
from empirical.experiment.training import (
    FedAvgConfig,
    LocalConfig,
    accuracy,
    fedavg,
    flood,
    train_epoch,
)


@pytest.fixture(autouse=True)
def _single_thread() -> Iterator[None]:
    # Tiny models: one thread is much faster than two on a shared 2-core machine.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _iid(n_clients: int = 3) -> list:
    return make_clients(ClientDataConfig(n_clients=n_clients, shifts=()), np.random.default_rng(0))


def _tensors(clients: list, split: str) -> list[tuple[torch.Tensor, torch.Tensor]]:
    return [
        (torch.from_numpy(getattr(c, f"x_{split}")), torch.from_numpy(getattr(c, f"y_{split}")))
        for c in clients
    ]


def test_fedavg_on_iid_clients_improves_global_accuracy_over_init() -> None:
    clients = _iid()
    torch.manual_seed(0)
    init = build_model("mlp", hidden=(64,))
    tests = _tensors(clients, "test")
    before = np.mean([accuracy(init, x, y) for x, y in tests])
    config = FedAvgConfig(rounds=5, local=LocalConfig(lr=0.1))
    trained = fedavg(init, _tensors(clients, "train"), config, torch.Generator().manual_seed(0))
    after = np.mean([accuracy(trained, x, y) for x, y in tests])
    assert before < 0.3  # chance is 0.1
    assert after > 0.6
    assert after > before + 0.5


def test_fedavg_is_deterministic_and_leaves_the_initial_model_alone() -> None:
    clients = _tensors(_iid(), "train")
    torch.manual_seed(1)
    init = build_model("cnn", width=4, feature_dim=8)
    init_state = {k: v.clone() for k, v in init.state_dict().items()}
    config = FedAvgConfig(rounds=2, participation=0.5, local=LocalConfig(lr=0.05))
    a = fedavg(init, clients, config, torch.Generator().manual_seed(3))
    b = fedavg(init, clients, config, torch.Generator().manual_seed(3))
    c = fedavg(init, clients, config, torch.Generator().manual_seed(4))
    for k, v in init.state_dict().items():
        assert torch.equal(v, init_state[k])
        assert torch.equal(a.state_dict()[k], b.state_dict()[k])
    assert any(not torch.equal(a.state_dict()[k], c.state_dict()[k]) for k in init_state)


def test_fedavg_of_one_client_equals_its_local_training() -> None:
    (x, y), *_ = _tensors(_iid(), "train")
    torch.manual_seed(2)
    init = build_model("mlp", hidden=(16,))
    local = LocalConfig(lr=0.05, momentum=0.0)
    avg = fedavg(
        init, [(x, y)], FedAvgConfig(rounds=1, local=local), torch.Generator().manual_seed(7)
    )
    manual = build_model("mlp", hidden=(16,))
    manual.load_state_dict(init.state_dict())
    gen = torch.Generator().manual_seed(7)
    torch.randperm(1, generator=gen)  # the client-sampling draw of round 0
    opt = torch.optim.SGD(manual.parameters(), lr=0.05)
    train_epoch(manual, x, y, opt, local, gen)
    for k, v in manual.state_dict().items():
        torch.testing.assert_close(avg.state_dict()[k], v, rtol=0, atol=1e-6)


def test_flooding_value_and_gradient_sign() -> None:
    loss = torch.tensor(0.3, requires_grad=True)
    above = flood(loss, 0.1)
    assert float(above.detach()) == pytest.approx(0.3)
    above.backward()
    assert float(loss.grad) == pytest.approx(1.0)  # type: ignore[arg-type]
    loss.grad = None
    below = flood(loss, 0.5)
    assert float(below.detach()) == pytest.approx(0.7)
    below.backward()
    assert float(loss.grad) == pytest.approx(-1.0)  # type: ignore[arg-type]
    assert flood(loss, None) is loss


def test_flood_level_above_the_loss_makes_training_ascend() -> None:
    (x, y), *_ = _tensors(_iid(), "train")
    torch.manual_seed(0)
    model = build_model("mlp", hidden=(32,))
    cfg = LocalConfig(lr=0.05, momentum=0.0)
    opt = torch.optim.SGD(model.parameters(), lr=cfg.lr)
    for _ in range(5):
        train_epoch(model, x, y, opt, cfg, torch.Generator().manual_seed(0))
    trained_loss = float(torch.nn.functional.cross_entropy(model(x), y).detach())
    flooded = LocalConfig(lr=0.05, momentum=0.0, flood_level=trained_loss + 1.0)
    for _ in range(3):
        train_epoch(model, x, y, opt, flooded, torch.Generator().manual_seed(1))
    assert float(torch.nn.functional.cross_entropy(model(x), y).detach()) > trained_loss


@pytest.mark.parametrize(
    ("kwargs", "name"),
    [
        ({"lr": 0.0}, "lr"),
        ({"batch_size": 0}, "batch_size"),
        ({"momentum": 1.0}, "momentum"),
        ({"flood_level": -1.0}, "flood_level"),
    ],
)
def test_invalid_local_config(kwargs: dict, name: str) -> None:
    with pytest.raises(ValueError, match=name):
        LocalConfig(**kwargs)


def test_invalid_fedavg_config() -> None:
    with pytest.raises(ValueError, match="participation"):
        FedAvgConfig(participation=0.0)
    with pytest.raises(ValueError, match="rounds"):
        FedAvgConfig(rounds=0)
