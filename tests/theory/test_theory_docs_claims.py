"""docs/claims.md: its Python examples run as written, and it names every example claim."""

from __future__ import annotations

import re
from pathlib import Path

DOC = Path(__file__).resolve().parents[2] / "docs" / "claims.md"
BLOCKS = re.findall(r"```python\n(.*?)```", DOC.read_text(encoding="utf-8"), flags=re.S)


def test_python_blocks_run_and_the_pytest_example_passes():
    assert len(BLOCKS) == 3
    for index, block in enumerate(BLOCKS):
        namespace: dict[str, object] = {"__name__": f"claims_doc_block_{index}"}
        exec(compile(block, f"docs/claims.md python block {index}", "exec"), namespace)
        for name, value in namespace.items():
            if name.startswith("test_") and callable(value):
                value()  # the five-line hypothesis test, run by hypothesis


def test_pytest_example_is_five_lines():
    lines = [line for line in BLOCKS[2].splitlines() if line.strip()]
    assert len(lines) == 5


def test_doc_names_every_example_claim():
    import theory.examples

    text = DOC.read_text(encoding="utf-8")
    for name in theory.examples.__all__:
        assert f"`{name}`" in text
