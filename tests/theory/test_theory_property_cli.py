"""``feddistort theory property``, user modules by MODULE:NAME, and what the audit writes."""

from __future__ import annotations

import json
import sys
import textwrap

import pytest

from feddistort.cli import main

USER_MODULE = """
import numpy as np
from theory import claim

@claim("ft-never-raises-global", statement="FT never raises the global loss",
       methods=("global", "ft"), metrics=("global_loss",), space={"steps": 1})
def ft_never_raises_global(r):
    return r["ft", "global_loss"] <= r["global", "global_loss"] + 1e-9

@claim("lp-local", statement="LP's local loss is at most the global model's",
       methods=("global", "lp"), metrics=("local_loss",), space={"ridge": 0.0, "n": None})
def lp_local(r):
    return r["lp", "local_loss"] <= r["global", "local_loss"] + 1e-9

@claim("raises", statement="raises", methods=("ft",), metrics=("local_loss",))
def raises(r):
    raise RuntimeError("boom")

@claim("number", statement="returns a number", methods=("ft",), metrics=("local_loss",))
def number(r):
    return r["ft", "local_loss"].sum()

def not_a_claim(r):
    return True
"""


@pytest.fixture
def user_module(tmp_path, monkeypatch):
    """A user's claim module in a fresh working directory (a name unique to the test)."""
    name = f"my_claims_{abs(hash(str(tmp_path))) % 10**8}"
    (tmp_path / f"{name}.py").write_text(textwrap.dedent(USER_MODULE))
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "path", [p for p in sys.path if p not in ("", ".")])
    yield name
    sys.modules.pop(name, None)


def _run(capsys, *argv):
    code = main(list(argv))
    out = capsys.readouterr()
    return code, out.out, out.err


