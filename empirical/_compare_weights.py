"""Weight-drift rows of :func:`empirical.compare_checkpoints`: parts by module name, status.

A weight-metric problem (a part that matches nothing, keys that differ after a non-strict
load) never aborts the comparison: the rows concerned get NaN values and a ``status`` saying
why, and the feature metrics are computed as usual.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import torch

from empirical._compare_acc import WEIGHT_METRICS
from empirical.drift import weight_drift


def matches_prefix(key: str, prefix: str) -> bool:
    """Whether state_dict ``key`` lies under module path ``prefix``.

    A prefix is a module name: ``fc`` matches ``fc.weight`` and ``fc`` itself but not
    ``fc1.weight``; a prefix ending in ``.`` (``features.1.``) matches by plain ``startswith``.
    """
    if prefix.endswith("."):
        return key.startswith(prefix)
    return key == prefix or key.startswith(prefix + ".")


def resolve_parts(parts: Mapping[str, Sequence[str]], keys: Sequence[str]) -> dict[str, list[str]]:
    """Part name -> the exact state_dict keys it holds (module-name prefixes, see above).

    Raises
    ------
    ValueError
        A part matches no key; the message names the part and its prefixes.
    """
    out: dict[str, list[str]] = {}
    for name, prefixes in parts.items():
        members = [k for k in keys if any(matches_prefix(k, p) for p in prefixes)]
        if not members:
            raise ValueError(
                f"part {name!r} with prefixes {list(prefixes)} matches no weight (a prefix is a "
                f"module name such as {keys[0].rsplit('.', 1)[0] if keys else 'fc'!r})"
            )
        out[name] = members
    return out


def weight_rows(
    client: str,
    ref: Mapping[str, torch.Tensor],
    oth: Mapping[str, torch.Tensor],
    parts: Mapping[str, Sequence[str]],
    buffers: set[str],
    chosen: tuple[str, ...],
    skip: Sequence[str],
) -> tuple[list[dict[str, Any]], str | None]:
    """Weight-metric rows of one client, in the model's order, and a warning or None.

    ``skip`` lists buffers filled in from the other checkpoint: they are not compared (the
    rows' status says how many). A problem gives one NaN row per metric with its status.
    """
    wanted = [m for m in WEIGHT_METRICS if m in chosen]
    status = "ok" if not skip else f"ok; {len(skip)} buffers filled in, not compared"
    a = {k: v for k, v in ref.items() if k not in skip}
    b = {k: v for k, v in oth.items() if k not in skip}
    try:
        exact = resolve_parts(parts, list(ref))
        drift = weight_drift(a, b, exact, buffers=buffers)
    except ValueError as err:
        row = {"client": client, "layer": "all", "kind": "parameter", "value": math.nan, "n": 0}
        msg = f"weight metrics not computed: {err}"
        return [{**row, "metric": m, "status": msg} for m in wanted], f"client {client!r}: {msg}"
    rows = []
    for group, stats in drift.items():
        base = {
            "client": client,
            "layer": group.removesuffix(" [buffer]"),
            "kind": "buffer" if stats["kind"] else "parameter",
            "n": int(stats["n"]),
            "status": status,
        }
        rows += [{**base, "metric": m, "value": stats[m]} for m in wanted]
    return rows, None


__all__ = ["matches_prefix", "resolve_parts", "weight_rows"]
