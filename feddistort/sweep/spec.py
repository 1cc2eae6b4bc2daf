"""What a simulator sweep computes: :class:`SweepSpec`, its JSON form and its chunks.

A spec is the base configuration, a grid, seeds, methods, metrics and a chunk size. Its
configurations (:func:`synthetic.simulation.expand_grid` order) are cut into consecutive chunks
(:func:`make_tasks`), each named by :func:`feddistort.sweep.tasks.chunk_key`. Where the chunks
run is not part of the spec.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from feddistort.sweep.tasks import ChunkTask, Compute, chunk_key, compute_chunk, package_version
from synthetic.config import ConfigError, SimConfig, config_from_mapping, field_names, parse_value
from synthetic.names import DEFAULT_METRICS, GLOBAL_METHOD, METHODS, METRICS

SPEC_KEYS: tuple[str, ...] = ("kind", "base", "grid", "seeds", "methods", "metrics", "chunk")
DEFAULT_CHUNK = 64


def parse_names(
    value: object, name: str, allowed: Sequence[str], *, distinct: bool = False
) -> tuple[str, ...]:
    """Names from a list of str or a comma-separated str, each in ``allowed``.

    Parameters
    ----------
    value : object
        A list/tuple of str or a comma-separated str.
    name : str
        The spec key, for error messages.
    allowed : sequence of str
    distinct : bool
        Also refuse repeated names.

    Returns
    -------
    tuple of str

    Raises
    ------
    ConfigError
        Wrong type, no names, a name not in ``allowed`` or (with ``distinct``) a repeat.
    """
    if isinstance(value, str):
        items = [v.strip() for v in value.split(",") if v.strip()]
    elif isinstance(value, (list, tuple)) and all(isinstance(v, str) for v in value):
        items = [v.strip() for v in value]
    else:
        raise ConfigError(
            f"{name}={value!r} is invalid: expected a list of names among {', '.join(allowed)}"
        )
    if not items:
        raise ConfigError(
            f"{name}={value!r} is invalid: expected at least one of {', '.join(allowed)}"
        )
    for item in items:
        if item not in allowed:
            raise ConfigError(f"{name}={item!r} is invalid: expected one of {', '.join(allowed)}")
    if distinct and len(set(items)) != len(items):
        raise ConfigError(f"{name}={value!r} is invalid: expected distinct names")
    return tuple(items)


def positive_int(value: object, name: str) -> int:
    """``value`` if it is an integer >= 1 (not a bool), else a ConfigError naming ``name``."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ConfigError(f"{name}={value!r} is invalid: expected an integer >= 1")
    return value


@dataclass(frozen=True)
class SweepSpec:
    """What a simulator sweep computes (not where: the backend is not part of the spec).

    Parameters
    ----------
    base : SimConfig
        Values of the fields that the grid does not vary; seeds run from ``base.seed``.
    grid : dict of str to list
        Field name to its values; the grids are crossed (:func:`expand_grid`).
    seeds : int
        Seeds per grid point (>= 1).
    methods, metrics : tuple of str
        Passed to :func:`synthetic.simulation.simulate`.
    chunk : int
        Configurations per chunk (one shard each, >= 1).
    """

    base: SimConfig = field(default_factory=SimConfig)
    grid: dict[str, list[Any]] = field(default_factory=dict)
    seeds: int = 1
    methods: tuple[str, ...] = METHODS
    metrics: tuple[str, ...] = DEFAULT_METRICS
    chunk: int = DEFAULT_CHUNK

    def __post_init__(self) -> None:
        positive_int(self.seeds, "seeds")
        positive_int(self.chunk, "chunk")
        parse_names(list(self.methods), "methods", (*METHODS, GLOBAL_METHOD))
        parse_names(list(self.metrics), "metrics", METRICS)
        unknown = sorted(set(self.grid) - set(field_names()))
        if unknown:
            raise ConfigError(
                f"grid key {unknown[0]!r} is invalid: expected one of {', '.join(field_names())}"
            )
        for key, values in self.grid.items():
            if not isinstance(values, list) or not values:
                raise ConfigError(f"grid[{key!r}]={values!r} is invalid: expected a non-empty list")

    def configs(self) -> list[SimConfig]:
        """Every configuration of the sweep, seeds fastest (validated)."""
        from synthetic.simulation import expand_grid

        return expand_grid(self.base, self.grid, self.seeds)

    def tasks(self, out: Path) -> list[ChunkTask]:
        """The chunks of this sweep (:func:`make_tasks`; ``out`` is not used)."""
        return make_tasks(self)

    def label(self, config: Mapping[str, Any]) -> str:
        """The grid fields and seed of one configuration, for error messages."""
        return " ".join(f"{k}={config[k]}" for k in [*self.grid, "seed"])

    def to_dict(self) -> dict[str, Any]:
        """JSON form (``spec.json``), with the package version that computed it."""
        return {
            "kind": "simulate",
            "base": self.base.to_dict(),
            "grid": self.grid,
            "seeds": self.seeds,
            "methods": list(self.methods),
            "metrics": list(self.metrics),
            "chunk": self.chunk,
            "version": package_version(),
        }


