"""Search a claim for a counterexample with hypothesis, and shrink it.

:func:`property_search` draws configurations over the claim's space
(:func:`theory.strategies.configs`) with some keys fixed, checks each
(:meth:`theory.declare.Claim.check`), and on a failure lets hypothesis shrink the
configuration to a minimal one. The search keeps no example database and is deterministic
for a given ``seed``. Configurations on which the simulation diverges are skipped (counted).
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from synthetic.config import SimConfig, field_names, parse_value
from theory.declare import Claim, ClaimError, describe
from theory.records import CheckRecord, jsonable


@dataclass(frozen=True)
class SearchResult:
    """The outcome of :func:`property_search`.

    Parameters
    ----------
    claim : str
    holds : bool
        No checked statement failed on any example.
    n_examples : int
        Configurations checked before the first failure (all of them when it holds).
    n_shrink : int
        Further configurations checked while shrinking the counterexample.
    diverged : int
        Draws skipped because the simulation diverged.
    counterexample : SimConfig or None
        The shrunk failing configuration.
    failed : list of str
        The statements that fail there (``user's claim``, ``closed form``, ...).
    failing_values : dict
        The claim's values at the failing clients (``method.metric`` -> list).
    record : CheckRecord or None
        The full record of the counterexample.
    seed, max_examples : int
    default : SimConfig
        The base of the ``--set`` line.
    """

    claim: str
    holds: bool
    n_examples: int
    n_shrink: int
    diverged: int
    counterexample: SimConfig | None
    failed: list[str]
    failing_values: dict[str, Any]
    record: CheckRecord | None
    seed: int
    max_examples: int
    default: SimConfig = field(default_factory=SimConfig)

    @property
    def set_line(self) -> str | None:
        """``--set k=v ...``: the counterexample's difference from the claim's default."""
        if self.counterexample is None:
            return None
        return describe(self.counterexample, self.default)

    def to_dict(self) -> dict[str, Any]:
        """JSON-serializable summary."""
        return jsonable({
            "claim": self.claim, "holds": self.holds, "n_examples": self.n_examples,
            "n_shrink": self.n_shrink, "diverged": self.diverged, "seed": self.seed,
            "max_examples": self.max_examples, "failed": self.failed,
            "counterexample": None if self.counterexample is None
            else self.counterexample.to_dict(),
            "set": self.set_line, "failing_values": self.failing_values,
        })  # fmt: skip


class _Fails(Exception):
    """Raised inside the hypothesis test when the claim fails (hypothesis shrinks it)."""


def fixed_values(claim: Claim, fixed: Mapping[str, Any] | None) -> dict[str, Any]:
    """Typed fixed values (``--set`` strings parsed by field type), each checked alone.

    Relations between fields (``d >= m + C``) are left to the search: a space where no
    draw satisfies them is reported as empty.
    """
    if not fixed:
        return {}
    typed: dict[str, Any] = {}
    for key, value in fixed.items():
        if key not in field_names():
            raise ClaimError(
                f"--set key {key!r} is invalid: expected one of {', '.join(field_names())}"
            )
        typed[key] = parse_value(key, value) if isinstance(value, str) else value
        probe: dict[str, Any] = {"d": 10**6, key: typed[key]}
        if key == "client" and isinstance(typed[key], int):
            probe["C"] = typed[key] + 1
        if key == "d":
            probe.update(m=1, C=1)
        SimConfig(**probe)  # raises a ConfigError naming the field when the value is invalid
    return typed


#: What to install when hypothesis is missing (it ships with the ``dev`` extra).
INSTALL_HINT = "pip install hypothesis (a dependency of feddistort missing from this environment)"


def require_hypothesis() -> None:
    """Raise a ClaimError (exit 2) naming what to install when hypothesis is missing."""
    try:
        importlib.import_module("hypothesis")
    except ImportError:
        raise ClaimError(
            f"theory property needs the hypothesis package, which is not installed: {INSTALL_HINT}"
        ) from None


def property_search(
    claim: Claim,
    fixed: Mapping[str, Any] | None = None,
    max_examples: int = 100,
    seed: int = 0,
    progress: bool = False,
) -> SearchResult:
    """Search ``claim`` for a configuration where a checked statement fails.

    Parameters
    ----------
    claim : Claim
    fixed : mapping, optional
        Fields held fixed (values or ``--set`` strings); the rest is drawn from the space.
    max_examples : int
        Valid configurations to try (>= 1).
    seed : int
        Seed of the search (same seed, same examples, same counterexample).
    progress : bool
        Show a progress bar on stderr.

    Returns
    -------
    SearchResult

    Raises
    ------
    ClaimError
        The claim raises or returns a non-boolean (with the shrunk configuration), or the
        space holds no configuration meeting the claim's hypotheses (empty search space).
    """
    require_hypothesis()
    from theory.strategies import Reject, configs, run_search

    if max_examples < 1:
        raise ClaimError(f"--max-examples={max_examples} is invalid: expected at least 1")
    if seed < 0:
        raise ClaimError(f"--seed={seed} is invalid: expected a seed >= 0")
    fixed_typed = fixed_values(claim, fixed)
    from theory._samplers import sample_space

    # A quick numpy pre-check: an empty space fails in milliseconds, not after hypothesis
    # has rejected thousands of draws.
    sample_space(replace(claim, space={**claim.space, **fixed_typed}),
                 np.random.default_rng(seed), "eta-log-uniform")  # fmt: skip
    strategy = configs(claim=claim, **fixed_typed)
    state: dict[str, Any] = {"tried": 0, "shrink": 0, "diverged": 0, "failing": None}
    bar = _bar(max_examples, progress, claim.id)

    def body(config: SimConfig) -> None:
        record = claim.check(config, np.random.default_rng(0))
        if record.diverged:
            state["diverged"] += 1
            raise Reject
        if state["failing"] is None:
            state["tried"] += 1
            bar.update(1)
        else:
            state["shrink"] += 1
            bar.set_postfix_str(f"shrinking the counterexample ({state['shrink']} tried)")
        if record.failed():
            if state["failing"] is None:
                bar.set_description(f"{claim.id}: counterexample found")
            state["failing"] = record
            raise _Fails

    empty = (
        f"claim {claim.id!r}: the search space is empty: no configuration of its space with "
        "these --set values passes validation and the claim's hypotheses"
    )
    try:
        run_search(strategy, body, max_examples, seed, empty)
    except _Fails:
        pass
    finally:
        bar.close()
    record = state["failing"]
    if record is None and state["tried"] == 0:
        raise ClaimError(
            f"claim {claim.id!r}: the search space is empty: every drawn configuration diverged "
            "or was rejected"
        )
    return SearchResult(
        claim.id, record is None, state["tried"], state["shrink"], state["diverged"],
        None if record is None else record.config,
        [] if record is None else record.failed(),
        {} if record is None else dict(record.extra.get("failing_values", {})),
        record, seed, max_examples, claim.default,
    )  # fmt: skip


def _bar(total: int, enabled: bool, name: str) -> Any:
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=f"{name}: searching", unit="example", disable=not enabled,
                leave=False)  # fmt: skip


__all__ = ["INSTALL_HINT", "SearchResult", "fixed_values", "property_search", "require_hypothesis"]
