"""The explicit table of sweep kinds and :func:`job_from_mapping`, which reads any of them.

``simulate`` is :func:`feddistort.sweep.spec.spec_from_mapping`; ``theory`` and ``experiment``
come from :mod:`feddistort.sweep.kinds`. Nothing registers itself on import: this table is the
one list, and the command and the library both read it here.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from feddistort.sweep.kinds import experiment_from_mapping, theory_from_mapping
from feddistort.sweep.spec import spec_from_mapping
from feddistort.sweep.tasks import SweepJob
from synthetic.config import ConfigError

JobParser = Callable[[Mapping[str, Any]], SweepJob]

# Kind name -> the parser of its spec (explicit; nothing registers itself on import).
KINDS: dict[str, JobParser] = {
    "simulate": spec_from_mapping,
    "theory": theory_from_mapping,
    "experiment": experiment_from_mapping,
}


def kind_names() -> tuple[str, ...]:
    """The sweep kinds: ``simulate``, ``theory`` and ``experiment``."""
    return tuple(KINDS)


def job_from_mapping(values: object) -> SweepJob:
    """Build a validated sweep of the kind named by ``values['kind']`` (default ``simulate``).

    Parameters
    ----------
    values : object
        Parsed JSON; the parser of its kind (:data:`KINDS`) reads it.

    Returns
    -------
    SweepJob

    Raises
    ------
    ConfigError
        Not a mapping, unknown kind, or anything the kind's parser refuses.
    """
    if not isinstance(values, Mapping):
        raise ConfigError(f"sweep spec {values!r} is invalid: expected a JSON object")
    kind = values.get("kind", "simulate")
    if not isinstance(kind, str) or kind not in KINDS:
        raise ConfigError(f"kind={kind!r} is invalid: expected one of {', '.join(KINDS)}")
    return KINDS[kind](values)


__all__ = ["KINDS", "JobParser", "job_from_mapping", "kind_names"]
