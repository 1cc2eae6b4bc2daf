"""The federated PFT experiment: presets, a resumable runner, and tidy results.

Protocol ([CLOSER] Sec. 3-4; THEORY.md Sec. 4): for each seed, build shifted digit clients
(:mod:`empirical.data`), train a global model with FedAvg, then fine-tune it on every client with
each PFT variant (:mod:`empirical.pft`). Every epoch logs the client's local accuracy, its global
accuracy (mean over the *other* clients' test sets) and its feature distortion
``Delta_c = (1/n) sum_j ||f(theta_G; x_cj) - f(theta_c; x_cj)||_2`` on its own test samples
(:func:`empirical.metrics.delta_l2`).

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
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from empirical.data import ClientDataConfig
from empirical.models import MODEL_REGISTRY, build_model, split_parts
from empirical.pft import VARIANTS, PFTConfig
from empirical.training import FedAvgConfig, LocalConfig

__all__ = [
    "PRESETS",
    "SUMMARY_METRICS",
    "ExperimentConfig",
    "RunReport",
    "load_epoch_log",
    "load_metrics",
    "make_preset",
    "run_experiment",
    "summarize",
    "summary_markdown",
]

SUMMARY_METRICS: tuple[str, ...] = (
    "Local",
    "Global",
    "Global-all",
    "C-Std",
    "Worst",
    "Average",
    "Delta",
    "CKA",
)
_BASELINE = "fedavg"


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
        PFT variants to run (subset of :data:`empirical.pft.VARIANTS`).
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
) -> ExperimentConfig:
    """Build a named preset.

    Full presets: 5 clients, CNN, FedAvg 40 rounds x 1 local epoch (lr 0.1), PFT 15 epochs
    (lr 0.01; LP-FT 5 LP + 10 FT epochs). ``quick``: 3 clients, 5 rounds, 3 PFT epochs, 2 soup
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

    Returns
    -------
    ExperimentConfig
        The validated configuration.
    """
    if name not in _PRESET_SHIFTS:
        raise ValueError(f"unknown preset {name!r}; expected one of {list(PRESETS)}")
    shifts = _PRESET_SHIFTS[name]
    fed_local = LocalConfig(lr=0.1, batch_size=32, momentum=0.9)
    pft_local = LocalConfig(lr=0.01, batch_size=32, momentum=0.9)
    if quick:
        data = ClientDataConfig(n_clients=3, shifts=shifts)
        fed = FedAvgConfig(rounds=5, local=fed_local)
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


def load_metrics(out: str | Path) -> pd.DataFrame:
    """Per-client final metrics of every finished unit.

    Parameters
    ----------
    out : str or Path
        Experiment directory.

    Returns
    -------
    DataFrame
        Columns ``preset, seed, client, variant, metric, value``; ``metric`` in ``local``,
        ``global`` (mean over other clients), ``global_all``, ``delta`` (Delta_c), ``cka``.
    """
    return _concat(Path(out), "metrics.csv")


def load_epoch_log(out: str | Path) -> pd.DataFrame:
    """Per-epoch log of every finished unit ([CLOSER] Fig. 2-3 analogues).

    Parameters
    ----------
    out : str or Path
        Experiment directory.

    Returns
    -------
    DataFrame
        Columns ``preset, seed, client, variant, epoch, metric, value``; ``metric`` in
        ``local_acc``, ``global_acc`` (other clients), ``delta``; epoch 0 is the FedAvg model.
    """
    return _concat(Path(out), "epochs.csv")


def _concat(out: Path, name: str) -> pd.DataFrame:
    frames = [pd.read_csv(p) for p in sorted((out / "runs").glob(f"seed*/*/{name}"))]
    if not frames:
        raise FileNotFoundError(f"no finished runs with {name} under {out / 'runs'}")
    return pd.concat(frames, ignore_index=True)


def summarize(metrics: pd.DataFrame) -> pd.DataFrame:
    """[CLOSER] Sec. 3.4 metrics per variant, mean and std over seeds.

    Per seed: Local = mean_c local_c; Global = mean_c global_c (others); Global-all likewise;
    C-Std = std_c local_c (ddof 0); Worst = min_c local_c; Average = (Local + Global) / 2;
    Delta = mean_c Delta_c; CKA = mean_c CKA_c. Then mean and sample std (ddof 1; 0 for one
    seed) over seeds.

    Parameters
    ----------
    metrics : DataFrame
        As returned by :func:`load_metrics`.

    Returns
    -------
    DataFrame
        Columns ``preset, variant, metric, mean, std, n_seeds``.
    """
    wide = metrics.pivot_table(
        index=["preset", "seed", "variant", "client"], columns="metric", values="value"
    ).reset_index()
    grouped = wide.groupby(["preset", "seed", "variant"])
    per_seed = pd.DataFrame(
        {
            "Local": grouped["local"].mean(),
            "Global": grouped["global"].mean(),
            "Global-all": grouped["global_all"].mean(),
            "C-Std": grouped["local"].std(ddof=0),
            "Worst": grouped["local"].min(),
            "Delta": grouped["delta"].mean(),
            "CKA": grouped["cka"].mean(),
        }
    )
    per_seed["Average"] = (per_seed["Local"] + per_seed["Global"]) / 2
    tidy = per_seed.reset_index().melt(
        id_vars=["preset", "seed", "variant"], var_name="metric", value_name="value"
    )
    agg = tidy.groupby(["preset", "variant", "metric"])["value"]
    out = pd.DataFrame({"mean": agg.mean(), "std": agg.std(ddof=1), "n_seeds": agg.count()})
    out["std"] = out["std"].fillna(0.0)
    return out.reset_index()


def summary_markdown(summary: pd.DataFrame) -> str:
    """Markdown table: variant x Local/Global/C-Std/Worst/Average (%, mean +- std) and Delta.

    Parameters
    ----------
    summary : DataFrame
        As returned by :func:`summarize`.

    Returns
    -------
    str
        One table per preset.
    """
    cols = ["Local", "Global", "C-Std", "Worst", "Average"]
    order = [_BASELINE, *VARIANTS]
    lines: list[str] = []
    for preset, block in summary.groupby("preset"):
        n = int(block["n_seeds"].max())
        lines += [f"### {preset} ({n} seed{'s' if n != 1 else ''}; accuracy in %)", ""]
        lines.append("| variant | " + " | ".join([*cols, "Delta", "CKA"]) + " |")
        lines.append("|---" * (len(cols) + 3) + "|")
        present = [v for v in order if v in set(block["variant"])]
        for v in present:
            row = block[block["variant"] == v].set_index("metric")
            cells = [f"{100 * row.at[c, 'mean']:.1f} ± {100 * row.at[c, 'std']:.1f}" for c in cols]
            cells += [f"{row.at[c, 'mean']:.3f} ± {row.at[c, 'std']:.3f}" for c in ("Delta", "CKA")]
            lines.append(f"| {v} | " + " | ".join(cells) + " |")
        lines.append("")
    return "\n".join(lines)


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
    from empirical._experiment_run import execute

    seeds = [int(s) for s in seeds]
    if not seeds or min(seeds) < 0 or len(set(seeds)) != len(seeds):
        raise ValueError(f"seeds must be distinct non-negative integers, got {seeds}")
    return execute(config, Path(out), seeds, progress)


def atomic_write_text(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` via a temporary file and ``os.replace``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    tmp.write_text(text)
    os.replace(tmp, path)


def write_outputs(out: Path) -> pd.DataFrame:
    """Aggregate every finished unit into ``metrics.csv``, ``epochs.csv``, ``summary.*``."""
    metrics = load_metrics(out)
    atomic_write_text(out / "metrics.csv", metrics.to_csv(index=False))
    atomic_write_text(out / "epochs.csv", load_epoch_log(out).to_csv(index=False))
    summary = summarize(metrics)
    atomic_write_text(out / "summary.csv", summary.to_csv(index=False))
    atomic_write_text(out / "summary.md", summary_markdown(summary))
    return summary