def test_property_false_claim_prints_one_line_counterexample_that_reproduces(capsys, user_module):
    code, out, err = _run(capsys, "theory", "property", f"{user_module}:ft_never_raises_global",
                          "--max-examples", "100", "--seed", "0")  # fmt: skip
    assert code == 1
    lines = out.splitlines()
    assert lines[0].startswith("counterexample: --set ")
    assert "user's claim" in lines[1]
    assert "ft.global_loss" in out
    assert err == ""  # stderr is not a terminal: no bar
    sets = lines[0].removeprefix("counterexample: ").split()
    assert sets[0::2] == ["--set"] * (len(sets) // 2)
    keys = [kv.split("=")[0] for kv in sets[1::2]]
    assert "seed" not in keys  # shrunk to the default seed: not printed
    code, out, _ = _run(capsys, "theory", "check", f"{user_module}:ft_never_raises_global", *sets)
    assert code == 1
    assert "user's claim: FAILS here" in out


def test_property_true_claim_exits_0(capsys, user_module):
    code, out, _ = _run(capsys, "theory", "property", f"{user_module}:lp_local",
                        "--max-examples", "30")  # fmt: skip
    assert code == 0
    assert "holds on 30 examples" in out
    code, out, _ = _run(capsys, "theory", "check", f"{user_module}:lp_local", "--set", "lam=2")
    assert code == 0


def test_property_json_is_deterministic(capsys, user_module):
    argv = ("theory", "property", f"{user_module}:ft_never_raises_global", "--json",
            "--max-examples", "40", "--seed", "3")  # fmt: skip
    code, first, _ = _run(capsys, *argv)
    assert code == 1
    _, second, _ = _run(capsys, *argv)
    assert json.loads(first) == json.loads(second)
    assert json.loads(first)["failed"] == ["user's claim"]


@pytest.mark.parametrize(
    ("target", "extra", "message"),
    [
        ("no_such_module_xyz:c", [], "module 'no_such_module_xyz' not found"),
        ("{m}:missing", [], "has no attribute 'missing'"),
        ("{m}:not_a_claim", [], "is a function, not a claim"),
        ("{m}:raises", [], "raised RuntimeError: boom"),
        ("{m}:number", [], "expected a bool or a bool array"),
        ("{m}:lp_local", ["--set", "d=2"], "search space is empty"),
        ("{m}:lp_local", ["--set", "eta=-1"], "eta=-1.0 is invalid"),
        ("{m}:lp_local", ["--max-examples", "0"], "--max-examples=0 is invalid"),
        ("thm-9", [], "expected one of lemma-4.3"),
    ],
)
def test_property_bad_input_exits_2_in_one_line(capsys, user_module, target, extra, message):
    code, out, err = _run(capsys, "theory", "property", target.format(m=user_module),
                          "--max-examples", "5", *extra)  # fmt: skip
    assert code == 2
    assert message in err
    assert len(err.strip().splitlines()) == 1
    assert "Traceback" not in err + out


def test_check_and_audit_accept_a_user_claim(capsys, user_module, tmp_path):
    code, out, _ = _run(capsys, "theory", "audit", "--claim", f"{user_module}:lp_local",
                        "--budget", "4", "--json", "audit.json")  # fmt: skip
    assert code == 0
    data = json.loads((tmp_path / "audit.json").read_text())
    kinds = {(r["kind"], r["prior"]) for r in data["rows"]}
    assert kinds == {("user-claim", "eta-log-uniform"), ("user-claim", "eta-uniform")}
    code, out, _ = _run(capsys, "theory", "audit", "--claim",
                        f"{user_module}:ft_never_raises_global", "--budget", "6")  # fmt: skip
    assert code == 1
    assert "user-claim-others" in out  # both global conventions
    assert "fails somewhere" in out


def test_audit_json_writes_exactly_what_is_asked(capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    code, out, _ = _run(capsys, "theory", "audit", "--claim", "lemma-4.3", "--budget", "2",
                        "--json")  # fmt: skip
    assert code == 0
    assert json.loads(out)["budget"] == 2
    assert list(tmp_path.iterdir()) == []
    code, out, _ = _run(capsys, "theory", "audit", "--claim", "lemma-4.3", "--budget", "2",
                        "--json", "sub.json", "--no-progress")  # fmt: skip
    assert code == 0
    assert [p.name for p in tmp_path.iterdir()] == ["sub.json"]
    assert "wrote sub.json" in out


def test_progress_bar_goes_to_stderr_only_when_asked(capsys):
    from theory.examples import lp_never_raises_local
    from theory.search import property_search

    property_search(lp_never_raises_local, max_examples=5, seed=0, progress=True)
    captured = capsys.readouterr()
    assert captured.out == ""
    assert "lp-never-raises-local: searching" in captured.err
    property_search(lp_never_raises_local, max_examples=5, seed=0, progress=False)
    assert capsys.readouterr().err == ""


def test_help_states_the_exit_code_rule(capsys):
    for action in ("check", "audit", "property", "explain", "list"):
        with pytest.raises(SystemExit):
            main(["theory", action, "--help"])
        out = " ".join(capsys.readouterr().out.split())
        assert "0 when every checked statement holds" in out
        assert "user's claim" in out
        assert "2 for bad input" in out


def test_building_the_parser_imports_no_heavy_module():
    import subprocess

    code = ("import sys; from feddistort.cli import build_parser; build_parser(); "
            "print(sorted(m for m in ('hypothesis', 'sympy', 'torch', 'pandas') "
            "if m in sys.modules))")  # fmt: skip
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            check=True)  # fmt: skip
    assert result.stdout.strip() == "[]"


def test_property_without_hypothesis_names_what_to_install(capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "hypothesis", None)  # makes `import hypothesis` fail
    code, out, err = _run(capsys, "theory", "property", "theory.examples:lp_never_raises_local")
    assert code == 2
    assert "needs the hypothesis package" in err
    assert "pip install hypothesis" in err


def test_closed_form_holding_with_a_failing_conclusion_exits_1(capsys):
    # Defaults: tau = 0.8 < 1, so Thm 4.4's closed form holds and the paper's conclusion fails.
    code, out, _ = _run(capsys, "theory", "check", "thm-4.4")
    assert code == 1
    assert "closed form: holds" in out
    assert "FAILS: paper's conclusion" in out
    with pytest.raises(SystemExit):
        main(["theory", "check", "--help"])
    assert "conclusion that fails exits 1" in " ".join(capsys.readouterr().out.split())


def test_audit_progress_bar_reaches_100_percent_on_stderr(capsys):
    import numpy as np

    from theory.audit import audit

    rows = audit(["lemma-4.3", "kumar-span"], 2, np.random.default_rng(0), progress=True)
    captured = capsys.readouterr()
    assert captured.out == ""
    assert "audit:" in captured.err
    assert "100%" in captured.err
    assert {r.claim for r in rows} == {"lemma-4.3", "kumar-span"}
    audit(["lemma-4.3"], 2, np.random.default_rng(0), progress=False)
    assert capsys.readouterr().err == ""


@pytest.mark.slow
def test_same_seed_same_result_across_processes(tmp_path):
    import subprocess

    argv = [sys.executable, "-m", "feddistort.cli", "theory", "property",
            "theory.examples:ft_never_raises_global", "--seed", "5", "--json"]  # fmt: skip
    outs = []
    for hash_seed in ("1", "2"):
        env = {**__import__("os").environ, "PYTHONHASHSEED": hash_seed}
        done = subprocess.run(argv, capture_output=True, text=True, cwd=tmp_path, env=env)
        assert done.returncode == 1, done.stderr
        outs.append(json.loads(done.stdout))
    assert outs[0] == outs[1]


def test_user_audit_reports_the_region_where_it_fails():
    import dataclasses

    import numpy as np

    from theory.audit import audit_claim
    from theory.examples import ft_never_raises_global

    # Restricted to isotropic inputs the claim fails exactly where tau = 2 c_L eta s > 2/C, so
    # no failure has eta <= 1/(C c_L s) with C <= 5, c_L <= 1, s <= 5: eta > 0.04.
    iso = dataclasses.replace(
        ft_never_raises_global, space={**ft_never_raises_global.space, "covariate": "isotropic"}
    )
    rows = audit_claim(iso, 60, np.random.default_rng(0))
    row = next(r for r in rows if r.kind == "user-claim")
    assert row.violations > 0
    fails, holds = row.details["ranges_where_it_fails"], row.details["ranges_where_it_holds"]
    assert fails["eta"][0] > 0.04
    assert holds["eta"][0] < 0.04
    assert set(fails) >= {"d", "m", "C", "lam", "eta", "vcom_norm"}
    assert "eps" not in fails  # isotropic: eps is not used
    for lo, hi in fails.values():
        assert lo <= hi
    # Over every geometry it also fails at small step sizes (random / basis input means).
    rows = audit_claim(ft_never_raises_global, 200, np.random.default_rng(0))
    row = next(r for r in rows if r.kind == "user-claim")
    assert row.details["ranges_where_it_fails"]["eta"][0] < 0.02


def test_property_writes_nothing_to_the_working_directory(tmp_path):
    # hypothesis caches constants under ./.hypothesis unless told otherwise; a fresh process,
    # since that cache is filled once per process.
    import os
    import subprocess
    from pathlib import Path

    root = Path(__file__).resolve().parents[2]
    env = {**os.environ, "PYTHONPATH": str(root)}
    env.pop("HYPOTHESIS_STORAGE_DIRECTORY", None)
    proc = subprocess.run(
        [sys.executable, "-m", "feddistort.cli", "theory", "property", "thm-4.4",
         "--max-examples", "5", "--no-progress"],
        cwd=tmp_path, env=env, capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert proc.returncode in (0, 1), proc.stderr
    assert "reproduce:" in proc.stdout or "holds on" in proc.stdout
    assert list(tmp_path.iterdir()) == []


def test_audit_markdown_reports_the_audited_claims_only(capsys, user_module, tmp_path):
    target = f"{user_module}:ft_never_raises_global"
    code, _, _ = _run(capsys, "theory", "audit", "--claim", target, "--budget", "6",
                      "--json", "audit.json", "--markdown", "audit.md")  # fmt: skip
    assert code == 1
    text = (tmp_path / "audit.md").read_text()
    rows = json.loads((tmp_path / "audit.json").read_text())["rows"]
    assert "## `ft-never-raises-global` — user claim" in text
    assert text.count("\n## ") == 1  # no empty built-in sections
    assert f"--claim {target} --budget 6 --seed 0 --markdown audit.md" in text
    assert "Each claim given by `--claim` was checked" in text
    for kind in ("user-claim", "user-claim-others"):
        found = [r for r in rows if r["kind"] == kind]
        bad = sum(r["violations"] for r in found)
        assert bad > 0  # the claim is false: the verdict must say so, with the counts
        counts = " and ".join(f"{r['violations']}/{r['tried']} ({r['prior']})" for r in found)
        assert counts in text
    assert "**Verdict.** The claim fails on" in text
    assert "With global = the other clients only, the claim fails on" in text
    code, _, _ = _run(capsys, "theory", "audit", "--claim", "lemma-4.3", "--budget", "2",
                      "--markdown", "lemma.md")  # fmt: skip
    assert code == 0
    text = (tmp_path / "lemma.md").read_text()
    assert [line for line in text.splitlines() if line.startswith("## `")] == [
        line for line in text.splitlines() if line.startswith("## `lemma-4.3`")
    ]
    assert "--claim lemma-4.3" in text
