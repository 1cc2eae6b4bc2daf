"""The simulator's fast paths against their plain definitions (same numbers, other algorithms)."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from synthetic import SimConfig
from synthetic.delta import delta_exact
from synthetic.generators import InputModel
from synthetic.hyper import Hyper
from synthetic.methods import gradients, linear_probe, snip_mask
from synthetic.metrics import run_metrics
from synthetic.one_step import one_step, rank_one_metrics
from synthetic.problem import Objective, client_objectives, draw_problem, stack_problems
from synthetic.simulation import global_model_of


def _sorted_mask(V0, B0, obj, sparsity):
    """The SNIP mask by a stable descending sort (the definition)."""
    g_v, g_b, _ = gradients(V0, B0, obj)
    batch = g_v.shape[:-1]
    k, d = g_b.shape[-2:]
    sal = np.concatenate(
        [np.abs(g_v * V0).reshape(*batch, k), np.abs(g_b * B0).reshape(*batch, k * d)], axis=-1
    )
    keep = np.maximum(1, np.rint(np.asarray(sparsity) * sal.shape[-1])).astype(int)
    order = np.argsort(-sal, axis=-1, kind="stable")
    ranks = np.empty_like(order)
    np.put_along_axis(ranks, order, np.broadcast_to(np.arange(sal.shape[-1]), order.shape), -1)
    mask = (ranks < np.broadcast_to(keep, batch)[..., None]).astype(float)
    return mask[..., :k], mask[..., k:].reshape(*batch, k, d)


@settings(max_examples=40, deadline=None)
@given(
    seed=st.integers(0, 2**31),
    decimals=st.integers(0, 2),
    sparsity=st.floats(0.001, 1.0),
    dead=st.sampled_from(["none", "rows", "all"]),
)
def test_snip_mask_by_partition_equals_the_stable_sort(seed, decimals, sparsity, dead):
    rng = np.random.default_rng(seed)
    G, P, k, d = 3, 2, 4, 6
    V0 = rng.standard_normal((G, 1, k))
    if dead == "rows":
        V0[..., 2:] = 0.0  # zero head rows: zero saliency columns, many ties
    elif dead == "all":
        V0[...] = 0.0  # every saliency zero: the first entries in parameter order
    B0 = np.round(rng.standard_normal((G, 1, k, d)), decimals)
    c = np.round(rng.standard_normal((G, P, d)), decimals)
    obj = Objective(np.broadcast_to(np.eye(d), (G, P, d, d)), c, np.zeros((G, P)))
    fast, slow = snip_mask(V0, B0, obj, sparsity), _sorted_mask(V0, B0, obj, sparsity)
    assert np.array_equal(fast[0], slow[0])
    assert np.array_equal(fast[1], slow[1])


@pytest.mark.parametrize("singular", [False, True])
def test_linear_probe_by_solve_equals_the_pseudo_inverse(singular):
    rng = np.random.default_rng(3)
    B = rng.standard_normal((5, 3, 4, 9))
    S = np.eye(9)
    if singular:  # rank-one second moment: the gram is singular, the minimum-norm solution
        S = np.outer(np.ones(9), np.ones(9))
    obj = Objective(np.broadcast_to(S, (5, 3, 9, 9)), rng.standard_normal((5, 3, 9)),
                    np.zeros((5, 3)))  # fmt: skip
    gram = obj.sandwich(B)
    rhs = (B @ obj.c[..., None])[..., 0]
    expected = (np.linalg.pinv(gram, hermitian=True) @ rhs[..., None])[..., 0]
    np.testing.assert_allclose(linear_probe(B, obj), expected, rtol=1e-10, atol=1e-12)


def test_blocked_quadrature_equals_the_one_shot_form():
    rng = np.random.default_rng(5)
    N, k, d = 100, 4, 12  # >= 64 rows: summed node by node
    D = rng.standard_normal((N, k, d)) * np.exp(rng.uniform(-6, 2, (N, 1, 1)))
    inputs = InputModel(rng.standard_normal((N, d)), rng.standard_normal((N, d, 2)), np.ones(N))
    blocked = delta_exact(D, inputs)
    single = np.array([delta_exact(D[i : i + 1], InputModel(inputs.mean[i : i + 1],
                       inputs.factor[i : i + 1], inputs.scale[i : i + 1]))[0]
                       for i in range(N)])  # fmt: skip
    np.testing.assert_allclose(blocked, single, rtol=1e-13)


@pytest.mark.parametrize("cov", ["isotropic", "own", "overlap"])
@pytest.mark.parametrize("n", [None, 25])
def test_rank_one_metrics_equal_the_metrics_of_the_formed_features(cov, n):
    configs = [SimConfig(covariate=cov, n=n, d=20, lam=lam, sigma=0.2) for lam in (0.0, 1.0)]
    problem = stack_problems([draw_problem(c) for c in configs])
    v0, b0 = global_model_of(configs, problem)
    clients = np.arange(configs[0].C)
    obj = client_objectives(problem, clients, 0.2)
    step = one_step(v0[:, None, :], b0, obj, Hyper(np.full((2, 1), 0.3), flood=0.05))
    names = ["local_loss", "global_loss", "global_loss_others", "ood_loss", "head_change",
             "feature_distortion_fro", "feature_distortion_local", "delta_l2"]  # fmt: skip
    fast = rank_one_metrics(problem, clients, step, v0, b0, 1.0, names)
    slow = run_metrics(problem, clients, step.V, step.features(b0), v0, b0, 1.0, names)
    for name in names:
        np.testing.assert_allclose(fast[name], slow[name], rtol=1e-10, atol=1e-13, err_msg=name)


def test_tidy_frame_equals_the_plain_constructor():
    import pandas as pd

    from synthetic import expand_grid, simulate
    from synthetic.config import field_names

    base = SimConfig(n=8, covariate="own", flood=0.2)
    grid = {"lam": [0.5, 1.0], "d": [10, 12], "covariate": ["own", "mix"], "n": [None, 8]}
    configs = expand_grid(base, grid)
    configs = configs[::-1]  # batches (by d and covariate) out of order
    frame = simulate(configs, ["ft", "lpft", "global"], metrics=["local_loss", "delta_l2"])
    # The definition: the same rows built column by column through pd.DataFrame.
    rows_per_config = len(frame) // len(configs)
    plain = {f: np.repeat(np.array([getattr(c, f) for c in configs], dtype=object), rows_per_config)
             for f in field_names() if f != "client"}  # fmt: skip
    for key in ("client", "method", "metric", "value", "diverged"):
        plain[key] = frame[key].to_numpy()
    expected = pd.DataFrame(plain).infer_objects()
    expected["n"] = plain["n"]  # the simulator keeps None beside integers as objects
    assert frame["n"].dtype == object  # None beside integers stays an object column
    pd.testing.assert_frame_equal(frame, expected)
    assert frame._mgr.nblocks <= 10  # one per numpy dtype and per text column, not per column
