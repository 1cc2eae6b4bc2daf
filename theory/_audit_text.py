"""Plain-text output of the audit: failure lines, the table, atomic writes.

Re-exported by :mod:`theory.audit`.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import TYPE_CHECKING

from feddistort_io import atomic_write_text

if TYPE_CHECKING:
    from theory.audit import AuditRow


def audit_failures(rows: Sequence[AuditRow]) -> list[str]:
    """One line per (claim, kind, prior) with violations, e.g. ``thm-4.4 conclusion ...``."""
    return [
        f"{r.claim} {r.kind} ({r.prior}): {r.violations}/{r.tried}" for r in rows if r.violations
    ]


def format_table(rows: Sequence[AuditRow]) -> str:
    """Plain-text table: claim, kind, prior, tried, violations, simplest counterexample."""
    header = ("claim", "kind", "prior", "tried", "violations", "simplest counterexample")
    lines = [header]
    for row in rows:
        simplest = (
            "-"
            if row.simplest is None
            else " ".join(f"{k}={v}" for k, v in row.simplest["set"].items())
        )
        lines.append((row.claim, row.kind, row.prior, str(row.tried), str(row.violations),
                      simplest))  # fmt: skip
    widths = [max(len(line[i]) for line in lines) for i in range(5)]
    return "\n".join(
        "  ".join(cell.ljust(w) for cell, w in zip(line[:5], widths, strict=False)) + "  " + line[5]
        for line in lines
    )


def write_atomic(path: str | os.PathLike[str], text: str) -> None:
    """Write ``text`` to ``path`` atomically (see :func:`feddistort_io.atomic_write_text`)."""
    atomic_write_text(path, text)


__all__ = ["audit_failures", "format_table", "write_atomic"]
