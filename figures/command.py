"""The ``feddistort figures`` subcommand (argparse only; heavy imports in the handler)."""

from __future__ import annotations

import argparse
import sys
from typing import Any


def register(subparsers: Any) -> None:
    """Add ``figures`` to the ``feddistort`` subcommands.

    Parameters
    ----------
    subparsers : argparse._SubParsersAction
        From :meth:`argparse.ArgumentParser.add_subparsers`.
    """
    parser = subparsers.add_parser(
        "figures",
        help="regenerate every figure with its data (CSV) and manifest",
        description=(
            "Regenerate the theorem-validation figures and the theory-versus-real-network "
            "panels. Writes NAME.{png,...}, NAME.csv (the plotted data) and manifest.json "
            "(caption, configuration, seeds, package version, CSV sha256) to --out."
        ),
    )
    parser.add_argument(
        "--only",
        nargs="+",
        metavar="NAME",
        help="figures to build (default: all but split-depth, a study built only when named)",
    )
    parser.add_argument(
        "--quick", action="store_true", help="small settings (about 1 minute of CPU; measured 62 s)"
    )
    parser.add_argument("--out", default="figures/out", help="output folder (default figures/out)")
    parser.add_argument("--format", default="png", help="comma list of png, pdf, svg (default png)")
    parser.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Handle ``feddistort figures``; exit 1 when any figure failed.

    Parameters
    ----------
    args : argparse.Namespace

    Returns
    -------
    int
        0 when every figure was written, 1 otherwise.
    """
    import matplotlib

    matplotlib.use("Agg")  # the command draws to files: a non-interactive backend, chosen here
    from figures.build import build_figures, parse_formats

    formats = parse_formats(args.format)
    report = build_figures(
        args.only, args.out, quick=args.quick, formats=formats, progress=not args.no_progress
    )
    for name, files in report.written.items():
        print(f"{name}: " + ", ".join(str(p) for p in files))
    if report.failed:
        for name, message in report.failed.items():
            print(f"feddistort figures: figure {name} failed: {message}", file=sys.stderr)
        return 1
    return 0
