"""The sweep driver: run (or resume) a sweep of any kind into a folder.

:func:`run_sweep` computes the chunks that have no valid shard yet on a backend
(:mod:`feddistort.sweep.backends`), writes each as it finishes (:mod:`feddistort.sweep.shards`),
retries failing chunks and, when every chunk is done, gathers the shards in chunk order
(:mod:`feddistort.sweep.assembly`), so the result does not depend on the backend or on the
number of workers. Shards stay on disk: the driver holds which chunks are done, never their
rows, and the assembly streams them one at a time.

Layout of the output folder::

    .sweep.lock     the running sweep's pid and host (a second sweep on the folder is refused)
    spec.json       the sweep specification (refused if a different one is already there)
    shards/         <key>.parquet + <key>.json per finished chunk
    results.parquet every shard, in configuration order (written when no chunk failed;
                    results.csv with result_format="csv")
    failures.json   chunks that failed every attempt, with their configurations
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from feddistort.sweep.assembly import RESULT_NAMES, assemble, check_format
from feddistort.sweep.backends import check_backend, run_tasks
from feddistort.sweep.lock import sweep_lock
from feddistort.sweep.shards import read_shard, shard_path, write_shard
from feddistort.sweep.spec import SweepSpec, make_tasks
from feddistort.sweep.tasks import ChunkTask, Compute, SweepJob, attempt_chunk, compute_chunk
from feddistort_io import atomic_write_json, remove_stale_temporaries
from synthetic.config import ConfigError


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
        The results file when every chunk is done.
    rows : int
        Rows of the results file (0 when it was not written).
    """

    chunks: int
    reused: int = 0
    computed: int = 0
    failed: dict[int, str] = field(default_factory=dict)
    results: Path | None = None
    rows: int = 0

    @property
    def size(self) -> int:
        """Size of the results file in bytes (0 when it was not written)."""
        return self.results.stat().st_size if self.results is not None else 0


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


def _write_failures(path: Path, pending: list[ChunkTask], errors: dict[int, str]) -> None:
    atomic_write_json(
        path,
        [
            {"chunk": t.index, "key": t.key, "error": errors[t.index], "configs": list(t.configs)}
            for t in pending
        ],
    )


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
    notify: Callable[[str], None] | None = None,
    result_format: str = "parquet",
) -> SweepReport:
    """Run (or resume) a sweep into the folder ``out``.

    Parameters
    ----------
    spec : SweepJob
        A :class:`SweepSpec` or a sweep of another kind
        (:func:`feddistort.sweep.registry.job_from_mapping`).
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
        :func:`feddistort.sweep.tasks.compute_chunk` by default. Other kinds bring their own
        in their tasks.
    notify : callable, optional
        Receives notices (a stale lock taken over); default: printed on stderr.
    result_format : str
        ``parquet`` (``results.parquet``, default) or ``csv`` (``results.csv``); the shards
        are Parquet either way, so a finished sweep exports the other format in a rerun.

    Returns
    -------
    SweepReport

    Raises
    ------
    SweepLocked
        Another running sweep holds ``out`` (:mod:`feddistort.sweep.lock`).
    ConfigError
        Bad options, or ``out`` holds a different sweep.
    """
    if isinstance(retries, bool) or not isinstance(retries, int) or retries < 0:
        raise ConfigError(f"--retries {retries!r} is invalid: expected an integer >= 0")
    check_backend(backend, workers, scheduler)
    check_format(result_format)
    root = Path(out)
    tasks = make_tasks(spec, compute) if isinstance(spec, SweepSpec) else spec.tasks(root)
    root.mkdir(parents=True, exist_ok=True)
    with sweep_lock(root, notify or _print_notice):
        _check_spec_file(root, spec)
        report = _run_locked(tasks, root, backend, workers, scheduler, retries, progress)
        if not report.failed:
            paths = [shard_path(root / "shards", t.key) for t in tasks]
            report.results, report.rows = assemble(root, paths, result_format)
        return report


def _print_notice(message: str) -> None:
    print(f"feddistort sweep: {message}", file=sys.stderr)


def _run_locked(
    tasks: list[ChunkTask],
    root: Path,
    backend: str,
    workers: int,
    scheduler: str | None,
    retries: int,
    progress: bool,
) -> SweepReport:
    """The body of :func:`run_sweep`, run while this process holds the folder's lock."""
    from tqdm.auto import tqdm

    shards = root / "shards"
    shards.mkdir(exist_ok=True)
    for stale in shards.glob(".*.tmp"):  # left by a killed run (we hold the lock)
        stale.unlink(missing_ok=True)
    for name in RESULT_NAMES:  # left by a killed results assembly
        remove_stale_temporaries(root, name)
    done = {task.index for task in tasks if read_shard(shards, task.key) is not None}
    report = SweepReport(chunks=len(tasks), reused=len(done))
    pending = [t for t in tasks if t.index not in done]
    errors: dict[int, str] = {}
    bar = tqdm(
        total=len(tasks), initial=len(done), desc="sweep", unit="chunk", disable=not progress
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
                if outcome.data is None:
                    errors[outcome.index] = str(outcome.error)
                    failed.append(by_index[outcome.index])
                    continue
                write_shard(shards, by_index[outcome.index].key, outcome.data)
                errors.pop(outcome.index, None)
                report.computed += 1
                bar.update(1)
            pending = sorted(failed, key=lambda t: t.index)
    finally:
        bar.close()
    report.failed = {t.index: errors[t.index] for t in pending}
    failures_path = root / "failures.json"
    if report.failed:
        _write_failures(failures_path, pending, errors)
        return report
    failures_path.unlink(missing_ok=True)
    return report


__all__ = ["SweepReport", "run_sweep"]
