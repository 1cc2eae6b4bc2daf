"""The split-depth study: accuracy, distortion and cost against cut depth, beta and server mode.

For each shift and seed the digits clients and the FedAvg model are built exactly as
:func:`empirical.experiment.run_experiment` builds them (same seeds, so the same global model),
then :func:`~empirical.experiment.flexp.train.flexp_train` runs once per (server mode, cut,
beta), every client with the same cut. Rows are per client.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import torch

from empirical.experiment.config import make_preset
from empirical.experiment.data import make_clients
from empirical.experiment.flexp.config import FlexPConfig
from empirical.experiment.flexp.costs import BlockProfile, client_cost, profile_model
from empirical.experiment.flexp.partition import Cut
from empirical.experiment.flexp.train import flexp_train
from empirical.experiment.flexp.unit import FLEXP_SEED_OFFSET, cut_delta
from empirical.experiment.models import build_model
from empirical.experiment.pft_config import PFTConfig
from empirical.experiment.training import accuracy, fedavg, predict_features
from empirical.metrics import delta_l2

__all__ = ["StudyConfig", "split_depth_study"]


@dataclass(frozen=True)
class StudyConfig:
    """What the study sweeps (the preset ``digits-flexp`` supplies data, FedAvg and SGD).

    Parameters
    ----------
    shifts : tuple of str
        Shift units of ``digits-flexp`` (covariate, concept).
    seeds : tuple of int
    cuts : tuple of str
        ``front:back`` cut points (one per study point, used by every client).
    betas : tuple of float
        Alignment strengths (include 0 for the no-alignment reference).
    modes : tuple of str
        Server modes.
    quick : bool
        The preset's quick version (3 clients, 10 FedAvg rounds, 3 epochs).
    epochs : int or None
        Override of the fine-tuning epochs.
    align_depth : str
        ``first`` or ``client`` (:class:`FlexPConfig`).
    fedavg_rounds : int or None
        Override of the FedAvg rounds (tests).
    """

    shifts: tuple[str, ...] = ("covariate", "concept")
    seeds: tuple[int, ...] = (0, 1, 2)
    cuts: tuple[str, ...] = ("1:0", "1:1", "2:1")
    betas: tuple[float, ...] = (0.0, 0.25, 1.0)
    modes: tuple[str, ...] = ("frozen", "shared")
    quick: bool = True
    epochs: int | None = None
    align_depth: str = "client"
    fedavg_rounds: int | None = None

    def __post_init__(self) -> None:
        for beta in self.betas:
            FlexPConfig(beta=beta)
        for mode in self.modes:
            FlexPConfig(server_mode=mode)
        for cut in self.cuts:
            Cut.parse(cut)
        if not (self.shifts and self.seeds and self.cuts and self.betas and self.modes):
            raise ValueError("shifts, seeds, cuts, betas and modes must all be non-empty")


def split_depth_study(
    config: StudyConfig, progress: Callable[[str], None] | None = None
) -> pd.DataFrame:
    """Run the study.

    Parameters
    ----------
    config : StudyConfig
    progress : callable, optional
        Called with a short label before each training.

    Returns
    -------
    DataFrame
        Columns ``shift, seed, mode, cut, client_blocks, beta, client, metric, value``;
        metrics ``local`` (own test accuracy), ``global`` (mean over the other clients' test
        sets), ``delta`` (Delta_c, penultimate features, own test set), ``delta_cut`` (at the
        first cut), ``delta_cut_others`` (at the first cut, mean over the other clients' test
        sets), ``client_params``, ``client_flops``, ``bytes_sent``, ``activation_bytes``.
    """
    preset = make_preset("digits-flexp", quick=config.quick, variants=("flexp",),
                         shifts=config.shifts)  # fmt: skip
    pft = preset.pft if config.epochs is None else dataclasses.replace(
        preset.pft, epochs=config.epochs)  # fmt: skip
    rows: list[dict[str, Any]] = []
    for shift, data in preset.shift_data():
        for seed in config.seeds:
            clients = make_clients(data, np.random.default_rng(seed))
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(seed)
                init = build_model(preset.model, **preset.model_kwargs)
            train = [(torch.from_numpy(c.x_train), torch.from_numpy(c.y_train)) for c in clients]
            tests = [(torch.from_numpy(c.x_test), torch.from_numpy(c.y_test)) for c in clients]
            fed = preset.fedavg if config.fedavg_rounds is None else dataclasses.replace(
                preset.fedavg, rounds=config.fedavg_rounds)  # fmt: skip
            global_model = fedavg(init, train, fed, torch.Generator().manual_seed(seed))
            profile = profile_model(global_model, tuple(clients[0].x_train.shape[1:]))
            g_feats = [predict_features(global_model, x) for x, _ in tests]
            for mode in config.modes:
                for text in config.cuts:
                    for beta in config.betas:
                        if progress is not None:
                            progress(f"{shift} seed {seed} {mode} {text} beta={beta:g}")
                        key = {"shift": shift, "seed": seed, "mode": mode, "cut": text,
                               "beta": float(beta)}  # fmt: skip
                        rows += _one_point(key, global_model, train, tests, g_feats, profile,
                                           pft, config.align_depth)  # fmt: skip
    return pd.DataFrame(rows)


def _one_point(
    key: dict[str, Any],
    global_model: torch.nn.Module,
    train: list[tuple[torch.Tensor, torch.Tensor]],
    tests: list[tuple[torch.Tensor, torch.Tensor]],
    g_feats: list[torch.Tensor],
    profile: BlockProfile,
    pft: PFTConfig,
    align_depth: str,
) -> list[dict[str, Any]]:
    """Train every client at one (mode, cut, beta) and return its tidy rows."""
    cut = Cut.parse(key["cut"])
    cost = client_cost(profile, cut.front, cut.back)
    flexp = FlexPConfig(cuts=(key["cut"],), server_mode=key["mode"], beta=key["beta"],
                        align_depth=align_depth)  # fmt: skip
    seed = int(key["seed"])
    gens = [torch.Generator().manual_seed(1_000_003 * seed + 1009 * FLEXP_SEED_OFFSET + c)
            for c in range(len(train))]  # fmt: skip
    result = flexp_train(global_model, train, [cut] * len(train), flexp, pft, gens)
    rows: list[dict[str, Any]] = []
    for c, model in enumerate(result.models):
        accs = [accuracy(model, x, y) for x, y in tests]
        values = {
            "local": accs[c],
            "global": float(np.mean([a for i, a in enumerate(accs) if i != c])),
            "delta": delta_l2(g_feats[c], predict_features(model, tests[c][0])),
            "delta_cut": cut_delta(global_model, model, cut.front, tests[c][0]),
            "delta_cut_others": float(
                np.mean(
                    [
                        cut_delta(global_model, model, cut.front, x)
                        for i, (x, _) in enumerate(tests)
                        if i != c
                    ]
                )
            ),
            "client_params": cost.params,
            "client_flops": cost.flops,
            "bytes_sent": cost.bytes_sent,
            "activation_bytes": cost.activation_bytes,
        }
        rows += [{**key, "client_blocks": cut.front + cut.back, "client": c, "metric": k,
                  "value": float(v)} for k, v in values.items()]  # fmt: skip
    return rows
