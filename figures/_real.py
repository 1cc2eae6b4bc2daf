"""Small, cached runs of the real federated experiment (sklearn digits) for the figures."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import pandas as pd

from figures._progress import inner_progress


def run_real(
    workdir: Path, preset: str, seeds: list[int], variants: list[str], epochs: int | None,
    flood: float | None = None, *, quick: bool = True,
) -> tuple[pd.DataFrame, pd.DataFrame]:  # fmt: skip
    """Run (or resume) a preset of the experiment; return (metrics, epoch log).

    Parameters
    ----------
    workdir : Path
        Cache folder (resumable: finished units are skipped).
    preset : str
        Experiment preset (:func:`empirical.experiment.make_preset`).
    seeds : list of int
    variants : list of str
        PFT variants.
    epochs : int or None
        Fine-tuning epochs (LP-FT: 1 LP epoch, then FT); ``None`` keeps the preset's
        schedule (full preset: 15 epochs, LP-FT 5 LP + 10 FT, as in [CLOSER]).
    flood : float or None
        Flood level of the fine-tuning loss.
    quick : bool
        Use the preset's quick version (3 clients, 10 FedAvg rounds) instead of the full one
        (5 clients, 40 rounds).

    Returns
    -------
    metrics, epochs : DataFrame
        As :func:`empirical.experiment.load_metrics` and ``load_epoch_log``.
    """
    from empirical.experiment import (
        load_epoch_log,
        load_metrics,
        make_preset,
        run_experiment,
    )

    config: Any = make_preset(preset, quick=quick, variants=variants)
    local = dataclasses.replace(config.pft.local, flood_level=flood)
    pft = dataclasses.replace(config.pft, local=local)
    if epochs is not None:
        pft = dataclasses.replace(pft, epochs=epochs, lp_epochs=1)
    config = dataclasses.replace(config, pft=pft)
    tag = f"{preset}-{'quick' if quick else 'full'}-e{epochs}-f{flood}"
    out = workdir / tag
    run_experiment(config, out, seeds, progress=inner_progress())
    return load_metrics(out), load_epoch_log(out)
