"""Benchmark exact and minibatch linear CKA against their BLAS floors, in one process.

The floor of exact CKA is what any implementation must at least do: X^T X and Y^T Y as numpy
``a.T @ a`` on contiguous float32 arrays (BLAS syrk, half the flops of a GEMM) plus one GEMM
X^T Y. The floor of minibatch CKA (batch m < width) is the per-batch m x m Gram products
X_b X_b^T and Y_b Y_b^T (syrk). Each repetition runs, for every method, the floor and then
the method (the machine is shared: load drifts, and which call follows which moves the times
by a few percent), and the table reports median(method) / median(floor);
absolute times are printed for context only. Errors are against a float64 formula written out
here (centred float64 products), not against our own code.

Streaming memory: the peak of traced allocations (tracemalloc; numpy reports its buffers)
while StreamingLinearCKA consumes batches of 4096 rows, for growing n: flat in n means
O(d^2) state.

torch-cka is compared only when importable (it is not a dependency; install it by hand to
compare: ``pip install --no-deps torch-cka==0.21``).

Usage:
    .venv/bin/python benchmarks/bench_metrics.py [--repeats 5] [--out
        benchmarks/results/bench_metrics.txt]
"""

from __future__ import annotations

import argparse
import math
import os
import sys
import time
import tracemalloc
from collections.abc import Callable
from pathlib import Path

import numpy as np

SIZES = [(10000, 512), (50000, 512), (10000, 2048)]
MINIBATCH = (10000, 2048, 256)
STREAM_D, STREAM_BATCH, STREAM_NS = 512, 4096, (10000, 50000, 200000)
TARGET_EXACT, TARGET_MINIBATCH = 1.15, 1.5


def _data(n: int, d: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, d), dtype=np.float32)
    w = (rng.standard_normal((d, d), dtype=np.float32) / np.float32(math.sqrt(d))).astype(
        np.float32
    )
    y = np.tanh(x @ w) + np.float32(0.5) * rng.standard_normal((n, d), dtype=np.float32)
    return x + np.float32(3.0), y.astype(np.float32)  # an offset, as real features have


def _ref64(x: np.ndarray, y: np.ndarray) -> float:
    """Biased linear CKA, [KORNBLITH] Eq. 3-4 in feature space, centred float64 products."""
    a = x.astype(np.float64)
    a -= a.mean(0)
    b = y.astype(np.float64)
    b -= b.mean(0)
    xy, xx, yy = a.T @ b, a.T @ a, b.T @ b
    return float(np.sum(xy * xy) / math.sqrt(np.sum(xx * xx) * np.sum(yy * yy)))


def _interleaved(
    fns: dict[str, Callable[[], object]], repeats: int
) -> tuple[dict[str, float], dict[str, float]]:
    """Median seconds of each function, and the median over repetitions of time / time of the
    floor run just before it (paired ratio).

    Each repetition runs, for every method, the floor and then the method, so that every method
    runs in the same position (right after a floor run): which call follows which moves the
    times by a few percent on this machine (caches, fresh pages).
    """
    times: dict[str, list[float]] = {k: [] for k in fns}
    before: dict[str, list[float]] = {k: [] for k in fns}
    methods = [k for k in fns if k != "floor"]

    def timed(key: str) -> float:
        t0 = time.perf_counter()
        fns[key]()
        return time.perf_counter() - t0

    for _ in range(repeats):
        for key in methods:
            floor = timed("floor")
            times["floor"].append(floor)
            times[key].append(timed(key))
            before[key].append(floor)
    paired = {"floor": 1.0}
    paired |= {k: float(np.median(np.array(times[k]) / np.array(before[k]))) for k in methods}
    return {k: float(np.median(v)) for k, v in times.items()}, paired


def bench_exact(repeats: int, lines: list[str]) -> None:
    from empirical.cka import linear_cka

    head = (
        f"{'n':>6} {'d':>5}  {'method':<26} {'median s':>9} {'x floor':>8} {'paired':>8} "
        f"{'target':>7} {'|err| vs f64':>12}"
    )
    lines += [head, "-" * len(head)]
    for n, d in SIZES:
        x, y = _data(n, d)
        ref = _ref64(x, y)
        fns: dict[str, Callable[[], object]] = {
            "floor": lambda x=x, y=y: (x.T @ x, y.T @ y, x.T @ y),
            "linear_cka": lambda x=x, y=y: linear_cka(x, y),
            "linear_cka(debiased=True)": lambda x=x, y=y: linear_cka(x, y, debiased=True),
        }
        med, paired = _interleaved(fns, repeats)
        values = {"linear_cka": linear_cka(x, y)}
        for key, t in med.items():
            ratio = t / med["floor"]
            ok = "" if key == "floor" else ("met" if ratio <= TARGET_EXACT else "MISSED")
            err = f"{abs(values[key] - ref):.1e}" if key in values else ""
            lines.append(
                f"{n:>6} {d:>5}  {key:<26} {t:>9.4f} {ratio:>8.3f} {paired[key]:>8.3f} "
                f"{ok:>7} {err:>12}"
            )
            print(lines[-1], flush=True)
        del x, y


