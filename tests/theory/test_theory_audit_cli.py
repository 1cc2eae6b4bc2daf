"""The audit (known counterexample regions) and the ``feddistort theory`` command line."""

from __future__ import annotations

import json

import numpy as np
import pytest

from feddistort.cli import main
from theory.audit import audit_claim, format_table, report_json, write_atomic
from theory.closed_forms import thm44_losses

BUDGET = 40  # fixed budget; the thm-4.4 violation region (tau < 1) has probability ~ 1/2


def test_audit_finds_thm44_counterexample_region():
    rows = {row.kind: row for row in audit_claim("thm-4.4", BUDGET, np.random.default_rng(0))}
    assert rows["closed-form"].violations == 0
    concl = rows["conclusion"]
    assert concl.tried == BUDGET
    assert concl.violations > 0
    # Every violation is explained by the derived condition 2 c_L eta s < 1.
    hits, total = concl.details["explained_by_2_cL_eta_s_lt_1"].split("/")
    assert hits == total == str(concl.violations)
    simplest = concl.simplest
    assert simplest is not None
    assert simplest["tau"] < 1.0
    assert simplest["global_loss_ft"] < simplest["global_loss_lpft"]


def test_audit_distinguishes_thm45_regimes():
    rows = {row.kind: row for row in audit_claim("thm-4.5", BUDGET, np.random.default_rng(1))}
    regimes = rows["conclusion"].details["regimes_per_client"]
    assert regimes.get("finite", 0) > 0
    assert regimes.get("infinite", 0) > 0
    assert regimes.get("none", 0) > 0
    assert rows["closed-form"].violations == 0
    assert rows["conclusion"].violations > 0


def test_audit_federated_reading_of_kumar_fails_somewhere():
    rows = {r.kind: r for r in audit_claim("kumar-prop-3.2", 20, np.random.default_rng(2))}
    assert rows["closed-form"].violations == 0
    assert rows["federated-reading"].violations > 0


def test_audit_table_json_and_atomic_write(tmp_path):
    rows = audit_claim("lemma-4.3", 3, np.random.default_rng(0))
    table = format_table(rows)
    assert table.splitlines()[0].split()[:5] == ["claim", "kind", "prior", "tried", "violations"]
    target = tmp_path / "sub" / "audit.json"
    write_atomic(target, report_json(rows, 3, 0))
    data = json.loads(target.read_text())
    assert data["rows"][0]["claim"] == "lemma-4.3"
    assert [p.name for p in target.parent.iterdir()] == ["audit.json"]


def _run(capsys, *argv):
    code = main(list(argv))
    out = capsys.readouterr()
    return code, out.out, out.err


def test_cli_list(capsys):
    code, out, _ = _run(capsys, "theory", "list")
    assert code == 0
    for cid in ("lemma-4.3", "thm-4.4", "thm-4.5", "kumar-span", "kumar-balance",
                "kumar-prop-3.2", "kumar-thm-3.1"):  # fmt: skip
        assert cid in out


def test_cli_explain_thm44_json(capsys):
    code, out, _ = _run(capsys, "theory", "explain", "thm-4.4", "--set", "eta=0.3", "--json")
    assert code == 0
    data = json.loads(out)
    expected = thm44_losses({"lam": 1.0, "eta": 0.3, "s": 2.0, "C": 4})
    for key in ("s", "eta", "lam", "C", "global_loss_ft", "global_loss_lpft",
                "global_loss_others_ft", "global_loss_others_lpft", "local_loss_ft",
                "local_loss_lpft", "lpft_wins"):  # fmt: skip
        assert data[key] == pytest.approx(expected[key])
    assert data["lpft_wins"] is True  # 2 * 0.3 * 2 = 1.2 >= 1


def test_cli_explain_thm45_json(capsys):
    code, out, _ = _run(
        capsys, "theory", "explain", "thm-4.5", "--set", "covariate=mix", "--set", "mix=0.75",
        "--set", "client=3", "--json",
    )  # fmt: skip
    assert code == 0
    data = json.loads(out)
    assert {"a2", "a3", "a4", "b2", "lambda_star", "lambda_star_exists"} <= set(data)
    assert data["lambda_star_exists"] is True
    assert data["lambda_star"] > 0
    code, out, _ = _run(capsys, "theory", "explain", "thm-4.5", "--json")  # 'own': a2 < b2
    data = json.loads(out)
    assert data["lambda_star"] is None
    assert data["lambda_star_exists"] is False


