"""Tidy results of the federated experiment: loading, [CLOSER] summary metrics, Markdown.

Accuracies are fractions in [0, 1] in the CSVs and percentages in ``summary.md``.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from empirical.experiment.pft_config import ALL_VARIANTS
from feddistort_io import atomic_write_text

__all__ = [
    "BASELINE",
    "SUMMARY_METRICS",
    "load_epoch_log",
    "load_metrics",
    "summarize",
    "summary_markdown",
    "unit_columns",
    "write_outputs",
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
BASELINE = "fedavg"  # the FedAvg model itself, evaluated like a variant


def load_metrics(out: str | Path) -> pd.DataFrame:
    """Per-client final metrics of every finished unit.

    Parameters
    ----------
    out : str or Path
        Experiment directory.

    Returns
    -------
    DataFrame
        Columns ``preset, seed, variant, client, metric, value``; ``metric`` in ``local``,
        ``global`` (mean over other clients), ``global_all``, ``delta`` (Delta_c), ``cka``.
        A multi-shift preset adds ``shift`` after ``preset``, a step-size sweep ``ft_lr``
        after ``variant`` (empty for ``fedavg`` and ``lp``).
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
        Columns ``preset, seed, variant, client, epoch, metric, value`` (plus ``shift`` and
        ``ft_lr`` as in :func:`load_metrics`); ``metric`` in ``local_acc``, ``global_acc``
        (other clients), ``delta``; epoch 0 is the FedAvg model.
    """
    return _concat(Path(out), "epochs.csv")


def _concat(out: Path, name: str) -> pd.DataFrame:
    runs = out / "runs"
    paths = [*runs.glob(f"seed*/*/{name}"), *runs.glob(f"*/seed*/*/{name}")]
    frames = [pd.read_csv(p) for p in sorted(paths)]
    if not frames:
        raise FileNotFoundError(f"no finished runs with {name} under {out / 'runs'}")
    return pd.concat(frames, ignore_index=True)


def unit_columns(metrics: pd.DataFrame) -> list[str]:
    """The columns that identify a unit's rows: ``preset, [shift,] seed, variant, [ft_lr]``."""
    return [c for c in ("preset", "shift", "seed", "variant", "ft_lr") if c in metrics]


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
        Columns ``preset, variant, metric, mean, std, n_seeds`` (with ``shift`` and ``ft_lr``
        where ``metrics`` has them).
    """
    keys = unit_columns(metrics)
    wide = (
        metrics.groupby([*keys, "client", "metric"], dropna=False)["value"]
        .mean()
        .unstack("metric")
        .reset_index()
    )
    grouped = wide.groupby(keys, dropna=False)
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
    tidy = per_seed.reset_index().melt(id_vars=keys, var_name="metric", value_name="value")
    groups = [k for k in keys if k != "seed"]
    agg = tidy.groupby([*groups, "metric"], dropna=False)["value"]
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
        One table per preset (per preset and shift for a multi-shift preset); in a step-size
        sweep one row per variant and FT learning rate.
    """
    cols = ["Local", "Global", "C-Std", "Worst", "Average"]
    order = {v: i for i, v in enumerate([BASELINE, *ALL_VARIANTS])}
    blocks = [k for k in ("preset", "shift") if k in summary]
    rows = [k for k in ("variant", "ft_lr") if k in summary]
    lines: list[str] = []
    for names, block in summary.groupby(blocks, sort=True):
        title = ": ".join(str(n) for n in (names if isinstance(names, tuple) else (names,)))
        n = int(block["n_seeds"].max())
        lines += [f"### {title} ({n} seed{'s' if n != 1 else ''}; accuracy in %)", ""]
        lines.append("| variant | " + " | ".join([*cols, "Delta", "CKA"]) + " |")
        lines.append("|---" * (len(cols) + 3) + "|")
        present = block[rows].drop_duplicates()
        present = present.assign(rank=present["variant"].map(order)).sort_values(
            ["rank", *rows[1:]]
        )
        for _, ident in present.iterrows():
            mask = (block["variant"] == ident["variant"]).to_numpy(copy=True)
            name = str(ident["variant"])
            if "ft_lr" in rows:
                lr = ident["ft_lr"]
                same = block["ft_lr"].isna() if pd.isna(lr) else block["ft_lr"] == lr
                mask = mask & same.to_numpy()
                name += "" if pd.isna(lr) else f" (FT lr {lr:g})"
            row = block[mask].set_index("metric")
            cells = [f"{100 * row.at[c, 'mean']:.1f} ± {100 * row.at[c, 'std']:.1f}" for c in cols]
            cells += [f"{row.at[c, 'mean']:.3f} ± {row.at[c, 'std']:.3f}" for c in ("Delta", "CKA")]
            lines.append(f"| {name} | " + " | ".join(cells) + " |")
        lines.append("")
    return "\n".join(lines)


def write_outputs(out: Path) -> pd.DataFrame:
    """Aggregate every finished unit into ``metrics.csv``, ``epochs.csv``, ``summary.*``."""
    metrics = load_metrics(out)
    atomic_write_text(out / "metrics.csv", metrics.to_csv(index=False))
    atomic_write_text(out / "epochs.csv", load_epoch_log(out).to_csv(index=False))
    summary = summarize(metrics)
    atomic_write_text(out / "summary.csv", summary.to_csv(index=False))
    atomic_write_text(out / "summary.md", summary_markdown(summary))
    return summary
