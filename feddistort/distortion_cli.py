"""``feddistort distortion``: compare client checkpoints with the global one (argparse only)."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

METRIC_NAMES = (
    "delta_l2", "relative_l2", "cosine_distance", "cka", "cka_debiased", "procrustes",
    "principal_angle", "minibatch_cka", "weight_l2", "weight_relative_l2",
    "weight_cosine_distance",
)  # fmt: skip
"""Must equal empirical.compare.ALL_METRICS (a test checks); listed here to keep --help light."""

METRICS_HELP = f"comma-separated subset of: {', '.join(METRIC_NAMES)} (default: all)"


def _pairs(values: list[str], option: str, what: str = "PATH") -> dict[str, str]:
    out: dict[str, str] = {}
    for item in values:
        name, sep, path = item.partition("=")
        if not sep or not name or not path:
            raise ValueError(f"{option} {item!r} is invalid: expected NAME={what}")
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
            "client's data and write a tidy CSV (client, layer, kind, metric, value, n, status) "
            "and a heatmap PNG (clients x layers) beside it. Checkpoints are read as data: "
            "torch.save files (state_dicts, nested dicts, FL-bench packages, whole pickled "
            "models, read without importing or running anything), safetensors and .npz "
            "(Flower's np.savez), recognized by content. See docs/checkpoints.md."
        ),
    )
    p.add_argument(
        "--model",
        required=True,
        help="package.module:callable (a module in the current directory is found), a "
        "registry name, or a model.json (which may name only registry models or modules "
        "allowed with --allow-module)",
    )
    p.add_argument("--model-kwargs", default=None, help="constructor kwargs as a JSON object")
    p.add_argument(
        "--allow-module",
        action="append",
        default=[],
        metavar="MODULE",
        help="a module (and its submodules) that a model.json may name (repeat)",
    )
    p.add_argument(
        "--trust-model-json",
        action="store_true",
        help="let a model.json name ANY callable: this imports and runs the code it names",
    )
    p.add_argument("--global", dest="global_path", required=True, help="global checkpoint")
    p.add_argument(
        "--client", action="append", required=True, metavar="NAME=PATH",
        help="client checkpoint (repeat)",
    )  # fmt: skip
    p.add_argument(
        "--data", action="append", required=True, metavar="NAME=PATH",
        help="client data .npz/.npy/.pt (repeat; NAME '*' = every client)",
    )  # fmt: skip
    p.add_argument(
        "--layers",
        nargs="+",
        default=["auto"],
        metavar="PATTERN",
        help="module names or globs, ':in' for inputs; 'auto' (default): the conv/Linear "
        "outputs along the depth (at most 7) and the last Linear's input",
    )
    p.add_argument("--metrics", default=None, help=METRICS_HELP)
    p.add_argument(
        "--parts",
        nargs="+",
        default=None,
        metavar="NAME=PREFIX[,PREFIX]",
        help="named parameter groups for the weight metrics (override model.json's parts)",
    )
    p.add_argument(
        "--state-key",
        default=None,
        help="key of the nested state_dict in every checkpoint (a/b for deeper nesting)",
    )
    p.add_argument(
        "--fill-buffers",
        action="store_true",
        help="take buffers missing from a checkpoint from the other side (client <- global, "
        "global <- client; FL-bench 'buffers: local'); they are then not compared",
    )
    p.add_argument("--batch-size", type=int, default=256, help="rows per forward pass")
    p.add_argument(
        "--minibatch-size",
        type=int,
        default=256,
        help="rows per minibatch of minibatch_cka, independent of --batch-size (default 256)",
    )
    p.add_argument(
        "--spatial",
        choices=["mean", "flatten"],
        default="mean",
        help="reduction of convolutional maps (default: mean)",
    )
    p.add_argument(
        "--heatmap-metric",
        default=None,
        help="metric of the heatmap, one of the computed metrics (default: delta_l2 if "
        "computed, else the first)",
    )
    p.add_argument(
        "--trust-checkpoint",
        action="store_true",
        help="read checkpoints with torch.load(weights_only=False): this CAN RUN ARBITRARY "
        "CODE stored in the files; only for files whose origin you trust (whole pickled "
        "models are read safely without it)",
    )
    p.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    p.add_argument("--out", required=True, help="output CSV; the PNG is written beside it")
    p.set_defaults(func=run)


def _options(args: argparse.Namespace) -> dict[str, Any]:
    """Validate the options that need no file; every error names the option and the value."""
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
    if args.minibatch_size < 4:
        raise ValueError(
            f"--minibatch-size {args.minibatch_size} is invalid: expected an integer >= 4"
        )
    metrics = [m.strip() for m in args.metrics.split(",") if m.strip()] if args.metrics else []
    bad = [m for m in metrics if m not in METRIC_NAMES]
    if bad:
        raise ValueError(
            f"--metrics {bad[0]!r} is invalid: expected some of {', '.join(METRIC_NAMES)}"
        )
    computed = metrics or list(METRIC_NAMES)
    shown = args.heatmap_metric
    if shown is None:
        shown = "delta_l2" if "delta_l2" in computed else computed[0]
    elif shown not in computed:
        raise ValueError(
            f"--heatmap-metric {shown!r} is invalid: expected one of the computed metrics "
            f"({', '.join(computed)})"
        )
    parts = None
    if args.parts:
        parts = {
            name: [p for p in prefixes.split(",") if p]
            for name, prefixes in _pairs(args.parts, "--parts", "PREFIX[,PREFIX]").items()
        }
    out = Path(args.out)
    if out.suffix.lower() != ".csv":
        raise ValueError(f"--out {args.out!r} is invalid: expected a path ending in .csv")
    return {"kwargs": kwargs, "metrics": metrics or None, "shown": shown, "parts": parts}


def run(args: argparse.Namespace) -> int:
    """Handle ``feddistort distortion``; returns the exit code."""
    opts = _options(args)
    out = Path(args.out)

    import matplotlib

    matplotlib.use("Agg")  # this command only writes files
    import matplotlib.pyplot as plt

    from empirical.compare import compare_checkpoints
    from empirical.model_spec import resolve_model_spec
    from feddistort_io import atomic_write
    from figures.heatmap import distortion_heatmap

    spec = resolve_model_spec(
        args.model,
        opts["kwargs"],
        allow_modules=args.allow_module,
        trust_json=args.trust_model_json,
    )
    layers = args.layers if args.layers != ["auto"] else "auto"
    table = compare_checkpoints(
        spec,
        args.global_path,
        _pairs(args.client, "--client"),
        _pairs(args.data, "--data"),
        layers=layers,
        metrics=opts["metrics"],
        parts=opts["parts"],
        batch_size=args.batch_size,
        minibatch_size=args.minibatch_size,
        spatial=args.spatial,
        trust=args.trust_checkpoint,
        fill_buffers=args.fill_buffers,
        state_key=args.state_key,
        progress=not args.no_progress,
    )
    atomic_write(out, lambda f: table.to_csv(f, index=False), binary=False)
    warnings = table.attrs.get("warnings") or []
    if warnings:
        more = f" (and {len(warnings) - 1} more)" if len(warnings) > 1 else ""
        print(
            f"feddistort distortion: warning: {warnings[0]}{more}; see the status column",
            file=sys.stderr,
        )
    shown = opts["shown"]
    png = out.with_suffix(".png")
    fig = distortion_heatmap(table, shown)
    try:
        atomic_write(png, lambda f: fig.savefig(f, format="png", dpi=200), binary=True)
    finally:
        plt.close(fig)
    print(f"wrote {out} ({len(table)} rows) and {png} ({shown})")
    return 0
