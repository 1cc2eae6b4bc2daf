"""The documentation stands alone: links resolve, and the science reference covers every claim."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).parents[1]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
LINK = re.compile(r"\]\(([^)#\s]+)(?:#[^)]*)?\)")


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.name)
def test_relative_links_resolve(page):
    missing = [
        target
        for target in LINK.findall(page.read_text(encoding="utf-8"))
        if "://" not in target and not (page.parent / target).exists()
    ]
    assert missing == []


def test_theory_reference_names_every_claim():
    from theory import claim_ids

    text = (ROOT / "docs" / "theory.md").read_text(encoding="utf-8")
    assert [cid for cid in claim_ids() if f"`{cid}`" not in text] == []


def _audit_rows() -> dict[tuple[str, str, str], dict]:
    import json

    audit = json.loads((ROOT / "docs" / "theory-audit.json").read_text(encoding="utf-8"))
    return {(r["claim"], r["kind"], r["prior"]): r for r in audit["rows"]}


def test_theory_reference_numbers_come_from_the_audit():
    """Every count docs/theory.md quotes is the one in the committed audit JSON."""
    text = " ".join((ROOT / "docs" / "theory.md").read_text(encoding="utf-8").split())
    rows = _audit_rows()
    log, uni = "eta-log-uniform", "eta-uniform"

    def vt(claim: str, kind: str, prior: str) -> tuple[int, int]:
        row = rows[claim, kind, prior]
        return row["violations"], row["tried"]

    def bound(claim: str) -> str:
        closest = max(
            rows[claim, "bound", p]["details"]["max_bound_over_measured"] for p in (log, uni)
        )
        return f"{closest:.2f}"

    v, t = vt("thm-4.4", "conclusion", log)
    expected = [f"on {v} of {t} configurations with eta log-uniform"]
    v, t = vt("thm-4.4", "conclusion", uni)
    expected.append(f"on {v} of {t} with eta uniform")
    matched = rows["thm-4.4", "conclusion", log]["details"]["matched_local_loss"]
    expected.append(f"equal on all {matched['verdicts_per_client']['equal']} matched clients")
    regimes = rows["thm-4.5", "conclusion", log]["details"]["regimes_per_client"]
    expected.append(
        f"none {regimes['none']}, infinite {regimes['infinite']}, finite {regimes['finite']}"
    )
    v, t = vt("thm-4.5", "conclusion", log)
    v2, _ = vt("thm-4.5", "conclusion", uni)
    expected.append(f"failed on {v} of {t} configurations ({v2} of {t} with eta uniform)")
    v, t = vt("thm-4.5", "conclusion-others", log)
    v2, _ = vt("thm-4.5", "conclusion-others", uni)
    expected.append(f"it failed on {v} ({v2}) of {t}")
    lost = rows["thm-4.5", "conclusion", log]["details"][
        "lambda_star_under_D_G_but_none_under_others"
    ]
    a, b = lost.split("/")
    expected.append(f"{a} of the {b} client configurations with a lambda* over D_G")
    v, t = vt("kumar-prop-3.2", "federated-reading", log)
    v2, t2 = vt("kumar-prop-3.2", "federated-reading", uni)
    expected.append(f"fails on {v} of {t} configurations with eta log-uniform ({v2} of {t2}")
    expected.append(f"closest came to {bound('kumar-thm-3.1')} of the measured")
    expected.append(f"closest came to {bound('kumar-thm-3.1-tight')} of the measured")
    assert [e for e in expected if e not in text] == []


def test_nothing_points_outside_the_repository():
    """Users have no ../shared: every pointer to the science goes to docs/theory.md."""
    suffixes = {".py", ".md", ".toml", ".txt", ".cfg"}
    skip = {".venv", ".git", "build", "dist", ".hypothesis", "figures/out", "runs"}
    offenders = []
    for path in ROOT.rglob("*"):
        rel = path.relative_to(ROOT).as_posix()
        if path.suffix not in suffixes or any(rel == s or rel.startswith(s + "/") for s in skip):
            continue
        if rel == "tests/test_docs.py":
            continue
        text = path.read_text(encoding="utf-8", errors="replace")
        if "THEORY.md" in text or "../shared" in text:
            offenders.append(rel)
    assert offenders == []


def test_readme_row_count_of_a_default_configuration():
    """The README's size warning quotes the rows of one default configuration."""
    from synthetic import SimConfig, simulate
    from synthetic.names import DEFAULT_METRICS, METHODS

    rows = len(simulate([SimConfig()], list(METHODS)))
    config = SimConfig()
    text = " ".join((ROOT / "README.md").read_text(encoding="utf-8").split())
    expected = (
        f"{rows} rows for a default configuration: {config.C} clients x {len(METHODS)} methods "
        f"x {len(DEFAULT_METRICS)} metrics"
    )
    assert expected in text