def test_cli_check_exit_codes_and_json(capsys):
    code, out, _ = _run(capsys, "theory", "check", "thm-4.4", "--set", "eta=0.3", "--json")
    assert code == 0
    data = json.loads(out)
    assert {
        "claim",
        "holds",
        "predicted",
        "measured",
        "max_abs_error",
        "tolerance",
        "config",
    } <= set(data)
    assert data["holds"] is True
    code, out, _ = _run(capsys, "theory", "check", "kumar-span", "--set", "n=5")
    assert code == 0
    assert "holds" in out


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["theory", "check", "thm-9"], "expected one of lemma-4.3, thm-4.4, thm-4.5"),
        (["theory", "explain", "thm-4.4", "--set", "covariate=mix"],
         "thm-4.4 assumes isotropic inputs; covariate model is 'mix'"),
        (["theory", "check", "thm-4.4", "--set", "eta=fast"], "eta='fast' is invalid"),
        (["theory", "check", "thm-4.4", "--set", "eta"], "expected KEY=VALUE"),
        (["theory", "check", "thm-4.4", "--set", "nope=1"], "unknown configuration key 'nope'"),
        (["theory", "audit", "--claim", "thm-9"], "expected one of"),
        (["theory", "audit", "--budget", "0"], "--budget=0 is invalid"),
        (["theory", "audit", "--seed", "-1"], "--seed=-1 is invalid"),
        (["theory", "check", "thm-4.4", "--rng-seed", "-1"], "--rng-seed=-1 is invalid"),
        (["theory", "property", "thm-4.4", "--seed", "-1"], "--seed=-1 is invalid"),
    ],
)  # fmt: skip
def test_cli_bad_input_exits_2_without_traceback(capsys, argv, message):
    code, out, err = _run(capsys, *argv)
    assert code == 2
    assert message in err
    assert len(err.strip().splitlines()) == 1
    assert "Traceback" not in err + out


@pytest.mark.slow
def test_cli_audit_writes_json_and_markdown(capsys, tmp_path):
    out_json = tmp_path / "audit.json"
    out_md = tmp_path / "audit.md"
    code, out, _ = _run(
        capsys, "theory", "audit", "--claim", "thm-4.4", "--budget", "10",
        "--output", str(out_json), "--markdown", str(out_md),
    )  # fmt: skip
    assert code == 1  # the paper's conclusion fails where 2 c_L eta s < 1
    assert "thm-4.4" in out
    assert json.loads(out_json.read_text())["budget"] == 10
    text = out_md.read_text()
    assert "2 c_L eta s >= 1" in text
    assert "feddistort theory audit" in text


def test_imports_stay_light():
    import subprocess
    import sys

    code = "import sys, theory, synthetic; print('sympy' in sys.modules)"
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == "False"


def test_thm44_losses_mapping_input():
    out = thm44_losses({"lam": 2.0, "eta": 0.5, "vcom_norm": 1.0, "C": 3, "loss": "half_mse"})
    assert out["tau"] == pytest.approx(1.0)  # 2 * 0.5 * 0.5 * 2
    assert out["global_loss_ft"] == pytest.approx(out["global_loss_lpft"])
    with pytest.raises(ValueError, match="expected lam, eta, C"):
        thm44_losses({"lam": 1.0})


def test_report_verdict_counts_every_prior():
    from theory.audit import AuditRow
    from theory.report import _verdict

    rows = [
        AuditRow("thm-4.4", "closed-form", 10, 0, None, prior="eta-log-uniform"),
        AuditRow("thm-4.4", "conclusion", 10, 5, None, prior="eta-log-uniform"),
        AuditRow("thm-4.4", "closed-form", 10, 1, None, prior="eta-uniform"),
        AuditRow("thm-4.4", "conclusion", 10, 3, None, prior="eta-uniform"),
        AuditRow("kumar-thm-3.1", "bound", 7, 0, None, prior="eta-log-uniform"),
        AuditRow("kumar-thm-3.1", "bound", 6, 0, None, prior="eta-uniform"),
    ]
    text = _verdict("thm-4.4", rows)
    # A closed-form failure under the second prior is not hidden by the first.
    assert "Closed form fails on 0/10 (eta-log-uniform) and 1/10 (eta-uniform)" in text
    assert "fails on 5/10 (eta-log-uniform) and 3/10 (eta-uniform)" in text
    assert "Bound holds on every configuration (13 under 2 priors)" in _verdict(
        "kumar-thm-3.1", rows
    )


@pytest.mark.slow
def test_committed_audit_report_is_generated_from_its_json():
    # docs/theory-audit.md says only what docs/theory-audit.json's rows show.
    from pathlib import Path

    from theory.audit import AuditRow
    from theory.report import audit_markdown

    docs = Path(__file__).resolve().parents[2] / "docs"
    data = json.loads((docs / "theory-audit.json").read_text())
    rows = [AuditRow(**{k: v for k, v in r.items() if k != "fraction"}) for r in data["rows"]]
    assert (
        report_json(rows, data["budget"], data["seed"]) == (docs / "theory-audit.json").read_text()
    )
    expected = audit_markdown(rows, data["budget"], data["seed"])
    assert (docs / "theory-audit.md").read_text() == expected
    assert len(data["priors"]) >= 2
    assert "2 c_L eta s >= 1" in data["exact_conditions"]["thm-4.4"]
