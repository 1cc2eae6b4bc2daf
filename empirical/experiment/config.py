"""The federated PFT experiment's configuration and presets.

Run a configuration with :func:`empirical.experiment.runner.run_experiment`.

Protocol ([CLOSER] Sec. 3-4; docs/theory.md Sec. 4): for each seed, build shifted digit clients
(:mod:`empirical.experiment.data`), train a global model with FedAvg, then fine-tune it on every
client with each PFT variant (:mod:`empirical.experiment.pft`). Every epoch logs the client's
local accuracy, its global accuracy (mean over the *other* clients' test sets) and its feature
distortion ``Delta_c = (1/n) sum_j ||f(theta_G; x_cj) - f(theta_c; x_cj)||_2`` on its own test
samples (:func:`empirical.metrics.delta_l2`).

Output layout under ``OUT`` (all files written atomically)::

    config.json                           the experiment configuration (+ seeds, variants run)
    checkpoints/model.json                {"model", "kwargs", "parts"} for the distortion CLI
    checkpoints/seed{S}/global.safetensors
    checkpoints/seed{S}/{unit}/client{c}.safetensors
    data/seed{S}/client{c}.npz            the client's test set: x (float32), y (int64)
    runs/seed{S}/inputs.json              sha256 of the global checkpoint and the test sets
    runs/seed{S}/{unit}/metrics.csv       per unit, tidy
    runs/seed{S}/{unit}/epochs.csv
    runs/seed{S}/{unit}/done.json         written last: the sha256 of every file of the unit
    metrics.csv  epochs.csv  summary.csv  summary.md   aggregated over all finished units

A unit is one variant (``{unit}`` = the variant name) or, in a step-size sweep
(``ft_lrs``), one variant at one FT learning rate (``ft-lr0.01``). A preset with several
``shift_units`` runs each shift on its own clients and puts every path above one level deeper,
under the shift's name (``runs/concept/seed0/...``). On resume a unit is reused only if its
``done.json`` lists a sha256 that matches every one of its files (and of the seed's global
checkpoint); anything else is recomputed (:mod:`empirical.experiment.store`).

Accuracies are fractions in [0, 1] in the CSVs and percentages in ``summary.md``.
"""

from __future__ import annotations

import dataclasses
import json
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from empirical.experiment.data import SHIFTS, ClientDataConfig
from empirical.experiment.flexp.config import FlexPConfig
from empirical.experiment.models import MODEL_REGISTRY, build_model, split_parts
from empirical.experiment.pft_config import ALL_VARIANTS, FLEXP, VARIANTS, PFTConfig
from empirical.experiment.training import FedAvgConfig, LocalConfig

__all__ = ["LR_VARIANTS", "PRESETS", "STEP_SIZE_LRS", "ExperimentConfig", "make_preset"]

