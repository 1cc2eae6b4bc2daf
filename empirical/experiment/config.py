"""The federated PFT experiment's configuration and presets.

Run a configuration with :func:`empirical.experiment.runner.run_experiment`.

Protocol ([CLOSER] Sec. 3-4; THEORY.md Sec. 4): for each seed, build shifted digit clients
(:mod:`empirical.experiment.data`), train a global model with FedAvg, then fine-tune it on every
client with each PFT variant (:mod:`empirical.experiment.pft`). Every epoch logs the client's
local accuracy, its global accuracy (mean over the *other* clients' test sets) and its feature
distortion ``Delta_c = (1/n) sum_j ||f(theta_G; x_cj) - f(theta_c; x_cj)||_2`` on its own test
samples (:func:`empirical.metrics.delta_l2`).

Output layout under ``OUT`` (all files written atomically; a finished (seed, variant) unit is
recognized by ``runs/seed{S}/{variant}/done.json`` and skipped on the next run)::

    config.json                           the experiment configuration (+ seeds, variants run)
    checkpoints/model.json                {"model", "kwargs", "parts"} for the distortion CLI
    checkpoints/seed{S}/global.safetensors
    checkpoints/seed{S}/{variant}/client{c}.safetensors
    data/seed{S}/client{c}.npz            the client's test set: x (float32), y (int64)
    runs/seed{S}/{variant}/metrics.csv    per unit, tidy
    runs/seed{S}/{variant}/epochs.csv
    metrics.csv  epochs.csv  summary.csv  summary.md   aggregated over all finished units

Accuracies are fractions in [0, 1] in the CSVs and percentages in ``summary.md``.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from empirical.experiment.data import ClientDataConfig
from empirical.experiment.models import MODEL_REGISTRY, build_model, split_parts
from empirical.experiment.pft_config import VARIANTS, PFTConfig
from empirical.experiment.training import FedAvgConfig, LocalConfig

__all__ = ["PRESETS", "ExperimentConfig", "make_preset"]


@dataclass(frozen=True)
class ExperimentConfig:
    """Everything that defines an experiment run (seeds are passed to the runner).

    Parameters
    ----------
    preset : str
        Name recorded in the outputs.
    data : ClientDataConfig
        Clients and shifts.
    model : str
        Registry name (``"cnn"`` or ``"mlp"``).
    model_kwargs : dict
        Constructor arguments of the model (JSON-serializable).
    fedavg : FedAvgConfig
        Global training.
    pft : PFTConfig
        Fine-tuning of every variant.
    variants : tuple of str
        PFT variants to run (subset of :data:`empirical.experiment.pft.VARIANTS`).
    """

    preset: str
    data: ClientDataConfig
    model: str = "cnn"
    model_kwargs: dict[str, Any] = field(default_factory=dict)
    fedavg: FedAvgConfig = FedAvgConfig()
    pft: PFTConfig = PFTConfig()
    variants: tuple[str, ...] = VARIANTS

    def __post_init__(self) -> None:
        if self.model not in MODEL_REGISTRY:
            raise ValueError(
                f"unknown model {self.model!r}; expected one of {sorted(MODEL_REGISTRY)}"
            )
        unknown = [v for v in self.variants if v not in VARIANTS]
        if unknown or not self.variants:
            raise ValueError(
                f"variants must be a non-empty subset of {VARIANTS}, got {list(self.variants)}"
            )
        if len(set(self.variants)) != len(self.variants):
            raise ValueError(f"variants has duplicates: {list(self.variants)}")
        n_blocks = len(build_model(self.model, **self.model_kwargs).features)  # type: ignore[arg-type]
        split_parts(n_blocks, self.pft.split_front, self.pft.split_back)

    def to_json(self) -> dict[str, Any]:
        """JSON-ready dictionary of the configuration (variants excluded: see ``config.json``)."""
        out = dataclasses.asdict(self)
        out.pop("variants")
        return json.loads(json.dumps(out))

    @property
    def parts(self) -> dict[str, list[str]]:
        """Parameter-name prefixes of the split parts (written to ``model.json``)."""
        n_blocks = len(build_model(self.model, **self.model_kwargs).features)  # type: ignore[arg-type]
        return split_parts(n_blocks, self.pft.split_front, self.pft.split_back)


_PRESET_SHIFTS: dict[str, tuple[str, ...]] = {
    "digits-covariate": ("covariate",),
    "digits-concept": ("concept",),
    "digits-spurious": ("spurious",),
    "digits-label": ("label",),
    "digits-combined": ("covariate", "label"),
    "digits-iid": (),
}
PRESETS: tuple[str, ...] = tuple(_PRESET_SHIFTS)


def make_preset(
    name: str,
    *,
    quick: bool = False,
    model: str = "cnn",
    variants: Sequence[str] | None = None,
    flood_level: float | None = None,
) -> ExperimentConfig:
    """Build a named preset.

    Full presets: 5 clients, CNN, FedAvg 40 rounds x 1 local epoch (lr 0.1), PFT 15 epochs
    (lr 0.01; LP-FT 5 LP + 10 FT epochs). ``quick``: 3 clients, 10 rounds, 3 PFT epochs, 2 soup
    ingredients (for tests; seconds per seed).

    Parameters
    ----------
    name : str
        One of :data:`PRESETS` (``digits-covariate``, ``digits-concept``, ``digits-spurious``,
        ``digits-label``, ``digits-combined`` = covariate + label, ``digits-iid``).
    quick : bool
        The small, fast version.
    model : str
        Model registry name.
    variants : sequence of str, optional
        PFT variants (all when omitted).
    flood_level : float, optional
        Loss-flooding level ``b`` for every PFT variant (none when omitted).

    Returns
    -------
    ExperimentConfig
        The validated configuration.
    """
    if name not in _PRESET_SHIFTS:
        raise ValueError(f"unknown preset {name!r}; expected one of {list(PRESETS)}")
    shifts = _PRESET_SHIFTS[name]
    fed_local = LocalConfig(lr=0.1, batch_size=32, momentum=0.9)
    pft_local = LocalConfig(lr=0.01, batch_size=32, momentum=0.9, flood_level=flood_level)
    if quick:
        data = ClientDataConfig(n_clients=3, shifts=shifts)
        fed = FedAvgConfig(rounds=10, local=fed_local)
        pft = PFTConfig(epochs=3, local=pft_local, lp_epochs=1, n_ingredients=2, lss_weight_steps=5)
    else:
        data = ClientDataConfig(n_clients=5, shifts=shifts)
        fed = FedAvgConfig(rounds=40, local=fed_local)
        pft = PFTConfig(epochs=15, local=pft_local, lp_epochs=5)
    return ExperimentConfig(
        preset=name + ("-quick" if quick else ""),
        data=data,
        model=model,
        fedavg=fed,
        pft=pft,
        variants=tuple(variants) if variants is not None else VARIANTS,
    )
