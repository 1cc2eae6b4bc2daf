"""Model specifications: ``package.module:callable`` + kwargs, a registry name, or model.json.

A ``model.json`` travels beside checkpoints like data, so it is treated as data: it may name
only a model of :data:`empirical.experiment.models.MODEL_REGISTRY`, or a ``module:callable``
whose module the user allowed explicitly (``allow_modules``, ``--allow-module PKG``); anything
else is refused **before anything is imported** unless ``trust_json=True``
(``--trust-model-json``). A ``module:callable`` typed by the user (not read from a file) is
always allowed; a module in the current directory is found as ``python -m`` would find it.
The schema (version 2, with per-client parts) is documented in docs/checkpoints.md.
"""

from __future__ import annotations

import importlib
import json
import os
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from torch import nn

SCHEMA_VERSION = 2
"""Version written by :func:`model_json`; version 1 (no ``version`` key) still loads."""


class UntrustedModelError(ValueError):
    """A model.json names code that is neither a registry model nor an allowed module."""


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
    client_parts : dict str -> dict str -> list of str
        Per-client parts (client id -> part -> prefixes); they replace ``parts`` for that client.
    """

    factory: Callable[..., nn.Module]
    kwargs: dict[str, Any] = field(default_factory=dict)
    parts: dict[str, list[str]] = field(default_factory=dict)
    label: str = ""
    client_parts: dict[str, dict[str, list[str]]] = field(default_factory=dict)

    def parts_for(self, client: str) -> dict[str, list[str]]:
        """The parts of ``client``: its own entry of ``client_parts``, else ``parts``."""
        return self.client_parts.get(client, self.parts)

    def build(self) -> nn.Module:
        """Call the factory; raise ValueError naming the spec if it fails or is no Module."""
        try:
            model = self.factory(**self.kwargs)
        except Exception as err:  # noqa: BLE001 (a user factory can raise anything)
            raise ValueError(
                f"model {self.label!r} failed to build with kwargs {self.kwargs} "
                f"({type(err).__name__}: {err}); expected a factory that returns a "
                "torch.nn.Module for these kwargs"
            ) from None
        if not isinstance(model, nn.Module):
            raise ValueError(
                f"model {self.label!r} returned a {type(model).__name__}, expected a "
                "torch.nn.Module"
            )
        return model


def _registry() -> Mapping[str, Callable[..., nn.Module]]:
    from empirical.experiment.models import MODEL_REGISTRY

    return dict(MODEL_REGISTRY)


def _import_callable(spec: str) -> Callable[..., nn.Module]:
    module_name, _, attr = spec.partition(":")
    if not module_name or not attr:
        raise ValueError(f"model spec {spec!r} is invalid: expected 'package.module:callable'")
    cwd = os.getcwd()
    added = cwd not in sys.path and "" not in sys.path
    if added:
        sys.path.insert(0, cwd)  # as `python -m` does: modules in the current directory
    try:
        obj: Any = importlib.import_module(module_name)
    except ImportError as err:
        raise ValueError(
            f"model spec {spec!r}: cannot import {module_name!r} ({err}); looked in the current "
            f"directory ({cwd}) and sys.path: run from the folder holding it or add that folder "
            "to PYTHONPATH"
        ) from None
    finally:
        if added:
            sys.path.remove(cwd)
    for part in attr.split("."):
        if not hasattr(obj, part):
            raise ValueError(f"model spec {spec!r}: {module_name!r} has no attribute {attr!r}")
        obj = getattr(obj, part)
    if not callable(obj):
        raise ValueError(f"model spec {spec!r}: {attr!r} is not callable")
    return obj


def _allowed(module_name: str, allow_modules: Sequence[str]) -> bool:
    return any(module_name == m or module_name.startswith(m + ".") for m in allow_modules)


def _parts(value: Any, where: str) -> dict[str, list[str]]:
    if not isinstance(value, Mapping) or not all(
        isinstance(v, list) and all(isinstance(p, str) for p in v) for v in value.values()
    ):
        raise ValueError(f"{where} is invalid: expected {{part name: [prefix, ...]}}")
    return {str(k): list(v) for k, v in value.items()}


def _read_json(path: Path) -> dict[str, Any]:
    if not path.is_file():
        raise FileNotFoundError(f"model description {str(path)!r} does not exist")
    try:
        desc = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise ValueError(f"{path}: not valid UTF-8 JSON ({err})") from None
    if not isinstance(desc, dict) or not isinstance(desc.get("model"), str):
        raise ValueError(
            f"{path}: expected a JSON object with a string 'model' (docs/checkpoints.md)"
        )
    version = desc.get("version", 1)
    if version not in (1, SCHEMA_VERSION):
        raise ValueError(
            f"{path}: version={version!r} is invalid: expected 1 or {SCHEMA_VERSION} "
            "(a newer feddistort wrote it?)"
        )
    if not isinstance(desc.get("kwargs") or {}, dict):
        raise ValueError(f"{path}: 'kwargs' is invalid: expected a JSON object")
    return desc


def resolve_model_spec(
    spec: str,
    kwargs: Mapping[str, Any] | None = None,
    *,
    allow_modules: Sequence[str] = (),
    trust_json: bool = False,
) -> ModelSpec:
    """Turn a model spec string into a :class:`ModelSpec`.

    Parameters
    ----------
    spec : str
        One of: ``package.module:callable`` (e.g. ``torch.nn:Linear``; a module in the current
        directory is found); a name in ``empirical.experiment.models.MODEL_REGISTRY`` (``cnn``,
        ``mlp``); or the path of a ``model.json`` (schema in docs/checkpoints.md).
    kwargs : mapping, optional
        Keyword arguments; they update those read from ``model.json``.
    allow_modules : sequence of str
        Modules (and their submodules) a model.json may name as ``module:callable``.
    trust_json : bool
        Let a model.json name any callable (it then runs that code).

    Returns
    -------
    ModelSpec

    Raises
    ------
    UntrustedModelError
        A model.json names a callable outside the registry and ``allow_modules``.
    """
    extra = dict(kwargs or {})
    if spec.endswith(".json"):
        path = Path(spec)
        desc = _read_json(path)
        name = desc["model"]
        if name.endswith(".json"):
            raise ValueError(
                f"{spec}: 'model' is {name!r}: expected a registry name or module:callable"
            )
        module_name = name.partition(":")[0]
        if ":" in name and not trust_json and not _allowed(module_name, allow_modules):
            raise UntrustedModelError(
                f"{spec}: names model {name!r}, which is not a registry model "
                f"({', '.join(sorted(_registry()))}); a model.json travels with checkpoints "
                "like data, so it may name other code only if you allow it: "
                f"--allow-module {module_name} (or --trust-model-json, which runs any code "
                "it names). Nothing was imported"
            )
        inner = resolve_model_spec(name, {**dict(desc.get("kwargs") or {}), **extra})
        parts = _parts(desc.get("parts") or {}, f"{spec}: 'parts'")
        per_client = desc.get("client_parts") or {}
        if not isinstance(per_client, dict):
            raise ValueError(f"{spec}: 'client_parts' is invalid: expected {{client: parts}}")
        client_parts = {
            str(c): _parts(v, f"{spec}: client_parts[{c!r}]") for c, v in per_client.items()
        }
        return ModelSpec(inner.factory, inner.kwargs, parts, spec, client_parts)
    if ":" in spec:
        return ModelSpec(_import_callable(spec), extra, {}, spec)
    registry = _registry()
    if spec in registry:
        return ModelSpec(registry[spec], extra, {}, spec)
    raise ValueError(
        f"model spec {spec!r} is invalid: expected 'package.module:callable', a model.json path "
        f"or a registry name: {', '.join(sorted(registry))}"
    )


def model_json(
    model: str,
    kwargs: Mapping[str, Any] | None = None,
    parts: Mapping[str, Sequence[str]] | None = None,
    client_parts: Mapping[str, Mapping[str, Sequence[str]]] | None = None,
) -> dict[str, Any]:
    """The version-2 ``model.json`` object (see docs/checkpoints.md)."""
    return {
        "version": SCHEMA_VERSION,
        "model": model,
        "kwargs": dict(kwargs or {}),
        "parts": {k: list(v) for k, v in (parts or {}).items()},
        "client_parts": {
            str(c): {k: list(v) for k, v in p.items()} for c, p in (client_parts or {}).items()
        },
    }


__all__ = [
    "SCHEMA_VERSION",
    "ModelSpec",
    "UntrustedModelError",
    "model_json",
    "resolve_model_spec",
]
