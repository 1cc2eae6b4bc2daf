"""Resumable simulator sweeps: chunks of configurations, one checksummed shard per chunk.

A sweep is a :class:`SweepSpec` (base configuration, grid, seeds, methods, metrics, chunk
size). Its configurations (:func:`synthetic.simulation.expand_grid` order) are cut into
consecutive chunks; each chunk is simulated on a backend (:mod:`feddistort.sweep.backends`) and
written atomically as ``shards/<key>.csv`` with a sidecar ``shards/<key>.json`` holding its
row count and sha256. The key hashes the chunk's configurations, methods, metrics and the
package version, so a changed spec never reuses a shard. ``results.csv`` is the concatenation
of the shards in chunk order, byte for byte, so it does not depend on the backend or on the
number of workers.

Layout of the output folder::

    spec.json       the sweep specification (refused if a different one is already there)
    shards/         <key>.csv + <key>.json per finished chunk
    results.csv     every shard, in configuration order (written when no chunk failed)
    failures.json   chunks that failed every attempt, with their configurations
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from feddistort.sweep.backends import check_backend, run_tasks
from feddistort_io import atomic_write_json, atomic_write_text
from synthetic.config import ConfigError, SimConfig, config_from_mapping, field_names, parse_value
from synthetic.methods import METHODS
from synthetic.metrics import DEFAULT_METRICS, METRICS
from synthetic.simulation import check_methods, expand_grid

SPEC_KEYS: tuple[str, ...] = ("kind", "base", "grid", "seeds", "methods", "metrics", "chunk")
DEFAULT_CHUNK = 64

Compute = Callable[[Sequence[Mapping[str, Any]], Sequence[str], Sequence[str]], str]


def _version() -> str:
    from feddistort_io import __version__

    return __version__


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


def _positive_int(value: object, name: str) -> int:
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
        _positive_int(self.seeds, "seeds")
        _positive_int(self.chunk, "chunk")
        check_methods(self.methods)
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
            "version": _version(),
        }


def _grid_values(key: str, values: object) -> list[Any]:
    from synthetic.cli import parse_grid

    if isinstance(values, str):
        return parse_grid(f"{key}={values}")[1]
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


class SweepJob(Protocol):
    """What :func:`run_sweep` needs from a sweep of any kind (:class:`SweepSpec` is one)."""

    def tasks(self, out: Path) -> list[ChunkTask]:
        """The chunks, in result order; ``out`` is the sweep folder (for per-chunk work)."""
        ...

    def label(self, config: Mapping[str, Any]) -> str:
        """A short description of one configuration of a chunk (for failure reports)."""
        ...

    def to_dict(self) -> dict[str, Any]:
        """The JSON written to ``spec.json`` (must include ``kind`` and the version)."""
        ...


JobParser = Callable[[Mapping[str, Any]], SweepJob]


def _kind_parsers() -> dict[str, JobParser]:
    """The explicit table of sweep kinds: ``simulate`` here, the others in the kinds module."""
    from feddistort.sweep.kinds import KIND_PARSERS

    return {"simulate": spec_from_mapping, **KIND_PARSERS}


def kind_names() -> tuple[str, ...]:
    """The sweep kinds: ``simulate``, ``theory`` and ``experiment``."""
    return tuple(_kind_parsers())


def job_from_mapping(values: object) -> SweepJob:
    """Build a validated sweep of the kind named by ``values['kind']`` (default ``simulate``).

    Parameters
    ----------
    values : object
        Parsed JSON; ``simulate`` specs go to :func:`spec_from_mapping`, other kinds to the
        parser of its kind (:data:`feddistort.sweep.kinds.KIND_PARSERS`).

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
    parsers = _kind_parsers()
    if not isinstance(kind, str) or kind not in parsers:
        raise ConfigError(f"kind={kind!r} is invalid: expected one of {', '.join(parsers)}")
    return parsers[kind](values)


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
            f"kind={values['kind']!r} is invalid: expected 'simulate' here "
            f"(sweep kinds: {', '.join(kind_names())})"
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
    return SweepSpec(
        base=base,
        grid=grid,
        seeds=_positive_int(values.get("seeds", 1), "seeds"),
        methods=parse_names(values.get("methods", list(METHODS)), "methods", (*METHODS, "global")),
        metrics=parse_names(values.get("metrics", list(DEFAULT_METRICS)), "metrics", METRICS),
        chunk=_positive_int(values.get("chunk", DEFAULT_CHUNK), "chunk"),
    )


