"""Execution of :func:`empirical.experiment.run_experiment` (torch-heavy, resumable)."""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from safetensors.torch import load_file, save_file
from torch import nn
from tqdm import tqdm

from empirical.experiment.config import ExperimentConfig
from empirical.experiment.data import ClientData, make_clients
from empirical.experiment.models import build_model
from empirical.experiment.pft import VARIANTS, personalize
from empirical.experiment.results import BASELINE, write_outputs
from empirical.experiment.training import accuracy, fedavg, predict_features
from empirical.metrics import delta_l2, linear_cka
from empirical.model_spec import model_json
from feddistort_io import atomic_write_text


def _save_tensors(model: nn.Module, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    state = {k: v.detach().clone().contiguous() for k, v in model.state_dict().items()}
    save_file(state, str(tmp))
    os.replace(tmp, path)


def _save_npz(path: Path, x: np.ndarray, y: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}.npz")
    np.savez(tmp, x=x.astype(np.float32), y=y.astype(np.int64))
    os.replace(tmp, path)


def _prepare_out(config: ExperimentConfig, out: Path, seeds: list[int]) -> None:
    """Check/record ``config.json`` (refuse a different configuration) and ``model.json``."""
    current = config.to_json()
    path = out / "config.json"
    done_seeds: list[int] = []
    done_variants: list[str] = []
    if path.exists():
        stored = json.loads(path.read_text())
        done_seeds = list(stored.pop("seeds", []))
        done_variants = list(stored.pop("variants", []))
        if stored != current:
            raise ValueError(
                f"{out} already holds a run of a different configuration (see {path}); "
                f"resume with the same preset/options or choose another --out"
            )
    record = dict(current)
    record["seeds"] = sorted(set(done_seeds) | set(seeds))
    record["variants"] = [v for v in VARIANTS if v in set(done_variants) | set(config.variants)]
    atomic_write_text(path, json.dumps(record, indent=2) + "\n")
    spec = model_json(config.model, config.model_kwargs, config.parts)  # schema version 2
    atomic_write_text(out / "checkpoints" / "model.json", json.dumps(spec, indent=2) + "\n")


class _Evaluator:
    """Local/global accuracy and distortion of a personalized model for one client."""

    def __init__(self, clients: list[ClientData], global_model: nn.Module) -> None:
        self.tests = [(torch.from_numpy(c.x_test), torch.from_numpy(c.y_test)) for c in clients]
        self.global_features = [predict_features(global_model, x) for x, _ in self.tests]

    def accuracies(self, model: nn.Module) -> list[float]:
        return [accuracy(model, x, y) for x, y in self.tests]

    def epoch_row(self, model: nn.Module, client: int) -> dict[str, float]:
        accs = self.accuracies(model)
        feats = predict_features(model, self.tests[client][0])
        others = [a for i, a in enumerate(accs) if i != client]
        return {
            "local_acc": accs[client],
            "global_acc": float(np.mean(others)),
            "delta": delta_l2(self.global_features[client], feats),
        }

    def final_row(self, model: nn.Module, client: int) -> dict[str, float]:
        accs = self.accuracies(model)
        feats = predict_features(model, self.tests[client][0])
        ref = self.global_features[client]
        return {
            "local": accs[client],
            "global": float(np.mean([a for i, a in enumerate(accs) if i != client])),
            "global_all": float(np.mean(accs)),
            "delta": delta_l2(ref, feats),
            "cka": linear_cka(ref, feats),
        }


def _unit_done(out: Path, seed: int, variant: str, n_clients: int) -> bool:
    unit = out / "runs" / f"seed{seed}" / variant
    files = [unit / "done.json", unit / "metrics.csv", unit / "epochs.csv"]
    if variant != BASELINE:
        ckpt = out / "checkpoints" / f"seed{seed}" / variant
        files += [ckpt / f"client{c}.safetensors" for c in range(n_clients)]
    return all(f.exists() for f in files)


def _global_model(
    config: ExperimentConfig, out: Path, seed: int, clients: list[ClientData]
) -> nn.Module:
    """Load the seed's FedAvg model, or train and save it."""
    path = out / "checkpoints" / f"seed{seed}" / "global.safetensors"
    # Model initialization draws from torch's global RNG; fork_rng restores it afterwards.
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = build_model(config.model, **config.model_kwargs)
    if path.exists():
        model.load_state_dict(load_file(str(path)))
        return model
    train = [(torch.from_numpy(c.x_train), torch.from_numpy(c.y_train)) for c in clients]
    model = fedavg(model, train, config.fedavg, torch.Generator().manual_seed(seed))
    _save_tensors(model, path)
    return model


def _write_unit(
    out: Path,
    seed: int,
    variant: str,
    metric_rows: list[dict[str, Any]],
    epoch_rows: list[dict[str, Any]],
) -> None:
    unit = out / "runs" / f"seed{seed}" / variant
    atomic_write_text(unit / "metrics.csv", pd.DataFrame(metric_rows).to_csv(index=False))
    atomic_write_text(unit / "epochs.csv", pd.DataFrame(epoch_rows).to_csv(index=False))
    atomic_write_text(unit / "done.json", json.dumps({"seed": seed, "variant": variant}) + "\n")


def execute(config: ExperimentConfig, out: Path, seeds: list[int], progress: bool) -> RunReport:
    """Run every unfinished (seed, variant) unit, then rewrite the aggregated outputs.

    Runs single-threaded (``torch.set_num_threads(1)``, restored afterwards): with these tiny
    models on a shared 2-core machine, two threads measured about 9x slower.
    """
    _prepare_out(config, out, seeds)
    n_clients = config.data.n_clients
    units = [(s, v) for s in seeds for v in (BASELINE, *config.variants)]
    todo = [u for u in units if not _unit_done(out, *u, n_clients)]
    skipped = [u for u in units if u not in todo]
    trained: list[tuple[int, str]] = []
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    bar = tqdm(total=len(todo) * n_clients, disable=not progress, desc=config.preset, unit="fit")
    try:
        for seed in seeds:
            if not any(u[0] == seed for u in todo):
                continue
            clients = make_clients(config.data, np.random.default_rng(seed))
            for c, cd in enumerate(clients):
                path = out / "data" / f"seed{seed}" / f"client{c}.npz"
                if not path.exists():
                    _save_npz(path, cd.x_test, cd.y_test)
            global_model = _global_model(config, out, seed, clients)
            evaluator = _Evaluator(clients, global_model)
            for variant in (BASELINE, *config.variants):
                if (seed, variant) not in todo:
                    continue
                bar.set_postfix_str(f"seed {seed} {variant}")
                metric_rows: list[dict[str, Any]] = []
                epoch_rows: list[dict[str, Any]] = []
                base = {"preset": config.preset, "seed": seed, "variant": variant}
                for c, cd in enumerate(clients):
                    key = {**base, "client": c}

                    def log(
                        epoch: int,
                        model: nn.Module,
                        key: dict[str, Any] = key,
                        ev: _Evaluator = evaluator,
                        rows: list[dict[str, Any]] = epoch_rows,
                    ) -> None:
                        row = ev.epoch_row(model, int(key["client"]))
                        rows.extend(
                            {**key, "epoch": epoch, "metric": k, "value": v} for k, v in row.items()
                        )

                    log(0, global_model)
                    if variant == BASELINE:
                        model = global_model
                    else:
                        vid = VARIANTS.index(variant)
                        gen = torch.Generator().manual_seed(1_000_003 * seed + 1009 * vid + c)
                        x, y = torch.from_numpy(cd.x_train), torch.from_numpy(cd.y_train)
                        model = personalize(variant, global_model, x, y, config.pft, gen, log)
                        _save_tensors(
                            model,
                            out
                            / "checkpoints"
                            / f"seed{seed}"
                            / variant
                            / f"client{c}.safetensors",
                        )
                    metric_rows.extend(
                        {**key, "metric": k, "value": v}
                        for k, v in evaluator.final_row(model, c).items()
                    )
                    bar.update(1)
                _write_unit(out, seed, variant, metric_rows, epoch_rows)
                trained.append((seed, variant))
    finally:
        bar.close()
        torch.set_num_threads(threads)
    write_outputs(out)
    return RunReport(trained=trained, skipped=skipped, out=out)


@dataclass(frozen=True)
class RunReport:
    """What a call of :func:`run_experiment` did.

    Attributes
    ----------
    trained : list of (int, str)
        (seed, variant) units computed by this call (``"fedavg"`` is the global baseline).
    skipped : list of (int, str)
        Units found finished on disk and not recomputed.
    out : Path
        Output directory.
    """

    trained: list[tuple[int, str]]
    skipped: list[tuple[int, str]]
    out: Path


def run_experiment(
    config: ExperimentConfig,
    out: str | Path,
    seeds: Sequence[int] = (0, 1, 2),
    *,
    progress: bool = True,
) -> RunReport:
    """Run (or resume) the experiment; see the module docstring for the layout.

    Parameters
    ----------
    config : ExperimentConfig
        What to run.
    out : str or Path
        Output directory; if it already holds a run, its configuration must match (seeds and
        variants may be extended).
    seeds : sequence of int
        Seeds; each seeds the clients (numpy), the model init and FedAvg/PFT (torch Generators).
    progress : bool
        Show a tqdm progress bar.

    Returns
    -------
    RunReport
        Units trained and skipped.

    Raises
    ------
    ValueError
        If ``out`` holds a run with a different configuration, or ``seeds`` is empty/negative.
    """
    seeds = [int(s) for s in seeds]
    if not seeds or min(seeds) < 0 or len(set(seeds)) != len(seeds):
        raise ValueError(f"seeds must be distinct non-negative integers, got {seeds}")
    return execute(config, Path(out), seeds, progress)
