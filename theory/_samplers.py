"""Random configurations inside each claim's hypotheses, under named priors on the step size.

A failure *count* depends on where the configurations are drawn, so every audit figure is
reported with its prior. Two priors differ only in how the step size is drawn over the same
range: ``eta-log-uniform`` and ``eta-uniform``. One-step claims draw eta in [0.01, 1.5];
multi-step claims draw eta = f / (2 c_L (1 + ||V*_com||^2 + lam^2)) with f in [0.02, 0.4]
(below the stability limit at the start). Everything else is drawn the same way under both.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from synthetic.config import SimConfig

#: Prior name -> description (the range of eta is the sampler's, see the module docstring).
PRIORS: dict[str, str] = {
    "eta-log-uniform": "eta log-uniform over its range (one step: [0.01, 1.5]; multi-step: "
    "f in [0.02, 0.4] of the stability scale)",
    "eta-uniform": "eta uniform over the same ranges",
}
Sampler = Callable[[np.random.Generator, str], SimConfig]


def _draw(rng: np.random.Generator, lo: float, hi: float, prior: str) -> float:
    if prior == "eta-log-uniform":
        return float(np.exp(rng.uniform(np.log(lo), np.log(hi))))
    if prior == "eta-uniform":
        return float(rng.uniform(lo, hi))
    raise ValueError(f"prior={prior!r} is invalid: expected one of {', '.join(PRIORS)}")


def _dims(rng: np.random.Generator, extra: int = 6) -> dict[str, Any]:
    m = int(rng.integers(1, 5))
    C = int(rng.integers(2, 7))
    return {"m": m, "C": C, "d": m + C + int(rng.integers(0, extra + 1))}


def _common(rng: np.random.Generator) -> dict[str, Any]:
    return {
        "seed": int(rng.integers(0, 10_000)),
        "lam": float(np.round(rng.uniform(0.1, 3.0), 3)),
        "vcom_norm": float(np.round(rng.uniform(0.0, 2.0), 3)),
        "loss": str(rng.choice(["mse", "half_mse"])),
    }


def _eta_one_step(rng: np.random.Generator, prior: str) -> float:
    return float(np.round(_draw(rng, 0.01, 1.5, prior), 4))


def sample_iso(rng: np.random.Generator, prior: str) -> SimConfig:
    """Isotropic one-step configurations (Lemma 4.3, Theorem 4.4)."""
    eta = _eta_one_step(rng, prior)
    return SimConfig(covariate="isotropic", eta=eta, **_dims(rng), **_common(rng))


def sample_cov(rng: np.random.Generator, prior: str) -> SimConfig:
    """Covariate + concept one-step configurations (Theorem 4.5), every mean geometry."""
    covariate = str(rng.choice(["own", "shared", "random", "basis", "mix"]))
    mix = float(np.round(rng.uniform(0, 1), 3))
    eps = float(np.round(rng.uniform(0.05, 1.0), 3))
    eta = _eta_one_step(rng, prior)
    return SimConfig(covariate=covariate, mix=mix, eps=eps, eta=eta, **_dims(rng), **_common(rng))


def sample_gd(rng: np.random.Generator, prior: str) -> SimConfig:
    """Multi-step configurations with a step size below the stability limit of the start."""
    dims = _dims(rng, extra=12)
    common = _common(rng)
    steps = int(rng.choice([1, 5, 20, 100]))
    covariate = str(rng.choice(["isotropic", "own", "mix", "random"]))
    s = 1.0 + common["vcom_norm"] ** 2 + common["lam"] ** 2
    c_l = 0.5 if common["loss"] == "half_mse" else 1.0
    eta = float(np.round(_draw(rng, 0.02, 0.4, prior) / (2 * c_l * s), 4))
    k = dims["m"] + dims["C"]
    n = None if rng.random() < 0.3 else int(rng.integers(k, 3 * dims["d"]))
    return SimConfig(covariate=covariate, eps=0.3, eta=eta, steps=steps, n=n, **dims, **common)


def sample_span(rng: np.random.Generator, prior: str) -> SimConfig:
    """Multi-step configurations with n < d samples (span lemma)."""
    config = sample_gd(rng, prior)
    return config.replace(n=int(rng.integers(1, config.d)))


def sample_thm31(rng: np.random.Generator, prior: str) -> SimConfig:
    """Multi-step configurations with dim S^perp >= k (Thm 3.1)."""
    config = sample_gd(rng, prior)
    d = config.d + config.k  # room for S^perp of dimension >= k
    return config.replace(d=d, n=int(rng.integers(1, d - config.k + 1)))


def sample_prop32(rng: np.random.Generator, prior: str) -> SimConfig:
    """Multi-step configurations with k <= n < d (Prop. 3.2)."""
    config = sample_gd(rng, prior)
    config = config.replace(d=config.d + 1)
    return config.replace(n=int(rng.integers(config.k, config.d)))  # k <= n < d


def _entry(rng: np.random.Generator, name: str, spec: Any, prior: str) -> Any:
    from theory.space import LogRange, is_int_field, is_range
    from theory.space import round4 as _round

    if isinstance(spec, LogRange):
        if name == "eta":
            return _round(_draw(rng, spec.lo, spec.hi, prior), spec.lo, spec.hi)
        return _round(float(np.exp(rng.uniform(np.log(spec.lo), np.log(spec.hi)))), spec.lo,
                      spec.hi)  # fmt: skip
    if is_range(spec):
        lo, hi = spec
        if is_int_field(name):
            return int(rng.integers(int(np.ceil(lo)), int(np.floor(hi)) + 1))
        if name == "eta":
            return _round(_draw(rng, lo, hi, prior), lo, hi)
        return _round(float(rng.uniform(lo, hi)), lo, hi)
    if isinstance(spec, tuple):
        return spec[int(rng.integers(len(spec)))]
    return spec


def sample_space(claim: Any, rng: np.random.Generator, prior: str) -> SimConfig:
    """A configuration drawn from a claim's space (as :func:`theory.strategies.configs` does).

    ``d`` is m + C + 0..4 unless the space gives it; ``eps``, ``mix`` and ``rho`` are drawn
    only for the geometries that use them. Redraws until the configuration is valid and
    meets the claim's hypotheses (at most 1000 draws; then the space counts as empty).
    """
    from synthetic.config import ConfigError
    from theory.declare import ClaimError
    from theory.space import D_EXTRA, GEOMETRY_FIELDS

    space, base = claim.space, claim.default
    for _ in range(1000):
        values = {k: _entry(rng, k, space[k], prior) for k in ("m", "C", "d") if k in space}
        if "d" not in space:
            k = values.get("m", base.m) + values.get("C", base.C)
            values["d"] = k + _entry(rng, "d", D_EXTRA, prior)
        cov = _entry(rng, "covariate", space["covariate"], prior) if "covariate" in space else None
        if cov is not None:
            values["covariate"] = cov
            for name, used in (("eps", cov != "isotropic"), ("mix", cov == "mix"),
                               ("rho", cov == "overlap")):  # fmt: skip
                if used and name in space:
                    values[name] = _entry(rng, name, space[name], prior)
        for name, spec in space.items():
            if name not in values and name not in GEOMETRY_FIELDS:
                values[name] = _entry(rng, name, spec, prior)
        try:
            config = base.replace(**values)
        except ConfigError:
            continue
        if not claim.unmet(config):
            return config
    raise ClaimError(
        f"claim {claim.id!r}: the search space is empty: 1000 draws (with these --set values) "
        "gave no valid configuration meeting its hypotheses"
    )


SAMPLERS: dict[str, Sampler] = {
    "lemma-4.3": sample_iso,
    "thm-4.4": sample_iso,
    "thm-4.5": sample_cov,
    "kumar-span": sample_span,
    "kumar-balance": sample_gd,
    "kumar-prop-3.2": sample_prop32,
    "kumar-thm-3.1": sample_thm31,
    "kumar-thm-3.1-tight": sample_thm31,
}
