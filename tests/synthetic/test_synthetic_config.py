"""Configuration validation and the simulate CLI's handling of bad input."""

from __future__ import annotations

import json

import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from feddistort.cli import main
from synthetic import ConfigError, SimConfig, config_from_mapping, parse_value
from synthetic.metrics import DEFAULT_METRICS


@pytest.mark.parametrize(
    ("changes", "pattern"),
    [
        ({"d": 5}, r"d=5 .*d >= m \+ C = 7"),
        ({"lam": -1.0}, r"lam=-1.0 .*>= 0"),
        ({"eps": -0.1}, r"eps=-0.1"),
        ({"eta": -0.1}, r"eta=-0.1"),
        ({"rho": 1.5}, r"rho=1.5 .*\[0, 1\]"),
        ({"covariate": "weird"}, r"covariate='weird' .*own, shared"),
        ({"loss": "l1"}, r"loss='l1' .*mse, half_mse"),
        ({"client": 9}, r"client=9 .*0\.\.3"),
        ({"sparsity": 0.0}, r"sparsity=0.0"),
        ({"n": 0}, r"n=0"),
        ({"lam": float("nan")}, r"lam=nan .*finite"),
        ({"d": 12.5}, r"d=12.5 .*integer"),
    ],
)
def test_bad_config_names_parameter_value_and_expectation(changes, pattern):
    with pytest.raises(ConfigError, match=pattern):
        SimConfig(**changes)


def test_parse_values_by_type():
    assert parse_value("d", "20") == 20
    assert parse_value("n", "none") is None
    assert parse_value("lam", "0.5") == 0.5
    assert parse_value("covariate", "own") == "own"
    with pytest.raises(ConfigError, match="d='x' .*integer"):
        parse_value("d", "x")
    with pytest.raises(ConfigError, match="unknown configuration key 'nope'"):
        config_from_mapping({"nope": "1"})


@pytest.mark.parametrize(
    ("argv", "fragment"),
    [
        (["--set", "d=3"], "d=3 is invalid"),
        (["--set", "lam"], "--set 'lam' is invalid: expected KEY=VALUE"),
        (["--grid", "lam=0:1"], "--grid 'lam=0:1' is invalid"),
        (["--grid", "lam=0:1:x"], "integer NUM"),
        (["--grid", "zzz=0:1:3"], "--grid key 'zzz'"),
        (["--set", "rho=2"], "rho=2.0 is invalid"),
        (["--methods", "ft,magic"], "method='magic' is invalid"),
        (["--metrics", "nope"], "metric='nope' is invalid"),
        (["--seeds", "0"], "--seeds '0' is invalid"),
        (["--set", "covariate=diagonal"], "covariate='diagonal' is invalid"),
    ],
)
def test_cli_bad_input_exits_2_without_traceback(argv, fragment, capsys):
    code = main(["simulate", "--no-progress", *argv])
    err = capsys.readouterr().err
    assert code == 2
    assert fragment in err
    assert "Traceback" not in err


def test_cli_writes_tidy_csv_and_config(tmp_path, capsys):
    out = tmp_path / "res.csv"
    argv = ["simulate", "--grid", "lam=0:1:3", "--seeds", "2", "--set", "C=3", "--set", "d=8"]
    code = main([*argv, "--methods", "ft,lpft", "--out", str(out), "--no-progress"])
    assert code == 0
    frame = pd.read_csv(out)
    assert {"method", "metric", "value", "client", "seed", "lam", "diverged"} <= set(frame.columns)
    # 3 lam x 2 seeds x 3 clients x 2 methods x the default metrics
    assert len(frame) == 3 * 2 * 3 * 2 * len(DEFAULT_METRICS)
    assert sorted(frame["lam"].unique()) == [0.0, 0.5, 1.0]
    meta = json.loads(out.with_suffix(".json").read_text())
    assert meta["grid"] == {"lam": [0.0, 0.5, 1.0]}
    assert meta["base"]["C"] == 3


def test_cli_reports_divergence_per_row(tmp_path, capsys):
    out = tmp_path / "div.csv"
    code = main(
        ["simulate", "--set", "eta=50", "--set", "steps=30", "--methods", "ft,lp",
         "--out", str(out), "--no-progress"]
    )  # fmt: skip
    assert code == 0
    frame = pd.read_csv(out)
    ft = frame[frame.method == "ft"]
    lp = frame[frame.method == "lp"]
    assert ft["diverged"].all()
    assert ft["value"].isna().all()
    assert not lp["diverged"].any()
    assert lp["value"].notna().all()
    assert "diverged" in capsys.readouterr().err


