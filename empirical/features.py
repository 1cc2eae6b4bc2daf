"""Intermediate features of a network through forward hooks on named modules.

Layers are chosen by exact module names or glob patterns (``features.*``); a ``:in`` suffix
takes the module's input instead of its output. The default is the input of the final
``nn.Linear`` (the penultimate features of [CLOSER] Sec. 3). Hooks live only inside
:func:`capture` (a context manager) and are removed even when the forward pass fails.
"""

from __future__ import annotations

import contextlib
import difflib
import fnmatch
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import torch
from torch import nn

from empirical.inputs import Inputs, iter_batches

Spatial = Literal["mean", "flatten"]


class LayerNotFoundError(ValueError):
    """A requested layer name or pattern matches no module; the message lists the nearest."""


class NonFiniteFeaturesError(ValueError):
    """Features contain NaN or Inf; the message names the layer and the checkpoint."""


class ForwardError(ValueError):
    """The forward pass failed on the data (wrong shape or dtype for the model)."""


MAX_AUTO_LAYERS = 8
"""At most this many layers are chosen by ``layers="auto"``."""


@dataclass(frozen=True)
class LayerRef:
    """A hook point: module ``name`` and whether its ``input`` or output is captured."""

    name: str
    input: bool = False

    @property
    def label(self) -> str:
        """``name`` for outputs, ``name:in`` for inputs."""
        return f"{self.name}:in" if self.input else self.name


def default_layer(model: nn.Module) -> LayerRef:
    """The input of the last ``nn.Linear`` in module order (penultimate features)."""
    linears = [name for name, m in model.named_modules() if isinstance(m, nn.Linear)]
    if not linears:
        raise LayerNotFoundError(
            f"{type(model).__name__} has no nn.Linear layer, so there is no default (penultimate) "
            "layer; pass layers explicitly"
        )
    return LayerRef(linears[-1], input=True)


def auto_layers(model: nn.Module) -> list[LayerRef]:
    """Several layers along the depth: conv/Linear outputs and the penultimate features.

    The outputs of every ``nn.Conv*d`` and every ``nn.Linear`` but the last (at most
    :data:`MAX_AUTO_LAYERS` - 1, evenly spaced, the deepest kept), then the input of the final
    Linear (:func:`default_layer`).
    """
    last = default_layer(model)
    convs = (nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.Linear)
    names = [n for n, m in model.named_modules() if isinstance(m, convs) and n != last.name]
    k = MAX_AUTO_LAYERS - 1
    if len(names) > k:
        step = (len(names) - 1) / (k - 1)
        names = [names[round(i * step)] for i in range(k)]
    return [*(LayerRef(n) for n in names), last]


def resolve_layers(model: nn.Module, patterns: Sequence[str] | str | None = None) -> list[LayerRef]:
    """Turn layer names or glob patterns into hook points, in module order.

    Parameters
    ----------
    model : nn.Module
    patterns : sequence of str, optional
        Exact names (``features.3``) or fnmatch globs (``features.*``), each optionally suffixed
        ``:in`` (module input) or ``:out`` (output, the default). ``None`` or empty: the input
        of the final Linear. ``"auto"``: :func:`auto_layers`.

    Returns
    -------
    list of LayerRef
        Without duplicates.

    Raises
    ------
    LayerNotFoundError
        A pattern matches no module; the message lists the closest valid names (difflib).
    """
    if not patterns:
        return [default_layer(model)]
    if patterns == "auto" or list(patterns) == ["auto"]:
        return auto_layers(model)
    if isinstance(patterns, str):
        patterns = [patterns]
    names = [name for name, _ in model.named_modules() if name]
    refs: list[LayerRef] = []
    for pattern in patterns:
        base, _, port = pattern.partition(":")
        if port not in ("", "in", "out"):
            raise ValueError(f"layer {pattern!r} is invalid: the suffix must be ':in' or ':out'")
        matched = [base] if base in names else fnmatch.filter(names, base)
        if not matched:
            near = difflib.get_close_matches(base, names, n=5, cutoff=0.4) or names[:8]
            raise LayerNotFoundError(
                f"layer {base!r} matches no module of {type(model).__name__}; nearest valid "
                f"names: {', '.join(near)}"
            )
        for name in matched:
            ref = LayerRef(name, input=port == "in")
            if ref not in refs:
                refs.append(ref)
    order = {name: i for i, name in enumerate(names)}
    return sorted(refs, key=lambda r: (order[r.name], r.input is False))


def _reduce(t: Any, spatial: Spatial, where: str) -> torch.Tensor:
    """(b, d) features of a module's input or output, never aliasing the live activation.

    The hook runs before later modules, and one of them may modify this tensor in place
    (``ReLU(inplace=True)`` after a Linear or a BatchNorm): a result that shares memory with
    the activation is cloned; spatial means are new tensors already, so they are not copied.
    """
    if isinstance(t, (tuple, list)):
        t = t[0]
    if not isinstance(t, torch.Tensor):
        raise ValueError(f"layer {where} produced a {type(t).__name__}, expected a tensor")
    if t.ndim == 1:
        out = t[:, None]
    elif t.ndim > 2:
        # (b, C, *spatial): average over the spatial positions, or flatten everything.
        out = t.flatten(2).mean(2) if spatial == "mean" else t.flatten(1)
    else:
        out = t
    if out.untyped_storage().data_ptr() == t.untyped_storage().data_ptr():
        out = out.clone()
    return out


