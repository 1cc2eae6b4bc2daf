"""docs/flexp.md quotes no split-depth run results that no test checks."""

from __future__ import annotations

import re
from pathlib import Path

DOC = Path(__file__).resolve().parents[2] / "docs" / "flexp.md"


def _section() -> str:
    text = DOC.read_text()
    start = text.index("## The split-depth study")
    end = text.find("\n## ", start + 1)
    return text[start : end if end >= 0 else None]


def test_split_depth_section_quotes_no_measured_numbers() -> None:
    section = _section()
    assert not re.search(r"\d+\.\d+\s*(%|points)", section), "quoted run result"
    assert not re.search(r"\d+\.\d+ / \d+\.\d+", section), "quoted table of run results"


def test_split_depth_section_names_the_registered_command() -> None:
    assert "--only split-depth" in _section()
    assert "not yet listed" not in _section()
