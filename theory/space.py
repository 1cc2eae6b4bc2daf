"""Search spaces of claims: ranges, log ranges, choices, and the default space.

A space maps :class:`synthetic.SimConfig` fields to ``(lo, hi)`` (integers for integer
fields), :func:`log` ``(lo, hi)``, a tuple of choices, or one fixed value. Both the hypothesis
strategies (:mod:`theory.strategies`) and the audit's numpy sampler
(:func:`theory._samplers.sample_space`) draw from it the same way.
"""

from __future__ import annotations

import functools
import math
import typing
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from synthetic.config import ConfigError, SimConfig, field_names


@dataclass(frozen=True)
class LogRange:
    """A log-uniform range ``lo <= x <= hi`` (``0 < lo < hi``) of a search space."""

    lo: float
    hi: float


def log(lo: float, hi: float) -> LogRange:
    """A log-uniform search range, e.g. ``space={"eta": log(0.01, 1.5)}``."""
    if not (0 < lo < hi and math.isfinite(hi)):
        raise ConfigError(f"log({lo!r}, {hi!r}) is invalid: expected 0 < lo < hi < inf")
    return LogRange(float(lo), float(hi))


#: Where :func:`claim` searches when ``space`` does not say (``d`` is m + C + 0..4 unless
#: given). Bounded and small, so that one example costs about a millisecond.
DEFAULT_SPACE: dict[str, Any] = {
    "m": (1, 3),
    "C": (2, 5),
    "lam": (0.0, 3.0),
    "vcom_norm": (0.0, 2.0),
    "eta": log(0.01, 1.0),
    "covariate": ("isotropic", "own", "shared", "random", "basis", "mix"),
    "mix": (0.0, 1.0),
    "eps": (0.05, 1.0),
    "loss": ("mse", "half_mse"),
    "seed": (0, 1000),
}


#: Fields drawn only when the geometry uses them (eps: not isotropic; mix; rho: overlap).
GEOMETRY_FIELDS: tuple[str, ...] = ("covariate", "eps", "mix", "rho")
#: Extra input dimensions above k = m + C when ``d`` is not in the space.
D_EXTRA: tuple[int, int] = (0, 4)


def is_range(spec: Any) -> bool:
    """Whether a space entry is a ``(lo, hi)`` range of two numbers (not a choice)."""
    return (
        isinstance(spec, tuple)
        and len(spec) == 2
        and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in spec)
    )


def round4(x: float, lo: float, hi: float) -> float:
    """``x`` to 4 significant digits, kept inside [lo, hi] (short ``--set`` values)."""
    return min(max(float(f"{x:.4g}"), lo), hi)


@functools.cache
def is_int_field(name: str) -> bool:
    """Whether SimConfig field ``name`` holds integers."""
    hint = typing.get_type_hints(SimConfig)[name]
    return hint is int or int in typing.get_args(hint)


def check_space(space: Mapping[str, Any], where: str) -> dict[str, Any]:
    """Validate a search space: known fields, ordered ranges, non-empty choices.

    Entries: ``(lo, hi)`` (integers for integer fields), :func:`log`, a tuple or list of
    choices, or one fixed value.
    """
    known = field_names()
    out: dict[str, Any] = {}
    for key, spec in space.items():
        if key not in known:
            raise ConfigError(f"{where} key {key!r} is invalid: expected one of {', '.join(known)}")
        if is_range(spec) and not spec[0] <= spec[1]:
            raise ConfigError(f"{where} {key}={spec!r} is invalid: expected lo <= hi")
        if isinstance(spec, (list, tuple)) and not is_range(spec) and not spec:
            raise ConfigError(f"{where} {key}=() is invalid: expected at least one choice")
        out[key] = tuple(spec) if isinstance(spec, list) else spec
        _probe(key, out[key], where)
    return out


def _probe(key: str, spec: Any, where: str) -> None:
    """Raise a one-line ConfigError if a value ``spec`` can give is invalid for ``key`` alone.

    Each bound, choice or fixed value is tried in a :class:`SimConfig` of its own (``d``
    large, as :func:`theory.search.fixed_values` does), so that a typo is named here rather
    than surfacing later as an empty search space.
    """
    if isinstance(spec, LogRange):
        if is_int_field(key):
            raise ConfigError(f"{where} {key}={spec!r} is invalid: log() ranges are for real "
                              f"fields, {key} holds integers (use (lo, hi))")  # fmt: skip
        values: tuple[Any, ...] = (spec.lo, spec.hi)
    elif is_range(spec):
        values = spec
    else:
        values = spec if isinstance(spec, tuple) else (spec,)
    for value in values:
        probe: dict[str, Any] = {"d": 10**6, key: value}
        if key == "client" and isinstance(value, int) and not isinstance(value, bool):
            probe["C"] = value + 1
        if key == "d":
            probe.update(m=1, C=1)
        try:
            SimConfig(**probe)
        except ConfigError as err:
            raise ConfigError(f"{where}: {err}") from None


__all__ = [
    "DEFAULT_SPACE",
    "D_EXTRA",
    "GEOMETRY_FIELDS",
    "LogRange",
    "check_space",
    "is_int_field",
    "is_range",
    "log",
    "round4",
]
