"""Hypothesis strategies that draw valid :class:`synthetic.SimConfig` configurations.

The only module of the library that imports hypothesis.

Use them in your own pytest files::

    from hypothesis import given
    from theory.strategies import configs

    @given(configs(steps=1))
    def test_something(config):
        ...

``configs(**overrides)`` draws over :data:`theory.space.DEFAULT_SPACE` (an override is a
fixed value, a ``(lo, hi)`` range, :func:`theory.log` ``(lo, hi)`` or a tuple of choices);
``configs(claim=c)`` draws over the claim's space from its default, and only configurations
meeting its hypotheses. Every draw passes SimConfig validation (invalid combinations are
rejected, not repaired). Floats are rounded to 4 significant digits so that a shrunk example
reads as a short ``--set`` line. The building blocks :func:`dims`, :func:`step_sizes`,
:func:`geometries`, :func:`losses` and :func:`samples` compose into your own strategies.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from hypothesis import assume
from hypothesis import strategies as st

from synthetic.config import ConfigError, SimConfig
from theory.declare import Claim, ClaimError
from theory.space import (
    D_EXTRA,
    DEFAULT_SPACE,
    GEOMETRY_FIELDS,
    LogRange,
    check_space,
    is_int_field,
    is_range,
    round4,
)


def entry(name: str, spec: Any) -> st.SearchStrategy[Any]:
    """The strategy of one space entry of field ``name`` (see the module docstring)."""
    if isinstance(spec, LogRange):
        lo, hi = math.log(spec.lo), math.log(spec.hi)
        return st.floats(lo, hi).map(lambda u: round4(math.exp(u), spec.lo, spec.hi))
    if is_range(spec):
        lo, hi = spec
        if is_int_field(name):
            return st.integers(int(math.ceil(lo)), int(math.floor(hi)))
        return st.floats(float(lo), float(hi)).map(lambda x: round4(x, float(lo), float(hi)))
    if isinstance(spec, tuple):
        return st.sampled_from(spec)
    return st.just(spec)


def dims(
    m: Any = DEFAULT_SPACE["m"], C: Any = DEFAULT_SPACE["C"], extra: tuple[int, int] = D_EXTRA
) -> st.SearchStrategy[dict[str, int]]:
    """``{"m", "C", "d"}`` with ``d = m + C + extra`` (always ``d >= k``)."""
    return st.tuples(entry("m", m), entry("C", C), entry("d", extra)).map(
        lambda t: {"m": t[0], "C": t[1], "d": t[0] + t[1] + t[2]}
    )


def step_sizes(lo: float = 0.01, hi: float = 1.0) -> st.SearchStrategy[float]:
    """Log-uniform step sizes in [lo, hi], 4 significant digits."""
    from theory.space import log

    return entry("eta", log(lo, hi))


def geometries(
    covariates: Sequence[str] = DEFAULT_SPACE["covariate"],
    eps: Any = DEFAULT_SPACE["eps"],
    mix: Any = DEFAULT_SPACE["mix"],
    rho: Any = (0.0, 1.0),
) -> st.SearchStrategy[dict[str, Any]]:
    """``{"covariate", ...}`` plus ``eps`` (not isotropic), ``mix`` (mix), ``rho`` (overlap)."""

    @st.composite
    def draw_geometry(draw: Any) -> dict[str, Any]:
        covariate = draw(st.sampled_from(tuple(covariates)))
        out: dict[str, Any] = {"covariate": covariate}
        if covariate != "isotropic":
            out["eps"] = draw(entry("eps", eps))
        if covariate == "mix":
            out["mix"] = draw(entry("mix", mix))
        if covariate == "overlap":
            out["rho"] = draw(entry("rho", rho))
        return out

    return draw_geometry()


def losses() -> st.SearchStrategy[str]:
    """``mse`` or ``half_mse``."""
    return st.sampled_from(("mse", "half_mse"))


def samples(lo: int = 1, hi: int = 40, population: bool = True) -> st.SearchStrategy[int | None]:
    """Samples per client in [lo, hi], or ``None`` (population losses) when ``population``."""
    finite = st.integers(lo, hi)
    return st.one_of(st.none(), finite) if population else finite


def configs(
    claim: Claim | None = None,
    space: Mapping[str, Any] | None = None,
    base: SimConfig | None = None,
    **overrides: Any,
) -> st.SearchStrategy[SimConfig]:
    """Valid configurations: ``base`` with the fields of the space drawn.

    Parameters
    ----------
    claim : Claim, optional
        Draw over its space, from its default, meeting its hypotheses.
    space : mapping, optional
        The space (default: the claim's, else :data:`theory.space.DEFAULT_SPACE`).
    base : SimConfig, optional
        Values of the fields not drawn (default: the claim's default, else ``SimConfig()``).
    **overrides
        Space entries that replace the space's (a plain value fixes the field).
    """
    full = dict(claim.space if claim is not None else DEFAULT_SPACE)
    full.update(check_space(space or {}, "space"))
    full.update(check_space(overrides, "configs()"))
    start = base or (claim.default if claim is not None else SimConfig())

    @st.composite
    def draw_config(draw: Any) -> SimConfig:
        values: dict[str, Any] = {}
        for name in ("m", "C"):
            if name in full:
                values[name] = draw(entry(name, full[name]))
        if "d" in full:
            values["d"] = draw(entry("d", full["d"]))
        else:
            k = values.get("m", start.m) + values.get("C", start.C)
            values["d"] = k + draw(entry("d", D_EXTRA))
        if "covariate" in full:
            spec = full["covariate"]
            covariates = spec if isinstance(spec, tuple) else (spec,)
            values.update(draw(geometries(covariates, full.get("eps", start.eps),
                                          full.get("mix", start.mix),
                                          full.get("rho", start.rho))))  # fmt: skip
        for name, spec in full.items():
            if name not in values and name not in GEOMETRY_FIELDS:
                values[name] = draw(entry(name, spec))
        try:
            config = start.replace(**values)
        except ConfigError:
            assume(False)
            raise  # unreachable: assume(False) rejects the draw
        if claim is not None:
            assume(not claim.unmet(config))
        return config

    return draw_config()


class Reject(Exception):
    """Raised by a search body to skip a draw (e.g. a diverged simulation)."""


def run_search(
    strategy: st.SearchStrategy[Any],
    body: Callable[[Any], None],
    max_examples: int,
    seed: int,
    empty_message: str,
) -> None:
    """Run ``body`` on draws of ``strategy`` with hypothesis: no database, fixed ``seed``.

    ``body`` raises to report a failure (hypothesis shrinks the draw and the exception of
    the minimal draw propagates) or :class:`Reject` to skip a draw. Raises
    :class:`theory.declare.ClaimError` with ``empty_message`` when no draw is valid.
    Hypothesis's storage (its cache of constants) goes to a temporary folder removed
    afterwards, so nothing is written to the caller's working directory.
    """
    import tempfile

    from hypothesis import HealthCheck, Phase, Verbosity, configuration, given, settings
    from hypothesis import seed as hyp_seed
    from hypothesis.errors import Unsatisfiable

    @hyp_seed(seed)
    @settings(
        max_examples=max_examples, database=None, deadline=None, derandomize=False,
        verbosity=Verbosity.quiet, print_blob=False, report_multiple_bugs=False,
        phases=(Phase.generate, Phase.shrink), suppress_health_check=list(HealthCheck),
    )  # fmt: skip
    @given(strategy)
    def search(value: Any) -> None:
        try:
            body(value)
        except Reject:
            assume(False)

    previous = getattr(configuration, "__hypothesis_home_directory", None)
    with tempfile.TemporaryDirectory(prefix="feddistort-hypothesis-") as storage:
        configuration.set_hypothesis_home_dir(storage)
        try:
            search()
        except Unsatisfiable:
            raise ClaimError(empty_message) from None
        finally:
            configuration.set_hypothesis_home_dir(previous)


__all__ = [
    "Reject",
    "run_search",
    "configs",
    "dims",
    "entry",
    "geometries",
    "losses",
    "samples",
    "step_sizes",
]
