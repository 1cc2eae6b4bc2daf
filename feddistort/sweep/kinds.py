"""The ``theory`` and ``experiment`` kinds of ``feddistort sweep``.

The driver (:mod:`feddistort.sweep.engine`) handles chunks, checksummed shards, backends and
resume for any kind; this module defines the two kinds that need :mod:`theory` and
:mod:`empirical` (imported inside the functions that use them). The explicit table of every
kind is :data:`feddistort.sweep.registry.KINDS` (nothing registers itself on import).
"""

from __future__ import annotations

import zlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from feddistort.sweep.spec import SweepSpec, parse_names, spec_from_mapping
from feddistort.sweep.tasks import ChunkTask, chunk_key
from synthetic.config import ConfigError

THEORY_KEYS: tuple[str, ...] = ("kind", "claims", "base", "grid", "seeds", "chunk")
EXPERIMENT_KEYS: tuple[str, ...] = ("kind", "presets", "seeds", "quick", "variants", "chunk")
THEORY_COLUMNS: tuple[str, ...] = (
    "claim",
    "holds",
    "conclusion_holds",
    "max_abs_error",
    "tolerance",
    "skipped",
    "notes",
)


def _check_keys(values: Mapping[str, Any], kind: str, allowed: Sequence[str]) -> None:
    unknown = sorted(str(k) for k in values if k not in (*allowed, "version"))
    if unknown:
        raise ConfigError(
            f"{kind} sweep spec key {unknown[0]!r} is invalid: expected one of {', '.join(allowed)}"
        )


def _theory_rng_seed(seed: int, claim: str) -> list[int]:
    """Seed of a check's own draws: the configuration's seed and a stable hash of the claim."""
    return [seed, zlib.crc32(claim.encode())]


def theory_chunk(
    configs: Sequence[Mapping[str, Any]], claims: Sequence[str], metrics: Sequence[str]
) -> Any:
    """Check every claim on every configuration of a chunk; the shard's table.

    Parameters
    ----------
    configs : sequence of mapping
        :meth:`SimConfig.to_dict` of each configuration.
    claims : sequence of str
        Claim ids (:func:`theory.claim_ids`).
    metrics : sequence of str
        Unused (the engine's task signature).

    Returns
    -------
    pandas.DataFrame
        One row per (configuration, claim): the configuration's fields, then
        :data:`THEORY_COLUMNS`. The check's random draws use
        ``default_rng([config.seed, crc32(claim)])``, so a row depends on nothing else.
    """
    import numpy as np
    import pandas as pd

    from synthetic.config import SimConfig
    from theory.claims import get_claim

    rows: list[dict[str, Any]] = []
    for values in configs:
        config = SimConfig(**values)
        for claim_id in claims:
            claim = get_claim(claim_id)
            row: dict[str, Any] = {**values, "claim": claim_id}
            failures = claim.hypotheses(config)
            if failures:
                row.update(
                    holds=None,
                    conclusion_holds=None,
                    max_abs_error=None,
                    tolerance=None,
                    skipped="; ".join(failures),
                    notes="",
                )
            else:
                rng = np.random.default_rng(_theory_rng_seed(config.seed, claim_id))
                record = claim.check(config, rng)
                row.update(
                    holds=bool(record.holds),
                    conclusion_holds=record.conclusion_holds,
                    max_abs_error=float(record.max_abs_error),
                    tolerance=float(record.tolerance),
                    skipped="",
                    notes=record.notes,
                )
            rows.append(row)
    columns = [*configs[0], *THEORY_COLUMNS] if configs else list(THEORY_COLUMNS)
    return pd.DataFrame(rows, columns=columns)


@dataclass(frozen=True)
class TheorySweep:
    """A sweep of claim checks over the configurations of a simulator-style grid.

    Parameters
    ----------
    configs : SweepSpec
        Base configuration, grid, seeds and chunk size (its methods/metrics are unused).
    claims : tuple of str
        Claim ids, checked on every configuration.
    """

    configs: SweepSpec
    claims: tuple[str, ...]

    def tasks(self, out: Path) -> list[ChunkTask]:
        """Chunks of ``configs.chunk`` configurations, each checking every claim."""
        dicts = [c.to_dict() for c in self.configs.configs()]
        size = self.configs.chunk
        tasks = []
        for index, start in enumerate(range(0, len(dicts), size)):
            chunk = tuple(dicts[start : start + size])
            key = chunk_key(chunk, self.claims, (), kind="theory")
            tasks.append(ChunkTask(index, key, chunk, self.claims, (), theory_chunk))
        return tasks

    def label(self, config: Mapping[str, Any]) -> str:
        """The grid fields and seed of one configuration."""
        return self.configs.label(config)

    def to_dict(self) -> dict[str, Any]:
        """JSON form (``spec.json``)."""
        out = self.configs.to_dict()
        for unused in ("methods", "metrics"):
            out.pop(unused)
        return {**out, "kind": "theory", "claims": list(self.claims)}


def theory_from_mapping(values: Mapping[str, Any]) -> TheorySweep:
    """Build a :class:`TheorySweep` from a spec mapping (keys :data:`THEORY_KEYS`).

    Raises
    ------
    ConfigError
        Unknown key, missing or unknown claim, or a bad base/grid/seeds/chunk.
    """
    from theory.claims import claim_ids

    _check_keys(values, "theory", THEORY_KEYS)
    if "claims" not in values:
        raise ConfigError(
            f"claims is missing: a theory sweep needs claims among {', '.join(claim_ids())}"
        )
    claims = parse_names(values["claims"], "claims", claim_ids(), distinct=True)
    rest = {k: values[k] for k in ("base", "grid", "seeds", "chunk") if k in values}
    return TheorySweep(spec_from_mapping(rest), claims)


