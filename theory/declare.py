"""Declare a claim about the two-layer linear model: the :func:`claim` decorator.

A claim is a statement about the simulated metrics of one configuration::

    @claim("lp-local-optimal", statement="LP's local loss is at most the global model's",
           methods=("global", "lp"), metrics=("local_loss",))
    def lp_local_optimal(r):
        return r["lp", "local_loss"] <= r["global", "local_loss"] + 1e-9

``r[method, metric]`` is an ndarray with one value per fine-tuning client (see
:class:`theory.results.Results`); the function returns a bool or a bool array, and every
entry must hold. ``@claim`` returns a :class:`Claim` and registers nothing: the toolkit's own
claims are listed in one explicit tuple (:data:`theory.claims.BUILTIN`), a user's claim is
found by ``MODULE:NAME`` (:func:`resolve_claim`).
"""

from __future__ import annotations

import functools
import importlib
import math
import os
import sys
import typing
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from synthetic.config import ConfigError, SimConfig, field_names
from synthetic.names import DEFAULT_METRICS, GLOBAL_METHOD, METHODS, METRICS
from theory.records import CheckRecord, compare, diverged_record

#: Name of a user's claim among a record's verdicts (the exit-code rule names it).
USER_CLAIM = "user's claim"
#: Methods a claim reads when it does not say (the starting model and the three main methods).
DEFAULT_METHODS: tuple[str, ...] = (GLOBAL_METHOD, "ft", "lp", "lpft")


class ClaimError(ConfigError):
    """A claim that cannot be used: not found, raises, or returns a non-boolean (exit 2)."""


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
    return out


