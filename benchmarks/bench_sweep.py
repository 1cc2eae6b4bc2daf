"""Scaling of a simulator sweep on serial, loky and Dask backends (targets of issue 12).

Run: ``.venv/bin/python benchmarks/bench_sweep.py [--side 100] [--repeats 2]
[--out benchmarks/results/bench_sweep.txt]``.

A ``side x side`` grid over (lam, eta) with a FedAvg global model, every PFT method, one metric
(local_loss), 4 clients. Every round times a fresh sweep (pool start-up included) on serial,
loky (1 and 2 workers) and Dask (a LocalCluster of 1 and 2 worker processes), interleaved, so a
change of the shared machine's load hits every backend alike; the report keeps each backend's
fastest round. Targets: Dask with one worker within 1.2x of serial; two workers >= 1.8x one
worker on loky and Dask. Also reported: the per-chunk overhead of each backend (the extra wall
time per chunk over serial, with many small chunks), and the byte identity of every
results.parquet with the serial one. joblib runs ``n_jobs=1`` in the calling process, so loky
with one worker is the serial path.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from feddistort.sweep.engine import run_sweep
from feddistort.sweep.spec import SweepSpec
from synthetic.config import SimConfig
from synthetic.names import METHODS

RUNS: tuple[tuple[str, int], ...] = (
    ("serial", 1),
    ("loky", 1),
    ("loky", 2),
    ("dask", 1),
    ("dask", 2),
)


def spec(side: int, chunk: int, heavy: bool) -> SweepSpec:
    lams = [round(2 * i / (side - 1), 12) for i in range(side)]
    etas = [round(0.05 + 0.45 * i / (side - 1), 12) for i in range(side)]
    return SweepSpec(
        base=SimConfig(global_model="fedavg" if heavy else "ideal"),
        grid={"lam": lams, "eta": etas},
        seeds=1,
        methods=METHODS if heavy else ("ft",),
        metrics=("local_loss",),
        chunk=chunk,
    )


def timed(sweep: SweepSpec, backend: str, workers: int) -> tuple[float, bytes]:
    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        report = run_sweep(sweep, Path(tmp) / "out", backend=backend, workers=workers)
        elapsed = time.perf_counter() - start
        assert report.results is not None, report.failed
        return elapsed, report.results.read_bytes()


_ASSEMBLE = """
import json, resource, sys
from pathlib import Path
import pyarrow.parquet
from feddistort.sweep.assembly import assemble
paths = [Path(p) for p in json.loads(sys.argv[2])]
base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
for fmt in ("parquet", "csv"):
    assemble(Path(sys.argv[1]), paths, fmt)
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(json.dumps([base * 1024, peak * 1024]))
"""


def assembly_memory(sweep: SweepSpec) -> list[str]:
    """Peak memory of streaming the shards into results.parquet and results.csv (fresh process).

    Compared with the in-memory (Arrow) size of the largest shard and of all shards together.
    """
    import pyarrow.parquet as pq

    from feddistort.sweep.shards import shard_path

    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "out"
        run_sweep(sweep, out, backend="serial")
        paths = [shard_path(out / "shards", t.key) for t in sweep.tasks(out)]
        sizes = [pq.read_table(p).nbytes for p in paths]
        done = subprocess.run(
            [sys.executable, "-c", _ASSEMBLE, str(out), json.dumps([str(p) for p in paths])],
            capture_output=True,
            text=True,
            check=True,
        )
        base, peak = json.loads(done.stdout)
        files = {f: (out / f"results.{f}").stat().st_size for f in ("parquet", "csv")}
    mb = 1e6
    return [
        f"\nassembly memory ({len(paths)} shards, fresh process, after importing pyarrow/pandas):",
        f"  peak RSS growth while writing results.parquet then results.csv: "
        f"{(peak - base) / mb:.1f} MB",
        f"  largest shard in memory: {max(sizes) / mb:.1f} MB; "
        f"all shards: {sum(sizes) / mb:.1f} MB",
        f"  files: results.parquet {files['parquet'] / mb:.1f} MB, results.csv "
        f"{files['csv'] / mb:.1f} MB",
    ]


def _load() -> str:
    try:
        one, five, fifteen = os.getloadavg()
        return f"load average {one:.2f} {five:.2f} {fifteen:.2f}"
    except OSError:  # pragma: no cover
        return "load average unknown"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", default=None, help="also write the report to this file")
    parser.add_argument("--side", type=int, default=100, help="grid side (side^2 configurations)")
    parser.add_argument("--chunk", type=int, default=250, help="chunk size of the scaling runs")
    parser.add_argument("--small-chunk", type=int, default=10, help="chunk size for overhead")
    parser.add_argument("--repeats", type=int, default=2, help="interleaved rounds")
    args = parser.parse_args()
    n = args.side**2
    lines = [
        f"bench_sweep: {platform.platform()}, {os.cpu_count()} CPUs (shared machine: other "
        f"jobs run meanwhile), python {platform.python_version()}; at start: {_load()}",
        f"{n:,} configurations (lam x eta = {args.side} x {args.side}), C=4, metric local_loss; "
        "scaling runs: FedAvg global model and all 7 PFT methods; overhead runs: ideal global "
        "model, ft only",
    ]
    big = spec(args.side, args.chunk, True)
    small = spec(args.side, args.small_chunk, False)
    n_big, n_small = -(-n // args.chunk), -(-n // args.small_chunk)
    best: dict[tuple[str, int], float] = {}
    reference = b""
    same = True
    for _ in range(args.repeats):
        for backend, workers in RUNS:
            elapsed, data = timed(big, backend, workers)
            reference = reference or data
            same = same and data == reference
            key = (backend, workers)
            best[key] = min(best.get(key, float("inf")), elapsed)
    lines.append(
        f"\nscaling, chunk={args.chunk} ({n_big} chunks), wall time incl. pool start, fastest of "
        f"{args.repeats} interleaved rounds:"
    )
    for backend, workers in RUNS:
        lines.append(f"  {backend:6s} workers={workers}: {best[backend, workers]:7.2f} s")
    lines.append(f"  results.parquet byte-identical across all runs: {same}")
    dask_ratio = best["dask", 1] / best["serial", 1]
    verdict = "meets" if dask_ratio <= 1.2 else "MISSES"
    lines.append(f"  dask 1 worker / serial: {dask_ratio:.2f}x ({verdict} target <= 1.2x)")
    for backend in ("loky", "dask"):
        ratio = best[backend, 1] / best[backend, 2]
        verdict = "meets" if ratio >= 1.8 else "MISSES"
        lines.append(
            f"  speed-up {backend} 2 workers vs 1: {ratio:.2f}x ({verdict} target >= 1.8x)"
        )
    lines.append(
        f"\nper-chunk overhead, chunk={args.small_chunk} ({n_small} chunks), 1 worker, "
        "minus serial, divided by the number of chunks:"
    )
    base_time, _ = timed(small, "serial", 1)
    lines.append(f"  serial: {base_time:7.2f} s ({1e3 * base_time / n_small:.2f} ms/chunk total)")
    for backend in ("loky", "dask"):
        elapsed, _ = timed(small, backend, 1)
        overhead = (elapsed - base_time) / n_small
        lines.append(f"  {backend:6s}: {elapsed:7.2f} s, overhead {1e3 * overhead:.2f} ms/chunk")
    lines.extend(assembly_memory(big))
    lines.append(f"at end: {_load()}")
    text = "\n".join(lines) + "\n"
    print(text, end="")
    if args.out:
        from feddistort_io import atomic_write_text

        atomic_write_text(args.out, text)


if __name__ == "__main__":
    main()
