"""PFT variants: which parameters may move, and the soups / split machinery."""

from __future__ import annotations

import math
from collections.abc import Iterator

import numpy as np
import pytest
import torch
from torch import nn

from empirical.experiment.data import ClientDataConfig, make_clients
from empirical.experiment.models import build_model, split_parts
from empirical.experiment.pft import VARIANTS, PFTConfig, personalize, snip_mask
from empirical.experiment.soups import average_weights
from empirical.experiment.split import alignment_loss
from empirical.experiment.training import LocalConfig

CFG = PFTConfig(
    epochs=3, local=LocalConfig(lr=0.05), lp_epochs=1, n_ingredients=2, lss_weight_steps=3
)


@pytest.fixture(autouse=True)
def _single_thread() -> Iterator[None]:
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def client() -> tuple[torch.Tensor, torch.Tensor]:
    c = make_clients(
        ClientDataConfig(n_clients=4, shifts=("covariate",)), np.random.default_rng(0)
    )[1]
    return torch.from_numpy(c.x_train), torch.from_numpy(c.y_train)


@pytest.fixture(scope="module")
def global_model() -> nn.Module:
    torch.manual_seed(0)
    return build_model("cnn", width=4, feature_dim=16)


def _state(model: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def _moved(
    a: dict[str, torch.Tensor], b: dict[str, torch.Tensor], prefixes: tuple[str, ...]
) -> list[bool]:
    return [not torch.equal(a[k], b[k]) for k in a if k.startswith(prefixes)]


@pytest.mark.parametrize("variant", VARIANTS)
def test_every_variant_moves_the_model_and_leaves_the_global_one_alone(
    variant: str, client: tuple, global_model: nn.Module
) -> None:
    before = _state(global_model)
    epochs: list[int] = []
    model = personalize(variant, global_model, *client, CFG, torch.Generator().manual_seed(0),
                        on_epoch=lambda e, m: epochs.append(e))  # fmt: skip
    assert epochs == [1, 2, 3]
    after = _state(model)
    assert any(_moved(before, after, ("head.",)))
    assert all(torch.equal(v, _state(global_model)[k]) for k, v in before.items())
    assert all(torch.isfinite(v).all() for v in after.values())


def test_lp_leaves_every_feature_parameter_bit_identical(
    client: tuple, global_model: nn.Module
) -> None:
    before = _state(global_model)
    after = _state(personalize("lp", global_model, *client, CFG, torch.Generator().manual_seed(0)))
    assert not any(_moved(before, after, ("features.",)))
    assert all(_moved(before, after, ("head.",)))
    ft = _state(personalize("ft", global_model, *client, CFG, torch.Generator().manual_seed(0)))
    assert all(_moved(before, ft, ("features.",)))  # negative control


def test_lpft_probes_first_then_moves_features(client: tuple, global_model: nn.Module) -> None:
    before = _state(global_model)
    snapshots: dict[int, dict[str, torch.Tensor]] = {}
    personalize("lpft", global_model, *client, CFG, torch.Generator().manual_seed(0),
                on_epoch=lambda e, m: snapshots.__setitem__(e, _state(m)))  # fmt: skip
    assert not any(_moved(before, snapshots[1], ("features.",)))
    assert all(_moved(before, snapshots[3], ("features.",)))


def test_sparse_moves_only_masked_parameters(client: tuple, global_model: nn.Module) -> None:
    sparsity = 0.95
    masks = snip_mask(global_model, *client, sparsity)
    total = sum(m.numel() for m in masks.values())
    assert sum(int(m.sum()) for m in masks.values()) == math.ceil((1 - sparsity) * total)
    cfg = PFTConfig(epochs=2, local=LocalConfig(lr=0.05), lp_epochs=1, sparsity=sparsity)
    before = _state(global_model)
    after = _state(
        personalize("sparse", global_model, *client, cfg, torch.Generator().manual_seed(0))
    )
    moved_any = False
    for name, mask in masks.items():
        assert torch.equal(after[name][~mask], before[name][~mask])
        moved_any |= not torch.equal(after[name][mask], before[name][mask])
    assert moved_any


def test_snip_mask_keeps_the_largest_saliency(client: tuple, global_model: nn.Module) -> None:
    probe = build_model("cnn", width=4, feature_dim=16)
    probe.load_state_dict(global_model.state_dict())
    nn.functional.cross_entropy(probe(client[0]), client[1]).backward()
    scores = {n: (p.grad * p).abs() for n, p in probe.named_parameters()}  # type: ignore[operator]
    masks = snip_mask(global_model, *client, 0.9)
    kept = torch.cat([scores[n][m] for n, m in masks.items()])
    dropped = torch.cat([scores[n][~m] for n, m in masks.items()])
    assert kept.min() >= dropped.max()


@pytest.mark.parametrize(("front", "back", "align"), [(1, 1, "kl"), (2, 0, "l2")])
def test_split_leaves_the_shared_middle_untouched(
    client: tuple, global_model: nn.Module, front: int, back: int, align: str
) -> None:
    cfg = PFTConfig(epochs=2, local=LocalConfig(lr=0.05), lp_epochs=1,
                    split_front=front, split_back=back, split_align=align)  # fmt: skip
    parts = split_parts(4, front, back)
    before = _state(global_model)
    after = _state(
        personalize("split", global_model, *client, cfg, torch.Generator().manual_seed(0))
    )
    assert not any(_moved(before, after, tuple(parts["server_middle"])))
    assert all(_moved(before, after, tuple(parts["client_front"])))
    assert all(_moved(before, after, ("head.",)))


def test_alignment_loss_is_zero_only_at_agreement() -> None:
    z = torch.randn(5, 3, 4, 4, generator=torch.Generator().manual_seed(0))
    for kind in ("kl", "l2"):
        assert float(alignment_loss(z, z, kind)) == pytest.approx(0.0, abs=1e-6)
        assert float(alignment_loss(z + torch.randn_like(z), z, kind)) > 1e-3
    # KL over hidden units is invariant to adding a constant per sample (softmax shift).
    assert float(alignment_loss(z + 3.0, z, "kl")) == pytest.approx(0.0, abs=1e-5)
    assert float(alignment_loss(z + 3.0, z, "l2")) == pytest.approx(9.0)


def test_proximal_with_large_mu_drifts_less_than_ft(client: tuple, global_model: nn.Module) -> None:
    def drift(model: nn.Module) -> float:
        g = dict(global_model.named_parameters())
        with torch.no_grad():
            return float(sum(((p - g[n]) ** 2).sum() for n, p in model.named_parameters()))

    gen = lambda: torch.Generator().manual_seed(0)  # noqa: E731
    ft = personalize("ft", global_model, *client, CFG, gen())
    prox_cfg = PFTConfig(epochs=3, local=LocalConfig(lr=0.05), lp_epochs=1, mu=5.0)
    prox = personalize("proximal", global_model, *client, prox_cfg, gen())
    assert drift(prox) < 0.5 * drift(ft)


def test_average_weights_is_the_weighted_mean() -> None:
    torch.manual_seed(0)
    a, b = build_model("mlp", hidden=(8,)), build_model("mlp", hidden=(8,))
    avg = average_weights([a, b], torch.tensor([0.25, 0.75]))
    for k, v in avg.state_dict().items():
        expected = 0.25 * a.state_dict()[k].double() + 0.75 * b.state_dict()[k].double()
        torch.testing.assert_close(v.double(), expected, rtol=0, atol=1e-7)


def test_bad_variant_and_hyperparameters() -> None:
    with pytest.raises(ValueError, match="unknown variant 'bogus'"):
        personalize(
            "bogus",
            build_model("mlp"),
            torch.zeros(2, 1, 8, 8),
            torch.zeros(2, dtype=torch.long),
            CFG,
            torch.Generator(),
        )
    with pytest.raises(ValueError, match="sparsity"):
        PFTConfig(sparsity=1.0)
    with pytest.raises(ValueError, match="lss_affinity"):
        PFTConfig(lss_affinity=0.1, lss_diversity=0.1)
    with pytest.raises(ValueError, match="lp_epochs"):
        PFTConfig(epochs=5, lp_epochs=5)
    with pytest.raises(ValueError, match="split_align"):
        PFTConfig(split_align="cos")
    with pytest.raises(ValueError, match="front_depth=2, back_depth=2"):
        split_parts(4, 2, 2)
