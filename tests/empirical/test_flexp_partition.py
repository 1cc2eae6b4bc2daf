"""FlexP partitions and the budget rule; cost accounting against hand counts."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from empirical.experiment.flexp.costs import client_cost, profile_model
from empirical.experiment.flexp.partition import (
    PARTS,
    Cut,
    block_assignment,
    client_cuts,
    cut_from_budget,
    partition,
    valid_cuts,
)
from empirical.experiment.models import DigitsCNN, DigitsMLP


def _mlp() -> DigitsMLP:
    # blocks: L(4,3) | L(3,5) | L(5,2); head L(2,2); input (1, 2, 2)
    return DigitsMLP(in_features=4, hidden=(3, 5), feature_dim=2, num_classes=2)


MLP_PROFILE = profile_model(_mlp(), (1, 2, 2))
CNN_PROFILE = profile_model(DigitsCNN(), (1, 8, 8))


@pytest.mark.parametrize("model", [DigitsCNN(), DigitsMLP(hidden=(8, 8, 8))])
def test_every_cut_assigns_every_parameter_exactly_once(model: DigitsCNN | DigitsMLP) -> None:
    n = model.n_blocks
    cuts = valid_cuts(n)
    assert len(cuts) == n * (n - 1) // 2
    for cut, parts in zip(cuts, partition(n, cuts), strict=True):
        blocks = block_assignment(n, cut)
        assert sorted(i for p in PARTS for i in blocks[p]) == list(range(n + 1))
        assert blocks["server_middle"]
        for name, _ in model.named_parameters():
            owners = [p for p in PARTS if any(name.startswith(x) for x in parts[p])]
            assert len(owners) == 1, (cut, name, owners)


def test_cut_points_outside_the_model_are_refused() -> None:
    for bad in (Cut(0, 1), Cut(2, 2), Cut(1, 3), Cut(4, 0)):
        with pytest.raises(ValueError, match="outside the model"):
            bad.check(4)
    for text in ("1", "a:b", "1:-1", ""):
        with pytest.raises(ValueError, match="front:back"):
            Cut.parse(text)
    assert Cut.parse(" 2:1") == Cut(2, 1)
    assert str(Cut(2, 1)) == "2:1"


def test_profile_of_a_tiny_mlp_equals_a_hand_count() -> None:
    assert MLP_PROFILE.params == (15, 20, 12, 6)
    assert MLP_PROFILE.macs == (12, 15, 10, 4)
    assert MLP_PROFILE.outputs == (3, 5, 2)
    assert MLP_PROFILE.stored == (10, 10, 4, 2)  # flatten+linear+relu, linear+relu, ...
    assert MLP_PROFILE.input_numel == 4
    assert MLP_PROFILE.bytes_per_element == 4


def test_profile_of_a_tiny_cnn_equals_a_hand_count() -> None:
    cnn = DigitsCNN(image_size=4, width=1, feature_dim=2, num_classes=2)
    prof = profile_model(cnn, (1, 4, 4))
    # conv1 1->1 on 4x4: 16 outputs x 9; conv 1->2: 32 x 9 (before pooling); conv 2->2 on 2x2:
    # 8 x 18; linear 8->2; head 2->2
    assert prof.macs == (144, 288, 144, 16, 4)
    assert prof.params == (10, 20, 38, 18, 6)
    assert prof.outputs == (16, 8, 8, 2)
    assert sum(prof.params) == sum(p.numel() for p in cnn.parameters())


@pytest.mark.parametrize(
    ("cut", "params", "flops", "comm", "memory"),
    [
        (Cut(1, 0), 21, 6 * 16, 4 * (3 + 2), 4 * (4 + 10 + 2 + 2)),
        (Cut(1, 1), 33, 6 * 26, 4 * (3 + 5), 4 * (4 + 10 + 4 + 2 + 5)),
        (Cut(2, 0), 41, 6 * 31, 4 * (5 + 2), 4 * (4 + 10 + 10 + 2 + 2)),
    ],
)
def test_client_cost_equals_a_hand_count(
    cut: Cut, params: int, flops: int, comm: int, memory: int
) -> None:
    cost = client_cost(MLP_PROFILE, cut.front, cut.back)
    assert (cost.params, cost.flops, cost.bytes_sent, cost.bytes_received,
            cost.activation_bytes) == (params, flops, comm, comm, memory)  # fmt: skip
    assert set(cost.as_row()) == {"client_params", "client_flops", "bytes_sent",
                                  "bytes_received", "activation_bytes"}  # fmt: skip


def test_budget_rule_picks_the_documented_cut_on_hand_made_budgets() -> None:
    # params: 1:0 -> 21, 1:1 -> 33, 2:0 -> 41
    assert cut_from_budget(MLP_PROFILE, "params", 21) == Cut(1, 0)
    assert cut_from_budget(MLP_PROFILE, "params", 40) == Cut(1, 1)  # 2 client blocks
    assert cut_from_budget(MLP_PROFILE, "params", 41) == Cut(2, 0)  # tie on blocks: larger cost
    assert cut_from_budget(MLP_PROFILE, "flops", 6 * 26) == Cut(1, 1)
    assert cut_from_budget(MLP_PROFILE, "memory", 100) == Cut(1, 1)
    assert cut_from_budget(MLP_PROFILE, "memory", 99) == Cut(1, 0)
    with pytest.raises(ValueError, match=r"params=20 fits no partition.*1:0, needs params=21"):
        cut_from_budget(MLP_PROFILE, "params", 20)
    with pytest.raises(ValueError, match="budget kind 'time'"):
        cut_from_budget(MLP_PROFILE, "time", 100)


@given(st.sampled_from(["params", "flops", "memory"]),
       st.lists(st.integers(0, 10**6), min_size=2, max_size=6))  # fmt: skip
def test_budget_rule_is_monotone_and_fits(kind: str, budgets: list[int]) -> None:
    prof = CNN_PROFILE
    shares = []
    scale = {"params": 1, "flops": 20, "memory": 1}[kind]
    for budget in sorted(b * scale for b in budgets):
        try:
            cut = cut_from_budget(prof, kind, budget)
        except ValueError:
            assert not shares  # once a budget fits, every larger one does
            continue
        cost = client_cost(prof, cut.front, cut.back)
        used = {"params": cost.params, "flops": cost.flops, "memory": cost.activation_bytes}
        assert used[kind] <= budget
        shares.append(cut.front + cut.back)
    assert shares == sorted(shares)


def test_client_cuts_broadcasts_one_value_and_refuses_too_many() -> None:
    assert client_cuts(3, MLP_PROFILE, cuts=["1:1"]) == [Cut(1, 1)] * 3
    assert client_cuts(2, MLP_PROFILE, budgets=[21, 41]) == [Cut(1, 0), Cut(2, 0)]
    with pytest.raises(ValueError, match="3 cut points for 2 clients"):
        client_cuts(2, MLP_PROFILE, cuts=["1:0", "1:1", "2:0"])
    with pytest.raises(ValueError, match="exactly one"):
        client_cuts(2, MLP_PROFILE)
    with pytest.raises(ValueError, match="outside the model"):
        client_cuts(2, MLP_PROFILE, cuts=["3:0"])
