"""feddistort: check the theory of federated feature distortion under personalized fine-tuning.

The command is ``feddistort`` (:mod:`feddistort.cli`). From Python, the entry points users
reach for first are here, loaded on first use (PEP 562), so ``import feddistort`` and the
command's parser stay light:

- :func:`simulate`, :class:`SimConfig`, :func:`expand_grid`: the two-layer linear simulator.
- :func:`check_claim`, :func:`audit_claim`, :func:`predict_claim`: the executable theory.
- :func:`linear_cka`, :func:`delta_l2`, :func:`compare_checkpoints`: distortion metrics.
- :func:`run_experiment`, :func:`make_preset`: the real federated experiment on digits.
- :func:`run_sweep`: resumable sweeps.

The domain packages (``synthetic``, ``theory``, ``empirical``, ``figures``) are importable on
their own; see ``docs/architecture.md``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from feddistort_io import lazy_exports

if TYPE_CHECKING:
    from empirical.compare import compare_checkpoints  # noqa: F401
    from empirical.experiment.config import make_preset  # noqa: F401
    from empirical.experiment.runner import run_experiment  # noqa: F401
    from empirical.metrics import delta_l2, linear_cka  # noqa: F401
    from feddistort.sweep.engine import run_sweep  # noqa: F401
    from feddistort_io import __version__  # noqa: F401
    from synthetic.config import SimConfig  # noqa: F401
    from synthetic.simulation import expand_grid, simulate  # noqa: F401
    from theory.audit import audit_claim  # noqa: F401
    from theory.claims import check_claim, predict_claim  # noqa: F401

# Public name -> the module that defines it (loaded on first use, PEP 562).
_EXPORTS: dict[str, str] = {
    "expand_grid": "synthetic.simulation",
    "simulate": "synthetic.simulation",
    "SimConfig": "synthetic.config",
    "check_claim": "theory.claims",
    "predict_claim": "theory.claims",
    "audit_claim": "theory.audit",
    "delta_l2": "empirical.metrics",
    "linear_cka": "empirical.metrics",
    "compare_checkpoints": "empirical.compare",
    "make_preset": "empirical.experiment.config",
    "run_experiment": "empirical.experiment.runner",
    "run_sweep": "feddistort.sweep.engine",
    "__version__": "feddistort_io",
}

__all__ = sorted(_EXPORTS)

__getattr__, __dir__ = lazy_exports(__name__, globals(), _EXPORTS)
