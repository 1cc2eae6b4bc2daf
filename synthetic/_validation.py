"""The validation rules of :class:`synthetic.config.SimConfig`, as a table.

Each rule names the fields it reads, a predicate and what is expected; the first rule a
configuration breaks raises a :class:`ConfigError` that reads ``name=value is invalid:
expected ...``. Type rules come first (derived from the field annotations, so a new field is
type-checked without a new line here), then range rules, then rules that relate fields.
"""

from __future__ import annotations

import functools
import math
import typing
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

COVARIATES: tuple[str, ...] = ("isotropic", "own", "shared", "random", "basis", "mix", "overlap")
LOSSES: tuple[str, ...] = ("mse", "half_mse")
GLOBAL_MODELS: tuple[str, ...] = ("ideal", "fedavg")
CHOICES: dict[str, tuple[str, ...]] = {
    "covariate": COVARIATES,
    "loss": LOSSES,
    "global_model": GLOBAL_MODELS,
}


class ConfigError(ValueError):
    """A configuration value is out of range or inconsistent; the message names it."""


def bad(name: str, value: object, expected: str) -> ConfigError:
    """The error for ``name=value``: ``name=value is invalid: expected <expected>``."""
    return ConfigError(f"{name}={value!r} is invalid: expected {expected}")


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _split_hint(hint: Any) -> tuple[Any, bool]:
    """(the type, whether None is allowed) of an annotation such as ``float | None``."""
    args = typing.get_args(hint)
    optional = type(None) in args
    return (next((a for a in args if a is not type(None)), hint) if args else hint), optional


def type_error(name: str, base: Any, optional: bool, value: object) -> ConfigError | None:
    """The error for a value that is not of type ``base``, or None when it fits.

    ``optional``: None is allowed too (``base`` and ``optional`` come from :func:`_split_hint`).
    """
    if optional and value is None:
        return None
    tail = " or none" if optional else ""
    if base is int and not _is_int(value):
        return bad(name, value, "an integer" + tail)
    if base is float and not _is_number(value):
        return bad(name, value, "a finite number" + tail)
    if base is str:
        choices = CHOICES.get(name)
        if not isinstance(value, str) or (choices is not None and value not in choices):
            return bad(name, value, f"one of {', '.join(choices or ('a string',))}")
    return None


@dataclass(frozen=True)
class Rule:
    """One range rule: ``check(value)`` must hold for each field in ``names``.

    Parameters
    ----------
    names : tuple of str
        Fields the rule applies to (one at a time); ``None`` values skip the rule.
    check : callable
        Predicate of one value.
    expected : str
        What a valid value is, for the message.
    """

    names: tuple[str, ...]
    check: Callable[[Any], bool]
    expected: str


RANGE_RULES: tuple[Rule, ...] = (
    Rule(("m",), lambda v: v >= 1, "m >= 1 shared features"),
    Rule(("C",), lambda v: v >= 1, "C >= 1 clients"),
    Rule(
        ("lam", "eps", "sigma", "vcom_norm", "eta", "ridge", "mu", "beta", "fed_lr"),
        lambda v: v >= 0,
        "a value >= 0",
    ),
    Rule(("rho", "mix"), lambda v: 0.0 <= v <= 1.0, "a value in [0, 1]"),
    Rule(("sparsity", "fed_participation"), lambda v: 0.0 < v <= 1.0, "a fraction in (0, 1]"),
    Rule(("fed_init_scale",), lambda v: v > 0, "a value > 0"),
    Rule(("steps",), lambda v: v >= 0, "steps >= 0"),
    Rule(("seed",), lambda v: v >= 0, "seed >= 0"),
    Rule(("n",), lambda v: v >= 1, "n >= 1 samples per client, or none for population losses"),
    Rule(("n_soup",), lambda v: v >= 1, "n_soup >= 1"),
    Rule(("flood",), lambda v: v >= 0, "a flood level >= 0, or none"),
    Rule(("fed_rounds",), lambda v: v >= 0, "fed_rounds >= 0"),
    Rule(("fed_local_steps",), lambda v: v >= 1, "fed_local_steps >= 1"),
    Rule(("n_mc",), lambda v: v >= 2, "n_mc >= 2 Monte-Carlo draws"),
)


