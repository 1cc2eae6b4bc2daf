"""Benchmark: the vectorized simulator against the loop oracle (run on demand, not a test).

Sweep of issue 2: d = 50, C = 10, m = 5, 200 lambda values x 50 seeds x all PFT methods, every
client fine-tuning (10,000 configurations, 700,000 fine-tuned models). The oracle is timed on a
random subset of configurations and extrapolated linearly (it is a per-configuration loop, so
its cost is linear in the number of configurations).

    .venv/bin/python benchmarks/bench_synthetic.py [--oracle-configs 100] [--out FILE]
"""

from __future__ import annotations

import argparse
import platform
import time

import numpy as np

from synthetic import DEFAULT_METRICS, METHODS, SimConfig, expand_grid, simulate
from synthetic.oracle import simulate_loop
from synthetic.problem import _draw_base


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--oracle-configs", type=int, default=100)
    parser.add_argument("--out", default=None)
    args = parser.parse_args()

    base = SimConfig(d=50, m=5, C=10)
    configs = expand_grid(base, {"lam": list(np.linspace(0.0, 2.0, 200))}, seeds=50)
    lines = [
        f"machine: {platform.processor() or platform.machine()}, numpy {np.__version__}",
        f"sweep: {len(configs)} configurations x {base.C} clients x {len(METHODS)} methods "
        f"({', '.join(METHODS)}), metrics: {', '.join(DEFAULT_METRICS)}",
    ]
    timings = {}
    for label, metrics in [
        ("all default metrics", DEFAULT_METRICS),
        ("losses only", ("local_loss", "global_loss", "global_loss_others", "ood_loss")),
    ]:
        _draw_base.cache_clear()
        start = time.perf_counter()
        frame = simulate(configs, METHODS, metrics=metrics)
        timings[label] = time.perf_counter() - start
        lines.append(f"vectorized ({label}): {timings[label]:.2f} s, {len(frame):,} tidy rows")

    rng = np.random.default_rng(0)
    subset = [configs[i] for i in rng.choice(len(configs), args.oracle_configs, replace=False)]
    _draw_base.cache_clear()
    start = time.perf_counter()
    simulate_loop(subset, METHODS, DEFAULT_METRICS)
    per_config = (time.perf_counter() - start) / len(subset)
    oracle_total = per_config * len(configs)
    lines.append(
        f"loop oracle: {per_config * 1e3:.1f} ms per configuration on {len(subset)} sampled "
        f"configurations -> {oracle_total:.0f} s extrapolated to the sweep"
    )
    vec = timings["all default metrics"]
    lines.append(f"speed-up (all default metrics): {oracle_total / vec:.0f}x (target >= 20x)")
    lines.append(f"whole sweep under 10 s: {'yes' if vec < 10 else 'no'} ({vec:.2f} s)")
    text = "\n".join(lines)
    print(text)
    if args.out:
        with open(args.out, "w", encoding="utf-8") as handle:
            handle.write(text + "\n")


if __name__ == "__main__":
    main()
