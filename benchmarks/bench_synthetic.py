"""Benchmark: the vectorized simulator against the loop oracle (run on demand, not a test).

The issue-2 sweep: d = 50, m = 5, C = 10, 200 lambda values x 50 seeds (10,000 configurations),
every PFT method, every client fine-tuning (700,000 fine-tuned models), default metrics.

The oracle (:func:`synthetic.oracle.simulate_loop`, unchanged) is a loop over configurations,
so its cost is linear in their number: it is timed on a random subset (``--oracle-configs``,
the same seeded subset every run) and its time per configuration is scaled to the 10,000.
In one process, interleaved: oracle subset, full vectorized sweep, oracle subset again; the
ratio uses the mean of the two oracle timings. The machine may be shared, so the absolute
seconds are noisy; the ratio is the number to read. The same subset is also run through the
vectorized simulator and checked against the oracle to 1e-10.

    python benchmarks/bench_synthetic.py [--oracle-configs 20] [--out FILE]
"""

from __future__ import annotations

import argparse
import os
import platform
import time

import numpy as np

from feddistort_io import atomic_write_text
from synthetic import DEFAULT_METRICS, METHODS, SimConfig, expand_grid, simulate
from synthetic.oracle import simulate_loop
from synthetic.problem import _draw_base

TARGET = 100.0


def _oracle(subset: list[SimConfig]) -> float:
    _draw_base.cache_clear()
    start = time.perf_counter()
    simulate_loop(subset, METHODS, DEFAULT_METRICS)
    return (time.perf_counter() - start) / len(subset)


def _agreement(subset: list[SimConfig]) -> float:
    fast = simulate(subset, METHODS)["value"].to_numpy()
    slow = simulate_loop(subset, METHODS, DEFAULT_METRICS)["value"].to_numpy()
    ok = ~np.isnan(slow)
    assert np.array_equal(np.isnan(fast), ~ok)
    return float(np.max(np.abs(fast[ok] - slow[ok]) / np.maximum(1.0, np.abs(slow[ok]))))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--oracle-configs", type=int, default=20)
    parser.add_argument("--out", default=None)
    args = parser.parse_args()

    base = SimConfig(d=50, m=5, C=10)
    configs = expand_grid(base, {"lam": list(np.linspace(0.0, 2.0, 200))}, seeds=50)
    rng = np.random.default_rng(0)
    subset = [configs[i] for i in rng.choice(len(configs), args.oracle_configs, replace=False)]
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    lines = [
        f"machine: {platform.machine()}, {os.cpu_count()} cores, load average {load:.1f} at "
        f"start (shared machine: absolute times are noisy), numpy {np.__version__}",
        f"sweep: {len(configs):,} configurations x {base.C} clients x {len(METHODS)} methods "
        f"({', '.join(METHODS)}), default metrics ({', '.join(DEFAULT_METRICS)})",
    ]
    before = _oracle(subset)
    _draw_base.cache_clear()
    start = time.perf_counter()
    frame = simulate(configs, METHODS)
    sweep = time.perf_counter() - start
    after = _oracle(subset)
    per_config = (before + after) / 2
    oracle_total = per_config * len(configs)
    worst = _agreement(subset)
    ratio = oracle_total / sweep
    verdict = "met" if ratio >= TARGET else "NOT met"
    lines += [
        f"vectorized sweep: {sweep:.2f} s, {len(frame):,} tidy rows",
        f"loop oracle: {before * 1e3:.0f} ms and {after * 1e3:.0f} ms per configuration "
        f"(before and after the sweep) on {len(subset)} sampled configurations -> "
        f"{oracle_total:.0f} s scaled to the {len(configs):,}",
        f"speed-up: {ratio:.0f}x (target >= {TARGET:.0f}x): {verdict}",
        f"largest difference from the oracle on the subset: {worst:.1e} (relative to "
        "max(1, |value|); tolerance 1e-10)",
    ]
    text = "\n".join(lines)
    print(text)
    if args.out:
        atomic_write_text(args.out, text + "\n")


if __name__ == "__main__":
    main()
