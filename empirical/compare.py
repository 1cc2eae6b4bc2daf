"""Compare a global checkpoint with client checkpoints: a tidy table of distortion metrics."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pandas as pd
import torch
from torch import nn
from torch.utils.data import DataLoader, SequentialSampler
from tqdm.auto import tqdm

from empirical._moments import centred_moments
from empirical.checkpoints import fit_state_dict, load_raw
from empirical.cka import CKAState, _cka_compute, _cka_update
from empirical.drift import weight_drift
from empirical.features import LayerRef, Spatial, iter_features, resolve_layers
from empirical.inputs import Inputs, load_inputs, num_samples
from empirical.metrics import _paired_compute, _paired_update
from empirical.minibatch_cka import _minibatch_compute, _minibatch_update
from empirical.model_spec import ModelSpec, resolve_model_spec
from empirical.similarity import _procrustes_from_moments, mean_principal_angle

PAIRED_METRICS = ("delta_l2", "relative_l2", "cosine_distance")
MOMENT_METRICS = ("cka", "cka_debiased", "procrustes", "principal_angle")
FEATURE_METRICS = (*PAIRED_METRICS, *MOMENT_METRICS, "minibatch_cka")
WEIGHT_METRICS = ("weight_l2", "weight_relative_l2", "weight_cosine_distance")
ALL_METRICS = (*FEATURE_METRICS, *WEIGHT_METRICS)
COLUMNS = ["client", "layer", "kind", "metric", "value", "n", "status"]
"""``kind``: feature, parameter or buffer; ``status``: ok, or why a value is missing/partial."""


def _check_metrics(metrics: Sequence[str] | None) -> tuple[str, ...]:
    if not metrics:
        return ALL_METRICS
    bad = [m for m in metrics if m not in ALL_METRICS]
    if bad:
        raise ValueError(f"metrics {bad} are invalid: expected some of {', '.join(ALL_METRICS)}")
    return tuple(dict.fromkeys(metrics))


def _data_for(client: str, data: Mapping[str, Any]) -> str:
    if client in data:
        return client
    if "*" in data:
        return "*"
    raise ValueError(
        f"no data for client {client!r}: data names are {sorted(data)}; give one per client or "
        "one named '*' for all"
    )


class _LayerAcc:
    """Accumulators of one (client, layer): paired sums, CKA moments, minibatch HSICs."""

    def __init__(self, metrics: tuple[str, ...], minibatch_size: int) -> None:
        self.paired = torch.zeros(5, dtype=torch.float64)
        self.moments = CKAState(row_stats="cka_debiased" in metrics)
        self.minibatch = torch.zeros(4, dtype=torch.float64)
        self.m = minibatch_size
        self.pending: list[tuple[torch.Tensor, torch.Tensor]] = []
        self.n_pending = 0

    def update(self, g: torch.Tensor, c: torch.Tensor, metrics: tuple[str, ...]) -> None:
        if any(m in metrics for m in PAIRED_METRICS):
            _paired_update(self.paired, g, c)
        if any(m in metrics for m in MOMENT_METRICS):
            _cka_update(self.moments, g, c)
        if "minibatch_cka" in metrics:
            # Minibatches of exactly m rows, whatever the forward batch size.
            self.pending.append((g, c))
            self.n_pending += g.shape[0]
            if self.n_pending >= self.m:
                self._flush(final=False)

    def _flush(self, final: bool) -> None:
        g = torch.cat([a for a, _ in self.pending])
        c = torch.cat([b for _, b in self.pending])
        full = (g.shape[0] // self.m) * self.m
        for start in range(0, full, self.m):
            _minibatch_update(self.minibatch, g[start : start + self.m], c[start : start + self.m])
        g, c = g[full:], c[full:]
        if final and g.shape[0] >= 4:  # a final partial batch, as minibatch_cka does
            _minibatch_update(self.minibatch, g, c)
        self.pending = [(g, c)] if g.shape[0] and not final else []
        self.n_pending = sum(a.shape[0] for a, _ in self.pending)

    def compute(self, metrics: tuple[str, ...], r: int) -> dict[str, float]:
        out: dict[str, float] = {}
        if "minibatch_cka" in metrics and self.pending:
            self._flush(final=True)
        if any(m in metrics for m in PAIRED_METRICS):
            out.update(_paired_compute(self.paired))
        if "cka" in metrics:
            out["cka"] = _cka_compute(self.moments)
        if "cka_debiased" in metrics:
            out["cka_debiased"] = _cka_compute(self.moments, debiased=True)
        if "procrustes" in metrics or "principal_angle" in metrics:
            mom = centred_moments(self.moments)
            out["procrustes"] = _procrustes_from_moments(mom)
            out["principal_angle"] = mean_principal_angle(mom, r)
        if "minibatch_cka" in metrics:
            out["minibatch_cka"] = _minibatch_compute(self.minibatch)
        return {m: v for m, v in out.items() if m in metrics}


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


def _weight_rows(
    client: str,
    ref: Mapping[str, torch.Tensor],
    oth: Mapping[str, torch.Tensor],
    parts: Mapping[str, Sequence[str]],
    buffers: set[str],
    chosen: tuple[str, ...],
    skip: Sequence[str],
) -> tuple[list[dict[str, Any]], str | None]:
    """Weight-metric rows of one client; a problem gives NaN rows with its status, not a crash."""
    wanted = [m for m in WEIGHT_METRICS if m in chosen]
    status = "ok" if not skip else f"ok; {len(skip)} buffers filled in, not compared"
    a = {k: v for k, v in ref.items() if k not in skip}
    b = {k: v for k, v in oth.items() if k not in skip}
    try:
        drift = weight_drift(a, b, parts, buffers=buffers)
    except ValueError as err:
        row = {"client": client, "layer": "all", "kind": "parameter", "value": math.nan, "n": 0}
        msg = f"weight metrics not computed: {err}"
        return [{**row, "metric": m, "status": msg} for m in wanted], f"client {client!r}: {msg}"
    rows = []
    for group, stats in drift.items():
        kind = "buffer" if stats["kind"] else "parameter"
        layer = group.removesuffix(" [buffer]")
        rows += [
            {
                "client": client,
                "layer": layer,
                "kind": kind,
                "metric": m,
                "value": stats[m],
                "n": int(stats["n"]),
                "status": status,
            }  # fmt: skip
            for m in wanted
        ]
    return rows, None


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
        Named parameter groups reported as ``part:<name>`` by the weight metrics.
    batch_size : int
        Rows per forward pass (memory only: no value depends on it).
    minibatch_size : int
        Rows per minibatch of ``minibatch_cka`` ([NGUYEN]), >= 4, independent of
        ``batch_size``; a final partial minibatch of >= 4 rows is used, as in
        :func:`empirical.minibatch_cka.minibatch_cka`.
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
    chosen = _check_metrics(metrics)
    if not clients:
        raise ValueError("clients is empty: expected at least one NAME=checkpoint")
    for name, size in (("batch_size", batch_size), ("minibatch_size", minibatch_size)):
        if not isinstance(size, int) or size < (4 if name == "minibatch_size" else 1):
            low = 4 if name == "minibatch_size" else 1
            raise ValueError(f"{name}={size!r} is invalid: expected an integer >= {low}")
    spec = model if isinstance(model, ModelSpec) else resolve_model_spec(model, model_kwargs)
    opts: dict[str, Any] = {"trust": trust, "state_key": state_key}
    global_model, global_state, _ = _load(
        spec, global_checkpoint, strict=strict and not fill_buffers, **opts
    )
    buffers = {name for name, _ in global_model.named_buffers()}
    global_missing = [k for k in global_model.state_dict() if k not in global_state]
    if fill_buffers and any(k not in buffers for k in global_missing):
        _load(spec, global_checkpoint, strict=True, **opts)  # raises, naming the missing keys
    refs: list[LayerRef] = resolve_layers(global_model, layers)
    keys = {c: _data_for(c, data) for c in clients}
    inputs: dict[str, Inputs] = {}
    for key in dict.fromkeys(keys.values()):
        given = data[key]
        if isinstance(given, DataLoader) and not isinstance(given.sampler, SequentialSampler):
            raise ValueError(
                f"data {key!r} is a DataLoader with a random sampler: the global and client "
                "features must see the samples in the same order; use shuffle=False"
            )
        inputs[key] = load_inputs(given) if isinstance(given, (str, Path)) else given
    names = {k: str(v) if isinstance(v, (str, Path)) else f"data {k!r}" for k, v in data.items()}
    want_features = any(m in chosen for m in FEATURE_METRICS)
    n_batches = [
        -(-(num_samples(inputs[keys[c]]) or 0) // batch_size) if want_features else 0
        for c in clients
    ]
    global_cache: dict[tuple[str, str], list[dict[str, torch.Tensor]]] = {}
    rows: list[dict[str, Any]] = []
    warnings: list[str] = []
    with tqdm(total=sum(n_batches) or None, disable=not progress, unit="batch") as bar:
        for client, path in clients.items():
            bar.set_description(f"client {client}")
            fill = global_state if fill_buffers else None
            client_model, client_state, filled = _load(
                spec, path, strict=strict, fill_from=fill, **opts
            )
            g_model, g_state, g_key = global_model, global_state, ""
            if fill_buffers and global_missing:  # the global model as this client sees it
                g_state = {**global_state, **{k: client_state[k] for k in global_missing}}
                g_state = {k: g_state[k] for k in global_model.state_dict()}
                g_model = spec.build()
                g_model.load_state_dict(g_state)
                g_model.eval()
                g_key, filled = client, [*filled, *global_missing]
            if any(m in chosen for m in WEIGHT_METRICS):
                new, problem = _weight_rows(
                    client, g_state, client_state, parts if parts is not None
                    else spec.parts_for(client), buffers, chosen, filled,
                )  # fmt: skip
                rows += new
                warnings += [problem] if problem else []
            if not want_features:
                continue
            key = keys[client]
            if (key, g_key) not in global_cache:
                global_cache[(key, g_key)] = list(
                    iter_features(
                        g_model,
                        inputs[key],
                        refs,
                        batch_size=batch_size,
                        spatial=spatial,
                        source=str(global_checkpoint),
                        data_source=names[key],
                    )  # fmt: skip
                )
            accs = {ref.label: _LayerAcc(chosen, minibatch_size) for ref in refs}
            feats = iter_features(
                client_model, inputs[key], refs, batch_size=batch_size, spatial=spatial,
                source=str(path), data_source=names[key],
            )  # fmt: skip
            n = 0
            for g_batch, c_batch in zip(global_cache[(key, g_key)], feats, strict=True):
                for label, acc in accs.items():
                    acc.update(g_batch[label], c_batch[label], chosen)
                n += next(iter(c_batch.values())).shape[0]
                bar.update(1)
            for label, acc in accs.items():
                for metric, value in acc.compute(chosen, r).items():
                    rows.append(
                        {
                            "client": client,
                            "layer": label,
                            "kind": "feature",
                            "metric": metric,
                            "value": value,
                            "n": n,
                            "status": "ok",
                        }  # fmt: skip
                    )
    table = pd.DataFrame(rows, columns=COLUMNS)
    table.attrs["warnings"] = warnings
    return table


__all__ = ["ALL_METRICS", "COLUMNS", "FEATURE_METRICS", "WEIGHT_METRICS", "compare_checkpoints"]
