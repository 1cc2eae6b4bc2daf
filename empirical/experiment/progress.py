"""Progress of an experiment run, in epochs of local training, for a bar and for a caller.

Both FedAvg and fine-tuning are counted in *client-epochs* (one pass over one client's
training set): a FedAvg round costs ``sampled clients x local_epochs``, a unit's fine-tuning
``n_clients x pft.epochs``. Counting FedAvg rounds too keeps the bar moving while the global
model trains (it used to sit still), and one unit of work for both keeps the ETA honest. A
caller (the ``figures`` command) may pass a hook that receives ``(done, total, label)`` after
every step, to show the experiment inside its own bar.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from tqdm import tqdm

__all__ = ["ProgressHook", "RunProgress"]

# hook(done, total, label): client-epochs done and planned, and what is running.
ProgressHook = Callable[[float, float, str], None]


class RunProgress:
    """A tqdm bar (optional) and a hook (optional) fed with the same counts.

    Parameters
    ----------
    total : float
        Planned client-epochs.
    show : bool
        Draw the tqdm bar.
    hook : callable, optional
        Called as ``hook(done, total, label)`` after every update.
    desc : str
        The bar's description.
    """

    def __init__(self, total: float, show: bool, hook: ProgressHook | None, desc: str) -> None:
        self.bar: Any = tqdm(total=total, disable=not show, desc=desc, unit="epoch")
        self.total = float(total)
        self.done = 0.0
        self.hook = hook
        self.label = ""

    def add_total(self, amount: float) -> None:
        """Plan ``amount`` more (or, negative, fewer) client-epochs."""
        self.total += amount
        self.bar.total = self.total
        self.bar.refresh()

    def update(self, amount: float, label: str | None = None) -> None:
        """Record ``amount`` client-epochs done (``label``: what is running now)."""
        if label is not None and label != self.label:
            self.label = label
            self.bar.set_postfix_str(label, refresh=False)
        self.done += amount
        self.bar.update(amount)
        if self.hook is not None:
            self.hook(self.done, self.total, self.label)

    def close(self) -> None:
        """Close the bar."""
        self.bar.close()
