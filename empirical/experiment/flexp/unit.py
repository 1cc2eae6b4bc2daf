"""The ``flexp`` unit of an experiment run: train, evaluate, write checkpoints and tidy rows.

Called by :mod:`empirical.experiment.runner` for the variant ``flexp`` (all clients of a seed
are trained together, unlike the per-client PFT variants). Files of the unit, all listed with
their sha256 in the unit's ``done.json``::

    checkpoints/[shift/]seed{S}/flexp/client{c}.safetensors   the client's model as evaluated:
                                                              its parts + the middle it used
    checkpoints/[shift/]seed{S}/flexp/server.safetensors      shared mode: the one server copy
    checkpoints/[shift/]seed{S}/flexp/model.json              schema v2, client_parts per
                                                              client ("client{c}")
    runs/[shift/]seed{S}/flexp/metrics.csv, epochs.csv        tidy, as the other variants,
                                                              plus delta_cut(_others), costs
    runs/[shift/]seed{S}/flexp/clients.csv                    one row per client: cut, accuracies,
                                                              distortions and costs side by side

In ``frozen`` mode the server middle of client ``c`` is the global middle; it is stored inside
``client{c}.safetensors`` (bit-identical to ``global.safetensors`` on those keys).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import pandas as pd
import torch
from safetensors.torch import save
from torch import nn

from empirical.experiment.data import ClientData, ClientDataConfig
from empirical.experiment.flexp.config import FlexPConfig
from empirical.experiment.flexp.costs import client_cost, profile_model
from empirical.experiment.flexp.partition import Cut, client_cuts, partition
from empirical.experiment.flexp.train import flexp_train
from empirical.experiment.models import build_model
from empirical.experiment.pft_config import PFTConfig
from empirical.experiment.store import Unit, checked_write, seed_path, write_record
from empirical.metrics import delta_l2
from empirical.model_spec import model_json

__all__ = ["FLEXP_SEED_OFFSET", "check_flexp", "cut_delta", "resolve_cuts", "run_flexp_unit"]

FLEXP_SEED_OFFSET = 8  # the generator stream index of flexp (after the 8 PFT variants)


class Evaluator(Protocol):
    """What the runner's evaluator offers (rows of floats for one client)."""

    def epoch_row(self, model: nn.Module, client: int) -> dict[str, float]: ...

    def final_row(self, model: nn.Module, client: int) -> dict[str, float]: ...


def resolve_cuts(
    global_model: nn.Module, sample_shape: tuple[int, ...], n_clients: int, config: FlexPConfig
) -> list[Cut]:
    """Each client's cut: the explicit cut points, or the budget rule on the model's profile."""
    profile = profile_model(global_model, sample_shape)
    return client_cuts(n_clients, profile, config.cuts, config.budgets, config.budget_kind)


DIGITS_SAMPLE_SHAPE: tuple[int, ...] = (1, 8, 8)


def check_flexp(
    config: FlexPConfig, model: str, model_kwargs: dict[str, Any], data: ClientDataConfig
) -> None:
    """Refuse, before anything runs, cut points or budgets that the model or clients reject.

    Raises
    ------
    ValueError
        A cut point outside the model, a budget no partition fits, or more cut points (or
        budgets) than clients; the message names the value and what is allowed.
    """
    net = build_model(model, **model_kwargs)
    resolve_cuts(net, DIGITS_SAMPLE_SHAPE, data.n_clients, config)


@torch.no_grad()
def cut_delta(global_model: nn.Module, model: nn.Module, front: int, x: torch.Tensor) -> float:
    """``Delta`` at the first cut: mean l2 distance of the flattened front outputs, (n, D)."""
    global_model.eval()
    model.eval()
    g_features: nn.Sequential = global_model.features  # type: ignore[assignment]
    c_features: nn.Sequential = model.features  # type: ignore[assignment]
    return delta_l2(g_features[:front](x).flatten(1), c_features[:front](x).flatten(1))


def _state_bytes(state: dict[str, torch.Tensor]) -> bytes:
    return bytes(save({k: v.detach().clone().contiguous() for k, v in state.items()}))


