"""Compare a global checkpoint with client checkpoints: a tidy table of distortion metrics."""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
import torch
from torch import nn
from torch.utils.data import DataLoader, SequentialSampler
from tqdm.auto import tqdm

from empirical._compare_acc import (
    ALL_METRICS,
    COLUMNS,
    FEATURE_METRICS,
    WEIGHT_METRICS,
    LayerAcc,
    check_metrics,
)
from empirical._compare_weights import weight_rows
from empirical.checkpoints import fit_state_dict, load_raw
from empirical.features import LayerRef, Spatial, iter_features, resolve_layers
from empirical.inputs import Inputs, load_inputs, num_samples
from empirical.model_spec import ModelSpec, resolve_model_spec


def _data_for(client: str, data: Mapping[str, Any]) -> str:
    if client in data:
        return client
    if "*" in data:
        return "*"
    raise ValueError(
        f"no data for client {client!r}: data names are {sorted(data)}; give one per client or "
        "one named '*' for all"
    )


def _load(
    spec: ModelSpec,
    path: str | Path,
    *,
    trust: bool,
    strict: bool,
    state_key: str | None,
    fill_from: Mapping[str, torch.Tensor] | None = None,
) -> tuple[nn.Module, dict[str, torch.Tensor], list[str]]:
    """Model with the checkpoint loaded, the fitted state, and the buffers filled in."""
    net = spec.build()
    raw = load_raw(path, trust=trust, state_key=state_key)
    state, report = fit_state_dict(net, raw, source=str(path), strict=strict, fill_from=fill_from)
    net.load_state_dict(state, strict=strict)
    return net.eval(), state, report.filled


def _read_inputs(
    data: Mapping[str, Inputs | str | Path], keys: Mapping[str, str]
) -> dict[str, Inputs]:
    """The inputs of each data name in use (``keys``: client -> name), read once.

    A file that cannot be used is an error naming the clients it is for; random DataLoaders are
    refused (the global and client features must see the samples in the same order).
    """
    inputs: dict[str, Inputs] = {}
    for key in dict.fromkeys(keys.values()):
        given = data[key]
        if isinstance(given, DataLoader) and not isinstance(given.sampler, SequentialSampler):
            raise ValueError(
                f"data {key!r} is a DataLoader with a random sampler: the global and client "
                "features must see the samples in the same order; use shuffle=False"
            )
        if not isinstance(given, (str, Path)):
            inputs[key] = given
            continue
        try:
            inputs[key] = load_inputs(given)
        except ValueError as err:
            users = ", ".join(repr(c) for c, k in keys.items() if k == key)
            raise ValueError(f"data of client {users}: {err}") from None
    return inputs


@dataclass(frozen=True)
class _Run:
    """What every client of one comparison shares."""

    spec: ModelSpec
    chosen: tuple[str, ...]
    refs: list[LayerRef]
    batch_size: int
    minibatch_size: int
    spatial: Spatial
    r: int
    opts: dict[str, Any]


def _global_for(
    run: _Run,
    g: tuple[nn.Module, dict[str, torch.Tensor]],
    client_state: Mapping[str, torch.Tensor],
    missing: Sequence[str],
) -> tuple[nn.Module, dict[str, torch.Tensor]]:
    """The global model as a client sees it: buffers it lacks (``missing``) from the client."""
    if not missing:
        return g
    model, state = g
    keys = list(model.state_dict())
    merged = {**state, **{k: client_state[k] for k in missing}}
    merged = {k: merged[k] for k in keys}
    net = run.spec.build()
    net.load_state_dict(merged)
    return net.eval(), merged