def make_tasks(spec: SweepSpec, compute: Compute = compute_chunk) -> list[ChunkTask]:
    """Cut the configurations of ``spec`` into consecutive chunks of ``spec.chunk``."""
    dicts = [c.to_dict() for c in spec.configs()]
    tasks = []
    for index, start in enumerate(range(0, len(dicts), spec.chunk)):
        chunk = tuple(dicts[start : start + spec.chunk])
        key = chunk_key(chunk, spec.methods, spec.metrics)
        tasks.append(ChunkTask(index, key, chunk, spec.methods, spec.metrics, compute))
    return tasks


def _grid_values(key: str, values: object) -> list[Any]:
    from synthetic.config import parse_grid

    if isinstance(values, str):
        return parse_grid(f"{key}={values}", option="grid")[1]
    if not isinstance(values, list) or not values:
        raise ConfigError(
            f"grid[{key!r}]={values!r} is invalid: expected a non-empty list of values or a "
            "string 'START:STOP:NUM' / 'a,b,c'"
        )
    out: list[Any] = []
    for value in values:
        if isinstance(value, str):
            out.append(parse_value(key, value))
        elif value is None or isinstance(value, (int, float)):
            out.append(value)
        else:
            raise ConfigError(f"grid[{key!r}] value {value!r} is invalid: expected a scalar")
    return out


def spec_from_mapping(values: object) -> SweepSpec:
    """Build a validated :class:`SweepSpec` from parsed JSON.

    Parameters
    ----------
    values : object
        A mapping with keys among :data:`SPEC_KEYS` (plus ``version``, ignored): ``base`` a
        mapping of configuration fields, ``grid`` a mapping of field to a list of values or a
        ``'START:STOP:NUM'`` / ``'a,b,c'`` string, ``seeds`` and ``chunk`` integers,
        ``methods`` and ``metrics`` lists of names.

    Returns
    -------
    SweepSpec

    Raises
    ------
    ConfigError
        Anything malformed; the message names the key, the value and what is expected.
    """
    if not isinstance(values, Mapping):
        raise ConfigError(f"sweep spec {values!r} is invalid: expected a JSON object")
    unknown = sorted(str(k) for k in values if k not in (*SPEC_KEYS, "version"))
    if unknown:
        raise ConfigError(
            f"sweep spec key {unknown[0]!r} is invalid: expected one of {', '.join(SPEC_KEYS)}"
        )
    if values.get("kind", "simulate") != "simulate":
        raise ConfigError(
            f"kind={values['kind']!r} is invalid: expected 'simulate' here (the other kinds "
            "are read by feddistort.sweep.registry.job_from_mapping)"
        )
    base_values = values.get("base", {})
    grid_values = values.get("grid", {})
    for name, value in (("base", base_values), ("grid", grid_values)):
        if not isinstance(value, Mapping):
            raise ConfigError(f"{name}={value!r} is invalid: expected a JSON object")
    for key, value in base_values.items():
        if value is not None and not isinstance(value, (str, int, float)):
            raise ConfigError(f"base[{key!r}]={value!r} is invalid: expected a scalar")
    base = config_from_mapping(base_values)
    grid: dict[str, list[Any]] = {}
    for key, value in grid_values.items():
        if key not in field_names():
            raise ConfigError(
                f"grid key {key!r} is invalid: expected one of {', '.join(field_names())}"
            )
        grid[key] = _grid_values(key, value)
    methods = values.get("methods", list(METHODS))
    return SweepSpec(
        base=base,
        grid=grid,
        seeds=positive_int(values.get("seeds", 1), "seeds"),
        methods=parse_names(methods, "methods", (*METHODS, GLOBAL_METHOD)),
        metrics=parse_names(values.get("metrics", list(DEFAULT_METRICS)), "metrics", METRICS),
        chunk=positive_int(values.get("chunk", DEFAULT_CHUNK), "chunk"),
    )


__all__ = [
    "DEFAULT_CHUNK",
    "SPEC_KEYS",
    "SweepSpec",
    "make_tasks",
    "parse_names",
    "positive_int",
    "spec_from_mapping",
]
