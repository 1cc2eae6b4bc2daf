"""FlexP-style flexible split personalization ([FLEXP]; docs/flexp.md).

- :mod:`~empirical.experiment.flexp.partition`: per-client cuts, explicit or from budgets.
- :mod:`~empirical.experiment.flexp.costs`: client-side parameters, FLOPs, bytes, memory.
- :mod:`~empirical.experiment.flexp.train`: ``frozen`` and ``shared`` server modes with
  layer-flexible alignment.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from feddistort_io import lazy_exports

if TYPE_CHECKING:
    from empirical.experiment.flexp.costs import (  # noqa: F401
        BlockProfile,
        ClientCost,
        client_cost,
        profile_model,
    )
    from empirical.experiment.flexp.partition import (  # noqa: F401
        Cut,
        client_cuts,
        cut_from_budget,
        partition,
    )

_EXPORTS: dict[str, str] = {
    "BlockProfile": "empirical.experiment.flexp.costs",
    "ClientCost": "empirical.experiment.flexp.costs",
    "client_cost": "empirical.experiment.flexp.costs",
    "profile_model": "empirical.experiment.flexp.costs",
    "Cut": "empirical.experiment.flexp.partition",
    "client_cuts": "empirical.experiment.flexp.partition",
    "cut_from_budget": "empirical.experiment.flexp.partition",
    "partition": "empirical.experiment.flexp.partition",
}

__all__ = sorted(_EXPORTS)

__getattr__, __dir__ = lazy_exports(__name__, globals(), _EXPORTS)
