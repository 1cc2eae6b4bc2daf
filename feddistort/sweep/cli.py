"""``feddistort sweep``: resumable sweeps on joblib, Dask or Ray (argparse only here).

Kinds: ``simulate``, ``theory`` and ``experiment``, chosen from the explicit table
:data:`feddistort.sweep.registry.KINDS`.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

_EPILOG = """\
examples:
  feddistort sweep --grid lam=0:2:21 --grid eta=0.05:0.5:10 --seeds 5 --out runs/lam-eta
  feddistort sweep spec.json --backend dask --scheduler tcp://head:8786 --out runs/big
  feddistort sweep spec.json --backend ray --scheduler auto --out runs/big
  feddistort sweep --kind theory --claims thm-4.4,lemma-4.3 --grid eta=0.05:0.5:10 --out runs/th
  feddistort sweep --kind experiment --presets digits-iid --seeds 3 --quick --out runs/exp

Rerunning the same command resumes: finished shards are kept, missing or corrupted ones are
recomputed; rerun a finished sweep with --format csv to export DIR/results.csv. A folder that a
running sweep holds (DIR/.sweep.lock) is refused.
spec.json: {"base": {"d": 12}, "grid": {"lam": [0, 1, 2], "eta": "0.1:0.5:5"}, "seeds": 3,
"methods": ["ft", "lpft"], "metrics": ["local_loss"], "chunk": 64}

kinds (spec key "kind" or --kind):
  simulate    (default) simulator metrics per configuration, seed, client, method, metric
  theory      {"kind": "theory", "claims": [...], "base": ..., "grid": ..., "seeds": N}: one row
              per (configuration, claim) with holds, conclusion_holds, max_abs_error, tolerance;
              configurations outside a claim's hypotheses get a 'skipped' reason
  experiment  {"kind": "experiment", "presets": [...], "seeds": N, "quick": true,
              "variants": [...]}: one chunk per (preset, seed), run in DIR/work/<key>/; the
              shard is that run's tidy metrics table (seeds 0..N-1)
