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
found by ``MODULE:NAME`` (:func:`theory.resolve.resolve_claim`). Search spaces are in
:mod:`theory.space`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from synthetic.config import ConfigError, SimConfig
from synthetic.names import DEFAULT_METRICS, GLOBAL_METHOD, METHODS, METRICS
from theory.records import CheckRecord, compare, diverged_record
from theory.space import DEFAULT_SPACE, check_space

#: Name of a user's claim among a record's verdicts (the exit-code rule names it).
USER_CLAIM = "user's claim"
#: Methods a claim reads when it does not say (the starting model and the three main methods).
DEFAULT_METHODS: tuple[str, ...] = (GLOBAL_METHOD, "ft", "lp", "lpft")


class ClaimError(ConfigError):
    """A claim that cannot be used: not found, raises, or returns a non-boolean (exit 2)."""


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
        Field -> ``(lo, hi)``, :func:`theory.space.log` ``(lo, hi)``, choices, or a fixed value.
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
        if self.full_check:
            return dict(self.closed_form(config))
        try:
            out = self.closed_form(config)
            return {f"{metric}_{method}": np.asarray(v, float)
                    for (method, metric), v in out.items()}  # fmt: skip
        except Exception as err:  # a user's closed form: one line (exit 2)
            raise ClaimError(
                f"claim {self.id!r}: closed_form raised {type(err).__name__}: {err}; expected "
                "{(method, metric): per-client values}"
            ) from err

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

    def unmet(self, config: SimConfig) -> list[str]:
        """The claim's unmet hypotheses on ``config``, validated.

        A user's function that raises, or returns anything but a list of strings, is a
        :class:`ClaimError`.
        """
        try:
            out = self.hypotheses(config)
        except Exception as err:
            raise ClaimError(
                f"claim {self.id!r}: hypotheses raised {type(err).__name__}: {err}"
            ) from err
        if not isinstance(out, list) or not all(isinstance(m, str) for m in out):
            raise ClaimError(
                f"claim {self.id!r}: hypotheses returned {out!r}: expected a list of strings, "
                "each an unmet hypothesis ([] when the claim applies)"
            )
        return out

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
    :data:`theory.space.DEFAULT_SPACE` (give a fixed value to stop searching a field).

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


__all__ = [
    "DEFAULT_METHODS",
    "USER_CLAIM",
    "Claim",
    "ClaimError",
    "claim",
    "describe",
]
