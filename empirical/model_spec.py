"""Model specifications: ``package.module:callable`` + kwargs, a registry name, or model.json."""

from __future__ import annotations

import importlib
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from torch import nn


@dataclass(frozen=True)
class ModelSpec:
    """How to build an architecture: a factory, its keyword arguments, optional named parts.

    Attributes
    ----------
    factory : callable
        Returns an ``nn.Module`` when called with ``kwargs``.
    kwargs : dict
        Keyword arguments of ``factory``.
    parts : dict str -> list of str
        Named groups of parameter-name prefixes (e.g. split-model parts), possibly empty.
    label : str
        The spec as given, for messages.
    """

    factory: Callable[..., nn.Module]
    kwargs: dict[str, Any] = field(default_factory=dict)
    parts: dict[str, list[str]] = field(default_factory=dict)
    label: str = ""

    def build(self) -> nn.Module:
        """Call the factory; raise ValueError naming the spec if it fails or is no Module."""
        try:
            model = self.factory(**self.kwargs)
        except TypeError as err:
            raise ValueError(
                f"model {self.label!r} cannot be built with kwargs {self.kwargs}: {err}"
            ) from None
        if not isinstance(model, nn.Module):
            raise ValueError(
                f"model {self.label!r} returned a {type(model).__name__}, expected a "
                "torch.nn.Module"
            )
        return model


def _registry() -> Mapping[str, Callable[..., nn.Module]]:
    try:
        models = importlib.import_module("empirical.experiment.models")
    except ModuleNotFoundError:
        return {}
    return dict(getattr(models, "MODEL_REGISTRY", {}))


def _import_callable(spec: str) -> Callable[..., nn.Module]:
    module_name, _, attr = spec.partition(":")
    if not module_name or not attr:
        raise ValueError(f"model spec {spec!r} is invalid: expected 'package.module:callable'")
    try:
        obj: Any = importlib.import_module(module_name)
    except ImportError as err:
        raise ValueError(f"model spec {spec!r}: cannot import {module_name!r} ({err})") from None
    for part in attr.split("."):
        if not hasattr(obj, part):
            raise ValueError(f"model spec {spec!r}: {module_name!r} has no attribute {attr!r}")
        obj = getattr(obj, part)
    if not callable(obj):
        raise ValueError(f"model spec {spec!r}: {attr!r} is not callable")
    return obj


def resolve_model_spec(spec: str, kwargs: Mapping[str, Any] | None = None) -> ModelSpec:
    """Turn a model spec string into a :class:`ModelSpec`.

    Parameters
    ----------
    spec : str
        One of: ``package.module:callable`` (e.g. ``torch.nn:Linear``); a name in
        ``empirical.experiment.models.MODEL_REGISTRY`` (``cnn``, ``mlp``); or the path of a
        ``model.json``
        written by the federated experiment, ``{"model": name, "kwargs": {...}, "parts": {...}}``.
    kwargs : mapping, optional
        Keyword arguments; they update those read from ``model.json``.

    Returns
    -------
    ModelSpec
    """
    extra = dict(kwargs or {})
    if spec.endswith(".json"):
        path = Path(spec)
        if not path.is_file():
            raise FileNotFoundError(f"model description {spec!r} does not exist")
        try:
            desc = json.loads(path.read_text())
            name = str(desc["model"])
        except (json.JSONDecodeError, KeyError, TypeError) as err:
            raise ValueError(
                f"{spec}: expected JSON {{'model': name, 'kwargs': {{...}}, 'parts': {{...}}}} "
                f"({err})"
            ) from None
        inner = resolve_model_spec(name, {**dict(desc.get("kwargs") or {}), **extra})
        parts = {str(k): [str(p) for p in v] for k, v in dict(desc.get("parts") or {}).items()}
        return ModelSpec(inner.factory, inner.kwargs, parts, spec)
    if ":" in spec:
        return ModelSpec(_import_callable(spec), extra, {}, spec)
    registry = _registry()
    if spec in registry:
        return ModelSpec(registry[spec], extra, {}, spec)
    names = sorted(registry) or [
        "(registry unavailable: empirical.experiment.models is not installed)"
    ]
    raise ValueError(
        f"model spec {spec!r} is invalid: expected 'package.module:callable', a model.json path "
        f"or a registry name: {', '.join(names)}"
    )


__all__ = ["ModelSpec", "resolve_model_spec"]
