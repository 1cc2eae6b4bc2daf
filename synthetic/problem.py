"""A problem instance: every random draw of one configuration, and client training objectives.

All draws of a configuration come from one ``numpy.random.SeedSequence(config.seed)``, split
into named streams, so that the vectorized simulator and the loop oracle see identical numbers
and a sweep over ``lam`` or ``eta`` uses common random numbers.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, fields

import numpy as np
from numpy.typing import NDArray

from synthetic.config import SimConfig
from synthetic.generators import (
    InputModel,
    client_heads,
    ground_truth,
    input_model,
    sample_inputs,
    sample_labels,
    second_moment,
)

Array = NDArray[np.float64]

# Independent random streams of one configuration (index into SeedSequence.spawn).
STREAMS: tuple[str, ...] = ("truth", "inputs", "samples", "monte_carlo", "soup", "fedavg")


@dataclass(frozen=True)
class Problem:
    """Every draw of a configuration (optionally with leading batch axes).

    Parameters
    ----------
    b_star : ndarray of shape (..., k, d)
        Shared features B* (orthonormal rows).
    v_com : ndarray of shape (..., m)
        Shared head V*_com.
    heads : ndarray of shape (..., C, k)
        Client heads V*_i = [V*_com; lam e_i].
    inputs : InputModel
        Client input distributions, batch shape (..., C).
    x, y : ndarray of shape (..., C, n, d) and (..., C, n), or None
        Finite samples (``n`` set) or ``None`` (population mode).
    mc : ndarray of shape (..., C, n_mc, k)
        Standard-normal draws for the Monte-Carlo estimate of the unsquared distortion Delta.
    soup_counts : ndarray of shape (..., C, n_soup, n) or None
        Bootstrap counts of the soup ingredients (finite samples only).
    fed_v, fed_b, fed_mask : ndarray or None
        FedAvg initialization, shapes (..., k) and (..., k, d), and participation masks
        (..., rounds, C); ``None`` for the idealized global model.
    """

    b_star: Array
    v_com: Array
    heads: Array
    inputs: InputModel
    x: Array | None
    y: Array | None
    mc: Array
    soup_counts: Array | None
    fed_v: Array | None
    fed_b: Array | None
    fed_mask: NDArray[np.bool_] | None

    @property
    def w_star(self) -> Array:
        """Client targets w*_i = B*^T V*_i, shape (..., C, d)."""
        return np.einsum("...kd,...ck->...cd", self.b_star, self.heads)


def _streams(seed: int) -> dict[str, np.random.Generator]:
    children = np.random.SeedSequence(seed).spawn(len(STREAMS))
    return {name: np.random.default_rng(child) for name, child in zip(STREAMS, children)}


def draw_problem(config: SimConfig) -> Problem:
    """Draw every random quantity of ``config`` from its seed.

    Parameters
    ----------
    config : SimConfig

    Returns
    -------
    Problem
        Unbatched instance.
    """
    rng = _streams(config.seed)
    C, m, d, k = config.C, config.m, config.d, config.k
    b_star, v_com = ground_truth(d, m, C, config.vcom_norm, rng["truth"])
    heads = client_heads(v_com, config.lam, C)
    inputs = input_model(
        config.covariate,
        b_star,
        m,
        C,
        eps=config.eps,
        rho=config.rho,
        mix=config.mix,
        rng=rng["inputs"],
    )
    x = y = soup_counts = None
    if config.n is not None:
        x = sample_inputs(inputs, config.n, rng["samples"])
        y = sample_labels(x, heads @ b_star, config.sigma, rng["samples"])
        probs = np.full(config.n, 1.0 / config.n)
        soup_counts = rng["soup"].multinomial(config.n, probs, size=(C, config.n_soup))
        soup_counts = soup_counts.astype(float)
    mc = rng["monte_carlo"].standard_normal((C, config.n_mc, k))
    fed_v = fed_b = fed_mask = None
    if config.global_model == "fedavg":
        fed_rng = rng["fedavg"]
        fed_v = config.fed_init_scale * fed_rng.standard_normal(k) / np.sqrt(k)
        fed_b = config.fed_init_scale * fed_rng.standard_normal((k, d)) / np.sqrt(d)
        n_active = max(1, int(round(config.fed_participation * C)))
        fed_mask = np.zeros((config.fed_rounds, C), dtype=bool)
        for t in range(config.fed_rounds):
            fed_mask[t, fed_rng.choice(C, size=n_active, replace=False)] = True
    return Problem(b_star, v_com, heads, inputs, x, y, mc, soup_counts, fed_v, fed_b, fed_mask)


def _stack(values: Sequence[object]) -> object:
    if values[0] is None:
        return None
    return np.stack(values)  # type: ignore[arg-type]


def stack_problems(problems: Sequence[Problem]) -> Problem:
    """Stack unbatched problems of equal shapes along a new leading axis."""
    stacked: dict[str, object] = {}
    for f in fields(Problem):
        if f.name == "inputs":
            continue
        stacked[f.name] = _stack([getattr(p, f.name) for p in problems])
    inputs = InputModel(
        mean=np.stack([p.inputs.mean for p in problems]),
        factor=np.stack([p.inputs.factor for p in problems]),
        scale=np.stack([p.inputs.scale for p in problems]),
    )
    return Problem(inputs=inputs, **stacked)  # type: ignore[arg-type]


@dataclass(frozen=True)
class Objective:
    r"""A client's training loss as a quadratic in the end-to-end predictor w = B^T V.

    .. math:: L(w) = c_L (w^T S w - 2 c^T w + c_0)

    with c_L = 1 (``mse``) or 1/2 (``half_mse``). Population: S = S_i, c = S_i w*_i,
    c_0 = w*_i^T S_i w*_i + sigma^2. Samples: S = X^T X / n, c = X^T y / n, c_0 = y^T y / n.

    Parameters
    ----------
    S : ndarray of shape (..., d, d)
    c : ndarray of shape (..., d)
    c0 : ndarray of shape (...)
    """

    S: Array
    c: Array
    c0: Array

    def loss(self, w: Array, loss_scale: float | Array = 1.0) -> Array:
        """Training loss of predictors ``w`` of shape (..., d)."""
        sw = np.einsum("...ij,...j->...i", self.S, w)
        return np.asarray(loss_scale) * (
            np.sum(w * sw, axis=-1) - 2 * np.sum(self.c * w, axis=-1) + self.c0
        )


def client_objectives(
    problem: Problem, clients: Array, sigma: float | Array = 0.0, *, soup: bool = False
) -> Objective:
    """Training objectives of the fine-tuning clients.

    Parameters
    ----------
    problem : Problem
        Batch shape (G,) (or unbatched).
    clients : ndarray of int, shape (P,)
        Fine-tuning clients.
    sigma : float or ndarray of shape (G,)
        Label noise (population mode adds sigma^2 to c_0).
    soup : bool
        Return one objective per soup ingredient (bootstrap resample), extra axis n_soup.

    Returns
    -------
    Objective
        Batch shape (G, P) or, with ``soup``, (G, P, n_soup).
    """
    if problem.x is None or problem.y is None:
        s_all = second_moment(problem.inputs)[..., clients, :, :]
        w = problem.w_star[..., clients, :]
        c = np.einsum("...ij,...j->...i", s_all, w)
        c0 = np.sum(w * c, axis=-1) + np.asarray(sigma, dtype=float)[..., None] ** 2
        if soup:
            return Objective(s_all[..., None, :, :], c[..., None, :], c0[..., None])
        return Objective(s_all, c, c0)
    x = problem.x[..., clients, :, :]
    y = problem.y[..., clients, :]
    n = x.shape[-2]
    if soup:
        assert problem.soup_counts is not None
        weights = problem.soup_counts[..., clients, :, :] / n
        s_all = np.einsum("...rn,...nd,...ne->...rde", weights, x, x)
        c = np.einsum("...rn,...nd,...n->...rd", weights, x, y)
        c0 = np.einsum("...rn,...n->...r", weights, y * y)
        return Objective(s_all, c, c0)
    s_all = np.einsum("...nd,...ne->...de", x, x) / n
    c = np.einsum("...nd,...n->...d", x, y) / n
    c0 = np.sum(y * y, axis=-1) / n
    return Objective(s_all, c, c0)
