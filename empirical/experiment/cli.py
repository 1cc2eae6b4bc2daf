"""``feddistort experiment``: run (or resume) the federated PFT experiment on the digits.

Light module: argparse only; torch is imported inside the handler.
"""

from __future__ import annotations

import argparse
from typing import Any

__all__ = ["register"]


def register(subparsers: Any) -> None:
    """Add the ``experiment`` subcommand.

    Parameters
    ----------
    subparsers : argparse._SubParsersAction
        The dispatcher's subparsers.
    """
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "experiment",
        help="federated experiment on bundled digits: FedAvg, PFT variants, metrics, checkpoints",
        description=(
            "Build shifted digit clients, train FedAvg, fine-tune every client with each PFT "
            "variant, and write tidy CSVs, config.json, checkpoints and summary.md to --out. "
            "Re-running with the same --out resumes: finished (seed, variant) units are skipped."
        ),
    )
    parser.add_argument(
        "--preset",
        required=True,
        help="digits-covariate, digits-concept, digits-spurious, digits-label, digits-combined, "
        "digits-iid, digits-step-size (FT learning-rate sweep, covariate and concept shift), "
        "digits-flexp, digits-flexp-budgets",
    )
    parser.add_argument("--seeds", type=int, default=3, help="number of seeds 0..N-1 (default 3)")
    parser.add_argument("--quick", action="store_true", help="small fast version (tests, demos)")
    parser.add_argument(
        "--variants",
        default=None,
        help="comma-separated PFT variants (default: ft,lp,lpft,proximal,sparse,soup,lss,split)",
    )
    parser.add_argument(
        "--flood",
        type=float,
        default=None,
        metavar="B",
        help="loss-flooding level b >= 0 for every PFT variant (default: no flooding)",
    )
    parser.add_argument("--model", default="cnn", help="model registry name: cnn or mlp")
    flexp = parser.add_argument_group("flexp variant (docs/flexp.md)")
    flexp.add_argument(
        "--cuts",
        default=None,
        metavar="F:B[,F:B...]",
        help="cut points front:back, one for all clients or one per client",
    )
    flexp.add_argument(
        "--budgets",
        default=None,
        metavar="X[,X...]",
        help="per-client budgets (one for all or one per client); the cut is the "
        "deepest client share that fits",
    )
    flexp.add_argument(
        "--budget-kind",
        default=None,
        metavar="KIND",
        help="params, flops (per sample, forward+backward) or memory (bytes)",
    )
    flexp.add_argument("--server-mode", default=None, metavar="MODE", help="frozen or shared")
    flexp.add_argument("--beta", type=float, default=None, help="alignment strength >= 0")
    flexp.add_argument("--align", default=None, metavar="KIND", help="kl or l2")
    flexp.add_argument(
        "--align-depth",
        default=None,
        metavar="DEPTH",
        help="first (first cut only) or client (every client-owned part)",
    )
    parser.add_argument("--out", required=True, help="output directory (created; resumable)")
    parser.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    parser.set_defaults(func=_handle)


def _handle(args: argparse.Namespace) -> int:
    from pathlib import Path

    from empirical.experiment import make_preset, run_experiment

    if args.seeds < 1:
        raise ValueError(f"--seeds must be >= 1, got {args.seeds}")
    variants = None
    if args.variants is not None:
        variants = [v.strip() for v in args.variants.split(",") if v.strip()]
    config = make_preset(
        args.preset, quick=args.quick, model=args.model, variants=variants, flood_level=args.flood
    )
    config = _with_flexp(config, args)
    out = Path(args.out)
    if out.exists() and not out.is_dir():
        raise ValueError(f"--out {out} exists and is not a directory")
    report = run_experiment(config, out, range(args.seeds), progress=not args.no_progress)
    print(
        f"trained {len(report.trained)} unit(s), skipped {len(report.skipped)} finished; "
        f"results in {out}"
    )
    print((out / "summary.md").read_text())
    return 0


def _with_flexp(config: Any, args: argparse.Namespace) -> Any:
    """The preset with the flexp options applied (validated by the frozen dataclasses)."""
    import dataclasses

    changes: dict[str, Any] = {}
    if args.cuts is not None:
        changes |= {"cuts": tuple(c.strip() for c in args.cuts.split(",") if c.strip()),
                    "budgets": ()}  # fmt: skip
    if args.budgets is not None:
        if args.cuts is not None:
            raise ValueError("--cuts and --budgets are exclusive: give one of the two")
        try:
            budgets = tuple(float(b) for b in args.budgets.split(",") if b.strip())
        except ValueError:
            raise ValueError(f"--budgets {args.budgets!r} is invalid: expected numbers") from None
        changes |= {"budgets": budgets, "cuts": ()}
    for name in ("budget_kind", "server_mode", "beta", "align", "align_depth"):
        if getattr(args, name) is not None:
            changes[name] = getattr(args, name)
    if not changes:
        return config
    if "flexp" not in config.variants:
        raise ValueError(
            f"flexp options given but the variants {list(config.variants)} do not include "
            "flexp: add --variants ...,flexp or use --preset digits-flexp"
        )
    return dataclasses.replace(config, flexp=dataclasses.replace(config.flexp, **changes))