def experiment_chunk(
    configs: Sequence[Mapping[str, Any]], methods: Sequence[str], metrics: Sequence[str]
) -> Any:
    """Run one (preset, seed) unit of an experiment sweep; its metrics table.

    Parameters
    ----------
    configs : sequence of mapping
        One mapping with ``preset``, ``seed``, ``quick``, ``variants`` and ``work`` (the
        unit's folder; a rerun resumes the variants already finished there), and ``shift``
        for a preset with several shift units (``digits-step-size``): that shift only.
    methods, metrics : sequence of str
        Unused (the engine's task signature).

    Returns
    -------
    pandas.DataFrame
        :func:`empirical.experiment.results.load_metrics` of the unit.
    """
    from empirical.experiment import make_preset, run_experiment
    from empirical.experiment.results import load_metrics

    (unit,) = configs
    shifts = [unit["shift"]] if "shift" in unit else None
    config = make_preset(unit["preset"], quick=unit["quick"], variants=unit["variants"],
                         shifts=shifts)  # fmt: skip
    run_experiment(config, unit["work"], [unit["seed"]], progress=False)
    return load_metrics(unit["work"])


@dataclass(frozen=True)
class ExperimentSweep:
    """Seeds x presets of the federated experiment, one chunk per (preset, seed).

    Parameters
    ----------
    presets : tuple of str
        :data:`empirical.experiment.PRESETS` names.
    seeds : int
        Seeds ``0 .. seeds-1`` per preset.
    quick : bool
        The presets' quick versions.
    variants : tuple of str or None
        PFT variants (all when None).
    """

    presets: tuple[str, ...]
    seeds: int = 1
    quick: bool = False
    variants: tuple[str, ...] | None = None

    def units(self) -> list[dict[str, Any]]:
        """The (preset, [shift,] seed) units in result order (preset-major, seeds fastest).

        A preset with several shift units (``digits-step-size``) gives one unit per shift
        and seed, with a ``shift`` key (its metrics carry a ``shift`` column); the others
        have no ``shift`` key (their chunk keys are unchanged).
        """
        from empirical.experiment.config import make_preset

        variants = list(self.variants) if self.variants is not None else None
        units: list[dict[str, Any]] = []
        for p in self.presets:
            shifts = make_preset(p, quick=self.quick, variants=variants).shift_units
            for shift in shifts or (None,):
                units += [{"preset": p, "seed": s, "quick": self.quick, "variants": variants}
                          | ({} if shift is None else {"shift": shift})
                          for s in range(self.seeds)]  # fmt: skip
        return units

    def tasks(self, out: Path) -> list[ChunkTask]:
        """One chunk per unit; its work folder is ``out/work/<key>`` (key without the path)."""
        tasks = []
        for index, unit in enumerate(self.units()):
            key = chunk_key([unit], (), (), kind="experiment")
            work = {**unit, "work": str(Path(out) / "work" / key)}
            tasks.append(ChunkTask(index, key, (work,), (), (), experiment_chunk))
        return tasks

    def label(self, config: Mapping[str, Any]) -> str:
        """Preset, shift (if any) and seed of a unit."""
        shift = f" shift={config['shift']}" if "shift" in config else ""
        return f"preset={config['preset']}{shift} seed={config['seed']}"

    def to_dict(self) -> dict[str, Any]:
        """JSON form (``spec.json``)."""
        from feddistort_io import __version__

        return {
            "kind": "experiment",
            "presets": list(self.presets),
            "seeds": self.seeds,
            "quick": self.quick,
            "variants": list(self.variants) if self.variants is not None else None,
            "version": __version__,
        }


def experiment_from_mapping(values: Mapping[str, Any]) -> ExperimentSweep:
    """Build an :class:`ExperimentSweep` from a spec mapping (keys :data:`EXPERIMENT_KEYS`).

    ``chunk`` is accepted for symmetry and must be 1 or absent (a unit is one chunk).

    Raises
    ------
    ConfigError
        Unknown key, missing or unknown preset or variant, bad seeds/quick/chunk.
    """
    from empirical.experiment.config import PRESETS, make_preset
    from empirical.experiment.pft_config import ALL_VARIANTS

    _check_keys(values, "experiment", EXPERIMENT_KEYS)
    if "presets" not in values:
        raise ConfigError(
            f"presets is missing: an experiment sweep needs presets among {', '.join(PRESETS)}"
        )
    presets = parse_names(values["presets"], "presets", PRESETS, distinct=True)
    seeds = values.get("seeds", 1)
    if isinstance(seeds, bool) or not isinstance(seeds, int) or seeds < 1:
        raise ConfigError(f"seeds={seeds!r} is invalid: expected an integer >= 1")
    quick = values.get("quick", False)
    if not isinstance(quick, bool):
        raise ConfigError(f"quick={quick!r} is invalid: expected true or false")
    chunk = values.get("chunk", 1)
    if isinstance(chunk, bool) or chunk != 1:
        raise ConfigError(
            f"chunk={chunk!r} is invalid: an experiment sweep runs one (preset, seed) per chunk"
        )
    raw_variants = values.get("variants")
    variants = (
        None
        if raw_variants is None
        else parse_names(raw_variants, "variants", ALL_VARIANTS, distinct=True)
    )
    for name in presets:  # validates the whole configuration before any work starts
        make_preset(name, quick=quick, variants=variants)
    return ExperimentSweep(presets, seeds, quick, variants)


__all__ = [
    "EXPERIMENT_KEYS",
    "THEORY_COLUMNS",
    "THEORY_KEYS",
    "ExperimentSweep",
    "TheorySweep",
    "experiment_chunk",
    "experiment_from_mapping",
    "theory_chunk",
    "theory_from_mapping",
]
