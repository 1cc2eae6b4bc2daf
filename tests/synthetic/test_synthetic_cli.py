"""Regressions of ``feddistort simulate``: file names, empty "others", option messages, memory."""

from __future__ import annotations

import pytest

from feddistort.cli import build_parser, main
from synthetic import ConfigError
from synthetic.budget import check_budget
from synthetic.config import MAX_GRID_POINTS, SimConfig, parse_grid


def _run(capsys, *argv):
    code = main(["simulate", "--no-progress", *argv])
    out, err = capsys.readouterr()
    return code, out, err


@pytest.mark.parametrize(
    ("name", "suggestion"), [("r.json", "r.csv"), ("R.JSON", "R.csv"), ("r.csv.json", "r.csv")]
)
def test_out_ending_in_json_is_refused_and_nothing_is_written(tmp_path, capsys, name, suggestion):
    out = tmp_path / name
    code, _, err = _run(capsys, "--set", "d=8", "--methods", "ft", "--out", str(out))
    assert code == 2
    assert f"--out {str(out)!r} is invalid" in err
    assert "collide" in err
    assert f"such as {suggestion}" in err
    assert "Traceback" not in err
    assert list(tmp_path.iterdir()) == []


def test_results_and_configuration_are_distinct_files(tmp_path, capsys):
    out = tmp_path / "r"
    code, out_text, _ = _run(capsys, "--set", "d=8", "--methods", "ft", "--out", str(out))
    assert code == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["r", "r.json"]
    assert (tmp_path / "r").read_text().startswith("d,")  # the CSV was not overwritten
    assert (tmp_path / "r.json").read_text().lstrip().startswith("{")
    assert "r.json" in out_text


def test_help_says_how_the_configuration_file_is_named(capsys):
    with pytest.raises(SystemExit):
        build_parser().parse_args(["simulate", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "name ending in .json is refused" in text


@pytest.mark.parametrize(
    ("argv", "fragment"),
    [
        (["--set", "C=1"], "--set C=1 is invalid with the metric global_loss_others"),
        (["--grid", "C=1,2"], "--grid value C=1 is invalid with the metric global_loss_others"),
    ],
)
def test_one_client_with_others_metric_is_refused(capsys, argv, fragment):
    code, _, err = _run(capsys, "--set", "m=1", *argv)
    assert code == 2
    assert fragment in err
    assert "expected C >= 2, or --metrics without global_loss_others" in err


def test_one_client_without_others_metric_runs(capsys):
    code, out, _ = _run(capsys, "--set", "C=1", "--set", "d=6", "--methods", "ft",
                        "--metrics", "local_loss,global_loss")  # fmt: skip
    assert code == 0
    assert "nan" not in out.lower()


@pytest.mark.parametrize(
    ("argv", "fragment"),
    [
        (["--seeds", "-1"], "--seeds '-1' is invalid: expected an integer >= 1"),
        (["--seeds", "x"], "--seeds 'x' is invalid: expected an integer >= 1"),
        (["--seeds", "2.5"], "--seeds '2.5' is invalid: expected an integer >= 1"),
        (["--chunk-size", "0"], "--chunk-size '0' is invalid: expected an integer >= 1"),
        (["--chunk-size", "many"], "--chunk-size 'many' is invalid: expected an integer >= 1"),
        (["--set", "seed=-1"], "seed=-1 is invalid: expected seed >= 0"),
        (["--set", "n_mc=2.5"], "n_mc='2.5' is invalid: expected an integer"),
        (["--set", "lam=inf"], "lam=inf is invalid: expected a finite number"),
        (["--grid", "lam=0:1:0"], "--grid 'lam=0:1:0' is invalid: expected 1 <= NUM"),
        (["--methods", ","], "--methods ',' is invalid: expected at least one of"),
        (["--metrics", "x"], "--metrics 'x' is invalid: metric='x' is invalid: expected one of"),
    ],
)
def test_bad_option_names_option_value_and_expectation(capsys, argv, fragment):
    code, _, err = _run(capsys, *argv)
    assert code == 2
    assert fragment in err
    assert err.count("\n") == 1  # one line, no usage block, no traceback


@pytest.mark.parametrize(
    "argv",
    [["--set", "d=1000000000000"], ["--seeds", "100000000"],
     ["--grid", "lam=0:1:1000000"], ["--grid", "lam=0:1:1000", "--grid", "eta=0:1:1000"]],
)  # fmt: skip
def test_huge_requests_are_refused_with_an_estimate_before_allocating(capsys, monkeypatch, argv):
    import synthetic.simulation

    def never(*args, **kwargs):  # the budget must refuse before configurations are built
        raise AssertionError("expand_grid was reached")

    monkeypatch.setattr(synthetic.simulation, "expand_grid", never)
    code, _, err = _run(capsys, *argv)
    assert code == 2
    assert "the simulation needs about" in err
    assert "GB of memory" in err
    assert "is available" in err


def test_grid_size_is_capped_before_the_values_are_built():
    with pytest.raises(ConfigError, match=r"--grid 'lam=0:1:1000001' is invalid: expected 1 <="):
        parse_grid(f"lam=0:1:{MAX_GRID_POINTS + 1}")
    assert parse_grid("lam=0:1:3") == ("lam", [0.0, 0.5, 1.0])
    assert parse_grid("d=10:20:3") == ("d", [10, 15, 20])


def test_budget_counts_fedavg_masks_and_accepts_ordinary_runs():
    base = SimConfig().to_dict()
    assert check_budget(base, {}, 1, n_methods=7, n_metrics=8, chunk_size=512) < 10**8
    fed = SimConfig(global_model="fedavg").to_dict()
    small = check_budget(fed, {}, 1, n_methods=1, n_metrics=1, chunk_size=1)
    huge = check_budget({**fed, "fed_rounds": 10**6}, {}, 1, n_methods=1, n_metrics=1,
                        chunk_size=1)  # fmt: skip
    assert huge - small >= (10**6 - 200) * 4 - 16  # one byte per round and client (C = 4)
    with pytest.raises(ConfigError, match="needs about"):
        check_budget(base, {"lam": [0.0] * 10}, 10**7, n_methods=7, n_metrics=8, chunk_size=512)