def _relations(config: Any) -> ConfigError | None:
    """Rules between fields (shapes of the problem)."""
    if config.d < config.k:
        return bad("d", config.d, f"d >= m + C = {config.k} (B* needs orthonormal rows)")
    if config.client is not None and not 0 <= config.client < config.C:
        return bad("client", config.client, f"a client index in 0..{config.C - 1}, or none (all)")
    if config.covariate == "overlap" and config.private_dim < 1 and config.rho < 1.0:
        return bad(
            "d",
            config.d,
            f"covariate='overlap' with rho < 1 needs d >= m + 2C = {config.k + config.C} "
            "(one private input direction per client outside rowspace(B*))",
        )
    return None


@functools.cache
def _hints(cls: type) -> tuple[tuple[str, Any, bool], ...]:
    """(field, type, None allowed) of each annotated field of ``cls``, read once per class."""
    return tuple((name, *_split_hint(hint)) for name, hint in typing.get_type_hints(cls).items())


_RANGE_ORDER: tuple[tuple[str, Rule], ...] = tuple(
    (name, rule) for rule in RANGE_RULES for name in rule.names
)
"""(field, rule) in the order a full validation checks the range rules."""


class _FieldChecks(NamedTuple):
    """The rules of one field, with their places in a full validation (see :func:`_checks`)."""

    place: int
    base: Any
    optional: bool
    ranges: tuple[tuple[int, Rule], ...]


@functools.cache
def _checks(cls: type) -> dict[str, _FieldChecks]:
    """Per field of ``cls``: its type rule and its range rules, each with its place.

    The places are the order a full validation runs them in (type rules in field order, then
    :data:`RANGE_RULES`).
    """
    ranges: dict[str, list[tuple[int, Rule]]] = {}
    for place, (name, rule) in enumerate(_RANGE_ORDER):
        ranges.setdefault(name, []).append((place, rule))
    return {
        name: _FieldChecks(i, base, optional, tuple(ranges.get(name, ())))
        for i, (name, base, optional) in enumerate(_hints(cls))
    }


def validate(config: Any, changed: Collection[str] | None = None) -> None:
    """Check a configuration against the type rules, :data:`RANGE_RULES` and the relations.

    Parameters
    ----------
    config : SimConfig
    changed : collection of str, optional
        Only these fields' type and range rules run (every relation still does): for a copy
        of a configuration that passed them, with these fields changed. They run in the order
        of a full validation, so the first error is the same, since the unchanged fields break
        none.

    Raises
    ------
    ConfigError
        For the first rule broken, naming the field, its value and what is expected.
    """
    if changed is None:
        types: Sequence[tuple[str, Any, bool]] = _hints(type(config))  # type: ignore[arg-type]
        ranges: Sequence[tuple[str, Rule]] = _RANGE_ORDER
    else:
        checks = _checks(type(config))  # type: ignore[arg-type]
        known = sorted((name for name in changed if name in checks), key=lambda n: checks[n].place)
        types = [(name, checks[name].base, checks[name].optional) for name in known]
        placed = sorted((p, name, rule) for name in known for p, rule in checks[name].ranges)
        ranges = [(name, rule) for _, name, rule in placed]
    for name, base, optional in types:
        error = type_error(name, base, optional, getattr(config, name))
        if error is not None:
            raise error
    for name, rule in ranges:
        value = getattr(config, name)
        if value is not None and not rule.check(value):
            raise bad(name, value, rule.expected)
    error = _relations(config)
    if error is not None:
        raise error
