"""Helpers of ``feddistort theory`` (:mod:`theory.cli`): parsing, printing, checks of options.

Heavy imports stay inside the functions, so that building the parser stays light.
"""

from __future__ import annotations

import json
from typing import Any


def parse_sets(items: list[str] | None) -> dict[str, str]:
    values: dict[str, str] = {}
    for item in items or []:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise ValueError(f"--set {item!r} is invalid: expected KEY=VALUE, e.g. --set eta=0.3")
        values[key.strip()] = value
    return values


def claim_config(claim_id: str, sets: list[str] | None) -> Any:
    from synthetic.config import config_from_mapping
    from theory.claims import require_hypotheses
    from theory.resolve import resolve_claim

    claim = resolve_claim(claim_id)
    config = config_from_mapping(parse_sets(sets), base=claim.default)
    require_hypotheses(claim, config)
    return claim, config


def scalarize(values: dict[str, Any], single: bool) -> dict[str, Any]:
    from theory.records import jsonable

    out = jsonable(values)
    if single:
        out = {k: v[0] if isinstance(v, list) and len(v) == 1 else v for k, v in out.items()}
    return dict(out)


def print_values(values: dict[str, Any], as_json: bool) -> None:
    if as_json:
        print(json.dumps(values, indent=2))
        return
    for key, value in values.items():
        print(f"{key:28s} {value}")


def is_numeric(value: Any) -> bool:
    """Closed-form numbers (arrays and floats); lists may hold None for "does not exist"."""
    import numpy as np

    if isinstance(value, np.ndarray):
        return value.dtype.kind == "f"
    return isinstance(value, float)


def check_seed(option: str, value: int) -> int:
    """``value`` of the seed option ``option``, refused in one line if negative."""
    if value < 0:
        raise ValueError(f"{option}={value} is invalid: expected a non-negative integer")
    return value


def print_failing(extra: dict[str, Any]) -> None:
    """The values of a user's claim at the clients where it fails."""
    import numpy as np

    clients = extra.get("failing_clients")
    if clients is None or len(clients) == 0:
        return
    print(f"  fails at client(s) {', '.join(str(int(c)) for c in clients)}:")
    for key, values in extra.get("failing_values", {}).items():
        print(f"    {key:28s} {np.array2string(np.asarray(values), precision=6)}")


__all__ = [
    "check_seed",
    "claim_config",
    "is_numeric",
    "parse_sets",
    "print_failing",
    "print_values",
    "scalarize",
]