def compute_chunk(
    configs: Sequence[Mapping[str, Any]], methods: Sequence[str], metrics: Sequence[str]
) -> str:
    """Simulate one chunk and return its tidy table as CSV text (the shard's content).

    Parameters
    ----------
    configs : sequence of mapping
        :meth:`SimConfig.to_dict` of each configuration of the chunk.
    methods, metrics : sequence of str

    Returns
    -------
    str
        ``simulate(...).to_csv(index=False)``: floats are written with ``repr`` precision, so
        the text round-trips exactly.
    """
    from synthetic.simulation import simulate

    frame = simulate([SimConfig(**c) for c in configs], methods, metrics=metrics)
    return frame.to_csv(index=False)


@dataclass(frozen=True)
class ChunkTask:
    """One chunk to compute: position, shard key and the inputs of :func:`compute_chunk`."""

    index: int
    key: str
    configs: tuple[dict[str, Any], ...]
    methods: tuple[str, ...]
    metrics: tuple[str, ...]
    compute: Compute = compute_chunk


@dataclass(frozen=True)
class ChunkOutcome:
    """Result of one attempt: the CSV text, or the error message."""

    index: int
    text: str | None
    error: str | None


def attempt_chunk(task: ChunkTask) -> ChunkOutcome:
    """Run a task and catch its error, so that one failing chunk does not stop the others."""
    try:
        return ChunkOutcome(
            task.index, task.compute(task.configs, task.methods, task.metrics), None
        )
    except Exception as err:  # reported with the chunk's configurations
        return ChunkOutcome(task.index, None, f"{type(err).__name__}: {err}")


def chunk_key(
    configs: Sequence[Mapping[str, Any]],
    methods: Sequence[str],
    metrics: Sequence[str],
    kind: str = "simulate",
) -> str:
    """The shard key: sha256 (first 24 hex digits) of configurations, methods, metrics, version.

    ``kind`` enters the hash for kinds other than ``simulate`` (whose keys it leaves as they
    were), so two kinds never share a shard.
    """
    payload: dict[str, Any] = {
        "configs": list(configs),
        "methods": list(methods),
        "metrics": list(metrics),
        "version": _version(),
    }
    if kind != "simulate":
        payload["kind"] = kind
    text = json.dumps(payload, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:24]


def make_tasks(spec: SweepSpec, compute: Compute = compute_chunk) -> list[ChunkTask]:
    """Cut the configurations of ``spec`` into consecutive chunks of ``spec.chunk``."""
    dicts = [c.to_dict() for c in spec.configs()]
    tasks = []
    for index, start in enumerate(range(0, len(dicts), spec.chunk)):
        chunk = tuple(dicts[start : start + spec.chunk])
        key = chunk_key(chunk, spec.methods, spec.metrics)
        tasks.append(ChunkTask(index, key, chunk, spec.methods, spec.metrics, compute))
    return tasks


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def write_shard(folder: Path, key: str, text: str) -> None:
    """Write ``<key>.csv`` then its sidecar ``<key>.json`` (rows, sha256), both atomically.

    The sidecar is written last: a shard without a valid sidecar is not finished.
    """
    atomic_write_text(folder / f"{key}.csv", text)
    rows = text.count("\n") - 1
    atomic_write_json(
        folder / f"{key}.json", {"key": key, "rows": rows, "sha256": _sha256(text.encode())}
    )


