"""Compare a global checkpoint with client checkpoints: a tidy table of distortion metrics."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pandas as pd
import torch
from torch import nn
from torch.utils.data import DataLoader, SequentialSampler
from tqdm.auto import tqdm

from empirical._moments import centred_moments
from empirical.checkpoints import check_state_dict, load_state_dict
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
COLUMNS = ["client", "layer", "metric", "value", "n"]


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

    def __init__(self, metrics: tuple[str, ...]) -> None:
        self.paired = torch.zeros(5, dtype=torch.float64)
        self.moments = CKAState(row_stats="cka_debiased" in metrics)
        self.minibatch = torch.zeros(4, dtype=torch.float64)

    def update(self, g: torch.Tensor, c: torch.Tensor, metrics: tuple[str, ...]) -> None:
        if any(m in metrics for m in PAIRED_METRICS):
            _paired_update(self.paired, g, c)
        if any(m in metrics for m in MOMENT_METRICS):
            _cka_update(self.moments, g, c)
        if "minibatch_cka" in metrics and g.shape[0] >= 4:
            _minibatch_update(self.minibatch, g, c)

    def compute(self, metrics: tuple[str, ...], r: int) -> dict[str, float]:
        out: dict[str, float] = {}
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


def compare_checkpoints(
    model: str | ModelSpec,
    global_checkpoint: str | Path,
    clients: Mapping[str, str | Path],
    data: Mapping[str, Inputs | str | Path],
    *,
    layers: Sequence[str] | None = None,
    metrics: Sequence[str] | None = None,
    model_kwargs: Mapping[str, Any] | None = None,
    parts: Mapping[str, Sequence[str]] | None = None,
    batch_size: int = 256,
    spatial: Spatial = "mean",
    r: int = 10,
    trust: bool = False,
    strict: bool = True,
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
        ``parts`` are used when ``parts`` is not given).
    global_checkpoint : str or Path
        Global model weights.
    clients : mapping str -> path
        Client name -> fine-tuned checkpoint.
    data : mapping str -> inputs or path
        Client name (or ``"*"`` for every client) -> inputs (Tensor/ndarray/Dataset/DataLoader
        or a .npz/.npy/.pt path); features are compared on these samples.
    layers : sequence of str, optional
        Layer names/globs (see :func:`empirical.features.resolve_layers`); default the input
        of the final Linear.
    metrics : sequence of str, optional
        Subset of :data:`ALL_METRICS`; default all. ``minibatch_cka`` ([NGUYEN]) uses the
        batches of ``batch_size`` rows as its minibatches; ``principal_angle`` is the mean of
        the top-``r`` principal angles (radians).
    model_kwargs : mapping, optional
        Constructor arguments.
    parts : mapping str -> prefixes, optional
        Named parameter groups reported as ``part:<name>`` by the weight metrics.
    batch_size : int
    spatial : {"mean", "flatten"}
        Reduction of convolutional maps.
    r : int
        Subspace dimension for principal angles (clipped to the common rank).
    trust : bool
        Allow arbitrary unpickling of checkpoints.
    strict : bool
        Require exact state_dict keys.
    progress : bool
        Show a tqdm bar over clients and batches.

    Returns
    -------
    pandas.DataFrame
        Tidy, columns ``client, layer, metric, value, n``; ``n`` is the number of samples for
        feature metrics and the number of weights for weight metrics.
    """
    chosen = _check_metrics(metrics)
    if not clients:
        raise ValueError("clients is empty: expected at least one NAME=checkpoint")
    spec = model if isinstance(model, ModelSpec) else resolve_model_spec(model, model_kwargs)
    parts = parts if parts is not None else spec.parts

    def load(path: str | Path) -> tuple[nn.Module, dict[str, torch.Tensor]]:
        net = spec.build()
        state = load_state_dict(path, trust=trust)
        check_state_dict(net, state, strict=strict, source=str(path))
        net.load_state_dict(state, strict=strict)
        return net.eval(), state

    global_model, global_state = load(global_checkpoint)
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
    want_features = any(m in chosen for m in FEATURE_METRICS)
    n_batches = [
        -(-(num_samples(inputs[keys[c]]) or 0) // batch_size) if want_features else 0
        for c in clients
    ]
    global_cache: dict[str, list[dict[str, torch.Tensor]]] = {}
    rows: list[dict[str, Any]] = []
    with tqdm(total=sum(n_batches) or None, disable=not progress, unit="batch") as bar:
        for client, path in clients.items():
            bar.set_description(f"client {client}")
            client_model, client_state = load(path)
            if any(m in chosen for m in WEIGHT_METRICS):
                drift = weight_drift(global_state, client_state, parts)
                for group, stats in drift.items():
                    rows += [
                        {
                            "client": client,
                            "layer": group,
                            "metric": m,
                            "value": stats[m],
                            "n": int(stats["n"]),
                        }
                        for m in WEIGHT_METRICS
                        if m in chosen
                    ]
            if not want_features:
                continue
            key = keys[client]
            if key not in global_cache:
                global_cache[key] = list(
                    iter_features(
                        global_model,
                        inputs[key],
                        refs,
                        batch_size=batch_size,
                        spatial=spatial,
                        source=str(global_checkpoint),
                    )
                )
            accs = {ref.label: _LayerAcc(chosen) for ref in refs}
            feats = iter_features(
                client_model,
                inputs[key],
                refs,
                batch_size=batch_size,
                spatial=spatial,
                source=str(path),
            )
            n = 0
            for g_batch, c_batch in zip(global_cache[key], feats, strict=True):
                for label, acc in accs.items():
                    acc.update(g_batch[label], c_batch[label], chosen)
                n += next(iter(c_batch.values())).shape[0]
                bar.update(1)
            for label, acc in accs.items():
                for metric, value in acc.compute(chosen, r).items():
                    rows.append(
                        {"client": client, "layer": label, "metric": metric, "value": value, "n": n}
                    )
    return pd.DataFrame(rows, columns=COLUMNS)


__all__ = ["ALL_METRICS", "FEATURE_METRICS", "WEIGHT_METRICS", "compare_checkpoints"]
