"""Progress of ``feddistort figures``: a bar weighted by each figure's expected time.

Figures differ in cost by two orders of magnitude (the real-network panels run the digits
experiment), so a bar that counts figures gives a false ETA. The outer bar advances by each
figure's expected seconds: the time the same figure took in the previous run into the same
folder (``manifest.json``, same ``quick`` setting), else :data:`EXPECTED_SECONDS`. Inside a
figure, the experiment reports its client-epochs (FedAvg rounds and fine-tuning) to the hook
that :func:`inner_progress` returns (:meth:`FigureBar.inner`): the bar then advances by that
fraction of the figure's weight and names the running unit, so its ETA, computed from the
observed speed, keeps moving while an experiment runs (it used to sit at "4/7, ETA 5 s").
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any

# Seconds per figure on a fresh folder, measured on the project's shared 2-core machine with
# `feddistort figures [--quick] --no-progress --out FRESH` (benchmarks/results/bench_figures.txt).
# Only the ratios matter for the ETA: the bar rescales them by the speed it observes.
EXPECTED_SECONDS: dict[bool, dict[str, float]] = {
    True: {"lemma-4.3": 1.0, "thm-4.4": 1.0, "thm-4.5": 1.0, "kumar": 1.0, "tradeoff": 8.0,
           "distortion": 1.0, "flooding": 12.0, "step-size": 35.0},
    False: {"lemma-4.3": 2.0, "thm-4.4": 2.0, "thm-4.5": 2.0, "kumar": 2.0, "tradeoff": 60.0,
            "distortion": 2.0, "flooding": 90.0, "step-size": 210.0},
}  # fmt: skip
DEFAULT_SECONDS = 5.0  # a figure with no measurement yet

# hook(done, total, label): what the experiment runner reports (client-epochs).
InnerHook = Callable[[float, float, str], None]
_INNER: ContextVar[bool | InnerHook] = ContextVar(
    "feddistort_figures_inner_progress", default=False
)


def inner_progress() -> bool | InnerHook:
    """What work inside a figure passes as ``run_experiment(progress=...)``.

    False (no progress), True (its own bar), or the figures bar's hook (nested progress).
    """
    return _INNER.get()


@contextmanager
def showing_inner_progress(show: bool | InnerHook) -> Iterator[None]:
    """Within the block, :func:`inner_progress` returns ``show``."""
    token = _INNER.set(show)
    try:
        yield
    finally:
        _INNER.reset(token)


def expected_seconds(
    names: Sequence[str], manifest: Mapping[str, Any], quick: bool
) -> dict[str, float]:
    """Expected seconds per figure: the last run's time in this folder, else the table.

    Parameters
    ----------
    names : sequence of str
        Figures to build.
    manifest : mapping
        The folder's manifest (``{"figures": {name: entry}}``; may be empty).
    quick : bool

    Returns
    -------
    dict of str to float
        Positive weights, one per name.

    Examples
    --------
    >>> expected_seconds(["kumar"], {"figures": {"kumar": {"quick": True, "status": "ok",
    ...                                                    "seconds": 3.5}}}, True)
    {'kumar': 3.5}
    """
    table = EXPECTED_SECONDS[bool(quick)]
    entries = manifest.get("figures", {})
    out: dict[str, float] = {}
    for name in names:
        entry = entries.get(name, {})
        seconds = entry.get("seconds")
        same = entry.get("quick") == bool(quick) and entry.get("status") == "ok"
        if same and isinstance(seconds, int | float) and seconds > 0:
            out[name] = float(seconds)
        else:
            out[name] = table.get(name, DEFAULT_SECONDS)
    return out


class FigureBar:
    """The outer bar: advances by expected seconds, shows ``k/n figures: NAME``."""

    def __init__(self, weights: Mapping[str, float], enabled: bool) -> None:
        from tqdm.auto import tqdm

        self.weights = dict(weights)
        self.done = 0
        self.completed = 0.0  # weight of the finished figures
        self.position = 0.0  # where the bar is (also when it is disabled)
        self.status = ""
        self.bar = tqdm(
            total=round(sum(self.weights.values()), 1), desc="figures", disable=not enabled,
            position=0, leave=True,
            bar_format="{desc}: {percentage:3.0f}%|{bar}| [{elapsed}<{remaining}] {postfix}",
        )  # fmt: skip

    def start(self, name: str) -> None:
        """Name the figure being built."""
        self._show(f"{self.done}/{len(self.weights)} figures done, now {name}")

    def _advance_to(self, position: float) -> None:
        step = position - self.position
        if step > 0:
            self.position = position
            self.bar.update(step)

    def _show(self, status: str) -> None:
        self.status = status
        self.bar.set_postfix_str(status)

    def inner(self, name: str) -> InnerHook:
        """The hook of the work inside figure ``name``: advances within its weight.

        ``hook(done, total, label)`` moves the bar to the finished figures' weight plus
        ``done / total`` of this figure's (at most 99 % until it finishes) and shows the label.
        """

        def hook(done: float, total: float, label: str) -> None:
            fraction = min(done / total, 0.99) if total > 0 else 0.0
            self._advance_to(self.completed + fraction * self.weights[name])
            self._show(
                f"{self.done}/{len(self.weights)} figures done, now {name}: {label} "
                f"({done:.0f}/{total:.0f} client-epochs)"
            )

        return hook

    def finish(self, name: str) -> None:
        """Advance to the end of the figure's expected seconds."""
        self.done += 1
        self.completed += self.weights[name]
        self._advance_to(self.completed)
        self._show(f"{self.done}/{len(self.weights)} figures done")

    def close(self) -> None:
        """Close the bar."""
        self.bar.close()
