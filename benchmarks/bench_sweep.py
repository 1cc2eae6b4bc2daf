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
import statistics
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
import json, sys
from pathlib import Path
import pandas, pyarrow.parquet  # imported before the baseline: their own memory is not counted
from feddistort.sweep.assembly import assemble

def status_kb(field):
    for line in open("/proc/self/status"):
        if line.startswith(field):
            return int(line.split()[1])

paths = [Path(p) for p in json.loads(sys.argv[2])] * int(sys.argv[3])
base = status_kb("VmRSS:")  # resident now
assemble(Path(sys.argv[1]), paths, sys.argv[4])
print(json.dumps([base * 1024, status_kb("VmHWM:") * 1024]))  # and the peak since start
"""


def assembly_memory(sweep: SweepSpec) -> list[str]:
    """Peak memory of streaming the shards into the results file, in a fresh process.

    Each format is written from the sweep's shards, then from the same shards listed 4 times (a
    results file 4x larger): memory bounded by one shard grows by the same amount in both.
    """
    import pyarrow.parquet as pq

    from feddistort.sweep.shards import shard_path

    mb = 1e6
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "out"
        run_sweep(sweep, out, backend="serial")
        paths = [shard_path(out / "shards", t.key) for t in sweep.tasks(out)]
        sizes = [pq.read_table(p).nbytes for p in paths]
        lines = [
            f"\nassembly memory: peak RSS minus RSS before, fresh process, pyarrow and pandas "
            f"imported before; {len(paths)} shards, largest {max(sizes) / mb:.1f} MB in memory, "
            f"all {sum(sizes) / mb:.1f} MB:"
        ]
        for fmt in ("parquet", "csv"):
            for repeat in (1, 4):
                done = subprocess.run(
                    [
                        sys.executable,
                        "-c",
                        _ASSEMBLE,
                        str(out),
                        json.dumps([str(p) for p in paths]),
                        str(repeat),
                        fmt,
                    ],
                    capture_output=True,
                    text=True,
                    check=True,
                )
                base, peak = json.loads(done.stdout)
                size = (out / f"results.{fmt}").stat().st_size
                lines.append(
                    f"  results.{fmt:7s} from {repeat}x the shards ({size / mb:6.1f} MB file): "
                    f"+{(peak - base) / mb:.1f} MB"
                )
    return lines


def _load() -> str:
    try:
        one, five, fifteen = os.getloadavg()
        return f"load average {one:.2f} {five:.2f} {fifteen:.2f}"
    except OSError:  # pragma: no cover
        return "load average unknown"


def scaling(big: SweepSpec, n_big: int, repeats: int) -> list[str]:
    """Interleaved rounds over :data:`RUNS`; fastest times and within-round ratios."""
    rounds: list[dict[tuple[str, int], float]] = []
    reference = b""
    same = True
    for _ in range(repeats):
        rounds.append({})
        for backend, workers in RUNS:
            elapsed, data = timed(big, backend, workers)
            reference = reference or data
            same = same and data == reference
            rounds[-1][backend, workers] = elapsed

    def ratio(num: tuple[str, int], den: tuple[str, int]) -> tuple[float, str]:
        """Median over rounds of the ratio within a round, and the text with each round's."""
        each = [r[num] / r[den] for r in rounds]
        mid = statistics.median(each)
        return mid, f"{mid:.2f}x (rounds: {', '.join(f'{x:.2f}' for x in each)})"

    lines = [
        f"\nscaling, chunk={big.chunk} ({n_big} chunks), wall time incl. pool start, fastest of "
        f"{repeats} interleaved rounds:"
    ]
    for key in RUNS:
        lines.append(f"  {key[0]:6s} workers={key[1]}: {min(r[key] for r in rounds):7.2f} s")
    lines.append(f"  results.parquet byte-identical across all runs: {same}")
    lines.append("  ratios: median over rounds of the ratio measured within each round")
    value, text = ratio(("dask", 1), ("serial", 1))
    verdict = "meets" if value <= 1.2 else "MISSES"
    lines.append(f"  dask 1 worker / serial: {text}; {verdict} target <= 1.2x")
    for backend in ("loky", "dask"):
        value, text = ratio((backend, 1), (backend, 2))
        verdict = "meets" if value >= 1.8 else "MISSES"
        lines.append(f"  speed-up {backend} 2 workers vs 1: {text}; {verdict} target >= 1.8x")
    return lines


def overhead(small: SweepSpec, n_small: int) -> list[str]:
    """Extra wall time per chunk of loky and Dask (1 worker) over serial, many small chunks."""
    lines = [
        f"\nper-chunk overhead, chunk={small.chunk} ({n_small} chunks), 1 worker, "
        "minus serial, divided by the number of chunks:"
    ]
    base_time, _ = timed(small, "serial", 1)
    lines.append(f"  serial: {base_time:7.2f} s ({1e3 * base_time / n_small:.2f} ms/chunk total)")
    for backend in ("loky", "dask"):
        elapsed, _ = timed(small, backend, 1)
        extra = (elapsed - base_time) / n_small
        lines.append(f"  {backend:6s}: {elapsed:7.2f} s, overhead {1e3 * extra:.2f} ms/chunk")
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", default=None, help="also write the report to this file")
    parser.add_argument("--side", type=int, default=100, help="grid side (side^2 configurations)")
    parser.add_argument("--chunk", type=int, default=250, help="chunk size of the scaling runs")
    parser.add_argument("--small-chunk", type=int, default=10, help="chunk size for overhead")
    parser.add_argument("--repeats", type=int, default=2, help="interleaved rounds")
    parser.add_argument(
        "--parts", default="scaling,overhead,memory", help="comma-separated parts to run"
    )
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
    parts = set(args.parts.split(","))
    if "scaling" in parts:
        lines.extend(scaling(big, -(-n // args.chunk), args.repeats))
    if "overhead" in parts:
        lines.extend(overhead(small, -(-n // args.small_chunk)))
    if "memory" in parts:
        lines.extend(assembly_memory(big))
    lines.append(f"at end: {_load()}")
    text = "\n".join(lines) + "\n"
    print(text, end="")
    if args.out:
        from feddistort_io import atomic_write_text

        atomic_write_text(args.out, text)


if __name__ == "__main__":
    main()