def test_failed_run_keeps_existing_output(tmp_path):
    out = tmp_path / "keep.csv"
    out.write_text("precious\n")
    assert main(["simulate", "--set", "d=2", "--out", str(out), "--no-progress"]) == 2
    assert out.read_text() == "precious\n"


def test_expand_grid_honours_a_seed_key():
    """A ``seed`` grid key is each point's first seed (it was silently overwritten by base.seed)."""
    from synthetic import SimConfig, expand_grid

    seeds = [c.seed for c in expand_grid(SimConfig(seed=5), {"seed": [0, 10]}, seeds=2)]
    assert seeds == [0, 1, 10, 11]
    assert [c.seed for c in expand_grid(SimConfig(seed=5), {"lam": [0.5, 1.0]}, seeds=2)] == [
        5, 6, 5, 6,
    ]  # fmt: skip


def test_to_dict_is_the_dataclass_dict_of_scalar_fields():
    """``to_dict`` is a shallow dict: equal to ``dataclasses.asdict`` because every field is a
    scalar or None (a container field would need asdict's deep copy)."""
    import dataclasses

    config = SimConfig(lam=0.3, n=40, flood=0.1, covariate="mix", seed=3)
    assert config.to_dict() == dataclasses.asdict(config)
    assert list(config.to_dict()) == [f.name for f in dataclasses.fields(SimConfig)]
    assert all(v is None or isinstance(v, (int, float, str)) for v in config.to_dict().values())
    assert SimConfig(**config.to_dict()) == config


def test_a_wrong_type_is_refused_with_the_cached_annotations():
    with pytest.raises(ConfigError, match=r"m=2\.5 is invalid: expected an integer"):
        SimConfig(m=2.5)  # type: ignore[arg-type]
    with pytest.raises(
        ConfigError, match=r"flood='x' is invalid: expected a finite number or none"
    ):
        SimConfig(flood="x")  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match=r"loss='l1' is invalid: expected one of mse, half_mse"):
        SimConfig(loss="l1")


# Values that break rules of each kind: types, ranges and the relations between fields.
_VALUES = {
    "d": [5, 7, 12, 20, 12.5, None, True],
    "m": [1, 2, 0, 2.5],
    "C": [1, 4, 9, 0],
    "client": [None, 0, 3, 9, -1],
    "covariate": ["own", "overlap", "mix", "weird", 3],
    "rho": [0.0, 0.5, 1.0, 1.5],
    "lam": [0.0, 0.7, -1.0, float("nan"), "x"],
    "flood": [None, 0.1, -0.1],
    "n": [None, 1, 40, 0],
    "n_mc": [2, 128, 1],
    "seed": [0, 7, -3],
}


@settings(max_examples=150)
@given(
    base=st.fixed_dictionaries({}, optional={k: st.sampled_from(v) for k, v in _VALUES.items()}),
    changes=st.fixed_dictionaries({}, optional={k: st.sampled_from(v) for k, v in _VALUES.items()}),
)
def test_replace_equals_dataclasses_replace(base, changes):
    """``SimConfig.replace`` re-runs only the changed fields' type and range rules (and every
    relation): its result, and its first error, are those of a full validation."""
    import dataclasses

    try:
        config = SimConfig(**base)
    except ConfigError:
        return  # only a valid configuration is ever replaced
    try:
        expected = dataclasses.replace(config, **changes)
    except ConfigError as err:
        message = str(err)
    else:
        message = None
    if message is not None:
        with pytest.raises(ConfigError) as got:
            config.replace(**changes)
        assert str(got.value) == message
        return
    result = config.replace(**changes)
    assert result == expected
    assert type(result) is SimConfig
    assert result.to_dict() == expected.to_dict()
    assert config.to_dict() == dataclasses.replace(config).to_dict()  # self is unchanged


def test_replace_refuses_a_bad_change_and_an_unknown_field():
    """Negative controls: a partial validation that skipped the changed field would pass these."""
    config = SimConfig()
    with pytest.raises(ConfigError, match=r"lam=-1\.0 is invalid"):
        config.replace(lam=-1.0)
    with pytest.raises(ConfigError, match=r"d=5 .*d >= m \+ C = 7"):
        config.replace(d=5)  # a relation between an unchanged and a changed field
    with pytest.raises(ConfigError, match=r"client=4 .*0\.\.3"):
        config.replace(client=4)
    with pytest.raises(TypeError, match="'nope'"):
        config.replace(nope=1)
