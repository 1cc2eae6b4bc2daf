"""``feddistort simulate``: run the two-layer linear simulator over a grid of configurations."""

from __future__ import annotations

import argparse
import sys

from synthetic.config import ConfigError, field_names, parse_value

_EPILOG = """\
examples:
  feddistort simulate --set lam=1 --set eta=0.2 --methods ft,lpft
  feddistort simulate --grid lam=0:2:21 --seeds 5 --methods ft,lp,lpft --out results.csv
  feddistort simulate --set covariate=own --grid eta=0.05:0.5:10 --grid covariate=own,shared

configuration keys (--set / --grid): {keys}
"""


def parse_assignment(text: str, option: str) -> tuple[str, str]:
    """Split ``KEY=VALUE``; raise a ConfigError naming the option otherwise."""
    key, sep, value = text.partition("=")
    if not sep or not key.strip():
        raise ConfigError(f"{option} {text!r} is invalid: expected KEY=VALUE")
    return key.strip(), value.strip()


def parse_grid(text: str) -> tuple[str, list[object]]:
    """Parse ``KEY=START:STOP:NUM`` (NUM evenly spaced values, inclusive) or ``KEY=a,b,c``."""
    import numpy as np

    key, value = parse_assignment(text, "--grid")
    if key not in field_names():
        raise ConfigError(
            f"--grid key {key!r} is invalid: expected one of {', '.join(field_names())}"
        )
    if ":" in value:
        parts = value.split(":")
        try:
            if len(parts) != 3:
                raise ValueError
            start, stop, num = float(parts[0]), float(parts[1]), int(parts[2])
        except ValueError:
            raise ConfigError(
                f"--grid {text!r} is invalid: expected KEY=START:STOP:NUM with numbers and an "
                "integer NUM, or KEY=v1,v2,..."
            ) from None
        if num < 1:
            raise ConfigError(f"--grid {text!r} is invalid: expected NUM >= 1")
        points = [float(v) for v in np.linspace(start, stop, num)]
        return key, [parse_value(key, repr(p)) for p in points]
    items = [v for v in value.split(",") if v.strip()]
    if not items:
        raise ConfigError(f"--grid {text!r} is invalid: expected at least one value")
    return key, [parse_value(key, v) for v in items]


def add_config_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the repeatable ``--set KEY=VALUE`` and ``--grid KEY=...`` options.

    Their destinations are ``sets`` and ``grid``; parse the values with
    :func:`parse_assignment` and :func:`parse_grid`.
    """
    parser.add_argument(
        "--set",
        dest="sets",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="set a configuration field (repeatable); 'none' for optional fields",
    )
    parser.add_argument(
        "--grid",
        action="append",
        default=[],
        metavar="KEY=START:STOP:NUM",
        help="sweep a field over NUM evenly spaced values from START to STOP inclusive, or over "
        "a list KEY=a,b,c (repeatable; the grids are crossed)",
    )


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``simulate`` subcommand."""
    from synthetic.methods import METHODS
    from synthetic.metrics import DEFAULT_METRICS, METRICS

    parser = subparsers.add_parser(
        "simulate",
        help="run the two-layer linear simulator over a grid of configurations",
        description=(
            "Simulate FedAvg + personalized fine-tuning of two-layer linear models y = V^T B x "
            "on C clients and write a tidy CSV: one row per configuration, seed, client, "
            "method and metric, with the configuration as JSON beside it."
        ),
        epilog=_EPILOG.format(keys=", ".join(field_names())),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_config_arguments(parser)
    parser.add_argument(
        "--seeds", type=int, default=1, metavar="N", help="seeds per grid point (default 1)"
    )
    parser.add_argument(
        "--methods",
        default=",".join(METHODS),
        metavar="LIST",
        help=f"comma-separated methods among {', '.join((*METHODS, 'global'))} "
        "('global' = the starting model; default: all PFT methods)",
    )
    parser.add_argument(
        "--metrics",
        default=",".join(DEFAULT_METRICS),
        metavar="LIST",
        help=f"comma-separated metrics among {', '.join(METRICS)} (default: all but "
        "feature_angle_max)",
    )
    parser.add_argument(
        "--out",
        default=None,
        metavar="CSV",
        help="tidy CSV to write (its configuration goes to the same name with .json); without "
        "it, a summary (mean over seeds and clients) is printed",
    )
    parser.add_argument(
        "--chunk-size", type=int, default=512, metavar="N", help="configurations per batch"
    )
    parser.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Handle ``feddistort simulate``."""
    from pathlib import Path

    from feddistort_io import __version__, atomic_write_csv, atomic_write_json
    from synthetic.config import config_from_mapping
    from synthetic.simulation import expand_grid, simulate

    assignments = dict(parse_assignment(text, "--set") for text in args.sets)
    base = config_from_mapping(assignments)
    grid = dict(parse_grid(text) for text in args.grid)
    if args.seeds < 1:
        raise ConfigError(f"--seeds {args.seeds} is invalid: expected at least 1")
    if args.chunk_size < 1:
        raise ConfigError(f"--chunk-size {args.chunk_size} is invalid: expected at least 1")
    configs = expand_grid(base, grid, args.seeds)
    methods = [m.strip() for m in args.methods.split(",") if m.strip()]
    metrics = [m.strip() for m in args.metrics.split(",") if m.strip()]
    frame = simulate(
        configs, methods, metrics=metrics, chunk_size=args.chunk_size, progress=not args.no_progress
    )
    n_div = int(frame.loc[frame["metric"] == frame["metric"].iloc[0], "diverged"].sum())
    if n_div:
        print(
            f"warning: {n_div} run(s) diverged (flagged in the 'diverged' column)", file=sys.stderr
        )
    if args.out is None:
        summary = frame.pivot_table(
            index="method", columns="metric", values="value", sort=False, dropna=False
        )
        print(summary.to_string(float_format=lambda v: f"{v:.6g}"))
        return 0
    out = Path(args.out)
    meta = {
        "command": "feddistort simulate",
        "version": __version__,
        "base": base.to_dict(),
        "grid": grid,
        "seeds": args.seeds,
        "methods": methods,
        "metrics": metrics,
        "rows": len(frame),
    }
    atomic_write_csv(out, frame)
    atomic_write_json(out.with_suffix(".json"), meta)
    print(f"wrote {len(frame)} rows to {out} and the configuration to {out.with_suffix('.json')}")
    return 0
