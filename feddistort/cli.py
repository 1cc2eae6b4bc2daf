"""The ``feddistort`` command: one entry point, one subcommand per capability.

Each capability contributes its subcommands through a ``register(subparsers)`` function in a
light module (argparse only; heavy imports happen inside the handler), listed explicitly in
:data:`COMMAND_MODULES`. The dispatcher is the application layer: it may import every package,
and none of them imports it.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

# Modules that contribute subcommands, in the order they appear in ``feddistort --help``.
COMMAND_MODULES: tuple[str, ...] = (
    "synthetic.cli",
    "theory.cli",
    "feddistort.distortion_cli",
    "empirical.experiment.cli",
    "feddistort.sweep.cli",
    "figures.command",
)


def build_parser() -> argparse.ArgumentParser:
    """Build the top-level parser with every registered subcommand.

    Returns
    -------
    argparse.ArgumentParser
        Parser whose parsed namespace carries ``func`` (the handler of the chosen subcommand).
    """
    parser = argparse.ArgumentParser(
        prog="feddistort",
        description=(
            "Check the theory of federated feature distortion under personalized fine-tuning: "
            "a two-layer linear simulator, executable theorems, and distortion metrics for real "
            "networks."
        ),
    )
    parser.add_argument(
        "--debug", action="store_true", help="show the full traceback of an error (for bug reports)"
    )
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMAND_MODULES:
        importlib.import_module(name).register(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``feddistort`` command line.

    Parameters
    ----------
    argv : sequence of str, optional
        Arguments without the program name; ``sys.argv[1:]`` when omitted.

    Returns
    -------
    int
        Exit code: 0 success, 1 a checked claim does not hold, 2 bad input (the message names
        the parameter, the value and what is allowed; no traceback unless ``--debug``).
    """
    parser = build_parser()
    args = parser.parse_args(argv)
    if getattr(args, "func", None) is None:
        parser.print_help()
        return 2
    try:
        return int(args.func(args))
    except (ValueError, OSError, KeyError) as err:
        if args.debug:
            raise
        message = err.args[0] if isinstance(err, KeyError) and err.args else err
        print(f"feddistort {args.command}: error: {message}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("feddistort: interrupted; finished results are kept on disk", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