"""


def register(subparsers: Any) -> None:
    """Add ``sweep`` to the ``feddistort`` subcommands.

    Parameters
    ----------
    subparsers : argparse._SubParsersAction
        From :meth:`argparse.ArgumentParser.add_subparsers`.
    """
    parser = subparsers.add_parser(
        "sweep",
        help="resumable simulator/theory/experiment sweep in checksummed shards",
        description=(
            "Split a sweep (simulator, theory checks or experiment presets) into chunks, run "
            "them on a backend (joblib, Dask or Ray) and "
            "write each finished chunk atomically as a Parquet shard; DIR/results.parquet (or "
            "DIR/results.csv with --format csv) gathers them in configuration order (identical "
            "bytes whatever the backend and worker count)."
        ),
        epilog=_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "spec",
        nargs="?",
        default=None,
        metavar="SPEC.json",
        help="sweep specification (JSON); --set/--grid/... refine it",
    )
    from synthetic.cli import add_config_arguments

    add_config_arguments(parser)
    parser.add_argument(
        "--kind", default=None, metavar="KIND", help="simulate (default), theory or experiment"
    )
    parser.add_argument(
        "--claims", default=None, metavar="LIST", help="theory: comma-separated claim ids"
    )
    parser.add_argument(
        "--presets", default=None, metavar="LIST", help="experiment: comma-separated presets"
    )
    parser.add_argument(
        "--quick",
        action="store_const",
        const=True,
        default=None,
        help="experiment: the presets' quick versions",
    )
    parser.add_argument(
        "--variants", default=None, metavar="LIST", help="experiment: comma-separated variants"
    )
    parser.add_argument(
        "--seeds",
        type=int,
        default=None,
        metavar="N",
        help="seeds per point (experiment: seeds 0..N-1 per preset)",
    )
    parser.add_argument("--methods", default=None, metavar="LIST", help="comma-separated methods")
    parser.add_argument("--metrics", default=None, metavar="LIST", help="comma-separated metrics")
    parser.add_argument(
        "--chunk",
        type=int,
        default=None,
        metavar="N",
        help="configurations per chunk/shard (default 64)",
    )
    parser.add_argument(
        "--backend", default="loky", metavar="NAME", help="serial, loky (default), dask or ray"
    )
    parser.add_argument(
        "--scheduler",
        default=None,
        metavar="ADDRESS",
        help="existing Dask scheduler or Ray cluster (default: start locally)",
    )
    parser.add_argument(
        "--workers", type=int, default=1, metavar="N", help="local worker processes (default 1)"
    )
    parser.add_argument(
        "--retries",
        type=int,
        default=2,
        metavar="N",
        help="extra attempts per failing chunk (default 2)",
    )
    parser.add_argument(
        "--format",
        dest="result_format",
        default="parquet",
        metavar="FORMAT",
        help="results file: parquet (DIR/results.parquet, default) or csv (DIR/results.csv)",
    )
    parser.add_argument("--out", required=True, metavar="DIR", help="output folder")
    parser.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    parser.set_defaults(func=run)


def build_spec(args: argparse.Namespace) -> Any:
    """Merge SPEC.json (if any) with the command-line options into a validated sweep.

    Parameters
    ----------
    args : argparse.Namespace

    Returns
    -------
    feddistort.sweep.tasks.SweepJob
        A :class:`feddistort.sweep.spec.SweepSpec` for ``kind`` simulate, else the kind's sweep.
    """
    import json
    from pathlib import Path

    from feddistort.sweep.registry import job_from_mapping
    from synthetic.config import ConfigError, parse_assignment, parse_grid

    values: dict[str, Any] = {}
    if args.spec is not None:
        try:
            loaded = json.loads(Path(args.spec).read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise ConfigError(f"SPEC {args.spec!r} is invalid: expected an existing file") from None
        except IsADirectoryError:
            raise ConfigError(
                f"SPEC {args.spec!r} is invalid: expected a file, not a folder"
            ) from None
        except UnicodeDecodeError as err:
            raise ConfigError(
                f"SPEC {args.spec!r} is invalid: expected UTF-8 JSON (byte {err.start} is not "
                "UTF-8)"
            ) from None
        except ValueError as err:
            raise ConfigError(f"SPEC {args.spec!r} is invalid: expected JSON ({err})") from None
        if not isinstance(loaded, dict):
            raise ConfigError(f"SPEC {args.spec!r} is invalid: expected a JSON object")
        values = dict(loaded)
    if args.sets:
        base = values.get("base", {})
        if not isinstance(base, dict):
            raise ConfigError(f"base={base!r} is invalid: expected a JSON object")
        values["base"] = {**base, **dict(parse_assignment(t, "--set") for t in args.sets)}
    if args.grid:
        grid = values.get("grid", {})
        if not isinstance(grid, dict):
            raise ConfigError(f"grid={grid!r} is invalid: expected a JSON object")
        values["grid"] = {**grid, **dict(parse_grid(t) for t in args.grid)}
    for name in (
        "kind",
        "claims",
        "presets",
        "quick",
        "variants",
        "seeds",
        "methods",
        "metrics",
        "chunk",
    ):
        if getattr(args, name, None) is not None:
            values[name] = getattr(args, name)
    return job_from_mapping(values)


def _size(size: int) -> str:
    """A byte count for people: 812 B, 3.4 kB, 12.3 MB, 1.2 GB (powers of 1000)."""
    value = float(size)
    for unit in ("B", "kB", "MB", "GB"):
        if value < 1000 or unit == "GB":
            return f"{size} B" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1000
    raise AssertionError("unreachable")  # pragma: no cover


def run(args: argparse.Namespace) -> int:
    """Handle ``feddistort sweep``.

    Parameters
    ----------
    args : argparse.Namespace

    Returns
    -------
    int
        0 when every chunk is done, 1 when some chunk failed every attempt (listed on stderr
        and in DIR/failures.json; the other chunks are kept).
    """
    from pathlib import Path

    from feddistort.sweep.engine import run_sweep
    from synthetic.config import ConfigError

    spec = build_spec(args)
    out = Path(args.out)
    if out.exists() and not out.is_dir():
        raise ConfigError(f"--out {args.out!r} is invalid: expected a folder, and it is a file")
    report = run_sweep(
        spec,
        args.out,
        backend=args.backend,
        workers=args.workers,
        scheduler=args.scheduler,
        retries=args.retries,
        progress=not args.no_progress,
        result_format=args.result_format,
    )
    if report.failed:
        tasks = spec.tasks(Path(args.out))
        for index, error in sorted(report.failed.items()):
            configs = "; ".join(spec.label(c) for c in tasks[index].configs)
            print(
                f"feddistort sweep: chunk {index} failed after {args.retries + 1} attempt(s): "
                f"{error}; configurations: {configs}",
                file=sys.stderr,
            )
        print(
            f"feddistort sweep: {len(report.failed)} of {report.chunks} chunk(s) failed; "
            "rerun the same command to retry them",
            file=sys.stderr,
        )
        return 1
    print(
        f"{report.chunks} chunk(s): {report.reused} reused, {report.computed} computed; "
        f"wrote {report.results} ({report.rows} rows, {_size(report.size)})"
    )
    return 0
