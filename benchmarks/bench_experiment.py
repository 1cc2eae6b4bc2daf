"""Wall time of the federated experiment presets (a script, not a test).

Usage::

    .venv/bin/python benchmarks/bench_experiment.py [--full] [--seeds 3] [--presets a,b]

Runs each preset's ``--quick`` version (and, with ``--full``, the default version) into fresh
temporary directories and prints one line per run: preset, seeds, wall seconds, CPU seconds and
the 1-minute load average at the end (the machine is shared, so the load is part of the record).
Budgets (issue 5): default preset with 3 seeds <= 600 s on 2 cores; ``--quick`` < 60 s.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time

from empirical.experiment import PRESETS, make_preset, run_experiment


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--full", action="store_true", help="also time the default presets")
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument(
        "--presets",
        default="digits-covariate,digits-concept,digits-label,digits-combined",
        help=f"comma-separated subset of {PRESETS}",
    )
    args = parser.parse_args()
    modes = [True, False] if args.full else [True]
    print(f"# bench_experiment: {os.cpu_count()} CPUs, seeds={args.seeds}")
    print("preset,quick,seeds,wall_s,cpu_s,load1_end")
    for name in args.presets.split(","):
        for quick in modes:
            config = make_preset(name, quick=quick)
            with tempfile.TemporaryDirectory() as out:
                wall, cpu = time.perf_counter(), time.process_time()
                run_experiment(config, out, seeds=range(args.seeds), progress=False)
                wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
            print(f"{name},{quick},{args.seeds},{wall:.1f},{cpu:.1f},{os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
