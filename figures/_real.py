"""Small, cached runs of the real federated experiment (sklearn digits) for the figures."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import pandas as pd


def run_real(
    workdir: Path, preset: str, seeds: list[int], variants: list[str], epochs: int,
    flood: float | None = None,
) -> tuple[pd.DataFrame, pd.DataFrame]:  # fmt: skip
    """Run (or resume) the quick preset of the experiment; return (metrics, epoch log).

    Parameters
    ----------
    workdir : Path
        Cache folder (resumable: finished units are skipped).
    preset : str
        Experiment preset (its quick version is used: 3 clients, 5 FedAvg rounds).
    seeds : list of int
    variants : list of str
        PFT variants.
    epochs : int
        Fine-tuning epochs (LP-FT: 1 LP epoch, then FT).
    flood : float or None
        Flood level of the fine-tuning loss.

    Returns
    -------
    metrics, epochs : DataFrame
        As :func:`empirical.experiment.load_metrics` and ``load_epoch_log``.
    """
    from empirical.experiment import load_epoch_log, load_metrics, make_preset, run_experiment

    config: Any = make_preset(preset, quick=True, variants=variants)
    local = dataclasses.replace(config.pft.local, flood_level=flood)
    pft = dataclasses.replace(config.pft, epochs=epochs, lp_epochs=1, local=local)
    config = dataclasses.replace(config, pft=pft)
    tag = f"{preset}-e{epochs}-f{flood}"
    out = workdir / tag
    run_experiment(config, out, seeds, progress=False)
    return load_metrics(out), load_epoch_log(out)
