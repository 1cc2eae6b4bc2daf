"""Run independent tasks on joblib (serial, loky), Dask distributed or Ray; yield as they finish.

The sweep engine (:mod:`feddistort.sweep.engine`) hands every backend the same picklable
function and
the same tasks; a backend only decides where the calls run. Nothing here schedules work itself:
joblib, Dask and Ray do. Results are yielded in completion order; the caller orders them.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Iterator, Sequence
from typing import Any, TypeVar

from synthetic.config import ConfigError

BACKENDS: tuple[str, ...] = ("serial", "loky", "dask", "ray")

T = TypeVar("T")
R = TypeVar("R")


def check_backend(backend: str, workers: int, scheduler: str | None) -> None:
    """Validate a backend choice before any work starts.

    Parameters
    ----------
    backend : str
        One of :data:`BACKENDS`.
    workers : int
        Local worker processes (ignored when ``scheduler`` points at an existing cluster).
    scheduler : str or None
        Address of an existing Dask scheduler or Ray cluster.

    Raises
    ------
    ConfigError
        Unknown backend, ``workers < 1``, a scheduler for a local backend, or a backend whose
        optional package is not installed.
    """
    if backend not in BACKENDS:
        raise ConfigError(
            f"--backend {backend!r} is invalid: expected one of {', '.join(BACKENDS)}"
        )
    if isinstance(workers, bool) or not isinstance(workers, int) or workers < 1:
        raise ConfigError(f"--workers {workers!r} is invalid: expected an integer >= 1")
    if scheduler is not None and backend in ("serial", "loky"):
        raise ConfigError(
            f"--scheduler {scheduler!r} is invalid with --backend {backend}: expected "
            "--backend dask or ray (an address is only used to reach an existing cluster)"
        )
    if backend == "dask":
        _require("dask.distributed", "dask", 'pip install "dask[distributed]"')
    if backend == "ray":
        _require("ray", "ray", 'pip install "feddistort[ray]"')


def _require(module: str, backend: str, hint: str) -> None:
    import importlib.util

    try:
        found = importlib.util.find_spec(module) is not None
    except ModuleNotFoundError:
        found = False
    if not found:
        raise ConfigError(
            f"--backend {backend} is unavailable: the optional package {module!r} is not "
            f"installed (expected it importable; install it with: {hint})"
        )


def run_tasks(
    func: Callable[[T], R],
    tasks: Sequence[T],
    *,
    backend: str = "loky",
    workers: int = 1,
    scheduler: str | None = None,
) -> Iterator[R]:
    """Call ``func`` on every task on a backend and yield the results as they complete.

    Parameters
    ----------
    func : callable
        Module-level (picklable) function of one task; it should not raise (wrap errors into
        its return value) so that one bad task does not cancel the others.
    tasks : sequence
        Picklable task descriptions.
    backend : str
        ``serial`` (this process), ``loky`` (joblib process pool, default), ``dask`` (a Dask
        distributed client at ``scheduler``, or a LocalCluster of ``workers`` processes), or
        ``ray`` (a Ray cluster at ``scheduler``, or a local one with ``workers`` CPUs).
    workers : int
        Worker processes for local pools.
    scheduler : str, optional
        Address of an existing Dask scheduler (``tcp://host:8786``) or Ray cluster
        (``ray://host:10001`` or ``auto``).

    Yields
    ------
    object
        ``func(task)`` for each task, in completion order.
    """
    check_backend(backend, workers, scheduler)
    if not tasks:
        return
    if backend == "serial":
        for task in tasks:
            yield func(task)
    elif backend == "loky":
        yield from _joblib(func, tasks, workers)
    elif backend == "dask":
        yield from _dask(func, tasks, workers, scheduler)
    else:
        yield from _ray(func, tasks, workers, scheduler)


_WATCHED_PARENT: list[int] = []  # the driver a worker process watches (set once per process)


def _exit_when_orphaned(parent: int, period: float) -> None:
    """In a worker: end this process as soon as ``parent`` (the driver) is gone.

    loky's workers otherwise outlive a driver killed with SIGKILL (they sit idle until loky's
    idle timeout). A daemon thread compares ``os.getppid()`` with the driver's pid every
    ``period`` seconds; when the driver dies the worker is re-parented and exits at once.
    """
    import threading
    import time

    if _WATCHED_PARENT or os.getppid() != parent:
        return  # already watching, or not a direct child (nothing reliable to watch)
    _WATCHED_PARENT.append(parent)

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(period)
        os._exit(1)

    threading.Thread(target=watch, name="feddistort-orphan-watch", daemon=True).start()


class _Watched:
    """``func`` that, run in a loky worker, first makes the worker exit when the driver dies."""

    def __init__(self, func: Callable[[Any], Any], period: float = 0.5) -> None:
        self.func = func
        self.parent = os.getpid()
        self.period = period

    def __call__(self, task: Any) -> Any:
        _exit_when_orphaned(self.parent, self.period)
        return self.func(task)


def _joblib(func: Callable[[T], R], tasks: Sequence[T], workers: int) -> Iterator[R]:
    from joblib import Parallel, delayed

    parallel = Parallel(n_jobs=workers, backend="loky", return_as="generator_unordered")
    watched = _Watched(func)
    yield from parallel(delayed(watched)(task) for task in tasks)


def _dask(
    func: Callable[[T], R], tasks: Sequence[T], workers: int, scheduler: str | None
) -> Iterator[R]:
    import dask
    from dask.distributed import Client, LocalCluster, as_completed

    cluster: Any = None
    environ = dict(os.environ)  # the nanny writes its workers' variables into ours
    with _restored_environ(environ), dask.config.set(_local_cluster_config(workers)):
        if scheduler is None:
            cluster = LocalCluster(
                n_workers=workers, threads_per_worker=1, processes=True, dashboard_address=None
            )
            client = Client(cluster)
        else:
            client = Client(scheduler)
        try:
            futures = [client.submit(func, task, pure=False) for task in tasks]
            for future in as_completed(futures):
                yield future.result()
                future.release()
        finally:
            client.close()
            if cluster is not None:
                cluster.close()


@contextlib.contextmanager
def _restored_environ(environ: dict[str, str]) -> Iterator[None]:
    """Give ``os.environ`` back its ``environ`` after the block (Dask's nanny changes it)."""
    try:
        yield
    finally:
        for name in set(os.environ) - set(environ):
            del os.environ[name]
        for name, value in environ.items():
            if os.environ.get(name) != value:
                os.environ[name] = value


def _local_cluster_config(workers: int) -> dict[str, Any]:
    """Dask config for a LocalCluster we start (its scheduler here, its worker processes).

    Dask's nanny starts each worker with ``MALLOC_TRIM_THRESHOLD_=65536``, and setting it turns
    off glibc's dynamic mmap threshold: every NumPy temporary above 128 kB is then mmap'ed and
    unmapped again, and the simulator's chunks took about 2.5x the CPU time in a Dask worker
    that they take in this process (measured by hand: 3.3-3.6 s against 1.3 s for the same 8
    chunks of 50 configurations). We leave glibc's default, and give each worker
    ``cpu_count // workers`` BLAS threads as joblib's loky backend does (Dask pins one).

    We also turn off what only feeds the dashboard, which we never start: each worker's
    statistical profiler (a thread that takes the GIL every 10 ms) and the 500 ms system
    monitor (every 2 s instead), and slow the event-loop watchdog tick from 20 to 200 ms. With
    as many workers as cores no core is left to absorb these threads, so they cost the
    2-worker run more than the 1-worker run (measured: dask 2-worker sweep of the benchmark
    19.5 s against 21.1 s, median of 4 interleaved rounds). Workers of an existing cluster
    (``--scheduler``) keep their own environment and configuration.
    """
    threads = str(max(1, (os.cpu_count() or 1) // workers))
    prefix = "distributed.nanny.pre-spawn-environ."
    environ: dict[str, Any] = {prefix + "MALLOC_TRIM_THRESHOLD_": None}
    for name in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        environ[prefix + name] = threads
    return environ | {
        "distributed.worker.profile.enabled": False,
        "distributed.admin.system-monitor.interval": "2s",
        "distributed.admin.tick.interval": "200ms",
    }


def _ray(
    func: Callable[[T], R], tasks: Sequence[T], workers: int, scheduler: str | None
) -> Iterator[R]:  # pragma: no cover - ray is an optional extra, not installed in CI
    import ray

    started = not ray.is_initialized()
    if started:
        if scheduler is None:
            ray.init(num_cpus=workers)
        else:
            ray.init(address=scheduler)
    try:
        remote = ray.remote(func)
        pending = [remote.remote(task) for task in tasks]
        while pending:
            done, pending = ray.wait(pending, num_returns=1)
            yield ray.get(done[0])
    finally:
        if started:
            ray.shutdown()
