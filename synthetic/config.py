"""Configuration of one simulated problem, its global model and its fine-tuning.

One flat, frozen dataclass so that every field can be set from the command line
(``--set KEY=VALUE``) and written beside every result. Fields are grouped below:
problem, fine-tuning, global model (FedAvg) and evaluation.
"""

from __future__ import annotations

import dataclasses
import functools
import typing
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from synthetic._validation import COVARIATES, GLOBAL_MODELS, LOSSES, ConfigError, validate
from synthetic._validation import bad as _bad

__all__ = [
    "COVARIATES",
    "GLOBAL_MODELS",
    "LOSSES",
    "ConfigError",
    "SimConfig",
    "config_from_mapping",
    "field_names",
    "parse_assignment",
    "parse_grid",
    "parse_value",
]

MAX_GRID_POINTS = 1_000_000  # per --grid KEY=START:STOP:NUM; refused before anything is built


@dataclass(frozen=True)
class SimConfig:
    """Configuration of the two-layer linear model y = V^T B x on C clients.

    Parameters
    ----------
    d, m, C : int
        Input dimension, number of shared features, number of clients; k = m + C features and
        ``d >= k`` ([CLOSER] Sec. 4).
    lam : float
        Heterogeneity lambda >= 0: client heads V*_i = [V*_com; lam e_i].
    covariate : str
        Input geometry: ``isotropic`` (S_i = I, pure concept shift), ``own`` (mean e_i = u_i),
        ``shared`` (mean inside the shared feature rows), ``random`` (random unit mean),
        ``basis`` (standard basis vector), ``mix`` (between own and shared, see ``mix``),
        ``overlap`` (partial feature overlap with energy fraction ``rho`` in rowspace(B*)).
    mix : float
        For ``covariate='mix'``: e_i = cos(mix pi/2) u_i + sin(mix pi/2) s_i, in [0, 1].
    eps : float
        Input noise scale: x_i = e_i + eps z (covariate geometries) or added isotropic noise
        (``overlap``). Unused by ``isotropic``.
    rho : float
        For ``covariate='overlap'``: fraction in [0, 1] of each client's input energy that lies
        in rowspace(B*), shared by all clients; the rest lies in a private subspace.
    sigma : float
        Label-noise standard deviation (finite samples only; excluded from reported losses).
    n : int or None
        Samples per client; ``None`` uses exact population quantities.
    vcom_norm : float
        ||V*_com||; its direction is random. s = 1 + vcom_norm^2 in [CLOSER] Thm 4.4.
    loss : str
        ``mse`` (default, L = r^T S r) or ``half_mse`` (L = r^T S r / 2); step-size conditions
        differ by a factor 2.
    eta, steps : float, int
        Fine-tuning step size and number of full-batch gradient steps (1 as in the theory).
    client : int or None
        The fine-tuning client (0-based); ``None`` fine-tunes every client, one row each.
    seed : int
        Seed of all random draws of this configuration.
    ridge : float
        Ridge penalty of linear probing (``lp``, ``lpft``); 0 gives the minimum-norm solution.
    mu : float
        Proximal penalty mu/2 ||theta - theta_0||^2 (``proximal``).
    sparsity : float
        Fraction in (0, 1] of parameters that ``sparse`` fine-tunes (top SNIP saliency).
    n_soup : int
        Number of fine-tuned ingredients averaged by ``soup``.
    beta : float
        Feature-alignment weight of ``align``: beta E_local ||B x - B_0 x||^2.
    flood : float or None
        Flood level b for ``ft`` and ``lpft`` (gradient ascent while the loss is below b); the
        other methods do not flood and refuse a level (:data:`synthetic.hyper.METHOD_FIELDS`).
    global_model : str
        ``ideal`` (B*, [V*_com; 0]) or ``fedavg`` (trained on the linear model).
    fed_rounds, fed_local_steps, fed_lr, fed_participation, fed_init_scale
        FedAvg rounds, local GD steps per round, learning rate, fraction of clients per round,
        and scale of the random initialization.
    n_mc : int
        Monte-Carlo draws per client for the cross-check estimate of the unsquared distortion
        Delta (metric ``delta_l2_mc``; the default ``delta_l2`` is exact).

    Notes
    -----
    Validation is the table of rules in :mod:`synthetic._validation` (types from the
    annotations, then ranges, then relations between fields).
    """

    # problem
    d: int = 12
    m: int = 3
    C: int = 4
    lam: float = 1.0
    covariate: str = "isotropic"
    mix: float = 0.5
    eps: float = 0.3
    rho: float = 0.5
    sigma: float = 0.0
    n: int | None = None
    vcom_norm: float = 1.0
    loss: str = "mse"
    # fine-tuning
    eta: float = 0.2
    steps: int = 1
    client: int | None = None
    seed: int = 0
    ridge: float = 0.0
    mu: float = 0.1
    sparsity: float = 0.1
    n_soup: int = 4
    beta: float = 1.0
    flood: float | None = None
    # global model
    global_model: str = "ideal"
    fed_rounds: int = 200
    fed_local_steps: int = 5
    fed_lr: float = 0.05
    fed_participation: float = 1.0
    fed_init_scale: float = 0.1
    # evaluation
    n_mc: int = 128

    def __post_init__(self) -> None:
        validate(self)

    @property
    def k(self) -> int:
        """Number of features k = m + C."""
        return self.m + self.C

    @property
    def private_dim(self) -> int:
        """Dimension of each client's private input subspace under ``overlap``: min(k, (d-k)//C)."""
        return min(self.k, (self.d - self.k) // self.C)

    @property
    def s(self) -> float:
        """The constant s = 1 + ||V*_com||^2 of [CLOSER] Theorem 4.4."""
        return 1.0 + self.vcom_norm**2

    @property
    def loss_scale(self) -> float:
        """Factor of the loss: 1 for ``mse``, 1/2 for ``half_mse``."""
        return 0.5 if self.loss == "half_mse" else 1.0

    def replace(self, **changes: Any) -> SimConfig:
        """Return a copy with some fields changed, validated again.

        Equal to ``dataclasses.replace(self, **changes)`` (same result, same first error), but
        only the changed fields' type and range rules run, with every relation between fields:
        the others held when ``self`` was built. A sweep builds one configuration per grid
        point this way, in the driver before any chunk starts (10,000 full validations took
        about 0.6 s there).

        Raises
        ------
        TypeError
            A name that is not a field.
        ConfigError
            A changed value breaks a rule.
        """
        names = field_names()
        unknown = sorted(set(changes) - set(names))
        if unknown:
            raise TypeError(f"SimConfig.replace() got an unexpected field {unknown[0]!r}")
        copy = object.__new__(type(self))
        # The fields only (nothing else an instance might hold); frozen blocks setattr only.
        copy.__dict__.update({name: getattr(self, name) for name in names} | changes)
        validate(copy, changes)
        return copy

    def to_dict(self) -> dict[str, Any]:
        """Return the fields as a JSON-serializable dict (every field is a scalar or None)."""
        return {name: getattr(self, name) for name in field_names()}


@functools.cache
def field_names() -> tuple[str, ...]:
    """Names of the configuration fields, in declaration order."""
    return tuple(f.name for f in dataclasses.fields(SimConfig))


def parse_value(name: str, text: str) -> Any:
    """Parse the string ``text`` as the value of field ``name``.

    Parameters
    ----------
    name : str
        A field of :class:`SimConfig`.
    text : str
        The value as typed on the command line; ``none`` stands for ``None``.

    Returns
    -------
    int, float, str or None
        The typed value.

    Raises
    ------
    ConfigError
        Unknown field or a value of the wrong type.
    """
    hints = typing.get_type_hints(SimConfig)
    if name not in hints:
        raise ConfigError(
            f"unknown configuration key {name!r}: expected one of {', '.join(field_names())}"
        )
    hint = hints[name]
    args = typing.get_args(hint)
    optional = type(None) in args
    base = next((a for a in args if a is not type(None)), hint) if args else hint
    text = text.strip()
    if optional and text.lower() in ("none", "null", ""):
        return None
    try:
        if base is int:
            as_float = float(text)
            if not as_float.is_integer():
                raise ValueError
            return int(as_float)
        if base is float:
            return float(text)
    except ValueError:
        kind = "an integer" if base is int else "a number"
        raise _bad(name, text, kind + (" or none" if optional else "")) from None
    return text


def config_from_mapping(values: Mapping[str, Any], base: SimConfig | None = None) -> SimConfig:
    """Build a validated configuration from ``values`` (strings are parsed by field type)."""
    parsed = {
        key: parse_value(key, value) if isinstance(value, str) else value
        for key, value in values.items()
    }
    unknown = sorted(set(parsed) - set(field_names()))
    if unknown:
        raise ConfigError(
            f"unknown configuration key {unknown[0]!r}: expected one of {', '.join(field_names())}"
        )
    return dataclasses.replace(base or SimConfig(), **parsed)


def parse_assignment(text: str, option: str) -> tuple[str, str]:
    """Split ``KEY=VALUE``; raise a ConfigError naming the option otherwise."""
    key, sep, value = text.partition("=")
    if not sep or not key.strip():
        raise ConfigError(f"{option} {text!r} is invalid: expected KEY=VALUE")
    return key.strip(), value.strip()


def parse_grid(text: str, option: str = "--grid") -> tuple[str, list[object]]:
    """Parse ``KEY=START:STOP:NUM`` (NUM evenly spaced values, inclusive) or ``KEY=a,b,c``.

    Parameters
    ----------
    text : str
        The grid as typed (``--grid`` value or ``KEY=`` plus a spec string).
    option : str
        Where the text came from, for error messages.

    Returns
    -------
    (str, list)
        The field name and its typed values.
    """
    import numpy as np

    key, value = parse_assignment(text, option)
    if key not in field_names():
        raise ConfigError(
            f"{option} key {key!r} is invalid: expected one of {', '.join(field_names())}"
        )
    if ":" in value:
        parts = value.split(":")
        try:
            if len(parts) != 3:
                raise ValueError
            start, stop, num = float(parts[0]), float(parts[1]), int(parts[2])
        except ValueError:
            raise ConfigError(
                f"{option} {text!r} is invalid: expected KEY=START:STOP:NUM with numbers and an "
                "integer NUM, or KEY=v1,v2,..."
            ) from None
        if not 1 <= num <= MAX_GRID_POINTS:
            raise ConfigError(
                f"{option} {text!r} is invalid: expected 1 <= NUM <= {MAX_GRID_POINTS:,} "
                "(each point is at least one configuration)"
            )
        points: list[object] = np.linspace(start, stop, num).tolist()
        if typing.get_type_hints(SimConfig)[key] in (float, float | None):
            return key, points  # float(repr(p)) == p: the same values, without a parse per point
        return key, [parse_value(key, repr(p)) for p in points]
    items = [v for v in value.split(",") if v.strip()]
    if not items:
        raise ConfigError(f"{option} {text!r} is invalid: expected at least one value")
    return key, [parse_value(key, v) for v in items]