def _feature_rows(
    run: _Run,
    client: str,
    global_feats: Sequence[Mapping[str, torch.Tensor]],
    client_feats: Iterator[Mapping[str, torch.Tensor]],
    bar: Any,
) -> list[dict[str, Any]]:
    """Feature-metric rows of one client from paired batches of global and client features."""
    accs = {ref.label: LayerAcc(run.chosen, run.minibatch_size) for ref in run.refs}
    n = 0
    for g_batch, c_batch in zip(global_feats, client_feats, strict=True):
        for label, acc in accs.items():
            acc.update(g_batch[label], c_batch[label])
        n += next(iter(c_batch.values())).shape[0]
        bar.update(1)
    base = {"client": client, "kind": "feature", "n": n, "status": "ok"}
    return [
        {**base, "layer": label, "metric": metric, "value": value}
        for label, acc in accs.items()
        for metric, value in acc.compute(run.r).items()
    ]


def _check_sizes(batch_size: int, minibatch_size: int) -> None:
    for name, size, low in (("batch_size", batch_size, 1), ("minibatch_size", minibatch_size, 4)):
        if not isinstance(size, int) or size < low:
            raise ValueError(f"{name}={size!r} is invalid: expected an integer >= {low}")


def compare_checkpoints(
    model: str | ModelSpec,
    global_checkpoint: str | Path,
    clients: Mapping[str, str | Path],
    data: Mapping[str, Inputs | str | Path],
    *,
    layers: Sequence[str] | str | None = None,
    metrics: Sequence[str] | None = None,
    model_kwargs: Mapping[str, Any] | None = None,
    parts: Mapping[str, Sequence[str]] | None = None,
    batch_size: int = 256,
    minibatch_size: int = 256,
    spatial: Spatial = "mean",
    r: int = 10,
    trust: bool = False,
    strict: bool = True,
    fill_buffers: bool = False,
    state_key: str | None = None,
    progress: bool = False,
) -> pd.DataFrame:
    """Feature distortion and weight drift of every client checkpoint against the global one.

    The global model's features on each data set are computed once and reused for every client
    that uses that data set; all feature metrics are accumulated batch by batch (exact linear
    CKA, Procrustes and principal angles from float64 moment sums, O(d^2) memory per layer).

    Parameters
    ----------
    model : str or ModelSpec
        Architecture: ``package.module:callable``, a registry name or ``model.json`` (whose
        ``parts`` / ``client_parts`` are used when ``parts`` is not given).
    global_checkpoint : str or Path
        Global model weights (any format of :func:`empirical.checkpoints.load_state_dict`).
    clients : mapping str -> path
        Client name -> fine-tuned checkpoint.
    data : mapping str -> inputs or path
        Client name (or ``"*"`` for every client) -> inputs (Tensor/ndarray/Dataset/DataLoader
        or a .npz/.npy/.pt path); features are compared on these samples.
    layers : sequence of str or "auto", optional
        Layer names/globs (see :func:`empirical.features.resolve_layers`); default the input
        of the final Linear; ``"auto"`` several layers along the depth.
    metrics : sequence of str, optional
        Subset of :data:`ALL_METRICS`; default all. ``principal_angle`` is the mean of the
        top-``r`` principal angles (radians).
    model_kwargs : mapping, optional
        Constructor arguments.
    parts : mapping str -> prefixes, optional
        Named parameter groups reported as ``part:<name>`` by the weight metrics; a prefix is a
        module name (``fc`` holds ``fc.weight``, not ``fc1.weight``; see
        :func:`empirical._compare_weights.matches_prefix`).
    batch_size : int
        Rows per forward pass (memory only: no value depends on it).
    minibatch_size : int
        Rows per minibatch of ``minibatch_cka`` ([NGUYEN]), >= 4, independent of
        ``batch_size``; a final partial minibatch of >= 4 rows is used, as in
        :func:`empirical.minibatch.minibatch_cka`.
    spatial : {"mean", "flatten"}
        Reduction of convolutional maps.
    r : int
        Subspace dimension for principal angles (clipped to the common rank).
    trust : bool
        Read checkpoints with ``torch.load(weights_only=False)``: runs any code in the files.
    strict : bool
        Require exact state_dict keys.
    fill_buffers : bool
        Buffers missing from a client checkpoint are taken from the global one, and buffers
        missing from the global checkpoint from each client (FL-bench ``buffers: local``);
        filled buffers are not compared by the weight metrics (``status`` says so).
    state_key : str, optional
        Key of the nested state_dict in every checkpoint.
    progress : bool
        Show a tqdm bar over clients and batches.

    Returns
    -------
    pandas.DataFrame
        Tidy, columns :data:`COLUMNS`. ``kind`` is ``feature`` for feature metrics and
        ``parameter`` / ``buffer`` (BatchNorm running statistics) for weight metrics; ``n`` is
        the number of samples or weights; ``status`` is ``ok`` or the reason a weight value is
        NaN (also listed in ``table.attrs["warnings"]``). Weight rows follow the model's order.
    """
    chosen = check_metrics(metrics)
    if not clients:
        raise ValueError("clients is empty: expected at least one NAME=checkpoint")
    _check_sizes(batch_size, minibatch_size)
    spec = model if isinstance(model, ModelSpec) else resolve_model_spec(model, model_kwargs)
    opts: dict[str, Any] = {"trust": trust, "state_key": state_key}
    g_model, g_state, _ = _load(spec, global_checkpoint, strict=strict and not fill_buffers, **opts)
    buffers = {name for name, _ in g_model.named_buffers()}
    g_missing = [k for k in g_model.state_dict() if k not in g_state]
    if fill_buffers and any(k not in buffers for k in g_missing):
        _load(spec, global_checkpoint, strict=True, **opts)  # raises, naming the missing keys
    run = _Run(spec, chosen, resolve_layers(g_model, layers), batch_size, minibatch_size,
               spatial, r, opts)  # fmt: skip
    keys = {c: _data_for(c, data) for c in clients}
    inputs = _read_inputs(data, keys)
    names = {k: str(v) if isinstance(v, (str, Path)) else f"data {k!r}" for k, v in data.items()}
    want_features = any(m in chosen for m in FEATURE_METRICS)
    total = sum(-(-(num_samples(inputs[keys[c]]) or 0) // batch_size) for c in clients)
    cache: dict[tuple[str, str], list[dict[str, torch.Tensor]]] = {}
    rows: list[dict[str, Any]] = []
    warnings: list[str] = []

    def features(net: nn.Module, key: str, source: str) -> Iterator[dict[str, torch.Tensor]]:
        return iter_features(net, inputs[key], run.refs, batch_size=batch_size, spatial=spatial,
                             source=source, data_source=names[key])  # fmt: skip

    with tqdm(total=(total if want_features else 0) or None, disable=not progress,
              unit="batch") as bar:  # fmt: skip
        for client, path in clients.items():
            bar.set_description(f"client {client}")
            fill = g_state if fill_buffers else None
            c_model, c_state, filled = _load(spec, path, strict=strict, fill_from=fill, **opts)
            seen = _global_for(run, (g_model, g_state), c_state, g_missing if fill_buffers else [])
            if any(m in chosen for m in WEIGHT_METRICS):
                new, problem = weight_rows(
                    client, seen[1], c_state, parts if parts is not None
                    else spec.parts_for(client), buffers, chosen,
                    [*filled, *(g_missing if fill_buffers else [])],
                )  # fmt: skip
                rows += new
                warnings += [problem] if problem else []
            if not want_features:
                continue
            key, variant = keys[client], client if fill_buffers and g_missing else ""
            if (key, variant) not in cache:
                cache[(key, variant)] = list(features(seen[0], key, str(global_checkpoint)))
            rows += _feature_rows(run, client, cache[(key, variant)],
                                  features(c_model, key, str(path)), bar)  # fmt: skip
    table = pd.DataFrame(rows, columns=COLUMNS)
    table.attrs["warnings"] = warnings
    return table


__all__ = ["ALL_METRICS", "COLUMNS", "FEATURE_METRICS", "WEIGHT_METRICS", "compare_checkpoints"]
