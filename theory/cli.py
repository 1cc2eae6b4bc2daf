"""``feddistort theory``: list, explain, check, audit and property-test the executable claims.

A claim is a built-in id (``thm-4.4``) or ``MODULE:NAME`` of a user's claim (declared with
:func:`theory.claim`; the module is found in the working directory or on ``sys.path``).

Light module: argparse only at import; the handlers import numpy, the simulator and the
claims. Bad input raises ``ValueError`` (``synthetic.ConfigError``), which the dispatcher in
``feddistort/cli.py`` prints without a traceback (exit 2). Exit codes of every action follow
:data:`EXIT_CODES`.
"""

from __future__ import annotations

import argparse
import json
import sys

from theory._cli_util import (
    check_seed,
    claim_config,
    is_numeric,
    parse_sets,
    print_failing,
    print_values,
    scalarize,
)

AUDIT_MARKDOWN = "docs/theory-audit.md"
EXIT_CODES = (
    "exit codes: 0 when every checked statement holds; 1 when any fails (the output names "
    "which: the closed form or bound, the paper's conclusion, the paper's conclusion over the "
    "other clients, or the user's claim; so a closed form that holds with a paper's "
    "conclusion that fails exits 1); 2 for bad input (unknown claim or module, a claim "
    "that raises or returns a non-boolean, an empty search space), including a configuration "
    "on which the simulation or the closed form overflows (reported as 'diverged': nothing "
    "could be checked)"
)
CLAIM_HELP = "claim id (see `feddistort theory list`) or MODULE:NAME of your own @theory.claim"


class Diverged(ValueError):
    """A configuration on which the claim's quantities overflow (exit 2, one line)."""


def _list(args: argparse.Namespace) -> int:
    from theory.claims import CLAIMS

    if args.json:
        rows = [
            {"id": c.id, "source": c.source, "statement": c.statement,
             "paper_conclusion": c.paper_conclusion}
            for c in CLAIMS.values()
        ]  # fmt: skip
        print(json.dumps(rows, indent=2))
        return 0
    for claim in CLAIMS.values():
        print(f"{claim.id:15s} {claim.source}")
        print(f"{'':15s} {claim.statement}")
    return 0


def _explain(args: argparse.Namespace) -> int:
    from theory.records import all_finite

    claim, config = claim_config(args.claim, args.set)
    predicted = claim.predict(config)
    regimes = [r for k, v in predicted.items() if k.endswith("_regime") for r in v]
    numbers = [v for v in predicted.values() if is_numeric(v)]
    if "overflow" in regimes or not all_finite(*numbers):
        raise Diverged(
            f"{claim.id} diverged at eta={config.eta!r}: its closed form overflows float64; "
            "expected a step size at which FT stays finite"
        )
    values = {"claim": claim.id, **predicted}
    values = scalarize(values, single=config.client is not None)
    values["config"] = config.to_dict()
    print_values(values, args.json)
    return 0


def _check(args: argparse.Namespace) -> int:
    import numpy as np

    check_seed("--rng-seed", args.rng_seed)
    claim, config = claim_config(args.claim, args.set)
    record = claim.check(config, np.random.default_rng(args.rng_seed))
    out = record.to_dict()
    if args.json:
        print(json.dumps(out, indent=2))
        if record.diverged:
            return 2
    elif record.diverged:
        raise Diverged(f"{claim.id} diverged, nothing was checked: {record.notes}")
    else:
        failed = record.failed()
        verdict = "holds" if not failed else "FAILS: " + ", ".join(failed)
        print(f"{claim.id} ({claim.source or claim.statement}): {verdict}")
        label = "largest violation of the bound" if record.kind == "bound" else (
            "max |closed form - simulation|")  # fmt: skip
        if record.kind in ("closed form", "bound"):
            print(f"  {record.kind}: {'holds' if record.holds else 'FAILS'}; {label} = "
                  f"{record.max_abs_error:.3e} (tolerance {record.tolerance:.3e})")  # fmt: skip
        else:
            print(f"  {record.kind}: {'holds' if record.holds else 'FAILS'} here")
        if record.conclusion_holds is not None:
            print(f"  paper's conclusion ({claim.paper_conclusion}): "
                  f"{'holds' if record.conclusion_holds else 'FAILS'} here")  # fmt: skip
        for name, ok in record.conclusions.items():
            print(f"  {name}: {'holds' if ok else 'FAILS'} here")
        print_failing(record.extra)
        if record.notes:
            print(f"  {record.notes}")
    if record.diverged:
        return 2
    return 0 if not record.failed() else 1


def _audit(args: argparse.Namespace) -> int:
    import numpy as np

    from theory.audit import audit, audit_failures, format_table, report_json, write_atomic
    from theory.resolve import resolve_claim

    if args.budget < 1:
        raise ValueError(f"--budget={args.budget} is invalid: expected at least 1")
    check_seed("--seed", args.seed)
    claims = [resolve_claim(c) for c in args.claim or []]
    progress = not args.no_progress and sys.stderr.isatty()
    rows = audit(claims or None, args.budget, np.random.default_rng(args.seed),
                 progress=progress)  # fmt: skip
    text = report_json(rows, args.budget, args.seed)
    written = []
    json_file = args.json if args.json not in (None, "-") else None
    for path in dict.fromkeys(p for p in (json_file, args.output) if p):
        write_atomic(path, text)
        written.append(path)
    if args.markdown:
        from theory.report import audit_markdown

        report = audit_markdown(rows, args.budget, args.seed, claims or None, args.claim or (),
                                args.markdown)  # fmt: skip
        write_atomic(args.markdown, report)
        written.append(args.markdown)
    failures = audit_failures(rows)
    if args.json == "-":
        print(text)
    else:
        print(format_table(rows))
        if failures:
            print("\nfails somewhere: " + "; ".join(failures))
        if written:
            print("\nwrote " + " and ".join(written))
    return 1 if failures else 0


