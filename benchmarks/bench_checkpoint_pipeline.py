"""Benchmark the checkpoint pipeline against the bare forward passes it needs.

The pipeline is :func:`empirical.compare.compare_checkpoints` with every metric: read 1 global
and K client checkpoints (safetensors), build the models, run the forward passes with feature
hooks, accumulate all feature metrics, compute weight drift. Its floor is the forward passes
alone: the global model once (its features are reused for every client) and each client once,
on the same n inputs, in batches of the same size, under ``torch.inference_mode()``, with the
same weights (loaded from the same files before timing).

To make the ratio believable on a shared machine:

- one process, 1 thread by default, the methods interleaved in every repeat (order rotated
  per repeat);
- the ratio is computed *per repeat* (pipeline / bare of that repeat) and the median reported,
  for wall time and for the process's CPU time (its own work, less disturbed by other jobs);
- the bare passes are timed twice per repeat (``bare`` and ``bare_again``): their ratio is an
  A/A control, and shows how much two identical measurements differ at that moment;
- the forward calls of each method are counted with a forward pre-hook on every model: the
  pipeline must make exactly as many as the bare passes, and the feature values of the
  pipeline are checked against those of the bare passes (delta_l2 recomputed from them).

Usage:
    .venv/bin/python benchmarks/bench_checkpoint_pipeline.py [--n 2000] [--clients 4]
        [--repeats 9] [--threads 1] [--out benchmarks/results/bench_checkpoint_pipeline.txt]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import save_file
from torch import nn

from empirical.compare import compare_checkpoints
from empirical.experiment.models import build_model
from empirical.features import default_layer

KWARGS: dict[str, Any] = {"image_size": 16, "width": 32, "feature_dim": 128}
BATCH = 256


def _write_checkpoints(tmp: str, clients: int) -> tuple[str, dict[str, str]]:
    g = torch.Generator().manual_seed(0)
    torch.manual_seed(0)
    model = build_model("cnn", **KWARGS)
    save_file(model.state_dict(), f"{tmp}/global.safetensors")
    paths = {}
    for c in range(clients):
        state = {k: v + 0.01 * torch.randn(v.shape, generator=g) for k, v in
                 model.state_dict().items()}  # fmt: skip
        paths[f"c{c}"] = f"{tmp}/c{c}.safetensors"
        save_file(state, paths[f"c{c}"])
    return f"{tmp}/global.safetensors", paths


def _loaded(path: str) -> nn.Module:
    from safetensors.torch import load_file

    model = build_model("cnn", **KWARGS)
    model.load_state_dict(load_file(path))
    return model.eval()


class _Counter:
    """Counts forward calls of every cnn built (a pre-hook on nn.Module's global registry)."""

    def __init__(self) -> None:
        self.calls = 0
        self.handle = nn.modules.module.register_module_forward_pre_hook(self._hook)

    def _hook(self, module: nn.Module, _args: Any) -> None:
        if type(module).__name__ == "DigitsCNN":
            self.calls += 1


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=2000)
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--repeats", type=int, default=9)
    # 1 thread by default: on 2 cores shared with other jobs, a 2-thread op waits for its
    # slower thread at every synchronization, which penalizes many small ops (the metrics)
    # far more than a few large ones (the convolutions); see the results file.
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--out", default="benchmarks/results/bench_checkpoint_pipeline.txt")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    n, k = args.n, args.clients
    x = torch.rand(n, 1, 16, 16, generator=torch.Generator().manual_seed(1))
    with tempfile.TemporaryDirectory() as tmp:
        global_path, paths = _write_checkpoints(tmp, k)
        models = [_loaded(global_path), *(_loaded(p) for p in paths.values())]
        layer = default_layer(models[0])

        def bare() -> None:
            with torch.inference_mode():
                for m in models:
                    for i in range(0, n, BATCH):
                        m(x[i : i + BATCH])

        def pipeline(metrics: list[str] | None = None) -> Any:
            return compare_checkpoints("cnn", global_path, paths, {"*": x}, model_kwargs=KWARGS,
                                       batch_size=BATCH, metrics=metrics)  # fmt: skip

        def paired() -> Any:
            return pipeline(["delta_l2", "relative_l2", "cosine_distance", "weight_l2"])

        # Correctness of what is timed: same number of forward calls, same features.
        counter = _Counter()
        bare()
        bare_calls, counter.calls = counter.calls, 0
        table = pipeline()
        pipe_calls = counter.calls
        counter.handle.remove()
        assert bare_calls == pipe_calls == (k + 1) * -(-n // BATCH), (bare_calls, pipe_calls)
        feats = []
        for m in models:
            store: list[torch.Tensor] = []
            h = dict(m.named_modules())[layer.name].register_forward_pre_hook(
                lambda _m, a, s=store: s.append(a[0].clone())  # type: ignore[misc]
            )
            with torch.inference_mode():
                m(x)
            h.remove()
            feats.append(store[0].double())
        ref = (feats[0] - feats[1]).norm(dim=1).mean().item()
        got = table.query("client == 'c0' and metric == 'delta_l2'").value.iloc[0]
        assert abs(got - ref) <= 1e-5 * ref, (got, ref)

        runs = {"bare": bare, "pipeline": pipeline, "paired": paired, "bare_again": bare}
        times: dict[str, list[float]] = {key: [] for key in runs}
        cpu: dict[str, list[float]] = {key: [] for key in runs}
        order = list(runs)
        for rep in range(args.repeats):
            shift = rep % len(order)
            for key in order[shift:] + order[:shift]:  # rotate the order each repeat
                t0, c0 = time.perf_counter(), time.process_time()
                runs[key]()
                times[key].append(time.perf_counter() - t0)
                cpu[key].append(time.process_time() - c0)
    ratios = [p / b for p, b in zip(times["pipeline"], times["bare"], strict=True)]
    light = [p / b for p, b in zip(times["paired"], times["bare"], strict=True)]
    control = [a / b for a, b in zip(times["bare_again"], times["bare"], strict=True)]
    cpu_ratio = [p / b for p, b in zip(cpu["pipeline"], cpu["bare"], strict=True)]
    cpu_light = [p / b for p, b in zip(cpu["paired"], cpu["bare"], strict=True)]
    cpu_control = [a / b for a, b in zip(cpu["bare_again"], cpu["bare"], strict=True)]
    metrics = sorted(set(table.metric))
    lines = [
        "bench_checkpoint_pipeline: compare_checkpoints (read, build, hooked forward passes, all "
        f"{len(metrics)} metrics) vs the bare forward passes it needs",
        f"command: {' '.join(sys.argv)}",
        f"model: registry 'cnn' {KWARGS}; n={n} inputs (1x16x16); 1 global + {k} client "
        f"safetensors checkpoints; layer {layer.label} (d={feats[0].shape[1]}); batch {BATCH}; "
        f"torch CPU, {args.threads} threads; machine shared with other jobs "
        f"(load average {os.getloadavg()[0]:.1f} at the end)",
        f"checked: forward calls bare={bare_calls} pipeline={pipe_calls} (= {k + 1} models x "
        f"{-(-n // BATCH)} batches); delta_l2(c0) pipeline {got:.9f} vs from bare features "
        f"{ref:.9f}",
        "",
        "pipeline = all metrics; paired = delta_l2, relative_l2, cosine_distance, weight_l2 "
        "(the same reading, building, hooks and forward passes, the cheapest metrics)",
        f"{'repeat':>6} {'bare s':>9} {'pipeline s':>11} {'paired s':>9} {'bare_again s':>13} "
        f"{'pipeline/bare':>14} {'paired/bare':>12} {'A/A control':>12}",
    ]
    for i in range(args.repeats):
        lines.append(
            f"{i:>6} {times['bare'][i]:>9.3f} {times['pipeline'][i]:>11.3f} "
            f"{times['paired'][i]:>9.3f} {times['bare_again'][i]:>13.3f} {ratios[i]:>14.3f} "
            f"{light[i]:>12.3f} {control[i]:>12.3f}"
        )
    lines += [
        "",
        f"median pipeline/bare = {statistics.median(ratios):.3f} (min {min(ratios):.3f}, max "
        f"{max(ratios):.3f}); median A/A control = {statistics.median(control):.3f} (min "
        f"{min(control):.3f}, max {max(control):.3f}); target <= 1.25",
        f"median paired/bare = {statistics.median(light):.3f} (min {min(light):.3f}, max "
        f"{max(light):.3f})",
        "process CPU time (this process's own work, less sensitive to the other jobs than "
        "wall time):",
        f"  median pipeline/bare = {statistics.median(cpu_ratio):.3f} (min {min(cpu_ratio):.3f},"
        f" max {max(cpu_ratio):.3f}); paired/bare = {statistics.median(cpu_light):.3f}; A/A "
        f"control = {statistics.median(cpu_control):.3f} (min {min(cpu_control):.3f}, max "
        f"{max(cpu_control):.3f})",
        f"  min-over-repeats: bare {min(cpu['bare']):.3f} s, pipeline {min(cpu['pipeline']):.3f}"
        f" s, ratio {min(cpu['pipeline']) / min(cpu['bare']):.3f}",
        f"wall min-over-repeats: bare {min(times['bare']):.3f} s, pipeline "
        f"{min(times['pipeline']):.3f} s, ratio {min(times['pipeline']) / min(times['bare']):.3f}",
    ]
    print("\n".join(lines), flush=True)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp_out = out.with_name(out.name + ".tmp")
    tmp_out.write_text("\n".join(lines) + "\n")
    os.replace(tmp_out, out)


if __name__ == "__main__":
    main()
