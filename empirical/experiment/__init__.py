"""The small real federated experiment: digits clients, FedAvg, every PFT variant, resumable runs.

- :mod:`empirical.experiment.data`: shifted clients from scikit-learn's bundled digits.
- :mod:`empirical.experiment.models`: the registry models (``mlp``, ``cnn``) and their parts.
- :mod:`empirical.experiment.training`: local SGD and FedAvg.
- :mod:`empirical.experiment.pft`: the PFT variants (soups and split in their own modules).
- :mod:`empirical.experiment.flexp`: FlexP split personalization (per-client cuts, server
  modes, alignment, cost accounting; the ``flexp`` variant, docs/flexp.md).
- :mod:`empirical.experiment.config`: :class:`ExperimentConfig` and the presets.
- :mod:`empirical.experiment.runner`: :func:`run_experiment` (resumable, atomic writes).
- :mod:`empirical.experiment.results`: tidy results and summaries.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from feddistort_io import lazy_exports

if TYPE_CHECKING:
    from empirical.experiment.config import PRESETS, ExperimentConfig, make_preset  # noqa: F401
    from empirical.experiment.data import (  # noqa: F401
        ClientData,
        ClientDataConfig,
        load_digits_images,
        make_clients,
    )
    from empirical.experiment.models import MODEL_REGISTRY, build_model, split_parts  # noqa: F401
    from empirical.experiment.pft import personalize  # noqa: F401
    from empirical.experiment.pft_config import VARIANTS, PFTConfig  # noqa: F401
    from empirical.experiment.results import (  # noqa: F401
        SUMMARY_METRICS,
        load_epoch_log,
        load_metrics,
        summarize,
        summary_markdown,
    )
    from empirical.experiment.runner import RunReport, run_experiment  # noqa: F401
    from empirical.experiment.training import FedAvgConfig, LocalConfig, fedavg  # noqa: F401

# Public name -> the module that defines it (loaded on first use, PEP 562).
_EXPORTS: dict[str, str] = {
    "PRESETS": "empirical.experiment.config",
    "ExperimentConfig": "empirical.experiment.config",
    "make_preset": "empirical.experiment.config",
    "RunReport": "empirical.experiment.runner",
    "run_experiment": "empirical.experiment.runner",
    "SUMMARY_METRICS": "empirical.experiment.results",
    "load_epoch_log": "empirical.experiment.results",
    "load_metrics": "empirical.experiment.results",
    "summarize": "empirical.experiment.results",
    "summary_markdown": "empirical.experiment.results",
    "ClientData": "empirical.experiment.data",
    "ClientDataConfig": "empirical.experiment.data",
    "load_digits_images": "empirical.experiment.data",
    "make_clients": "empirical.experiment.data",
    "MODEL_REGISTRY": "empirical.experiment.models",
    "build_model": "empirical.experiment.models",
    "split_parts": "empirical.experiment.models",
    "VARIANTS": "empirical.experiment.pft_config",
    "PFTConfig": "empirical.experiment.pft_config",
    "personalize": "empirical.experiment.pft",
    "FedAvgConfig": "empirical.experiment.training",
    "LocalConfig": "empirical.experiment.training",
    "fedavg": "empirical.experiment.training",
}

__all__ = sorted(_EXPORTS)

__getattr__, __dir__ = lazy_exports(__name__, globals(), _EXPORTS)
