"""Start-up time of the command against a bare ``import numpy`` (target of issue 12: <= 2x).

Run: ``.venv/bin/python benchmarks/bench_startup.py [--repeats 15]
[--out benchmarks/results/bench_startup.txt]``.

Each round runs, in a fresh interpreter each, ``python -c "import numpy"``, ``feddistort
--help`` and ``feddistort simulate --help`` (as the console script does: ``from
feddistort.cli import main; sys.exit(main([...]))``), interleaved so that a change of the
shared machine's load hits all three alike. Reported: median and minimum wall time of each,
and the ratio of the medians to numpy's.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import subprocess
import sys
import time

COMMANDS: dict[str, str] = {
    'python -c "import numpy"': "import numpy",
    "feddistort --help": "import sys; from feddistort.cli import main; sys.exit(main(['--help']))",
    "feddistort simulate --help": (
        "import sys; from feddistort.cli import main; sys.exit(main(['simulate', '--help']))"
    ),
}
TARGET = 2.0


def run_once(code: str) -> float:
    start = time.perf_counter()
    done = subprocess.run([sys.executable, "-c", code], capture_output=True)
    elapsed = time.perf_counter() - start
    assert done.returncode == 0, done.stderr.decode()
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeats", type=int, default=15, help="interleaved rounds")
    parser.add_argument("--out", default=None, help="also write the report to this file")
    args = parser.parse_args()
    load = "load average {:.2f} {:.2f} {:.2f}".format(*os.getloadavg())
    for code in COMMANDS.values():  # warm the file cache once; not timed
        run_once(code)
    times: dict[str, list[float]] = {name: [] for name in COMMANDS}
    for _ in range(args.repeats):
        for name, code in COMMANDS.items():
            times[name].append(run_once(code))
    base = statistics.median(times['python -c "import numpy"'])
    lines = [
        f"bench_startup: {platform.platform()}, {os.cpu_count()} CPUs (shared machine: other "
        f"jobs run meanwhile), python {platform.python_version()}; at start: {load}",
        f"{args.repeats} interleaved rounds, a fresh interpreter per run; median (min) wall time",
    ]
    for name, values in times.items():
        ratio = statistics.median(values) / base
        verdict = (
            ""
            if name.startswith("python")
            else (f"  ({'meets' if ratio <= TARGET else 'MISSES'} target <= {TARGET:g}x)")
        )
        lines.append(
            f"  {name:28s} {statistics.median(values):6.3f} s ({min(values):6.3f} s)  "
            f"{ratio:4.2f}x numpy{verdict}"
        )
    text = "\n".join(lines) + "\n"
    print(text, end="")
    if args.out:
        from feddistort_io import atomic_write_text

        atomic_write_text(args.out, text)


if __name__ == "__main__":
    main()
