"""Fine-tuning hyperparameters and the table of which of them each PFT method reads.

:func:`for_method` hands a method only the fields of :data:`METHOD_FIELDS` (the rest at their
neutral defaults), and refuses an option that modifies the training loss (``flood``) for a
method that would silently ignore it.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from synthetic.config import ConfigError
from synthetic.names import METHODS

Array = NDArray[np.float64]


@dataclass(frozen=True)
class Hyper:
    """Fine-tuning hyperparameters; arrays broadcast against the batch axes of (V, B).

    ``flood`` uses NaN for "no flooding". See :class:`synthetic.SimConfig` for meanings and
    :data:`METHOD_FIELDS` for the fields each method reads; the defaults are neutral (no
    ridge, no proximal or alignment penalty, every parameter trainable, no flooding).
    """

    eta: Array | float
    steps: int = 1
    loss_scale: float = 1.0
    ridge: Array | float = 0.0
    mu: Array | float = 0.0
    sparsity: Array | float = 1.0
    beta: Array | float = 0.0
    flood: Array | float = np.nan


# Which Hyper fields each method reads (``steps``/``loss_scale`` go with ``eta``). The others are
# reset to their neutral defaults before the method runs, so no method can read a field by
# accident. Each method's own knob (ridge, mu, sparsity, beta) is simply unused elsewhere;
# ``flood`` modifies the training loss, so a method that does not apply it refuses it.
_GD = ("eta", "steps", "loss_scale")
METHOD_FIELDS: dict[str, tuple[str, ...]] = {
    "ft": (*_GD, "flood"),
    "lp": ("ridge",),
    "lpft": ("ridge", *_GD, "flood"),
    "proximal": (*_GD, "mu"),
    "sparse": (*_GD, "sparsity"),
    "soup": _GD,
    "align": (*_GD, "beta"),
}
REFUSED_WHEN_UNUSED: tuple[str, ...] = ("flood",)  # options whose default (none) means "off"


def _is_set(name: str, value: Array | float) -> bool:
    """Whether option ``name`` is switched on anywhere in the batch (flood: not NaN)."""
    return bool(np.any(~np.isnan(_arr(value))))


def methods_using(name: str) -> tuple[str, ...]:
    """The methods that read hyperparameter ``name``."""
    return tuple(m for m, used in METHOD_FIELDS.items() if name in used)


def refusal(method: str, name: str) -> str:
    """Why ``method`` refuses option ``name``: the ``is invalid ...`` tail of the message."""
    return (
        f"is invalid with method {method!r}, which does not use {name}: expected {name}=none "
        f"or methods among {', '.join(methods_using(name))}"
    )


def for_method(method: str, hp: Hyper) -> Hyper:
    """The hyperparameters ``method`` reads, the others at their neutral defaults.

    Raises
    ------
    ConfigError
        Unknown method, or an option of :data:`REFUSED_WHEN_UNUSED` switched on for a method
        that ignores it (sparse with flooding, say).
    """
    if method not in METHOD_FIELDS:
        raise ConfigError(f"method={method!r} is invalid: expected one of {', '.join(METHODS)}")
    used = METHOD_FIELDS[method]
    for name in REFUSED_WHEN_UNUSED:
        value = getattr(hp, name)
        if name not in used and _is_set(name, value):
            raise ConfigError(f"{name}={_shown(value)} {refusal(method, name)}")
    return Hyper(**{"eta": 0.0, **{name: getattr(hp, name) for name in used}})


def _shown(value: Array | float) -> object:
    flat = _arr(value).ravel()
    first = flat[~np.isnan(flat)][0]
    return float(first)


def _arr(x: Array | float) -> Array:
    return np.asarray(x, dtype=float)


def expand(hp: Hyper) -> Hyper:
    """Add a trailing batch axis to array hyperparameters (for soup ingredients)."""
    changes: dict[str, object] = {
        f.name: _arr(getattr(hp, f.name))[..., None]
        for f in dataclasses.fields(hp)
        if f.name not in ("steps", "loss_scale")
    }
    return dataclasses.replace(hp, **changes)  # type: ignore[arg-type]


__all__ = [
    "METHOD_FIELDS",
    "REFUSED_WHEN_UNUSED",
    "Hyper",
    "expand",
    "for_method",
    "methods_using",
    "refusal",
]
