"""Per-client U-shaped partitions: explicit cut points or cuts chosen from resource budgets.

A cut is a ``front:back`` pair ([FLEXP]; docs/flexp.md): the client keeps the first ``front``
feature blocks (``client_front``) and the last ``back`` blocks (``client_back``) plus ``head``;
the server runs the blocks in between (``server_middle``, never empty).

**Budget rule (ours, not [FLEXP]'s split-ratio optimization):** among all valid cuts whose
client-side cost (:mod:`empirical.experiment.flexp.costs`: parameters, FLOPs per sample or
activation memory) is at most the budget, take the deepest client share: the most client
blocks ``front + back``; ties go to the larger cost, then to the larger ``front``. The order is
total and fixed, so a larger budget never gives fewer client blocks, and the rule is
deterministic.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from empirical.experiment.flexp.costs import BlockProfile, client_cost
from empirical.experiment.models import split_parts

__all__ = [
    "BUDGET_KINDS",
    "PARTS",
    "Cut",
    "block_assignment",
    "client_cuts",
    "cut_from_budget",
    "partition",
    "valid_cuts",
]

PARTS: tuple[str, ...] = ("client_front", "server_middle", "client_back", "head")
BUDGET_KINDS: tuple[str, ...] = ("params", "flops", "memory")


@dataclass(frozen=True, order=True)
class Cut:
    """A U-shaped cut: ``front`` client blocks before the server middle, ``back`` after it."""

    front: int
    back: int

    @classmethod
    def parse(cls, text: str) -> Cut:
        """``"front:back"`` -> Cut (ValueError naming the text otherwise)."""
        head, sep, tail = str(text).partition(":")
        if not sep or not head.strip().isdigit() or not tail.strip().isdigit():
            raise ValueError(f"cut point {text!r} is invalid: expected 'front:back', e.g. '1:1'")
        return cls(int(head), int(tail))

    def __str__(self) -> str:
        return f"{self.front}:{self.back}"

    def check(self, n_blocks: int) -> Cut:
        """Return self if valid for ``n_blocks`` blocks, else raise one clear ValueError."""
        if self.front < 1 or self.back < 0 or self.front + self.back >= n_blocks:
            raise ValueError(
                f"cut point {self} is outside the model: expected front >= 1, back >= 0 and "
                f"front + back <= {n_blocks - 1} (the model has {n_blocks} blocks and the "
                "server middle must keep at least one)"
            )
        return self


def valid_cuts(n_blocks: int) -> list[Cut]:
    """Every valid cut of a model with ``n_blocks`` feature blocks, in ``(front, back)`` order."""
    return [Cut(f, b) for f in range(1, n_blocks) for b in range(n_blocks - f)]


def block_assignment(n_blocks: int, cut: Cut) -> dict[str, list[int]]:
    """Block indices of each part (``head`` holds ``[n_blocks]``, the head's index).

    Parameters
    ----------
    n_blocks : int
        Feature blocks of the model.
    cut : Cut
        Valid for ``n_blocks``.

    Returns
    -------
    dict of str to list of int
        ``client_front``, ``server_middle``, ``client_back``, ``head``; together every index
        ``0 .. n_blocks`` exactly once.
    """
    cut.check(n_blocks)
    return {
        "client_front": list(range(cut.front)),
        "server_middle": list(range(cut.front, n_blocks - cut.back)),
        "client_back": list(range(n_blocks - cut.back, n_blocks)),
        "head": [n_blocks],
    }


def partition(n_blocks: int, cuts: Sequence[Cut]) -> list[dict[str, list[str]]]:
    """Parameter-name prefixes of each client's four parts.

    Parameters
    ----------
    n_blocks : int
        Feature blocks of the model.
    cuts : sequence of Cut
        One per client.

    Returns
    -------
    list of dict
        Per client, :func:`empirical.experiment.models.split_parts` of its cut.
    """
    return [split_parts(n_blocks, c.check(n_blocks).front, c.back) for c in cuts]


def _cost_of(profile: BlockProfile, cut: Cut, kind: str) -> int:
    cost = client_cost(profile, cut.front, cut.back)
    return {"params": cost.params, "flops": cost.flops, "memory": cost.activation_bytes}[kind]


def cut_from_budget(profile: BlockProfile, kind: str, budget: float) -> Cut:
    """The deepest client share that fits ``budget`` (the module docstring's rule).

    Parameters
    ----------
    profile : BlockProfile
        Per-block sizes of the model.
    kind : {"params", "flops", "memory"}
        Client-side parameters, FLOPs per sample (forward + backward) or peak activation
        bytes per sample.
    budget : float
        Largest allowed cost of that kind.

    Returns
    -------
    Cut

    Raises
    ------
    ValueError
        Unknown kind, or no cut fits (the message names the cheapest cut and its cost).
    """
    if kind not in BUDGET_KINDS:
        raise ValueError(f"budget kind {kind!r} is invalid: expected one of {BUDGET_KINDS}")
    scored = [(c, _cost_of(profile, c, kind)) for c in valid_cuts(profile.n_blocks)]
    fits = [(c.front + c.back, cost, c.front, c) for c, cost in scored if cost <= budget]
    if not fits:
        cheapest, least = min(scored, key=lambda s: (s[1], s[0]))
        raise ValueError(
            f"budget {kind}={budget:g} fits no partition: the cheapest cut, {cheapest}, "
            f"needs {kind}={least}"
        )
    return max(fits)[3]


def client_cuts(
    n_clients: int,
    profile: BlockProfile,
    cuts: Sequence[str | Cut] = (),
    budgets: Sequence[float] = (),
    budget_kind: str = "params",
) -> list[Cut]:
    """Each client's cut, from explicit cut points or from budgets (exactly one of the two).

    One cut point or budget is used for every client; otherwise there must be one per client.

    Parameters
    ----------
    n_clients : int
    profile : BlockProfile
    cuts : sequence of str or Cut
        ``"front:back"`` pairs.
    budgets : sequence of float
        Per-client budgets of ``budget_kind``.
    budget_kind : str
        See :func:`cut_from_budget`.

    Returns
    -------
    list of Cut, length n_clients
    """
    if bool(cuts) == bool(budgets):
        raise ValueError("give either cut points or budgets (exactly one of the two)")
    given: Sequence[object] = cuts or budgets
    name = "cut points" if cuts else "budgets"
    if len(given) not in (1, n_clients):
        raise ValueError(
            f"{len(given)} {name} for {n_clients} clients: expected 1 (for every client) or "
            f"{n_clients} (one per client)"
        )
    if cuts:
        chosen = [(c if isinstance(c, Cut) else Cut.parse(c)).check(profile.n_blocks)
                  for c in cuts]  # fmt: skip
    else:
        chosen = [cut_from_budget(profile, budget_kind, float(b)) for b in budgets]
    return chosen * n_clients if len(chosen) == 1 else chosen
