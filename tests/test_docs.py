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
