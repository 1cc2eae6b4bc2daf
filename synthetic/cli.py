"""``feddistort simulate``: run the two-layer linear simulator over a grid of configurations."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from synthetic.config import ConfigError, field_names, parse_assignment, parse_grid
from synthetic.names import DEFAULT_METRICS, GLOBAL_METHOD, METHODS, METRICS

_EPILOG = """\
examples:
  feddistort simulate --set lam=1 --set eta=0.2 --methods ft,lpft
  feddistort simulate --grid lam=0:2:21 --seeds 5 --methods ft,lp,lpft --out results.csv
  feddistort simulate --set covariate=own --grid eta=0.05:0.5:10 --grid covariate=own,shared

configuration keys (--set / --grid): {keys}
"""


def add_config_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the repeatable ``--set KEY=VALUE`` and ``--grid KEY=...`` options.

    Their destinations are ``sets`` and ``grid``; parse the values with
    :func:`synthetic.config.parse_assignment` and :func:`synthetic.config.parse_grid`.
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
        "--seeds", default="1", metavar="N", help="seeds per grid point (default 1)"
    )
    parser.add_argument(
        "--methods",
        default=",".join(METHODS),
        metavar="LIST",
        help=f"comma-separated methods among {', '.join((*METHODS, GLOBAL_METHOD))} "
        "('global' = the starting model; default: all PFT methods)",
    )
    parser.add_argument(
        "--metrics",
        default=",".join(DEFAULT_METRICS),
        metavar="LIST",
        help=f"comma-separated metrics among {', '.join(METRICS)} (default: "
        f"{', '.join(DEFAULT_METRICS)}; delta_l2 is exact, delta_l2_mc/delta_l2_se its "
        "Monte-Carlo cross-check with n_mc draws)",
    )
    parser.add_argument(
        "--out",
        default=None,
        metavar="CSV",
        help="tidy CSV to write; its configuration goes beside it under the same name with "
        ".json (r.csv -> r.json), so a name ending in .json is refused (the two files would "
        "collide); without --out, a summary (mean over seeds and clients) is printed",
    )
    parser.add_argument(
        "--chunk-size", default="128", metavar="N", help="configurations per batch (default 128)"
    )
    parser.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    parser.set_defaults(func=run)


def _names(option: str, text: str, allowed: tuple[str, ...]) -> list[str]:
    """Comma-separated names, each in ``allowed``; errors name the option."""
    names = [m.strip() for m in text.split(",") if m.strip()]
    if not names:
        raise ConfigError(f"{option} {text!r} is invalid: expected at least one of "
                          f"{', '.join(allowed)}")  # fmt: skip
    for name in names:
        if name not in allowed:
            singular = option.lstrip("-").rstrip("s")
            raise ConfigError(
                f"{option} {text!r} is invalid: {singular}={name!r} is invalid: expected one of "
                f"{', '.join(allowed)}"
            )
    return names


def _count(option: str, text: str | int) -> int:
    """A positive integer option; the error names the option, the value and what is expected."""
    try:
        value = int(str(text).strip())
    except ValueError:
        value = 0
    if value < 1:
        raise ConfigError(f"{option} {str(text)!r} is invalid: expected an integer >= 1")
    return value


def _results_path(out: str) -> tuple[Path, Path]:
    """The results CSV and its configuration file; refuse names where the two would collide."""
    path = Path(out)
    meta = path.with_suffix(".json")
    if meta == path or path.suffix.lower() == ".json":
        stem = path.with_suffix("")
        suggestion = stem.name if stem.suffix else stem.with_suffix(".csv").name
        raise ConfigError(
            f"--out {out!r} is invalid: the configuration is written beside the results as "
            f"{meta.name}, so the two would collide; expected a results name not ending in "
            f".json, such as {suggestion}"
        )
    if path.is_dir():
        raise ConfigError(f"--out {out!r} is invalid: it is a folder; expected a file name")
    return path, meta


def run(args: argparse.Namespace) -> int:
    """Handle ``feddistort simulate``."""
    from feddistort_io import __version__, atomic_write_csv, atomic_write_json
    from synthetic.budget import check_budget
    from synthetic.config import config_from_mapping

    assignments = dict(parse_assignment(text, "--set") for text in args.sets)
    base = config_from_mapping(assignments)
    grid = dict(parse_grid(text) for text in args.grid)
    seeds = _count("--seeds", args.seeds)
    chunk_size = _count("--chunk-size", args.chunk_size)
    methods = _names("--methods", args.methods, (*METHODS, GLOBAL_METHOD))
    metrics = _names("--metrics", args.metrics, METRICS)
    _check_others(base.C, grid, metrics)
    paths = None if args.out is None else _results_path(args.out)
    check_budget(
        base.to_dict(), grid, seeds, n_methods=len(methods), n_metrics=len(metrics),
        chunk_size=chunk_size,
    )  # fmt: skip
    from synthetic.simulation import expand_grid, simulate

    configs = expand_grid(base, grid, seeds)
    frame = simulate(
        configs, methods, metrics=metrics, chunk_size=chunk_size, progress=not args.no_progress
    )
    _warn_diverged(frame)
    if paths is None:
        summary = frame.pivot_table(
            index="method", columns="metric", values="value", sort=False, dropna=False
        )
        print(summary.to_string(float_format=lambda v: f"{v:.6g}"))
        return 0
    out, meta_path = paths
    meta = {
        "command": "feddistort simulate",
        "version": __version__,
        "base": base.to_dict(),
        "grid": grid,
        "seeds": seeds,
        "methods": methods,
        "metrics": metrics,
        "rows": len(frame),
    }
    atomic_write_csv(out, frame)
    atomic_write_json(meta_path, meta)
    print(f"wrote {len(frame)} rows to {out} and the configuration to {meta_path}")
    return 0


def _check_others(C: int, grid: dict[str, list[object]], metrics: list[str]) -> None:
    """Refuse C = 1 with ``global_loss_others``: there are no other clients to average over."""
    if "global_loss_others" not in metrics:
        return
    if 1 in grid.get("C", [C]):
        where = "--grid value C=1" if "C" in grid else "--set C=1"
        raise ConfigError(
            f"{where} is invalid with the metric global_loss_others: it averages over the "
            "clients other than the fine-tuning one, and with C=1 there are none; expected "
            "C >= 2, or --metrics without global_loss_others"
        )


def _warn_diverged(frame: Any) -> None:
    """Warn, from the computed table, about diverged runs."""
    first = frame["metric"] == frame["metric"].iloc[0]
    n_div = int(frame.loc[first, "diverged"].sum())
    if n_div:
        print(
            f"warning: {n_div} run(s) diverged (flagged in the 'diverged' column, values NaN)",
            file=sys.stderr,
        )
