"""``feddistort simulate``: run the two-layer linear simulator over a grid (filled in below)."""

from __future__ import annotations

import argparse


def register(subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    """Add the ``simulate`` subcommand."""
    subparsers.add_parser("simulate", help="run the two-layer linear simulator")
