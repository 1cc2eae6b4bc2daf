"""A problem instance: every random draw of one configuration, and client training objectives.

All draws of a configuration come from one ``numpy.random.SeedSequence(config.seed)``, split
into named streams, so that the vectorized simulator and the loop oracle see identical numbers
and a sweep over ``lam`` or ``eta`` uses common random numbers.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass, fields
from typing import Any

import numpy as np
from numpy.typing import NDArray

from synthetic.config import SimConfig
from synthetic.generators import (
    InputModel,
    apply_inputs,
    client_heads,
    ground_truth,
    input_model,
    sample_inputs,
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
    return {
        name: np.random.default_rng(child) for name, child in zip(STREAMS, children, strict=True)
    }


_BASE_FIELDS: tuple[str, ...] = (
    "seed", "d", "m", "C", "vcom_norm", "covariate", "eps", "rho", "mix", "n", "n_soup", "n_mc",
    "global_model", "fed_init_scale", "fed_participation", "fed_rounds",
)  # fmt: skip


def _readonly(*arrays: NDArray[Any] | None) -> None:
    for a in arrays:
        if a is not None:
            a.flags.writeable = False


@functools.lru_cache(maxsize=512)
def _draw_base(key: tuple[Any, ...]) -> tuple[Any, ...]:
    """Draw everything that does not depend on ``lam`` or ``sigma``.

    Cached: sweeps over ``lam``, ``eta`` and the method hyperparameters share these draws
    (common random numbers). Arrays are returned read-only.
    """
    cfg = dict(zip(_BASE_FIELDS, key, strict=True))
    rng = _streams(cfg["seed"])
    C, m, d, n = cfg["C"], cfg["m"], cfg["d"], cfg["n"]
    k = m + C
    b_star, v_com = ground_truth(d, m, C, cfg["vcom_norm"], rng["truth"])
    inputs = input_model(
        cfg["covariate"], b_star, m, C, eps=cfg["eps"], rho=cfg["rho"], mix=cfg["mix"],
        rng=rng["inputs"],
    )  # fmt: skip
    x = noise = soup_counts = None
    if n is not None:
        x = sample_inputs(inputs, n, rng["samples"])
        noise = rng["samples"].standard_normal((C, n))
        probs = np.full(n, 1.0 / n)
        soup_counts = rng["soup"].multinomial(n, probs, size=(C, cfg["n_soup"])).astype(float)
    mc = rng["monte_carlo"].standard_normal((C, cfg["n_mc"], k))
    fed_v = fed_b = fed_mask = None
    if cfg["global_model"] == "fedavg":
        fed_rng = rng["fedavg"]
        fed_v = cfg["fed_init_scale"] * fed_rng.standard_normal(k) / np.sqrt(k)
        fed_b = cfg["fed_init_scale"] * fed_rng.standard_normal((k, d)) / np.sqrt(d)
        n_active = max(1, int(round(cfg["fed_participation"] * C)))
        fed_mask = np.zeros((cfg["fed_rounds"], C), dtype=bool)
        for t in range(cfg["fed_rounds"]):
            fed_mask[t, fed_rng.choice(C, size=n_active, replace=False)] = True
    _readonly(b_star, v_com, inputs.mean, inputs.factor, inputs.scale, x, noise, soup_counts, mc)
    _readonly(fed_v, fed_b, fed_mask)
    return b_star, v_com, inputs, x, noise, soup_counts, mc, fed_v, fed_b, fed_mask


def draw_problem(config: SimConfig) -> Problem:
    """Draw every random quantity of ``config`` from its seed.

    The streams of :data:`STREAMS` are independent children of ``SeedSequence(config.seed)``:
    the ground truth, inputs, samples and Monte-Carlo draws do not depend on ``lam``, ``eta``
    or the method hyperparameters (common random numbers across a sweep). Labels are
    y = w*_i^T x + sigma xi with the same xi for every ``lam`` and ``sigma``.

    Parameters
    ----------
    config : SimConfig

    Returns
    -------
    Problem
        Unbatched instance (its arrays are read-only).
    """
    base = _draw_base(tuple(getattr(config, f) for f in _BASE_FIELDS))
    b_star, v_com, inputs, x, noise, soup_counts, mc, fed_v, fed_b, fed_mask = base
    heads = client_heads(v_com, config.lam, config.C)
    y = None
    if x is not None:
        y = np.einsum("cnd,cd->cn", x, heads @ b_star) + config.sigma * noise
    return Problem(b_star, v_com, heads, inputs, x, y, mc, soup_counts, fed_v, fed_b, fed_mask)


def _stack(values: Sequence[object]) -> object:
    if values[0] is None:
        return None
    return np.stack(values)  # type: ignore[arg-type]


def stack_problems(problems: Sequence[Problem], *, mc: bool = True) -> Problem:
    """Stack unbatched problems of equal shapes along a new leading axis.

    With ``mc=False`` the Monte-Carlo draws (C x n_mc x k per problem, needed only by the
    ``delta_l2_mc`` cross-check) are replaced by an empty (G, C, 0, k) array.
    """
    stacked: dict[str, object] = {}
    for f in fields(Problem):
        if f.name == "inputs" or (f.name == "mc" and not mc):
            continue
        stacked[f.name] = _stack([getattr(p, f.name) for p in problems])
    if not mc:
        C, _, k = problems[0].mc.shape
        stacked["mc"] = np.zeros((len(problems), C, 0, k))
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
    S : ndarray of shape (..., d, d) or None
        Dense second moment (samples); ``None`` when ``inputs`` gives it in structured form.
    c : ndarray of shape (..., d)
    c0 : ndarray of shape (...)
    inputs : InputModel or None
        Population mode: S = e e^T + F F^T + s^2 I with batch shape (...), applied in O(d q).
    """

    S: Array | None
    c: Array
    c0: Array
    inputs: InputModel | None = None

    def apply(self, v: Array, extra: int = 0) -> Array:
        """S v for v of shape (..., [extra axes], d); the extra axes follow the batch axes."""
        if self.inputs is None:
            assert self.S is not None
            S = self.S.reshape(self.S.shape[:-2] + (1,) * extra + self.S.shape[-2:])
            return (S @ v[..., None])[..., 0]
        return apply_inputs(self.inputs, v, extra)

    def sandwich(self, B: Array) -> Array:
        """B S B^T for B of shape (..., k, d)."""
        if self.inputs is None:
            assert self.S is not None
            return B @ self.S @ np.swapaxes(B, -1, -2)
        inp = self.inputs
        be = (B @ inp.mean[..., :, None])[..., 0]
        out = be[..., :, None] * be[..., None, :]
        out = out + (inp.scale**2)[..., None, None] * (B @ np.swapaxes(B, -1, -2))
        if inp.factor.shape[-1]:
            bf = B @ inp.factor
            out = out + bf @ np.swapaxes(bf, -1, -2)
        return out

    def loss(self, w: Array, loss_scale: float | Array = 1.0) -> Array:
        """Training loss of predictors ``w`` of shape (..., d)."""
        sw = self.apply(w)
        return np.asarray(loss_scale) * (
            np.sum(w * sw, axis=-1) - 2 * np.sum(self.c * w, axis=-1) + self.c0
        )

    def dense(self) -> Array:
        """The dense second moment S, shape (..., d, d)."""
        if self.S is not None:
            return self.S
        assert self.inputs is not None
        return second_moment(self.inputs)