def run_flexp_unit(
    *,
    config: FlexPConfig,
    pft: PFTConfig,
    model_name: str,
    model_kwargs: dict[str, Any],
    out: Path,
    unit: Unit,
    clients: list[ClientData],
    global_model: nn.Module,
    evaluator: Evaluator,
    inputs: str,
    base: dict[str, Any],
    progress: Callable[[int], None],
) -> None:
    """Compute the ``flexp`` unit of one seed and write its files, ``done.json`` last.

    Parameters
    ----------
    config, pft : FlexPConfig, PFTConfig
        Split/alignment settings; epochs and SGD.
    model_name, model_kwargs : str, dict
        For the unit's ``model.json``.
    out : Path
        Experiment directory.
    unit : Unit
    clients : list of ClientData
    global_model : nn.Module
        ``theta_G`` of the seed.
    evaluator : Evaluator
        The runner's per-client evaluation.
    inputs : str
        sha256 of the seed's ``inputs.json`` (recorded in ``done.json``).
    base : dict
        Key columns of the unit's rows (preset, [shift], seed, variant).
    progress : callable
        Called with 1 after each client's final evaluation.
    """
    train = [(torch.from_numpy(c.x_train), torch.from_numpy(c.y_train)) for c in clients]
    shape = tuple(int(s) for s in clients[0].x_train.shape[1:])
    cuts = resolve_cuts(global_model, shape, len(clients), config)
    profile = profile_model(global_model, shape)
    gens = [torch.Generator().manual_seed(1_000_003 * unit.seed + 1009 * FLEXP_SEED_OFFSET + c)
            for c in range(len(clients))]  # fmt: skip
    epoch_rows: list[dict[str, Any]] = []

    def log(epoch: int, c: int, model: nn.Module) -> None:
        key = {**base, "client": c, "epoch": epoch}
        epoch_rows.extend({**key, "metric": k, "value": v}
                          for k, v in evaluator.epoch_row(model, c).items())  # fmt: skip

    for c in range(len(clients)):
        log(0, c, global_model)
    result = flexp_train(global_model, train, cuts, config, pft, gens, log)
    ckpt = seed_path(out, "checkpoints", unit.shift, unit.seed) / unit.tag
    folder = seed_path(out, "runs", unit.shift, unit.seed) / unit.tag
    hashes: dict[Path, str] = {}
    metric_rows: list[dict[str, Any]] = []
    wide: list[dict[str, Any]] = []
    for c, (model, cut, cd) in enumerate(zip(result.models, cuts, clients, strict=True)):
        path = ckpt / f"client{c}.safetensors"
        hashes[path] = checked_write(path, _state_bytes(model.state_dict()))
        row: dict[str, Any] = dict(evaluator.final_row(model, c))
        row["delta_cut"] = cut_delta(global_model, model, cut.front, torch.from_numpy(cd.x_test))
        row["delta_cut_others"] = float(np.mean([
            cut_delta(global_model, model, cut.front, torch.from_numpy(o.x_test))
            for i, o in enumerate(clients) if i != c]))  # fmt: skip
        row |= {"cut_front": cut.front, "cut_back": cut.back}
        row |= client_cost(profile, cut.front, cut.back).as_row()
        metric_rows.extend({**base, "client": c, "metric": k, "value": v} for k, v in row.items())
        wide.append({**base, "client": c, "cut": str(cut), "server_mode": config.server_mode,
                     "beta": config.beta, **row})  # fmt: skip
        progress(1)
    if result.server is not None:
        state = {f"features.{k}": v for k, v in result.server.state_dict().items()}
        hashes[ckpt / "server.safetensors"] = checked_write(
            ckpt / "server.safetensors", _state_bytes(state)
        )
    n_blocks = len(global_model.features)  # type: ignore[arg-type]
    per_client = {f"client{c}": {k: v for k, v in p.items() if v}  # no empty part (back=0)
                  for c, p in enumerate(partition(n_blocks, cuts))}  # fmt: skip
    spec = model_json(model_name, model_kwargs, client_parts=per_client)
    text = json.dumps(spec, indent=2) + "\n"
    hashes[ckpt / "model.json"] = checked_write(ckpt / "model.json", text.encode())
    tables = (("metrics.csv", metric_rows), ("epochs.csv", epoch_rows), ("clients.csv", wide))
    for name, rows in tables:
        data = pd.DataFrame(rows).to_csv(index=False).encode()
        hashes[folder / name] = checked_write(folder / name, data)
    write_record(folder / "done.json", out, hashes, unit=unit.identity(), inputs=inputs)
