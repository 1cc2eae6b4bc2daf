"""Three claims a user might state, declared with :func:`theory.claim` (docs/claims.md).

Search them with ``feddistort theory property theory.examples:NAME``; their outcomes are
tested in ``tests/theory/test_theory_examples.py``:

- :data:`lp_never_raises_local` holds: linear probing minimizes the local loss over the head
  with the features fixed, and the global model's head is one such head.
- :data:`ft_never_raises_global` is false: one FT step from the idealized global model can
  raise the global loss (over all clients, D_G); on isotropic inputs exactly when
  tau = 2 c_L eta s > 2 / C ([CLOSER] Thm 4.4: c_L lam^2 (1 - 2 tau/C + tau^2) > c_L lam^2),
  and with ``random`` or ``basis`` input means already at the smallest step sizes searched.
- :data:`lpft_no_worse_at_matched_local` is open-ended: LP-FT's global loss is at most FT's
  at the same local loss, where FT's loss is read off its step-size frontier. It is searched
  over geometries, sample sizes and ridge-regularized probing (so that LP-FT's local loss is
  not 0 and FT can match it).
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

from theory.declare import claim
from theory.results import Results
from theory.space import log

#: Relative tolerance of "no worse" at matched local loss (the frontier is interpolated
#: linearly between 201 step sizes; the interpolation error is far below this).
MATCHED_RTOL = 1e-4


@claim(
    "lp-never-raises-local",
    statement="LP's local loss is at most the global model's",
    methods=("global", "lp"),
    metrics=("local_loss",),
    space={"n": None, "ridge": 0.0},
)
def lp_never_raises_local(r: Results) -> NDArray[np.bool_]:
    """True: LP's local loss <= the global model's local loss (+1e-9)."""
    return r["lp", "local_loss"] <= r["global", "local_loss"] * (1 + 1e-9) + 1e-12


@claim(
    "ft-never-raises-global",
    statement="one FT step never raises the global loss (D_G) above the global model's",
    methods=("global", "ft"),
    metrics=("global_loss",),
    space={"steps": 1},
)
def ft_never_raises_global(r: Results) -> NDArray[np.bool_]:
    """False: FT's global loss <= the global model's global loss (+1e-9)."""
    return r["ft", "global_loss"] <= r["global", "global_loss"] * (1 + 1e-9) + 1e-12


@claim(
    "lpft-no-worse-at-matched-local",
    statement="LP-FT's global loss is at most FT's at matched local loss (FT's eta frontier)",
    methods=("ft", "lpft"),
    metrics=("local_loss", "global_loss"),
    space={
        "covariate": ("isotropic", "own", "shared", "random", "basis", "mix"),
        "n": (None, 8, 16, 32),
        "ridge": log(0.01, 1.0),
        "steps": 1,
        "eta": log(0.01, 0.5),
    },
)
def lpft_no_worse_at_matched_local(r: Results) -> NDArray[np.bool_]:
    """Open-ended: LP-FT's global loss <= FT's where FT's local loss equals LP-FT's.

    Clients whose FT frontier (step sizes 0 to 4 eta) never comes down to LP-FT's local loss
    are unmatched and count as holding (nothing to compare).
    """
    eta = r.config.eta
    ft = r.frontier("ft", "eta", np.linspace(0.0, 4.0 * eta, 201))
    matched = ft.at_local(r["lpft", "local_loss"])
    lpft = r["lpft", "global_loss"]
    return np.isnan(matched) | (lpft <= matched * (1 + MATCHED_RTOL) + 1e-12)


__all__ = ["ft_never_raises_global", "lp_never_raises_local", "lpft_no_worse_at_matched_local"]