# Variants that a step-size sweep (``ft_lrs``) accepts; ``ft`` and ``lpft`` are swept.
LR_VARIANTS: tuple[str, ...] = ("ft", "lp", "lpft")
# FT-phase learning rates of ``digits-step-size``: two orders of magnitude around the
# presets' 0.01 (SGD, momentum 0.9).
STEP_SIZE_LRS: tuple[float, ...] = (0.001, 0.003, 0.01, 0.03, 0.1)


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
    shift_units : tuple of str
        When non-empty, each of these shifts is run on its own clients
        (``data.shifts`` replaced by ``(shift,)``; ``data.shifts`` must then be empty), and
        the outputs carry a ``shift`` column. Empty: one set of clients with ``data.shifts``.
    ft_lrs : tuple of float
        When non-empty, a step-size sweep: ``ft`` and the FT phase of ``lpft`` run once per
        learning rate (the LP phase and ``lp`` keep ``pft.local.lr``), and the outputs carry an
        ``ft_lr`` column (empty for ``fedavg`` and ``lp``). Variants must be among
        :data:`LR_VARIANTS`.
    flexp : FlexPConfig
        Settings of the ``flexp`` variant (recorded in ``config.json`` only when it runs).
    """

    preset: str
    data: ClientDataConfig
    model: str = "cnn"
    model_kwargs: dict[str, Any] = field(default_factory=dict)
    fedavg: FedAvgConfig = FedAvgConfig()
    pft: PFTConfig = PFTConfig()
    variants: tuple[str, ...] = VARIANTS
    shift_units: tuple[str, ...] = ()
    ft_lrs: tuple[float, ...] = ()
    flexp: FlexPConfig = FlexPConfig()

    def __post_init__(self) -> None:
        if self.model not in MODEL_REGISTRY:
            raise ValueError(
                f"unknown model {self.model!r}; expected one of {sorted(MODEL_REGISTRY)}"
            )
        unknown = [v for v in self.variants if v not in ALL_VARIANTS]
        if unknown or not self.variants:
            raise ValueError(
                f"variants must be a non-empty subset of {ALL_VARIANTS}, got {list(self.variants)}"
            )
        if len(set(self.variants)) != len(self.variants):
            raise ValueError(f"variants has duplicates: {list(self.variants)}")
        n_blocks = len(build_model(self.model, **self.model_kwargs).features)  # type: ignore[arg-type]
        split_parts(n_blocks, self.pft.split_front, self.pft.split_back)
        if FLEXP in self.variants:
            from empirical.experiment.flexp.unit import check_flexp

            check_flexp(self.flexp, self.model, self.model_kwargs, self.data)
        self._check_sweeps()

    def _check_sweeps(self) -> None:
        bad = [s for s in self.shift_units if s not in SHIFTS]
        if bad or len(set(self.shift_units)) != len(self.shift_units):
            raise ValueError(
                f"shift_units={list(self.shift_units)} is invalid: expected distinct shifts "
                f"among {', '.join(SHIFTS)}"
            )
        if self.shift_units and self.data.shifts:
            raise ValueError(
                f"data.shifts={list(self.data.shifts)} is invalid with shift_units: expected "
                "() (each shift unit sets its own clients' shift)"
            )
        lrs = self.ft_lrs
        if any(isinstance(v, bool) or not isinstance(v, (int, float)) for v in lrs) or not all(
            math.isfinite(v) and v > 0 for v in lrs
        ):
            raise ValueError(f"ft_lrs={list(lrs)} is invalid: expected finite learning rates > 0")
        if len(set(lrs)) != len(lrs):
            raise ValueError(f"ft_lrs={list(lrs)} is invalid: expected distinct values")
        if lrs and any(v not in LR_VARIANTS for v in self.variants):
            raise ValueError(
                f"variants={list(self.variants)} is invalid with ft_lrs: expected a subset of "
                f"{', '.join(LR_VARIANTS)}"
            )

    def to_json(self) -> dict[str, Any]:
        """JSON-ready dictionary of the configuration (variants excluded: see ``config.json``).

        ``shift_units`` and ``ft_lrs`` are left out when empty, so runs of the presets without
        them keep the ``config.json`` they had.
        """
        out = dataclasses.asdict(self)
        out.pop("variants")
        for name in ("shift_units", "ft_lrs"):
            if not out[name]:
                out.pop(name)
        if FLEXP not in self.variants:
            out.pop("flexp")
        return json.loads(json.dumps(out))

    def shift_data(self) -> list[tuple[str | None, ClientDataConfig]]:
        """The client sets to run: ``(shift name or None, data)``, one per shift unit."""
        if not self.shift_units:
            return [(None, self.data)]
        return [(s, dataclasses.replace(self.data, shifts=(s,))) for s in self.shift_units]

    def variant_runs(self) -> list[tuple[str, float | None]]:
        """The ``(variant, ft_lr)`` runs per seed, in order (``ft_lr`` None: not swept)."""
        runs: list[tuple[str, float | None]] = []
        for v in self.variants:
            if self.ft_lrs and v != "lp":
                runs += [(v, float(lr)) for lr in self.ft_lrs]
            else:
                runs.append((v, None))
        return runs

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
    "digits-flexp-budgets": ("covariate",),
}
# Presets that run several shifts, each on its own clients (ExperimentConfig.shift_units).
_PRESET_SHIFT_UNITS: dict[str, tuple[str, ...]] = {
    "digits-step-size": ("covariate", "concept"),
    "digits-flexp": ("covariate", "concept"),
}
# FlexP presets: their variants and flexp settings. The budgets (client-side parameters of the
# default CNN) give the cuts 1:0, 2:0, 2:1, 2:1, 3:0 (docs/flexp.md); quick keeps the first 3.
_FLEXP_PRESETS: dict[str, tuple[tuple[str, ...], FlexPConfig]] = {
    "digits-flexp": (("split", FLEXP), FlexPConfig()),
    "digits-flexp-budgets": (
        (FLEXP,),
        FlexPConfig(cuts=(), budgets=(1000.0, 6000.0, 40000.0, 40000.0, 15000.0)),
    ),
}
PRESETS: tuple[str, ...] = (*_PRESET_SHIFTS, *_PRESET_SHIFT_UNITS)


def make_preset(
    name: str,
    *,
    quick: bool = False,
    model: str = "cnn",
    variants: Sequence[str] | None = None,
    flood_level: float | None = None,
    shifts: Sequence[str] | None = None,
    flexp: FlexPConfig | None = None,
) -> ExperimentConfig:
    """Build a named preset.

    Full presets: 5 clients, CNN, FedAvg 40 rounds x 1 local epoch (lr 0.1), PFT 15 epochs
    (lr 0.01; LP-FT 5 LP + 10 FT epochs). ``quick``: 3 clients, 10 rounds, 3 PFT epochs, 2 soup
    ingredients (for tests; seconds per seed).

    ``digits-step-size`` ([CLOSER] Thm 4.4's step-size condition on the CNN): covariate and
    concept shift, each on its own clients (``shift_units``); variants ``ft, lp, lpft``; the FT
    learning rate (FT, and LP-FT's FT phase) swept over :data:`STEP_SIZE_LRS` while LP keeps
    lr 0.01. Its ``quick`` version keeps the five learning rates, with 3 clients, 10 FedAvg
    rounds and 2 PFT epochs (LP-FT: 1 LP + 1 FT). The global model of a seed is shared by
    every learning rate (the sweep changes fine-tuning only), and so is LP-FT's LP phase
    (:mod:`empirical.experiment.lr_sweep`); seeds are not shared: each draws its own clients,
    initialization and FedAvg run, so the spread over seeds includes the global model's.

    ``digits-flexp`` (covariate and concept shift units; variants ``split, flexp``) and
    ``digits-flexp-budgets`` (covariate; ``flexp`` with a different parameter budget per
    client): FlexP split personalization (:mod:`empirical.experiment.flexp`, docs/flexp.md).

    Parameters
    ----------
    name : str
        One of :data:`PRESETS` (``digits-covariate``, ``digits-concept``, ``digits-spurious``,
        ``digits-label``, ``digits-combined`` = covariate + label, ``digits-iid``,
        ``digits-step-size``).
    quick : bool
        The small, fast version.
    model : str
        Model registry name.
    variants : sequence of str, optional
        PFT variants (all when omitted; ``ft, lp, lpft`` for ``digits-step-size``).
    flood_level : float, optional
        Loss-flooding level ``b`` for every PFT variant (none when omitted).
    shifts : sequence of str, optional
        For a preset with several shift units: run only these (the sweep's experiment kind
        runs each shift as its own unit). Refused for the other presets.
    flexp : FlexPConfig, optional
        Settings of the ``flexp`` variant (default: the preset's; see docs/flexp.md).

    Returns
    -------
    ExperimentConfig
        The validated configuration.
    """
    if name not in PRESETS:
        raise ValueError(f"unknown preset {name!r}; expected one of {list(PRESETS)}")
    units = _PRESET_SHIFT_UNITS.get(name, ())
    if shifts is not None:
        chosen = tuple(shifts)
        if not units or not chosen or any(s not in units for s in chosen):
            expected = f"a non-empty subset of {', '.join(units)}" if units else "none"
            raise ValueError(f"shifts={list(chosen)} is invalid for preset {name!r}: expected "
                             f"{expected}")  # fmt: skip
        units = tuple(s for s in units if s in chosen)
    shifts_in_data = _PRESET_SHIFTS.get(name, ())
    lrs = STEP_SIZE_LRS if name == "digits-step-size" else ()
    flexp_variants, flexp_preset = _FLEXP_PRESETS.get(name, ((), FlexPConfig()))
    if variants is None:
        variants = flexp_variants or (LR_VARIANTS if lrs else VARIANTS)
    fed_local = LocalConfig(lr=0.1, batch_size=32, momentum=0.9)
    pft_local = LocalConfig(lr=0.01, batch_size=32, momentum=0.9, flood_level=flood_level)
    if quick:
        data = ClientDataConfig(n_clients=3, shifts=shifts_in_data)
        fed = FedAvgConfig(rounds=10, local=fed_local)
        epochs = 2 if lrs else 3  # step-size: 2 shifts x 11 fine-tunings per seed (60 s budget)
        pft = PFTConfig(epochs=epochs, local=pft_local, lp_epochs=1, n_ingredients=2,
                        lss_weight_steps=5)  # fmt: skip
    else:
        data = ClientDataConfig(n_clients=5, shifts=shifts_in_data)
        fed = FedAvgConfig(rounds=40, local=fed_local)
        pft = PFTConfig(epochs=15, local=pft_local, lp_epochs=5)
    return ExperimentConfig(
        preset=name + ("-quick" if quick else ""),
        data=data,
        model=model,
        fedavg=fed,
        pft=pft,
        variants=tuple(variants),
        shift_units=units,
        ft_lrs=lrs,
        flexp=_fit_budgets(flexp or flexp_preset, data.n_clients),
    )


def _fit_budgets(flexp: FlexPConfig, n_clients: int) -> FlexPConfig:
    """A preset's per-client budgets cut to the first ``n_clients`` (quick has fewer)."""
    if len(flexp.budgets) > n_clients and flexp == _FLEXP_PRESETS["digits-flexp-budgets"][1]:
        return dataclasses.replace(flexp, budgets=flexp.budgets[:n_clients])
    return flexp
