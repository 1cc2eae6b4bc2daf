"""Client construction: each shift changes what it should and nothing else."""

from __future__ import annotations

import numpy as np
import pytest

from empirical.experiment.data import (
    ClientDataConfig,
    apply_domain,
    load_digits_images,
    make_clients,
)

DATA = load_digits_images()


def _clients(seed: int = 0, **kwargs: object) -> list:
    return make_clients(ClientDataConfig(**kwargs), np.random.default_rng(seed), DATA)  # type: ignore[arg-type]


def _index_sets(clients: list) -> list[set[int]]:
    return [set(c.idx_train.tolist()) | set(c.idx_test.tolist()) for c in clients]


def _label_tv(clients: list) -> float:
    """Mean total-variation distance between each client's label histogram and the pooled one."""
    x_all, y_all = DATA
    pooled = np.bincount(y_all, minlength=10) / len(y_all)
    tvs = []
    for c in clients:
        y = y_all[np.concatenate([c.idx_train, c.idx_test])]
        tvs.append(0.5 * np.abs(np.bincount(y, minlength=10) / len(y) - pooled).sum())
    return float(np.mean(tvs))


def test_clients_partition_the_data_and_splits_are_disjoint() -> None:
    for shifts in [(), ("label",), ("covariate", "concept")]:
        clients = _clients(shifts=shifts, n_clients=4)
        sets = _index_sets(clients)
        assert sum(len(s) for s in sets) == len(DATA[1])
        assert set().union(*sets) == set(range(len(DATA[1])))
        for c in clients:
            assert not set(c.idx_train.tolist()) & set(c.idx_test.tolist())
            assert c.x_train.dtype == np.float32
            assert c.y_train.dtype == np.int64
            assert c.x_train.shape[1:] == (1, 8, 8)


def test_label_shift_keeps_images_and_labels_but_skews_class_proportions() -> None:
    x_all, y_all = DATA
    skewed = _clients(shifts=("label",), dirichlet_alpha=0.1, n_clients=5, min_client_samples=10)
    for c in skewed:
        np.testing.assert_array_equal(c.x_train, x_all[c.idx_train])
        np.testing.assert_array_equal(c.y_test, y_all[c.idx_test])
    iid = _clients(shifts=(), n_clients=5)
    assert _label_tv(iid) < 0.03
    assert _label_tv(skewed) > 0.3


def test_concept_shift_keeps_inputs_and_partition_and_permutes_labels() -> None:
    x_all, y_all = DATA
    concept = _clients(seed=3, shifts=("concept",), permuted_classes=4)
    iid = _clients(seed=3, shifts=())
    assert _index_sets(concept) == _index_sets(iid)
    perms = []
    for c in concept:
        np.testing.assert_array_equal(c.x_train, x_all[c.idx_train])  # P(x) untouched
        np.testing.assert_array_equal(c.y_train, c.permutation[y_all[c.idx_train]])
        assert sorted(c.permutation.tolist()) == list(range(10))
        assert int((c.permutation != np.arange(10)).sum()) == 4
        perms.append(tuple(c.permutation.tolist()))
    assert len(set(perms)) > 1  # client-specific
    none = _clients(seed=3, shifts=("concept",), heterogeneity=0.0)
    for c in none:
        np.testing.assert_array_equal(c.permutation, np.arange(10))


def test_covariate_shift_changes_images_only() -> None:
    x_all, y_all = DATA
    clients = _clients(shifts=("covariate",), n_clients=5)
    assert [c.domain for c in clients] == ["rotate", "invert", "blur", "noise", "contrast"]
    for c in clients:
        np.testing.assert_array_equal(c.y_train, y_all[c.idx_train])
        assert np.abs(c.x_train - x_all[c.idx_train]).mean() > 0.01
        assert c.x_train.min() >= 0.0
        assert c.x_train.max() <= 1.0
        if c.domain != "noise":  # deterministic transforms: exactly reproducible
            expected = apply_domain(x_all[c.idx_train], c.domain, 1.0, np.random.default_rng(0))
            np.testing.assert_allclose(c.x_train, expected, atol=1e-6)
    flat = _clients(shifts=("covariate",), heterogeneity=0.0)
    for c in flat:
        np.testing.assert_array_equal(c.x_train, x_all[c.idx_train])


def test_spurious_marker_is_the_only_pixel_change_and_predicts_the_label() -> None:
    x_all, y_all = DATA
    clients = _clients(shifts=("spurious",), heterogeneity=1.0, n_clients=4)
    for i, c in enumerate(clients):
        changed = c.x_train != x_all[c.idx_train]
        rows, cols = np.nonzero(changed.any(axis=0)[0])
        assert len(set(rows.tolist())) <= 1
        assert len(set(cols.tolist())) <= 2
        np.testing.assert_array_equal(c.y_train, y_all[c.idx_train])
        r, col = {0: (0, 0), 1: (0, 6), 2: (7, 0), 3: (7, 6)}[i]
        marker = np.concatenate([c.x_train, c.x_test])[:, 0, r, col : col + 2].min(axis=1) == 1.0
        y = np.concatenate([c.y_train, c.y_test])
        # rho = 1: the marker is on for every sample of a marked class and off otherwise
        # (an original image may already be bright there, so "off" is checked on altered pixels).
        marked = {k for k in range(10) if marker[y == k].mean() == 1.0}
        assert len(marked) >= 5
        assert changed[np.isin(c.y_train, list(set(range(10)) - marked))].sum() == 0


def test_construction_is_deterministic_in_the_seed() -> None:
    a = _clients(seed=5, shifts=("covariate", "label"))
    b = _clients(seed=5, shifts=("covariate", "label"))
    c = _clients(seed=6, shifts=("covariate", "label"))
    for ca, cb in zip(a, b, strict=True):
        np.testing.assert_array_equal(ca.x_train, cb.x_train)
        np.testing.assert_array_equal(ca.idx_test, cb.idx_test)
    assert any(len(ca.idx_train) != len(cc.idx_train) for ca, cc in zip(a, c, strict=True))


def test_impossible_splits_and_bad_values_are_rejected() -> None:
    with pytest.raises(ValueError, match="n_clients=100"):
        _clients(shifts=(), n_clients=100)
    with pytest.raises(ValueError, match="min_client_samples=300"):
        _clients(shifts=("label",), n_clients=10, dirichlet_alpha=0.05, min_client_samples=300)
    with pytest.raises(ValueError, match="heterogeneity"):
        ClientDataConfig(heterogeneity=1.5)
    with pytest.raises(ValueError, match="unknown shift"):
        ClientDataConfig(shifts=("weather",))
    with pytest.raises(ValueError, match="dirichlet_alpha"):
        ClientDataConfig(dirichlet_alpha=0.0)
    with pytest.raises(ValueError, match="unknown domain"):
        apply_domain(DATA[0][:2], "fog", 1.0, np.random.default_rng(0))
