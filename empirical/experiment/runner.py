"""Execution of :func:`empirical.experiment.run_experiment` (torch-heavy, resumable).

Resume trusts nothing it has not checksummed (:mod:`empirical.experiment.store`): a unit is
reused only when its ``done.json`` vouches for every file it wrote and it was computed from the
seed's current inputs; a damaged global checkpoint or test set is recomputed (FedAvg and the
client split are deterministic, so it gets its old bytes back and the units built on it stay
valid). The final outputs are then byte-identical to those of an undamaged run.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch import nn

from empirical.experiment.config import ExperimentConfig
from empirical.experiment.data import ClientData, make_clients
from empirical.experiment.flexp.unit import run_flexp_unit
from empirical.experiment.lr_sweep import LPPhaseCache, personalize_at_lr
from empirical.experiment.pft import VARIANTS, personalize
from empirical.experiment.pft_config import ALL_VARIANTS, FLEXP
from empirical.experiment.progress import ProgressHook, RunProgress
from empirical.experiment.results import BASELINE, write_outputs
from empirical.experiment.resume import ensure_inputs, inputs_state, tensor_bytes, unit_check
from empirical.experiment.store import Unit, checked_write, seed_path, write_record
from empirical.experiment.training import predict_features
from empirical.metrics import delta_l2, linear_cka
from empirical.model_spec import model_json
from feddistort_io import atomic_write_text


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
    record["variants"] = [v for v in ALL_VARIANTS if v in set(done_variants) | set(config.variants)]
    atomic_write_text(path, json.dumps(record, indent=2) + "\n")
    spec = model_json(config.model, config.model_kwargs, config.parts)  # schema version 2
    atomic_write_text(out / "checkpoints" / "model.json", json.dumps(spec, indent=2) + "\n")


class _Evaluator:
    """Local/global accuracy and distortion of a personalized model for one client.

    One forward pass per test set gives both the features and (through the head) the
    accuracy: ``model(x)`` is ``head(features(x))``, so the values are those of
    :func:`~empirical.experiment.training.accuracy` and ``predict_features``, bit for bit. The
    FedAvg model's epoch-0 row of each client is computed once and shared by every unit.
    """

    def __init__(self, clients: list[ClientData], global_model: nn.Module) -> None:
        self.tests = [(torch.from_numpy(c.x_test), torch.from_numpy(c.y_test)) for c in clients]
        self.global_features = [predict_features(global_model, x) for x, _ in self.tests]
        self.global_model = global_model
        self._start: dict[int, dict[str, float]] = {}

    @torch.no_grad()
    def _measure(self, model: nn.Module, client: int) -> tuple[list[float], torch.Tensor]:
        model.eval()
        features: nn.Module = model.features  # type: ignore[assignment]
        head: nn.Module = model.head  # type: ignore[assignment]
        accs: list[float] = []
        own = torch.empty(0)
        for i, (x, y) in enumerate(self.tests):
            feats = features(x)
            accs.append(float((head(feats).argmax(dim=1) == y).double().mean()))
            own = feats if i == client else own
        return accs, own

    def epoch_row(self, model: nn.Module, client: int) -> dict[str, float]:
        if model is self.global_model and client in self._start:
            return dict(self._start[client])
        accs, feats = self._measure(model, client)
        others = [a for i, a in enumerate(accs) if i != client]
        row = {
            "local_acc": accs[client],
            "global_acc": float(np.mean(others)),
            "delta": delta_l2(self.global_features[client], feats),
        }
        if model is self.global_model:
            self._start[client] = dict(row)
        return row

    def final_row(self, model: nn.Module, client: int) -> dict[str, float]:
        accs, feats = self._measure(model, client)
        ref = self.global_features[client]
        return {
            "local": accs[client],
            "global": float(np.mean([a for i, a in enumerate(accs) if i != client])),
            "global_all": float(np.mean(accs)),
            "delta": delta_l2(ref, feats),
            "cka": linear_cka(ref, feats),
        }


def _row_key(config: ExperimentConfig, unit: Unit) -> dict[str, Any]:
    key: dict[str, Any] = {"preset": config.preset}
    if config.shift_units:
        key["shift"] = unit.shift
    key |= {"seed": unit.seed, "variant": unit.variant}
    if config.ft_lrs:
        key["ft_lr"] = unit.ft_lr
    return key


def _run_unit(
    config: ExperimentConfig,
    out: Path,
    unit: Unit,
    clients: list[ClientData],
    global_model: nn.Module,
    evaluator: _Evaluator,
    inputs: str,
    bar: RunProgress,
    lp_cache: LPPhaseCache,
) -> None:
    """Compute one unit and write its files, then its ``done.json`` (with their sha256).

    In a step-size sweep the FT phase runs at ``unit.ft_lr`` and LP-FT's LP phase comes from
    ``lp_cache`` (:mod:`empirical.experiment.lr_sweep`; bit-identical to recomputing it).
    """
    metric_rows: list[dict[str, Any]] = []
    epoch_rows: list[dict[str, Any]] = []
    hashes: dict[Path, str] = {}
    base = _row_key(config, unit)
    ckpt = seed_path(out, "checkpoints", unit.shift, unit.seed) / unit.tag
    if unit.variant == FLEXP:  # all clients together (empirical.experiment.flexp.unit)
        run_flexp_unit(config=config.flexp, pft=config.pft, model_name=config.model,
                       model_kwargs=config.model_kwargs, out=out, unit=unit, clients=clients,
                       global_model=global_model, evaluator=evaluator, inputs=inputs, base=base,
                       progress=bar.update)  # fmt: skip
        return
    for c, cd in enumerate(clients):
        key = {**base, "client": c}

        def evaluate(model: nn.Module, c: int = c) -> dict[str, float]:
            return evaluator.epoch_row(model, c)

        def record(epoch: int, row: dict[str, float], key: dict[str, Any] = key) -> None:
            epoch_rows.extend({**key, "epoch": epoch, "metric": k, "value": v}
                              for k, v in row.items())  # fmt: skip

        def log(epoch: int, model: nn.Module) -> None:
            record(epoch, evaluate(model))

        log(0, global_model)
        if unit.variant == BASELINE:
            model = global_model
        else:
            vid = VARIANTS.index(unit.variant)
            gen = torch.Generator().manual_seed(1_000_003 * unit.seed + 1009 * vid + c)
            x, y = torch.from_numpy(cd.x_train), torch.from_numpy(cd.y_train)
            if unit.ft_lr is None:
                model = personalize(unit.variant, global_model, x, y, config.pft, gen, log)
            else:
                model = personalize_at_lr(unit.variant, unit.ft_lr, c, global_model, x, y,
                                          config.pft, gen, evaluate, record, lp_cache)  # fmt: skip
            path = ckpt / f"client{c}.safetensors"
            hashes[path] = checked_write(path, tensor_bytes(model))
        metric_rows.extend({**key, "metric": k, "value": v}
                           for k, v in evaluator.final_row(model, c).items())  # fmt: skip
        bar.update(config.pft.epochs)
    folder = seed_path(out, "runs", unit.shift, unit.seed) / unit.tag
    for name, rows in (("metrics.csv", metric_rows), ("epochs.csv", epoch_rows)):
        text = pd.DataFrame(rows).to_csv(index=False)
        hashes[folder / name] = checked_write(folder / name, text.encode())
    write_record(folder / "done.json", out, hashes, unit=unit.identity(), inputs=inputs)


def execute(
    config: ExperimentConfig, out: Path, seeds: list[int], progress: bool | ProgressHook
) -> RunReport:
    """Run every unfinished or damaged unit, then rewrite the aggregated outputs.

    Progress counts client-epochs (:mod:`empirical.experiment.progress`): FedAvg rounds where
    the global model is (re)trained, and every unit's fine-tuning.

    Runs single-threaded (``torch.set_num_threads(1)``, restored afterwards): with these tiny
    models on a shared 2-core machine, two threads measured about 9x slower.
    """
    _prepare_out(config, out, seeds)
    n_clients = config.data.n_clients
    runs = [(BASELINE, None), *config.variant_runs()]
    groups = [(shift, data, seed, [Unit(shift, seed, v, lr) for v, lr in runs])
              for shift, data in config.shift_data() for seed in seeds]  # fmt: skip
    status: dict[Unit, list[str] | None] = {}
    intact: dict[tuple[str | None, int], bool] = {}
    for shift, _, seed, units in groups:
        inputs, intact[(shift, seed)] = inputs_state(out, shift, seed, n_clients)
        status |= {u: unit_check(out, u, n_clients, inputs) for u in units}
    todo = {u for u, s in status.items() if s is not None}
    report = RunReport(trained=[], skipped=[(u.seed, u.label) for u in status if u not in todo],
                       out=out, damaged=[f for s in status.values() for f in s or []])  # fmt: skip
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    fit = n_clients * config.pft.epochs
    fed = config.fedavg
    per_round = max(1, int(round(fed.participation * n_clients))) * fed.local_epochs
    planned = {key: 0 if ok else fed.rounds * per_round for key, ok in intact.items()}
    hook = progress if callable(progress) else None
    bar = RunProgress(len(todo) * fit + sum(planned.values()), progress is True, hook,
                      config.preset)  # fmt: skip
    try:
        for shift, data, seed, units in groups:
            if intact[(shift, seed)] and not todo.intersection(units):
                continue
            clients = make_clients(data, np.random.default_rng(seed))
            where = f"{shift}/seed {seed}" if shift else f"seed {seed}"
            rounds = [0]
            expected = planned[(shift, seed)]

            def on_round(rnd: int, model: nn.Module, where: str = where, expected: int = expected,
                         rounds: list[int] = rounds) -> None:  # fmt: skip
                if not expected:
                    bar.add_total(per_round)
                rounds[0] += 1
                bar.update(per_round, f"{where} FedAvg round {rnd + 1}/{fed.rounds}")

            global_model, inputs, repaired = ensure_inputs(config, out, shift, seed, clients,
                                                           on_round)  # fmt: skip
            if expected and not rounds[0]:  # the checkpoint was reused
                bar.add_total(-expected)
            report.damaged.extend(repaired)
            evaluator = _Evaluator(clients, global_model)
            lp_cache = LPPhaseCache()
            for unit in units:
                if unit not in todo:
                    if unit_check(out, unit, n_clients, inputs) is None:
                        continue
                    # The inputs were recomputed to other bytes: the unit is stale.
                    report.skipped.remove((unit.seed, unit.label))
                    bar.add_total(fit)
                bar.update(0, f"{where} {unit.tag}")
                _run_unit(config, out, unit, clients, global_model, evaluator, inputs, bar,
                          lp_cache)  # fmt: skip
                report.trained.append((unit.seed, unit.label))
    finally:
        bar.close()
        torch.set_num_threads(threads)
    write_outputs(out)
    return report


@dataclass(frozen=True)
class RunReport:
    """What a call of :func:`run_experiment` did.

    Attributes
    ----------
    trained : list of (int, str)
        (seed, unit) pairs computed by this call; the unit is the variant (``"fedavg"`` is
        the global baseline), ``variant-lr{ft_lr}`` in a step-size sweep, and prefixed by
        ``shift/`` in a multi-shift preset.
    skipped : list of (int, str)
        Units found finished on disk, with every checksum matching, and not recomputed.
    out : Path
        Output directory.
    damaged : list of str
        Files (relative to ``out``) that were on disk but failed their recorded checksum (or
        whose record was unreadable), and were recomputed.
    """

    trained: list[tuple[int, str]]
    skipped: list[tuple[int, str]]
    out: Path
    damaged: list[str] = field(default_factory=list)


def run_experiment(
    config: ExperimentConfig,
    out: str | Path,
    seeds: Sequence[int] = (0, 1, 2),
    *,
    progress: bool | ProgressHook = True,
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
    progress : bool or callable
        True: show a tqdm bar (in client-epochs: FedAvg rounds and fine-tuning). A callable
        ``hook(done, total, label)`` gets the same counts after every FedAvg round and every
        fine-tuned client instead (no bar); False: nothing.

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
