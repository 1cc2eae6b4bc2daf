"""Scaling of a 10,000-configuration simulator sweep on serial, loky and Dask backends.

Run: ``.venv/bin/python benchmarks/bench_sweep.py [--out benchmarks/results/bench_sweep.txt]``.

For each backend and worker count, time a fresh sweep (pool start-up included) of a
100 x 100 grid over (lam, eta) with a FedAvg global model, every PFT method, one metric
(local_loss), 4 clients. Reports
the speed-up of 2 workers over 1, and the per-chunk overhead of each backend: the extra wall
time per chunk over the serial backend with 1 worker, measured with many small chunks.
The byte-identity of every results.csv with the serial one is checked too.
"""

from __future__ import annotations

import argparse
import os
import platform
import tempfile
import time
from pathlib import Path

from feddistort.sweep.engine import run_sweep
from feddistort.sweep.spec import SweepSpec
from synthetic.config import SimConfig
from synthetic.methods import METHODS


def spec(chunk: int, heavy: bool) -> SweepSpec:
    lams = [round(2 * i / 99, 12) for i in range(100)]
    etas = [round(0.05 + 0.45 * i / 99, 12) for i in range(100)]
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", default=None, help="also write the report to this file")
    parser.add_argument("--chunk", type=int, default=250, help="chunk size of the scaling runs")
    parser.add_argument("--small-chunk", type=int, default=10, help="chunk size for overhead")
    args = parser.parse_args()
    lines = [
        f"bench_sweep: {platform.platform()}, {os.cpu_count()} CPUs (shared machine), "
        f"python {platform.python_version()}",
        "10,000 configurations (lam x eta = 100 x 100), C=4, metric local_loss; scaling runs: "
        "FedAvg global model and all 7 PFT methods; overhead runs: ideal global model, ft only",
    ]
    big, small = spec(args.chunk, True), spec(args.small_chunk, False)
    n_big = -(-10_000 // args.chunk)
    n_small = -(-10_000 // args.small_chunk)
    runs = [("serial", 1), ("loky", 1), ("loky", 2), ("dask", 1), ("dask", 2)]
    times: dict[tuple[str, int], float] = {}
    reference = b""
    lines.append(f"\nscaling, chunk={args.chunk} ({n_big} chunks), wall time incl. pool start:")
    for backend, workers in runs:
        elapsed, data = timed(big, backend, workers)
        reference = reference or data
        same = "identical" if data == reference else "DIFFERENT"
        times[backend, workers] = elapsed
        lines.append(f"  {backend:6s} workers={workers}: {elapsed:7.2f} s  results.csv {same}")
    for backend in ("loky", "dask"):
        ratio = times[backend, 1] / times[backend, 2]
        lines.append(f"  speed-up {backend} 2 workers vs 1: {ratio:.2f}x")
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
    text = "\n".join(lines) + "\n"
    print(text, end="")
    if args.out:
        from feddistort_io import atomic_write_text

        atomic_write_text(args.out, text)


if __name__ == "__main__":
    main()
