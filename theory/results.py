"""What a claim's function reads: ``r[method, metric]`` and ``r.frontier(method)``.

:func:`evaluate` runs the simulator (:func:`synthetic.simulate_batch`) once on one
configuration with the claim's methods and metrics; :meth:`Results.frontier` traces a method
over its knob (the step size ``eta``, or ``steps``) for claims about frontiers, such as a
comparison at matched local loss.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
from numpy.typing import NDArray

from synthetic.config import ConfigError, SimConfig
from synthetic.simulation import simulate_batch

if TYPE_CHECKING:
    from theory.declare import Claim

Array = NDArray[np.float64]
KNOBS: tuple[str, ...] = ("eta", "steps")
#: ``global``: ``global_loss`` over D_G (all clients); ``others``: ``r[m, "global_loss"]``
#: reads the loss over the other clients only (the paper's empirical "Global").
CONVENTIONS: tuple[str, ...] = ("global", "others")
#: Knob values of a default frontier: multiples of the configuration's own value.
FRONTIER_FACTORS: Array = np.linspace(0.0, 2.0, 41)


@dataclass(frozen=True)
class Frontier:
    """A method's metrics along its knob, starting from the global model (knob 0).

    Parameters
    ----------
    method, knob : str
    values : ndarray, shape (K,)
        Knob values, increasing.
    metrics : dict of str to ndarray of shape (K, P)
        ``local_loss`` and the claim's metrics per knob value and fine-tuning client.
    """

    method: str
    knob: str
    values: Array
    metrics: dict[str, Array]

    def __getitem__(self, metric: str) -> Array:
        """A metric along the frontier, shape (K, P)."""
        if metric not in self.metrics:
            raise KeyError(f"frontier metric {metric!r} is invalid: expected one of "
                           f"{', '.join(self.metrics)}")  # fmt: skip
        return self.metrics[metric]

    def at_local(self, local: Array, metric: str = "global_loss") -> Array:
        """``metric`` where the local loss first falls to ``local`` (linear interpolation).

        Parameters
        ----------
        local : ndarray, shape (P,)
            Target local loss per client.

        Returns
        -------
        ndarray, shape (P,)
            NaN for a client whose frontier never comes down to ``local`` (unmatched),
            including one whose frontier starts below it (at the global model).
        """
        loc, val = self.metrics["local_loss"], self[metric]
        target = np.broadcast_to(np.asarray(local, float), loc.shape[1:])
        out = np.full(loc.shape[1:], np.nan)
        for p in range(loc.shape[1]):
            below = np.flatnonzero(loc[:, p] <= target[p] * (1 + 1e-12) + 1e-15)
            if below.size == 0:
                continue
            j = int(below[0])
            if j == 0:
                if loc[0, p] >= target[p] * (1 - 1e-9) - 1e-15:  # starts at the target
                    out[p] = val[0, p]
                continue
            l0, l1 = loc[j - 1, p], loc[j, p]
            w = 1.0 if l0 == l1 else (l0 - target[p]) / (l0 - l1)
            out[p] = val[j - 1, p] + w * (val[j, p] - val[j - 1, p])
        return out


class Results:
    """Simulated metrics of one configuration: ``r[method, metric]`` -> ndarray, shape (P,).

    Attributes
    ----------
    config : SimConfig
    clients : ndarray of int, shape (P,)
        The fine-tuning clients (all, or ``config.client``).
    diverged : bool
        Some method's parameters exceeded the simulator's bound (metrics are NaN there).
    """

    def __init__(
        self,
        config: SimConfig,
        methods: Sequence[str],
        metrics: Sequence[str],
        convention: str = "global",
    ) -> None:
        if convention not in CONVENTIONS:
            raise ConfigError(f"convention={convention!r} is invalid: expected one of "
                              f"{', '.join(CONVENTIONS)}")  # fmt: skip
        self.config = config
        self.methods = tuple(methods)
        self.convention = convention
        extra = ["global_loss_others"] if convention == "others" else []
        self.metrics = tuple(dict.fromkeys(["local_loss", *metrics, *extra]))
        batch = simulate_batch([config], self.methods, metrics=self.metrics)
        self.clients = np.asarray(batch.clients)
        self._values = {m: {k: v[0] for k, v in batch.values[m].items()} for m in self.methods}
        self.diverged = any(bool(batch.diverged[m].any()) for m in self.methods)

    def __getitem__(self, key: tuple[str, str]) -> Array:
        if not (isinstance(key, tuple) and len(key) == 2):
            raise KeyError(f"r[{key!r}] is invalid: expected r[method, metric]")
        method, metric = key
        if self.convention == "others" and metric == "global_loss":
            metric = "global_loss_others"
        if method not in self._values:
            raise KeyError(f"method {method!r} is not among the claim's methods "
                           f"({', '.join(self.methods)}): add it to methods=")  # fmt: skip
        if metric not in self._values[method]:
            raise KeyError(f"metric {metric!r} is not among the claim's metrics "
                           f"({', '.join(self.metrics)}): add it to metrics=")  # fmt: skip
        return self._values[method][metric].copy()

    def frontier(
        self, method: str, knob: str = "eta", values: Sequence[float] | Array | None = None
    ) -> Frontier:
        """Trace ``method`` over ``knob`` from 0 (the global model) to twice its value.

        Parameters
        ----------
        method : str
            One of the claim's methods.
        knob : str
            ``eta`` (step size at fixed steps) or ``steps`` (at fixed eta).
        values : sequence of float, optional
            Knob values; default :data:`FRONTIER_FACTORS` times the configuration's value
            (for ``steps``: 0, 1, ..., 2 steps).
        """
        if knob not in KNOBS:
            raise ConfigError(f"knob={knob!r} is invalid: expected one of {', '.join(KNOBS)}")
        if method not in self.methods:
            raise KeyError(f"method {method!r} is not among the claim's methods")
        if values is None:
            grid: Array = (FRONTIER_FACTORS * self.config.eta if knob == "eta"
                           else np.arange(0, 2 * self.config.steps + 1, dtype=float))  # fmt: skip
        else:
            grid = np.asarray(values, dtype=float)
        grid = np.sort(grid)
        if knob == "steps":
            bad = [v for v in grid if not (v >= 0 and float(v).is_integer())]
            if bad:
                raise ConfigError(f"values={float(bad[0])!r} is invalid for knob='steps': "
                                  "expected non-negative integers")  # fmt: skip
        if knob == "eta":
            configs = [self.config.replace(eta=float(v)) for v in grid]
            batch = simulate_batch(configs, [method], metrics=self.metrics)
            metrics = dict(batch.values[method])
        else:
            rows = [simulate_batch([self.config.replace(steps=int(v))], [method],
                                   metrics=self.metrics).values[method] for v in grid]  # fmt: skip
            metrics = {k: np.concatenate([row[k] for row in rows]) for k in self.metrics}
        if self.convention == "others":
            metrics["global_loss"] = metrics["global_loss_others"]
        return Frontier(method, knob, grid.astype(float), metrics)


def evaluate(claim: Claim, config: SimConfig, convention: str = "global") -> Results:
    """Simulate ``config`` with the claim's methods and metrics (see :data:`CONVENTIONS`)."""
    return Results(config, claim.methods, claim.metrics, convention)


__all__ = ["CONVENTIONS", "FRONTIER_FACTORS", "KNOBS", "Frontier", "Results", "evaluate"]