def bench_minibatch(repeats: int, lines: list[str]) -> None:
    from empirical.minibatch import minibatch_cka

    n, d, m = MINIBATCH
    x, y = _data(n, d)
    xb = [x[i : i + m] for i in range(0, n - m + 1, m)]
    yb = [y[i : i + m] for i in range(0, n - m + 1, m)]

    def floor() -> None:
        for a, b in zip(xb, yb, strict=True):
            _ = (a @ a.T, b @ b.T)

    fns: dict[str, Callable[[], object]] = {
        "floor": floor,
        "minibatch_cka": lambda: minibatch_cka(x, y, m),
    }
    med, paired = _interleaved(fns, repeats)
    lines += ["", f"minibatch CKA, n={n}, d={d}, batch {m} (floor: per-batch m x m syrk Grams)"]
    for key, t in med.items():
        ratio = t / med["floor"]
        ok = "" if key == "floor" else ("met" if ratio <= TARGET_MINIBATCH else "MISSED")
        lines.append(
            f"{n:>6} {d:>5}  {key:<26} {t:>9.4f} {ratio:>8.3f} {paired[key]:>8.3f} {ok:>7}"
        )
        print(lines[-1], flush=True)
    bench_torch_cka(repeats, lines)


TORCH_CKA_SIZES = [(10000, 512, 256), (10000, 2048, 256), (10000, 512, 1024), (10000, 2048, 1024)]


def bench_torch_cka(repeats: int, lines: list[str]) -> None:
    """Our minibatch CKA against torch-cka's ``CKA.compare`` on the same batches, same order.

    torch-cka takes models and data loaders: each side is an ``nn.Identity`` layer fed the
    precomputed features, so its forward pass costs nothing and what is timed is its HSIC
    loop (its own code, unchanged). Both see the same consecutive batches of m rows.
    """
    try:
        import torch
        from torch.utils.data import DataLoader, TensorDataset
        from torch_cka import CKA
    except ImportError:
        lines.append("torch-cka: not installed in this environment; comparison skipped")
        print(lines[-1], flush=True)
        return
    import warnings

    from empirical.minibatch import minibatch_cka

    os.environ.setdefault("TQDM_DISABLE", "1")  # its progress bar, per call
    lines += ["", "minibatch CKA vs torch-cka 0.21 (CKA.compare on nn.Identity, same batches)"]
    for n, d, m in TORCH_CKA_SIZES:
        x, y = _data(n, d)
        n_used = (n // m) * m  # torch-cka's loader keeps a last partial batch: drop it for both
        x, y = x[:n_used], y[:n_used]
        dx = DataLoader(TensorDataset(torch.from_numpy(x)), batch_size=m, shuffle=False)
        dy = DataLoader(TensorDataset(torch.from_numpy(y)), batch_size=m, shuffle=False)

        def theirs(dx: DataLoader = dx, dy: DataLoader = dy) -> float:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                cka = CKA(
                    torch.nn.Sequential(torch.nn.Identity()),
                    torch.nn.Sequential(torch.nn.Identity()),
                    model1_name="x", model2_name="y", model1_layers=["0"], model2_layers=["0"],
                )  # fmt: skip
                cka.compare(dx, dy)
            return float(cka.hsic_matrix[0, 0])

        fns: dict[str, Callable[[], object]] = {
            "floor": lambda x=x, y=y, m=m: [
                (x[i : i + m] @ x[i : i + m].T, y[i : i + m] @ y[i : i + m].T)
                for i in range(0, x.shape[0], m)
            ],
            "minibatch_cka": lambda x=x, y=y, m=m: minibatch_cka(x, y, m),
            "torch-cka": theirs,
        }
        med, _ = _interleaved(fns, repeats)
        ours, ref = minibatch_cka(x, y, m), theirs()
        lines.append(
            f"{n_used:>6} {d:>5} m={m:<5} ours {med['minibatch_cka']:.4f} s, torch-cka "
            f"{med['torch-cka']:.4f} s: ours {med['torch-cka'] / med['minibatch_cka']:.2f}x faster "
            f"({'met' if med['minibatch_cka'] < med['torch-cka'] else 'MISSED'}); values "
            f"{ours:.6f} vs {ref:.6f} (torch-cka computes in float32)"
        )
        print(lines[-1], flush=True)


def bench_streaming(lines: list[str]) -> None:
    from empirical.cka import StreamingLinearCKA

    lines += [
        "",
        f"streaming memory: StreamingLinearCKA(debiased=True), d={STREAM_D}, batches of "
        f"{STREAM_BATCH} rows generated on the fly; tracemalloc peak during the updates",
    ]
    rng = np.random.default_rng(1)
    base = rng.standard_normal((STREAM_BATCH, STREAM_D), dtype=np.float32)
    for n in STREAM_NS:
        acc = StreamingLinearCKA(debiased=True)
        tracemalloc.start()
        for i in range(0, n, STREAM_BATCH):
            rows = min(STREAM_BATCH, n - i)
            xb = base[:rows] + np.float32(i % 7)
            acc.update(xb, np.tanh(xb))
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        acc.compute()
        lines.append(f"  n={n:>7}: peak {peak / 2**20:8.1f} MiB")
        print(lines[-1], flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--out", default="benchmarks/results/bench_metrics.txt")
    args = parser.parse_args()
    import numpy

    lines = [
        "bench_metrics: float32 features, numpy BLAS (" + numpy.__version__ + "), "
        f"{os.cpu_count()} cores shared with other jobs: NOISY, read the ratios, not the times.",
        f"x floor = median(method) / median(floor) over {args.repeats} interleaved repetitions "
        "in one process, each method run right after a floor run (the same position for all);",
        "paired = median of the per-repetition ratios (method / the floor run just before it);",
        "target (exact <= 1.15x, minibatch <= 1.5x) judged on 'x floor'. |err| = |linear_cka "
        "(float32 products, float64 sums) - float64 formula|.",
        f"command: {' '.join([Path(sys.executable).name, *sys.argv])}",
        "",
    ]
    bench_exact(args.repeats, lines)
    bench_minibatch(args.repeats, lines)
    bench_streaming(lines)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + ".tmp")
    tmp.write_text("\n".join(lines) + "\n")
    os.replace(tmp, out)


if __name__ == "__main__":
    main()