def _property(args: argparse.Namespace) -> int:
    from theory.resolve import resolve_claim
    from theory.search import property_search

    claim = resolve_claim(args.claim)
    progress = not args.no_progress and sys.stderr.isatty()
    result = property_search(claim, parse_sets(args.set), args.max_examples, args.seed,
                             progress=progress)  # fmt: skip
    if args.json:
        print(json.dumps(result.to_dict(), indent=2))
        return 0 if result.holds else 1
    skipped = f", {result.diverged} diverged draws skipped" if result.diverged else ""
    if result.holds:
        print(f"{claim.id}: holds on {result.n_examples} examples (seed {result.seed}{skipped})")
        return 0
    print(f"counterexample: {result.set_line or '(the default configuration)'}")
    print(
        f"{claim.id}: FAILS: {', '.join(result.failed)} (found after {result.n_examples} "
        f"examples, shrunk over {result.n_shrink} more; seed {result.seed}{skipped})"
    )
    if result.record is not None:
        print_failing(result.record.extra)
        if result.record.kind == "closed form" and not result.record.holds:
            print(f"  {result.record.kind}: max |closed form - simulation| = "
                  f"{result.record.max_abs_error:.3e} (tolerance "
                  f"{result.record.tolerance:.3e})")  # fmt: skip
    print(f"reproduce: feddistort theory check {args.claim} {result.set_line}".rstrip())
    return 1


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add ``theory`` and its actions list / explain / check / audit / property."""
    parser = subparsers.add_parser(
        "theory",
        help="executable claims of the two-layer linear theory ([CLOSER], [KUMAR])",
        description="Executable claims of the two-layer linear theory. " + EXIT_CODES + ".",
    )
    sub = parser.add_subparsers(dest="theory_command", metavar="ACTION")
    parser.set_defaults(func=lambda _args: (parser.print_help(), 2)[1])

    p_list = sub.add_parser(
        "list", help="the claims with their statements", description=EXIT_CODES + "."
    )
    p_list.add_argument("--json", action="store_true", help="print JSON")
    p_list.set_defaults(func=_list)

    for name, func, help_text in (
        ("explain", _explain, "closed-form quantities of a claim for one configuration"),
        ("check", _check, "closed form and the paper's conclusion versus simulation"),
    ):
        p = sub.add_parser(name, help=help_text, description=f"{help_text}. {EXIT_CODES}.")
        p.add_argument("claim", help=CLAIM_HELP)
        p.add_argument(
            "--set", action="append", metavar="KEY=VALUE", help="configuration field (repeatable)"
        )
        p.add_argument("--json", action="store_true", help="print JSON")
        if name == "check":
            p.add_argument(
                "--rng-seed", type=int, default=0, help="seed of the check's own random draws"
            )
        p.set_defaults(func=func)

    p_audit = sub.add_parser(
        "audit",
        help="search for configurations that violate the claims",
        description="Search for configurations that violate the claims (exit 1 when any "
        "checked statement fails on some configuration). " + EXIT_CODES + ".",
    )
    p_audit.add_argument(
        "--claim", action="append", help=CLAIM_HELP + " (repeatable; default all built-ins)"
    )
    p_audit.add_argument("--budget", type=int, default=200, help="configurations per claim")
    p_audit.add_argument("--seed", type=int, default=0, help="seed of the search")
    p_audit.add_argument(
        "--json", nargs="?", const="-", default=None, metavar="FILE",
        help="write the JSON to FILE (atomically; nothing else is written), or print it "
        "instead of the table when FILE is omitted",
    )  # fmt: skip
    p_audit.add_argument("--output", default=None, help="same as --json FILE")
    p_audit.add_argument(
        "--markdown", default=None, help=f"also regenerate the report, e.g. {AUDIT_MARKDOWN}"
    )
    p_audit.add_argument(
        "--no-progress", action="store_true",
        help="hide the progress bar (on stderr; hidden anyway when stderr is not a terminal)",
    )  # fmt: skip
    p_audit.set_defaults(func=_audit)

    p_prop = sub.add_parser(
        "property",
        help="search a claim for a shrunk counterexample (hypothesis)",
        description="Draw configurations over the claim's search space (fixed keys with "
        "--set), check each, and shrink the first failure to a minimal configuration, printed "
        "as one line 'counterexample: --set k=v ...' (the keys that differ from the claim's "
        "default) with the values that broke the claim. No example database; the same --seed "
        "gives the same search. " + EXIT_CODES + ".",
    )
    p_prop.add_argument("claim", help=CLAIM_HELP)
    p_prop.add_argument(
        "--set", action="append", metavar="KEY=VALUE", help="hold a field fixed (repeatable)"
    )
    p_prop.add_argument(
        "--max-examples", type=int, default=100, help="configurations to try (default 100)"
    )
    p_prop.add_argument("--seed", type=int, default=0, help="seed of the search (default 0)")
    p_prop.add_argument("--json", action="store_true", help="print JSON")
    p_prop.add_argument(
        "--no-progress", action="store_true",
        help="hide the progress bar (on stderr; hidden anyway when stderr is not a terminal)",
    )  # fmt: skip
    p_prop.set_defaults(func=_property)