@dataclass(frozen=True)
class Claim:
    """One executable statement about the two-layer linear model.

    Parameters
    ----------
    id : str
        Identifier, e.g. ``thm-4.4`` or ``lp-local-optimal``.
    statement : str
        One line: what is checked.
    function : callable
        ``r -> bool or bool array`` (a property of the metrics), or, when ``full_check``,
        ``(config, rng) -> CheckRecord`` (a check that runs its own simulation).
    methods, metrics : tuple of str
        What ``r`` offers (methods of :data:`synthetic.METHODS` and ``global``).
    hypotheses : callable
        ``config -> list of unmet hypotheses`` (empty: the claim applies).
    default : SimConfig
        The base configuration (``--set`` changes it; counterexamples print the difference).
    space : dict
        Field -> ``(lo, hi)``, :func:`log` ``(lo, hi)``, choices, or a fixed value.
    closed_form : callable or None
        ``config -> {(method, metric): predicted per-client values}`` compared with the
        simulator within ``atol + rtol * max |predicted|``; for a ``full_check`` claim,
        ``config -> dict`` of its closed-form quantities (``theory explain``).
    source, paper_conclusion : str
        Citation and the conclusion as the paper states it (empty for a user's claim).
    full_check : bool
        ``function`` is a complete check (the built-in claims, whose closed forms concern
        parameters and trajectories rather than per-client metrics).
    rtol, atol : float
        Tolerance of ``closed_form``.
    """

    id: str
    statement: str
    function: Callable[..., Any]
    methods: tuple[str, ...] = DEFAULT_METHODS
    metrics: tuple[str, ...] = DEFAULT_METRICS
    hypotheses: Callable[[SimConfig], list[str]] = field(default=lambda config: [])
    default: SimConfig = field(default_factory=SimConfig)
    space: dict[str, Any] = field(default_factory=lambda: dict(DEFAULT_SPACE))
    closed_form: Callable[[SimConfig], Any] | None = None
    source: str = ""
    paper_conclusion: str = ""
    full_check: bool = False
    rtol: float = 1e-9
    atol: float = 1e-11

    @property
    def name(self) -> str:
        """What the exit-code rule calls this claim's own verdict."""
        return "paper's conclusion" if self.paper_conclusion else USER_CLAIM

    def predict(self, config: SimConfig) -> dict[str, Any]:
        """Closed-form quantities on ``config`` (empty when the claim has no closed form)."""
        if self.closed_form is None:
            return {}
        out = self.closed_form(config)
        if self.full_check:
            return dict(out)
        return {f"{metric}_{method}": np.asarray(v, float) for (method, metric), v in out.items()}

    def check(
        self, config: SimConfig, rng: np.random.Generator | None, convention: str = "global"
    ) -> CheckRecord:
        """Check the claim (and its closed form, if any) on one configuration.

        ``convention="others"`` evaluates a user's claim with ``global_loss`` read over the
        other clients only (``global_loss_others``; the paper's empirical "Global").

        The caller verifies the hypotheses first (:func:`theory.claims.require_hypotheses`).
        A user's claim reports its verdict under the name ``user's claim``
        (:meth:`CheckRecord.verdicts`): as ``holds`` (``kind="user's claim"``) when the claim
        has no closed form, else in ``conclusions`` beside the closed form; the failing
        clients and values are in ``extra``. Raises :class:`ClaimError` when the function raises
        or returns anything but a bool or a bool array of one entry per client.
        """
        if self.full_check:
            return self.function(config, rng)
        from theory.results import evaluate

        r = evaluate(self, config, convention)
        if r.diverged:
            return diverged_record(self.id, config, "the simulation diverged (parameters "
                                   "beyond 1e100): nothing was checked")  # fmt: skip
        ok = self.verdict(r)
        predicted = self.predict(config)
        bad = ~ok
        failing = {f"{mt}.{me}": r[mt, me][bad] for mt in self.methods for me in self.metrics}
        extra = {"failing_clients": r.clients[bad], "failing_values": failing}
        if not predicted:
            return CheckRecord(self.id, bool(ok.all()), {}, {}, 0.0, 0.0, config, extra=extra,
                               kind=self.name)  # fmt: skip
        measured = {f"{me}_{mt}": r[mt, me] for (mt, me) in _pairs(predicted)}
        try:  # a scalar prediction applies to every fine-tuning client
            predicted = {k: np.broadcast_to(v, measured[k].shape) for k, v in predicted.items()}
        except ValueError:
            shapes = {k: np.shape(v) for k, v in predicted.items()}
            raise ClaimError(
                f"claim {self.id!r}: closed_form returned shapes {shapes}: expected "
                f"a scalar or one value per client, ({len(r.clients)},)"
            ) from None
        record = compare(self.id, config, predicted, measured, rtol=self.rtol, atol=self.atol)
        return replace(record, conclusions={self.name: bool(ok.all())}, extra=extra)

    def verdict(self, r: Any) -> np.ndarray:
        """The function's verdict per fine-tuning client, shape (P,), validated."""
        try:
            out = self.function(r)
        except ClaimError:
            raise
        except Exception as err:  # a user's function: report it in one line (exit 2)
            raise ClaimError(
                f"claim {self.id!r} raised {type(err).__name__}: {err} "
                f"(at {describe(r.config, self.default) or 'the default configuration'})"
            ) from err
        arr = np.asarray(out)
        if arr.dtype != np.bool_:
            raise ClaimError(
                f"claim {self.id!r} returned {type(out).__name__} of dtype {arr.dtype}: "
                "expected a bool or a bool array (compare with <=, not subtract)"
            )
        n = len(r.clients)
        if arr.shape not in ((), (n,)):
            raise ClaimError(
                f"claim {self.id!r} returned shape {arr.shape}: expected a bool or one bool per "
                f"fine-tuning client, shape ({n},)"
            )
        return np.broadcast_to(arr, (n,))


def _pairs(predicted: Mapping[str, Any]) -> list[tuple[str, str]]:
    """``{metric}_{method}`` keys back to (method, metric) (methods have no underscore)."""
    out = []
    for key in predicted:
        metric, _, method = key.rpartition("_")
        out.append((method, metric))
    return out


