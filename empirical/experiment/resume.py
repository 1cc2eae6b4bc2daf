"""What a resumed experiment may reuse: checksum checks of units and of each seed's inputs.

A unit (:class:`~empirical.experiment.store.Unit`) is reused only if its ``done.json`` names
it, lists a sha256 for every file it owns that matches the file on disk, and was computed from
the seed's current inputs record (``inputs.json``: the FedAvg checkpoint and the client test
sets). :func:`ensure_inputs` loads the seed's global model when its checkpoint matches its
record and recomputes it otherwise (FedAvg is deterministic given the seed, so it gets back its
recorded bytes and the units built on it stay valid).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import load, save
from torch import nn

from empirical.experiment.config import ExperimentConfig
from empirical.experiment.data import ClientData
from empirical.experiment.models import build_model
from empirical.experiment.results import BASELINE
from empirical.experiment.store import (
    Unit,
    checked_write,
    file_sha256,
    npz_bytes,
    read_record,
    record_mismatches,
    seed_path,
    write_record,
)
from empirical.experiment.training import fedavg

__all__ = ["ensure_inputs", "inputs_state", "tensor_bytes", "unit_check", "unit_files"]


def tensor_bytes(model: nn.Module) -> bytes:
    """The safetensors serialization of a model's state (deterministic bytes)."""
    state = {k: v.detach().clone().contiguous() for k, v in model.state_dict().items()}
    return bytes(save(state))


def unit_files(out: Path, unit: Unit, n_clients: int) -> list[Path]:
    """Every file a finished unit owns besides its ``done.json``."""
    folder = seed_path(out, "runs", unit.shift, unit.seed) / unit.tag
    files = [folder / "metrics.csv", folder / "epochs.csv"]
    if unit.variant != BASELINE:
        ckpt = seed_path(out, "checkpoints", unit.shift, unit.seed) / unit.tag
        files += [ckpt / f"client{c}.safetensors" for c in range(n_clients)]
    return files


def unit_check(out: Path, unit: Unit, n_clients: int, inputs: str | None) -> list[str] | None:
    """Whether a unit can be reused.

    Parameters
    ----------
    out : Path
        Experiment directory.
    unit : Unit
    n_clients : int
    inputs : str or None
        sha256 of the seed's ``inputs.json`` (None when it is missing).

    Returns
    -------
    list of str or None
        None when the unit can be reused. Otherwise the damaged files relative to ``out``
        (a ``done.json`` that is unreadable or names another unit, files whose sha256
        differs from the record); an empty list when the unit simply has to be computed
        (never finished, or computed from other inputs).
    """
    done = seed_path(out, "runs", unit.shift, unit.seed) / unit.tag / "done.json"
    if not done.exists():
        return []
    record = read_record(done)
    if record is None or record.get("unit") != unit.identity():
        return [done.relative_to(out).as_posix()]
    bad = record_mismatches(out, record, unit_files(out, unit, n_clients))
    if bad:
        return bad
    return None if inputs is not None and record.get("inputs") == inputs else []


def _input_files(out: Path, shift: str | None, seed: int, n_clients: int) -> list[Path]:
    data = seed_path(out, "data", shift, seed)
    return [
        seed_path(out, "checkpoints", shift, seed) / "global.safetensors",
        *(data / f"client{c}.npz" for c in range(n_clients)),
    ]


def inputs_state(
    out: Path, shift: str | None, seed: int, n_clients: int
) -> tuple[str | None, bool]:
    """The sha256 of the seed's ``inputs.json`` (None if absent) and whether it vouches for all.

    Units recorded with this sha256 stay reusable if :func:`ensure_inputs` restores the
    inputs to their recorded bytes.
    """
    path = seed_path(out, "runs", shift, seed) / "inputs.json"
    record = read_record(path)
    ok = record is not None and not record_mismatches(
        out, record, _input_files(out, shift, seed, n_clients)
    )
    return file_sha256(path), ok


def ensure_inputs(
    config: ExperimentConfig,
    out: Path,
    shift: str | None,
    seed: int,
    clients: list[ClientData],
    on_round: Callable[[int, nn.Module], None] | None = None,
) -> tuple[nn.Module, str, list[str]]:
    """The seed's FedAvg model; test sets and checkpoint repaired or written, and recorded.

    Parameters
    ----------
    config : ExperimentConfig
    out : Path
        Experiment directory.
    shift : str or None
        Shift unit.
    seed : int
    clients : list of ClientData
        The seed's clients (deterministic from the seed).
    on_round : callable, optional
        ``(round, model)`` after every FedAvg round, when the global model is trained.

    Returns
    -------
    model : nn.Module
        The global model (loaded only when its checkpoint matches the record).
    inputs : str
        sha256 of the (re)written ``inputs.json``.
    repaired : list of str
        Files that existed or were recorded but did not match, and were rewritten.
    """
    files = _input_files(out, shift, seed, len(clients))
    path = seed_path(out, "runs", shift, seed) / "inputs.json"
    record = read_record(path)
    recorded: dict[str, str] = record["files"] if record is not None else {}
    hashes: dict[Path, str] = {}
    repaired: list[str] = []

    def note(target: Path, current: str | None) -> None:
        rel = target.relative_to(out).as_posix()
        if current is not None or rel in recorded:
            repaired.append(rel)

    for target, client in zip(files[1:], clients, strict=True):
        data = npz_bytes({"x": client.x_test.astype(np.float32),
                          "y": client.y_test.astype(np.int64)})  # fmt: skip
        sha = hashlib.sha256(data).hexdigest()
        current = file_sha256(target)
        if current != sha:
            note(target, current)
            checked_write(target, data)
        hashes[target] = sha
    # Model initialization draws from torch's global RNG; fork_rng restores it afterwards.
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = build_model(config.model, **config.model_kwargs)
    current = file_sha256(files[0])
    if current is not None and current == recorded.get(files[0].relative_to(out).as_posix()):
        model.load_state_dict(load(files[0].read_bytes()))
        hashes[files[0]] = current
    else:
        note(files[0], current)
        train = [(torch.from_numpy(c.x_train), torch.from_numpy(c.y_train)) for c in clients]
        model = fedavg(model, train, config.fedavg, torch.Generator().manual_seed(seed), on_round)
        hashes[files[0]] = checked_write(files[0], tensor_bytes(model))
    listing = {p.relative_to(out).as_posix(): h for p, h in hashes.items()}
    if record is None or recorded != listing:
        write_record(path, out, hashes, seed=seed, shift=shift)
    written = file_sha256(path)
    if written is None:  # pragma: no cover - just written
        raise OSError(f"could not read back {path}")
    return model, written, repaired
