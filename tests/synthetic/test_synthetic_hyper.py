"""The table of hyperparameters each method reads, and refusal of options a method ignores."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from feddistort.cli import main
from synthetic import METHODS, ConfigError, SimConfig, simulate
from synthetic.hyper import METHOD_FIELDS, REFUSED_WHEN_UNUSED, Hyper, for_method
from synthetic.methods import run_method
from synthetic.problem import client_objectives, draw_problem, stack_problems
from synthetic.simulation import global_model_of

KNOBS = {"lp": "ridge", "lpft": "ridge", "proximal": "mu", "sparse": "sparsity", "align": "beta"}
ON = {"ridge": 0.5, "mu": 2.0, "sparsity": 0.2, "beta": 2.0}


def _setup(config=None):
    config = config or SimConfig(covariate="own", steps=3, eta=0.1)
    problem = stack_problems([draw_problem(config)])
    v0, b0 = global_model_of([config], problem)
    clients = np.arange(config.C)
    return v0[:, None, :], b0[:, None], client_objectives(problem, clients)


def test_table_covers_every_method_and_names_real_fields():
    assert set(METHOD_FIELDS) == set(METHODS)
    names = {f.name for f in dataclasses.fields(Hyper)}
    for used in METHOD_FIELDS.values():
        assert set(used) <= names
    assert set(REFUSED_WHEN_UNUSED) <= names


@pytest.mark.parametrize("method", METHODS)
def test_a_method_ignores_every_field_it_does_not_read(method):
    v0, b0, obj = _setup()
    noisy = Hyper(0.1, 3, ridge=0.7, mu=3.0, sparsity=0.3, beta=4.0)
    used = METHOD_FIELDS[method]
    kept = {f: getattr(noisy, f) for f in used if f != "flood"}
    plain = Hyper(**{"eta": 0.0, **kept})
    a = run_method(method, v0, b0, obj, noisy)
    b = run_method(method, v0, b0, obj, plain)
    assert np.array_equal(a.V, b.V)
    assert np.array_equal(a.B, b.B)


@pytest.mark.parametrize(("method", "knob"), sorted(KNOBS.items()))
def test_each_method_reads_its_own_knob(method, knob):
    v0, b0, obj = _setup(SimConfig(covariate="own", steps=3, eta=0.1, n=15, sigma=0.2))
    off = run_method(method, v0, b0, obj, Hyper(0.1, 3))
    on = run_method(method, v0, b0, obj, Hyper(0.1, 3, **{knob: ON[knob]}))
    assert not np.allclose(off.V, on.V)  # negative control: the field is used


@pytest.mark.parametrize("method", [m for m in METHODS if "flood" not in METHOD_FIELDS[m]])
def test_methods_that_ignore_flood_refuse_it(method):
    assert method in ("lp", "proximal", "sparse", "soup", "align")
    v0, b0, obj = _setup()
    message = (
        rf"flood=0.3 is invalid with method '{method}', which does not use flood: "
        r"expected flood=none or methods among ft, lpft"
    )
    with pytest.raises(ConfigError, match=message):
        run_method(method, v0, b0, obj, Hyper(0.1, 3, flood=0.3))
    with pytest.raises(ConfigError, match="flood=0.3 is invalid with method"):
        simulate([SimConfig(flood=0.3)], ["ft", method])


@pytest.mark.parametrize("method", ["ft", "lpft"])
def test_ft_and_lpft_apply_flood(method):
    v0, b0, obj = _setup(SimConfig(covariate="own", steps=3, eta=0.1, n=15, sigma=0.2))
    flooded = run_method(method, v0, b0, obj, Hyper(0.1, 3, flood=10.0))
    plain = run_method(method, v0, b0, obj, Hyper(0.1, 3))
    assert not np.allclose(flooded.B, plain.B)
    assert for_method(method, Hyper(0.1, flood=1.0)).flood == 1.0


def test_cli_refuses_flood_with_default_methods(capsys):
    code = main(["simulate", "--no-progress", "--set", "flood=0.2"])
    err = capsys.readouterr().err
    assert code == 2
    assert "flood=0.2 is invalid with method 'lp', which does not use flood" in err
    assert main(["simulate", "--no-progress", "--set", "flood=0.2", "--methods", "ft,lpft"]) == 0