@contextlib.contextmanager
def capture(
    model: nn.Module, layers: Sequence[LayerRef], spatial: Spatial = "mean"
) -> Iterator[dict[str, torch.Tensor]]:
    """Register forward hooks; yield the dict they fill with the latest batch of each layer.

    Parameters
    ----------
    model : nn.Module
    layers : sequence of LayerRef
    spatial : {"mean", "flatten"}
        Maps of shape (b, C, H, W, ...) become (b, C) by spatial averaging or (b, C*H*W...) by
        flattening.

    Yields
    ------
    dict str -> Tensor of shape (b, d)
        Keyed by :attr:`LayerRef.label`; overwritten at each forward pass. Each value is
        the module's output (``:in``: input) as it was when produced, even if a later module
        modifies the activation in place.
    """
    if spatial not in ("mean", "flatten"):
        raise ValueError(f"spatial={spatial!r} is invalid: expected 'mean' or 'flatten'")
    modules = dict(model.named_modules())
    store: dict[str, torch.Tensor] = {}
    handles = []

    def make_hook(ref: LayerRef) -> Any:
        def hook(_m: nn.Module, args: tuple[Any, ...], output: Any) -> None:
            store[ref.label] = _reduce(output, spatial, ref.label)

        def pre_hook(_m: nn.Module, args: tuple[Any, ...]) -> None:
            # Before the module runs: an in-place module would overwrite its own input.
            store[ref.label] = _reduce(args, spatial, ref.label)

        return pre_hook if ref.input else hook

    try:
        for ref in layers:
            if ref.name not in modules:
                raise LayerNotFoundError(f"layer {ref.name!r} is not a module of the model")
            module = modules[ref.name]
            handles.append(
                module.register_forward_pre_hook(make_hook(ref))
                if ref.input
                else module.register_forward_hook(make_hook(ref))
            )
        yield store
    finally:
        for h in handles:
            h.remove()


def iter_features(
    model: nn.Module,
    data: Inputs,
    layers: Sequence[LayerRef],
    *,
    batch_size: int = 256,
    spatial: Spatial = "mean",
    source: str = "model",
    data_source: str = "the data",
) -> Iterator[dict[str, torch.Tensor]]:
    """Yield the features of each batch, in eval mode under ``torch.inference_mode()``.

    The model's training flag is restored afterwards. ``source`` (e.g. the checkpoint path)
    and ``data_source`` (the data file) appear in the :class:`NonFiniteFeaturesError` raised on
    NaN/Inf features and the :class:`ForwardError` raised when the forward pass fails.
    """
    was_training = model.training
    model.eval()
    try:
        with capture(model, layers, spatial) as store, torch.inference_mode():
            for batch in iter_batches(data, batch_size):
                store.clear()
                try:
                    model(batch)
                except (RuntimeError, TypeError, ValueError, IndexError) as err:
                    first = str(err).strip().splitlines()[0] if str(err).strip() else repr(err)
                    raise ForwardError(
                        f"the forward pass of {source} on {data_source} failed "
                        f"({type(err).__name__}: {first}); a batch has shape "
                        f"{tuple(batch.shape)} and dtype {batch.dtype}: expected inputs of the "
                        "shape the model accepts"
                    ) from None
                out = {}
                for ref in layers:
                    if ref.label not in store:
                        raise ValueError(f"layer {ref.label!r} was not run by the forward pass")
                    feats = store[ref.label]
                    if not bool(torch.isfinite(feats).all()):
                        raise NonFiniteFeaturesError(
                            f"features of layer {ref.label!r} from {source} contain NaN or Inf"
                        )
                    out[ref.label] = feats
                yield out
    finally:
        model.train(was_training)


def extract_features(
    model: nn.Module,
    data: Inputs,
    layers: Sequence[str] | None = None,
    *,
    batch_size: int = 256,
    spatial: Spatial = "mean",
    source: str = "model",
) -> dict[str, torch.Tensor]:
    """Features of all of ``data`` at the chosen layers.

    Parameters
    ----------
    model : nn.Module
    data : Tensor, ndarray, Dataset or DataLoader
        Inputs of shape (n, ...).
    layers : sequence of str, optional
        Names or patterns (see :func:`resolve_layers`); default the input of the final Linear.
    batch_size : int
    spatial : {"mean", "flatten"}
    source : str
        Name used in error messages.

    Returns
    -------
    dict str -> Tensor of shape (n, d)
        Keyed by layer label (``name`` or ``name:in``).
    """
    refs = resolve_layers(model, layers)
    chunks: dict[str, list[torch.Tensor]] = {r.label: [] for r in refs}
    for out in iter_features(
        model, data, refs, batch_size=batch_size, spatial=spatial, source=source
    ):
        for key, value in out.items():
            chunks[key].append(value)
    if not any(chunks.values()):
        raise ValueError("data is empty: no batch was produced")
    return {k: torch.cat(v) for k, v in chunks.items()}


__all__ = [
    "MAX_AUTO_LAYERS",
    "ForwardError",
    "LayerNotFoundError",
    "LayerRef",
    "NonFiniteFeaturesError",
    "capture",
    "auto_layers",
    "default_layer",
    "extract_features",
    "iter_features",
    "resolve_layers",
]