def read_shard(folder: Path, key: str) -> str | None:
    """The text of a finished shard, or None when it is missing, incomplete or corrupted."""
    try:
        data = (folder / f"{key}.csv").read_bytes()
        meta = json.loads((folder / f"{key}.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(meta, dict) or meta.get("sha256") != _sha256(data):
        return None
    text = data.decode("utf-8")
    if meta.get("rows") != text.count("\n") - 1:
        return None
    return text


@dataclass
class SweepReport:
    """What a sweep did.

    Parameters
    ----------
    chunks : int
        Number of chunks of the spec.
    reused : int
        Chunks whose shard was already on disk and valid.
    computed : int
        Chunks computed in this run.
    failed : dict of int to str
        Chunk index to the last error, for chunks that failed every attempt.
    results : Path or None
        ``results.csv`` when every chunk is done.
    """

    chunks: int
    reused: int = 0
    computed: int = 0
    failed: dict[int, str] = field(default_factory=dict)
    results: Path | None = None


def _check_spec_file(out: Path, spec: SweepJob) -> None:
    path = out / "spec.json"
    current = json.loads(json.dumps(spec.to_dict()))
    if path.exists():
        try:
            previous = json.loads(path.read_text(encoding="utf-8"))
        except ValueError:
            previous = None
        if previous != current:
            raise ConfigError(
                f"--out {str(out)!r} is invalid: it holds a different sweep (spec.json differs "
                "from this spec or version); expected a new folder or the same spec to resume"
            )
    else:
        atomic_write_json(path, current)


def run_sweep(
    spec: SweepJob,
    out: str | os.PathLike[str],
    *,
    backend: str = "loky",
    workers: int = 1,
    scheduler: str | None = None,
    retries: int = 2,
    progress: bool = False,
    compute: Compute = compute_chunk,
) -> SweepReport:
    """Run (or resume) a sweep into the folder ``out``.

    Parameters
    ----------
    spec : SweepJob
        A :class:`SweepSpec` or a sweep of a registered kind (:func:`job_from_mapping`).
    out : path
        Output folder (see the module docstring for its layout).
    backend, workers, scheduler
        Where chunks run (:func:`feddistort.sweep.backends.run_tasks`).
    retries : int
        Extra attempts for a failing chunk (>= 0); other chunks finish meanwhile.
    progress : bool
        tqdm bar over chunks.
    compute : callable
        Chunk function (module-level, picklable) of a :class:`SweepSpec`;
        :func:`compute_chunk` by default. Other kinds bring their own in their tasks.

    Returns
    -------
    SweepReport
    """
    from tqdm.auto import tqdm

    if isinstance(retries, bool) or not isinstance(retries, int) or retries < 0:
        raise ConfigError(f"--retries {retries!r} is invalid: expected an integer >= 0")
    check_backend(backend, workers, scheduler)
    root = Path(out)
    tasks = make_tasks(spec, compute) if isinstance(spec, SweepSpec) else spec.tasks(root)
    shards = root / "shards"
    shards.mkdir(parents=True, exist_ok=True)
    _check_spec_file(root, spec)
    for stale in shards.glob(".*.tmp"):  # left by a killed run
        stale.unlink(missing_ok=True)
    texts: dict[int, str] = {}
    for task in tasks:
        text = read_shard(shards, task.key)
        if text is not None:
            texts[task.index] = text
    report = SweepReport(chunks=len(tasks), reused=len(texts))
    pending = [t for t in tasks if t.index not in texts]
    errors: dict[int, str] = {}
    bar = tqdm(
        total=len(tasks), initial=len(texts), desc="sweep", unit="chunk", disable=not progress
    )
    try:
        for _ in range(retries + 1):
            if not pending:
                break
            by_index = {t.index: t for t in pending}
            failed: list[ChunkTask] = []
            for outcome in run_tasks(
                attempt_chunk, pending, backend=backend, workers=workers, scheduler=scheduler
            ):
                if outcome.text is None:
                    errors[outcome.index] = str(outcome.error)
                    failed.append(by_index[outcome.index])
                    continue
                write_shard(shards, by_index[outcome.index].key, outcome.text)
                texts[outcome.index] = outcome.text
                errors.pop(outcome.index, None)
                report.computed += 1
                bar.update(1)
            pending = sorted(failed, key=lambda t: t.index)
    finally:
        bar.close()
    report.failed = {t.index: errors[t.index] for t in pending}
    failures_path = root / "failures.json"
    if report.failed:
        atomic_write_json(
            failures_path,
            [
                {
                    "chunk": t.index,
                    "key": t.key,
                    "error": errors[t.index],
                    "configs": list(t.configs),
                }
                for t in pending
            ],
        )
        return report
    failures_path.unlink(missing_ok=True)
    report.results = assemble(root, [texts[t.index] for t in tasks])
    return report


def assemble(out: Path, texts: Sequence[str]) -> Path:
    """Concatenate shard texts (one header) into ``out/results.csv``, atomically.

    Raises
    ------
    ConfigError
        When shards disagree on their header (they come from different specs).
    """
    header = texts[0].split("\n", 1)[0]
    body: list[str] = [header + "\n"]
    for text in texts:
        head, _, rest = text.partition("\n")
        if head != header:
            raise ConfigError(f"shard header {head!r} is invalid: expected {header!r}")
        body.append(rest)
    return atomic_write_text(out / "results.csv", "".join(body))


__all__ = [
    "DEFAULT_CHUNK",
    "SPEC_KEYS",
    "ChunkOutcome",
    "ChunkTask",
    "SweepReport",
    "SweepJob",
    "SweepSpec",
    "assemble",
    "attempt_chunk",
    "chunk_key",
    "compute_chunk",
    "job_from_mapping",
    "kind_names",
    "make_tasks",
    "parse_names",
    "read_shard",
    "run_sweep",
    "spec_from_mapping",
    "write_shard",
]
