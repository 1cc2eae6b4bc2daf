"""Federated clients built from scikit-learn's bundled ``load_digits`` (no downloads).

Shifts ([CLOSER] Sec. 3; docs/theory.md Sec. 1), each deterministic from a
``numpy.random.Generator``
and scaled by one heterogeneity knob ``h`` in [0, 1]:

``covariate``
    one image domain per client (cycling through :data:`DOMAINS`: rotation, inversion, blur,
    additive noise, contrast), strength proportional to ``h``; labels untouched (P(y|x) shared).
``concept``
    client-specific label permutation (a cyclic shift) on a random subset of
    ``round(h * permuted_classes)`` classes; images untouched (P(x) shared).
``spurious``
    a client-specific 2-pixel marker (client-specific position) that is on with probability
    ``rho = 0.5 + h / 2`` for the client's "marked" classes and ``1 - rho`` for the others
    (a CelebA/CheXpert-like spurious correlation); labels untouched.
``label``
    Dirichlet(``dirichlet_alpha``) class proportions: for each class, its samples are split
    over the clients with proportions ``q ~ Dir(alpha 1_C)``; images and labels untouched.

Shifts combine freely. Every client sample keeps the index of its source image, so tests can
check that each shift changes what it should and nothing else.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from numpy.typing import NDArray
from scipy import ndimage

__all__ = [
    "DOMAINS",
    "SHIFTS",
    "ClientData",
    "ClientDataConfig",
    "apply_domain",
    "load_digits_images",
    "make_clients",
]

DOMAINS: tuple[str, ...] = ("rotate", "invert", "blur", "noise", "contrast")
SHIFTS: tuple[str, ...] = ("covariate", "concept", "spurious", "label")
_MAX_LABEL_DRAWS = 200


@dataclass(frozen=True)
class ClientDataConfig:
    """How the digits are split into shifted clients.

    Parameters
    ----------
    n_clients : int
        Number of clients C (>= 2).
    shifts : tuple of str
        Subset of :data:`SHIFTS`; empty means IID clients (stratified split).
    heterogeneity : float
        Strength ``h`` in [0, 1] of the covariate, concept and spurious shifts.
    dirichlet_alpha : float
        Concentration of the label shift (> 0; small = more skewed).
    permuted_classes : int
        Classes permuted per client at ``h = 1`` under concept shift (2..10).
    test_fraction : float
        Fraction of each client's samples held out for its test set, in (0, 1).
    min_client_samples : int
        Each client must receive at least this many samples (label shift redraws otherwise).
    """

    n_clients: int = 5
    shifts: tuple[str, ...] = ("covariate",)
    heterogeneity: float = 1.0
    dirichlet_alpha: float = 0.5
    permuted_classes: int = 4
    test_fraction: float = 0.3
    min_client_samples: int = 20

    def __post_init__(self) -> None:
        if self.n_clients < 2:
            raise ValueError(f"n_clients must be >= 2, got {self.n_clients}")
        unknown = [s for s in self.shifts if s not in SHIFTS]
        if unknown:
            raise ValueError(f"unknown shift(s) {unknown} in shifts; expected a subset of {SHIFTS}")
        if not 0.0 <= self.heterogeneity <= 1.0:
            raise ValueError(f"heterogeneity must be in [0, 1], got {self.heterogeneity}")
        if not self.dirichlet_alpha > 0:
            raise ValueError(f"dirichlet_alpha must be > 0, got {self.dirichlet_alpha}")
        if not 2 <= self.permuted_classes <= 10:
            raise ValueError(f"permuted_classes must be in [2, 10], got {self.permuted_classes}")
        if not 0.0 < self.test_fraction < 1.0:
            raise ValueError(f"test_fraction must be in (0, 1), got {self.test_fraction}")
        if self.min_client_samples < 2:
            raise ValueError(f"min_client_samples must be >= 2, got {self.min_client_samples}")


@dataclass(frozen=True, eq=False)
class ClientData:
    """One client's train/test data.

    Attributes
    ----------
    x_train, x_test : ndarray of shape (n, 1, 8, 8), float32
        Images in [0, 1] (after the client's domain transform and marker).
    y_train, y_test : ndarray of shape (n,), int64
        Labels (after the client's concept permutation).
    idx_train, idx_test : ndarray of shape (n,), int64
        Index of each sample's source image in :func:`load_digits_images`.
    domain : str
        Domain transform of the client (``"none"`` without covariate shift).
    permutation : ndarray of shape (10,), int64
        Label map ``y -> permutation[y]`` (identity without concept shift).
    """

    x_train: NDArray[np.float32]
    y_train: NDArray[np.int64]
    x_test: NDArray[np.float32]
    y_test: NDArray[np.int64]
    idx_train: NDArray[np.int64]
    idx_test: NDArray[np.int64]
    domain: str = "none"
    permutation: NDArray[np.int64] = field(default_factory=lambda: np.arange(10, dtype=np.int64))


def load_digits_images() -> tuple[NDArray[np.float32], NDArray[np.int64]]:
    """Load scikit-learn's 1,797 bundled 8x8 digits.

    Returns
    -------
    x : ndarray of shape (1797, 1, 8, 8), float32
        Pixel intensities scaled from [0, 16] to [0, 1].
    y : ndarray of shape (1797,), int64
        Digit labels 0..9.
    """
    from sklearn.datasets import load_digits

    bunch = load_digits()
    x = (np.asarray(bunch.images, dtype=np.float32) / 16.0)[:, None, :, :]
    return x, np.asarray(bunch.target, dtype=np.int64)


def apply_domain(
    x: NDArray[np.float32], domain: str, strength: float, rng: np.random.Generator
) -> NDArray[np.float32]:
    """Apply one image domain transform (a small Digit5-like family).

    Parameters
    ----------
    x : ndarray of shape (n, 1, H, W)
        Images in [0, 1].
    domain : str
        One of :data:`DOMAINS` or ``"none"``.
    strength : float
        ``s`` in [0, 1]: rotate by ``60 s`` degrees; invert ``1 - x`` (binary: any ``s > 0``,
        since a blend ``(1 - s) x + s (1 - x)`` is the constant 0.5 at ``s = 0.5``); Gaussian
        blur with ``sigma = s``; add ``N(0, (0.3 s)^2)`` noise; contrast ``0.5 + (1 - 0.7 s)
        (x - 0.5)``. Results are clipped to [0, 1].
    rng : numpy.random.Generator
        Source of the additive noise.

    Returns
    -------
    ndarray of shape (n, 1, H, W), float32
        Transformed images.
    """
    x64 = x.astype(np.float64)
    if domain == "none" or strength == 0.0:
        out = x64
    elif domain == "rotate":
        out = ndimage.rotate(x64, 60.0 * strength, axes=(2, 3), reshape=False, order=1)
    elif domain == "invert":
        out = 1.0 - x64
    elif domain == "blur":
        out = ndimage.gaussian_filter(x64, sigma=(0.0, 0.0, strength, strength))
    elif domain == "noise":
        out = x64 + rng.normal(0.0, 0.3 * strength, size=x64.shape)
    elif domain == "contrast":
        out = 0.5 + (1.0 - 0.7 * strength) * (x64 - 0.5)
    else:
        raise ValueError(f"unknown domain {domain!r}; expected one of {DOMAINS} or 'none'")
    return np.clip(out, 0.0, 1.0).astype(np.float32)


def _partition(
    y: NDArray[np.int64], config: ClientDataConfig, rng: np.random.Generator
) -> list[NDArray[np.int64]]:
    """Split sample indices over clients: stratified (IID) or Dirichlet label shift."""
    n_classes = int(y.max()) + 1
    smallest = int(np.bincount(y, minlength=n_classes).min())
    if "label" not in config.shifts and 2 * config.n_clients > smallest:
        raise ValueError(
            f"n_clients={config.n_clients} is impossible: the smallest class has {smallest} "
            f"samples, fewer than 2 per client (one train, one test)"
        )
    by_class = [rng.permutation(np.flatnonzero(y == k)) for k in range(n_classes)]
    for _ in range(_MAX_LABEL_DRAWS):
        parts: list[list[NDArray[np.int64]]] = [[] for _ in range(config.n_clients)]
        for idx in by_class:
            if "label" in config.shifts:
                q = rng.dirichlet(np.full(config.n_clients, config.dirichlet_alpha))
            else:
                q = np.full(config.n_clients, 1.0 / config.n_clients)
            cuts = np.round(np.cumsum(q)[:-1] * len(idx)).astype(int)
            for c, chunk in enumerate(np.split(idx, cuts)):
                parts[c].append(chunk)
        out = [np.sort(np.concatenate(p)).astype(np.int64) for p in parts]
        if min(len(p) for p in out) >= config.min_client_samples:
            return out
    raise ValueError(
        f"could not give every one of n_clients={config.n_clients} clients at least "
        f"min_client_samples={config.min_client_samples} samples with "
        f"dirichlet_alpha={config.dirichlet_alpha} in {_MAX_LABEL_DRAWS} draws; use fewer "
        f"clients or a larger alpha"
    )


def make_clients(
    config: ClientDataConfig,
    rng: np.random.Generator,
    data: tuple[NDArray[np.float32], NDArray[np.int64]] | None = None,
) -> list[ClientData]:
    """Build shifted federated clients from the digits.

    Parameters
    ----------
    config : ClientDataConfig
        Number of clients, shifts and their strength.
    rng : numpy.random.Generator
        The only source of randomness (partition, splits, permutations, noise, markers).
    data : tuple of ndarray, optional
        ``(x, y)`` as from :func:`load_digits_images` (loaded when omitted).

    Returns
    -------
    list of ClientData
        One entry per client, each with its own train/test split.
    """
    x_all, y_all = load_digits_images() if data is None else data
    n_classes = 10
    h = config.heterogeneity
    parts = _partition(y_all, config, rng)
    clients = []
    for c, idx in enumerate(parts):
        idx = rng.permutation(idx)
        n_test = max(1, int(round(config.test_fraction * len(idx))))
        if n_test >= len(idx):
            raise ValueError(
                f"client {c} has {len(idx)} samples: test_fraction={config.test_fraction} "
                f"leaves no training data"
            )
        x = x_all[idx].copy()
        y = y_all[idx].copy()
        domain = DOMAINS[c % len(DOMAINS)] if "covariate" in config.shifts else "none"
        x = apply_domain(x, domain, h, rng)
        perm = np.arange(n_classes, dtype=np.int64)
        if "concept" in config.shifts:
            m = int(round(h * config.permuted_classes))
            if m >= 2:
                subset = rng.choice(n_classes, size=m, replace=False)
                perm[subset] = np.roll(subset, 1)
        y = perm[y]
        if "spurious" in config.shifts:
            x = _add_marker(x, y, c, h, rng)
        test, train = idx[:n_test], idx[n_test:]
        clients.append(
            ClientData(
                x_train=x[n_test:],
                y_train=y[n_test:],
                x_test=x[:n_test],
                y_test=y[:n_test],
                idx_train=train.astype(np.int64),
                idx_test=test.astype(np.int64),
                domain=domain,
                permutation=perm,
            )
        )
    return clients


def _add_marker(
    x: NDArray[np.float32],
    y: NDArray[np.int64],
    client: int,
    h: float,
    rng: np.random.Generator,
) -> NDArray[np.float32]:
    """Set a client-specific 2-pixel border marker, correlated with the client's marked classes."""
    corners = [(0, 0), (0, 6), (7, 0), (7, 6)]
    row, col = corners[client % len(corners)]
    marked = rng.choice(10, size=5, replace=False)
    rho = 0.5 + 0.5 * h
    p_on = np.where(np.isin(y, marked), rho, 1.0 - rho)
    on = rng.random(len(y)) < p_on
    out = x.copy()
    out[on, 0, row, col : col + 2] = 1.0
    return out