def select_clients(inputs: InputModel, clients: NDArray[np.int_]) -> InputModel:
    """The input distributions of ``clients`` (client axis -1 of the batch shape)."""
    return InputModel(
        inputs.mean[..., clients, :], inputs.factor[..., clients, :, :], inputs.scale[..., clients]
    )


def client_objectives(
    problem: Problem, clients: NDArray[np.int_], sigma: float | Array = 0.0, *, soup: bool = False
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
        Return one objective per soup ingredient (bootstrap resample), extra axis n_soup
        (finite samples only).

    Returns
    -------
    Objective
        Batch shape (G, P) or, with ``soup``, (G, P, n_soup).
    """
    if problem.x is None or problem.y is None:
        if soup:
            raise ValueError("soup ingredients need finite samples: expected a config with n set")
        inputs = select_clients(problem.inputs, clients)
        w = problem.w_star[..., clients, :]
        pop = Objective(None, w, np.zeros(w.shape[:-1]), inputs)
        c = pop.apply(w)
        c0 = np.sum(w * c, axis=-1) + np.asarray(sigma, dtype=float)[..., None] ** 2
        return Objective(None, c, c0, inputs)
    x = problem.x[..., clients, :, :]
    y = problem.y[..., clients, :]
    n = x.shape[-2]
    if soup:
        assert problem.soup_counts is not None
        weights = problem.soup_counts[..., clients, :, :] / n
        xw = x[..., None, :, :] * weights[..., :, :, None]
        s_all = np.swapaxes(xw, -1, -2) @ x[..., None, :, :]
        c = (np.swapaxes(xw, -1, -2) @ y[..., None, :, None])[..., 0]
        c0 = np.einsum("...rn,...n->...r", weights, y * y)
        return Objective(s_all, c, c0)
    s_all = np.swapaxes(x, -1, -2) @ x / n
    c = (np.swapaxes(x, -1, -2) @ y[..., None])[..., 0] / n
    c0 = np.sum(y * y, axis=-1) / n
    return Objective(s_all, c, c0)
