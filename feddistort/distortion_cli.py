"""``feddistort distortion``: compare client checkpoints with the global one (argparse only)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

METRICS_HELP = (
    "comma-separated subset of: delta_l2, relative_l2, cosine_distance, cka, cka_debiased, "
    "procrustes, principal_angle, minibatch_cka, weight_l2, weight_relative_l2, "
    "weight_cosine_distance (default: all)"
)


def _pairs(values: list[str], option: str) -> dict[str, str]:
    out: dict[str, str] = {}
    for item in values:
        name, sep, path = item.partition("=")
        if not sep or not name or not path:
            raise ValueError(f"{option} {item!r} is invalid: expected NAME=PATH")
        if name in out:
            raise ValueError(f"{option} name {name!r} is given twice")
        out[name] = path
    return out


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``distortion`` subcommand."""
    p = subparsers.add_parser(
        "distortion",
        help="feature distortion of client checkpoints against the global one",
        description=(
            "Load a global checkpoint and one fine-tuned checkpoint per client, run each on the "
            "client's data and write a tidy CSV (client, layer, metric, value, n) and a heatmap "
            "PNG (clients x layers) beside it."
        ),
    )
    p.add_argument(
        "--model", required=True, help="package.module:callable, registry name or model.json"
    )
    p.add_argument("--model-kwargs", default=None, help="constructor kwargs as a JSON object")
    p.add_argument("--global", dest="global_path", required=True, help="global checkpoint")
    p.add_argument(
        "--client",
        action="append",
        required=True,
        metavar="NAME=PATH",
        help="client checkpoint (repeat)",
    )
    p.add_argument(
        "--data",
        action="append",
        required=True,
        metavar="NAME=PATH",
        help="client data .npz/.npy/.pt (repeat; NAME '*' = every client)",
    )
    p.add_argument(
        "--layers",
        nargs="+",
        default=None,
        metavar="PATTERN",
        help="module names or globs, ':in' for inputs (default: last Linear's input)",
    )
    p.add_argument("--metrics", default=None, help=METRICS_HELP)
    p.add_argument("--batch-size", type=int, default=256)
    p.add_argument(
        "--spatial",
        choices=["mean", "flatten"],
        default="mean",
        help="reduction of convolutional maps (default: mean)",
    )
    p.add_argument("--heatmap-metric", default="delta_l2", help="metric of the heatmap")
    p.add_argument(
        "--trust-checkpoint",
        action="store_true",
        help="allow arbitrary unpickling (only for checkpoints you trust)",
    )
    p.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    p.add_argument("--out", required=True, help="output CSV; the PNG is written beside it")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Handle ``feddistort distortion``; returns the exit code."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from empirical.compare import compare_checkpoints
    from feddistort_io import atomic_write
    from figures.heatmap import distortion_heatmap

    kwargs: dict[str, Any] = {}
    if args.model_kwargs:
        try:
            kwargs = json.loads(args.model_kwargs)
        except json.JSONDecodeError as err:
            raise ValueError(
                f"--model-kwargs {args.model_kwargs!r} is not valid JSON ({err})"
            ) from None
        if not isinstance(kwargs, dict):
            raise ValueError(
                f"--model-kwargs {args.model_kwargs!r} is invalid: expected a JSON object"
            )
    if args.batch_size < 1:
        raise ValueError(f"--batch-size {args.batch_size} is invalid: expected an integer >= 1")
    metrics = [m.strip() for m in args.metrics.split(",") if m.strip()] if args.metrics else None
    out = Path(args.out)
    if out.suffix.lower() != ".csv":
        raise ValueError(f"--out {args.out!r} is invalid: expected a path ending in .csv")
    table = compare_checkpoints(
        args.model,
        args.global_path,
        _pairs(args.client, "--client"),
        _pairs(args.data, "--data"),
        layers=args.layers,
        metrics=metrics,
        model_kwargs=kwargs,
        batch_size=args.batch_size,
        spatial=args.spatial,
        trust=args.trust_checkpoint,
        progress=not args.no_progress,
    )
    atomic_write(out, lambda f: table.to_csv(f, index=False), binary=False)
    shown = args.heatmap_metric if (table["metric"] == args.heatmap_metric).any() else None
    shown = shown or (str(table["metric"].iloc[0]) if len(table) else None)
    png = out.with_suffix(".png")
    if shown is not None:
        fig = distortion_heatmap(table, shown)
        try:
            atomic_write(png, lambda f: fig.savefig(f, format="png", dpi=120), binary=True)
        finally:
            plt.close(fig)
    print(f"wrote {out} ({len(table)} rows)" + (f" and {png} ({shown})" if shown else ""))
    return 0