def claim(
    id: str,
    *,
    statement: str,
    methods: Sequence[str] = DEFAULT_METHODS,
    metrics: Sequence[str] = DEFAULT_METRICS,
    hypotheses: Callable[[SimConfig], list[str]] | None = None,
    default: SimConfig | None = None,
    space: Mapping[str, Any] | None = None,
    closed_form: Callable[[SimConfig], Any] | None = None,
    source: str = "",
    paper_conclusion: str = "",
    full_check: bool = False,
    rtol: float = 1e-9,
    atol: float = 1e-11,
) -> Callable[[Callable[..., Any]], Claim]:
    """Decorator: turn ``function(r) -> bool`` into a :class:`Claim` (registers nothing).

    Parameters are the fields of :class:`Claim`; ``space`` entries override
    :data:`DEFAULT_SPACE` (give a fixed value to stop searching a field).

    Examples
    --------
    >>> @claim("lp-local-optimal", statement="LP's local loss is at most the global model's",
    ...        methods=("global", "lp"), metrics=("local_loss",))
    ... def lp_local_optimal(r):
    ...     return r["lp", "local_loss"] <= r["global", "local_loss"] + 1e-9
    >>> lp_local_optimal.check(SimConfig(), None).failed()
    []
    """
    if not isinstance(id, str) or not id.strip():
        raise ConfigError(f"claim id {id!r} is invalid: expected a non-empty string")
    for method in methods:
        if method not in (*METHODS, GLOBAL_METHOD):
            raise ConfigError(
                f"claim {id!r}: method={method!r} is invalid: expected one of "
                f"{', '.join((*METHODS, GLOBAL_METHOD))}"
            )
    for metric in metrics:
        if metric not in METRICS:
            raise ConfigError(
                f"claim {id!r}: metric={metric!r} is invalid: expected one of {', '.join(METRICS)}"
            )
    full_space = {**DEFAULT_SPACE, **check_space(space or {}, f"claim {id!r}: space")}

    def wrap(function: Callable[..., Any]) -> Claim:
        if not callable(function):
            raise ConfigError(f"claim {id!r}: @claim decorates a function, not {function!r}")
        return Claim(
            id, statement, function, tuple(methods), tuple(metrics),
            hypotheses or (lambda config: []), default or SimConfig(), full_space,
            closed_form, source, paper_conclusion, full_check, rtol, atol,
        )  # fmt: skip

    return wrap


def describe(config: SimConfig, default: SimConfig | None = None) -> str:
    """``--set k=v --set k=v ...`` for the fields where ``config`` differs from ``default``."""
    base = (default or SimConfig()).to_dict()
    items = [f"--set {k}={_text(v)}" for k, v in config.to_dict().items() if base[k] != v]
    return " ".join(items)


def _text(value: Any) -> str:
    return "none" if value is None else repr(value) if isinstance(value, float) else str(value)


def resolve_claim(text: str) -> Claim:
    """A built-in claim id, or ``MODULE:NAME`` of a user's claim (module in the cwd or path).

    Raises
    ------
    ClaimError
        Unknown id, module or name, a module that fails to import, or an object that is not
        a :class:`Claim`; the message says which.
    """
    if ":" not in text:
        from theory.claims import get_claim

        return get_claim(text)
    module_name, _, attr = text.partition(":")
    if not module_name or not attr:
        raise ClaimError(f"claim {text!r} is invalid: expected a claim id or MODULE:NAME")
    cwd = os.getcwd()
    if cwd not in sys.path and "" not in sys.path:
        sys.path.insert(0, cwd)
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as err:
        if err.name is not None and module_name.startswith(err.name):
            raise ClaimError(
                f"claim {text!r}: module {module_name!r} not found (looked in the working "
                f"directory {cwd} and on sys.path)"
            ) from None
        raise ClaimError(f"claim {text!r}: importing {module_name!r} failed: {err}") from err
    except Exception as err:
        raise ClaimError(
            f"claim {text!r}: importing {module_name!r} raised {type(err).__name__}: {err}"
        ) from err
    if not hasattr(module, attr):
        raise ClaimError(f"claim {text!r}: module {module_name!r} has no attribute {attr!r}")
    found = getattr(module, attr)
    if not isinstance(found, Claim):
        raise ClaimError(
            f"claim {text!r} is a {type(found).__name__}, not a claim: expected a function "
            "decorated with @theory.claim(...)"
        )
    return found


__all__ = [
    "D_EXTRA",
    "DEFAULT_METHODS",
    "GEOMETRY_FIELDS",
    "DEFAULT_SPACE",
    "USER_CLAIM",
    "Claim",
    "ClaimError",
    "LogRange",
    "check_space",
    "claim",
    "describe",
    "is_int_field",
    "is_range",
    "log",
    "resolve_claim",
    "round4",
]
