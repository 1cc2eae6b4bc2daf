"""A restricted unpickler: tensors and plain containers are rebuilt, nothing else is imported.

``torch.save(model)`` pickles the whole module tree, so reading it with :mod:`pickle` would
import (and may run) the model's code. Here every global that is not in a short allow-list
(tensor-rebuilding functions, plain containers, dtypes) becomes an inert :class:`Placeholder`
subclass created on the spot, **without importing its module**; calling it only records the
arguments. The module tree is then read back from the placeholders' state
(``_parameters``, ``_buffers``, ``_modules``), exactly as ``nn.Module.state_dict`` would walk it.
"""

from __future__ import annotations

import _compat_pickle
import collections
import io
import pickle
import types
import warnings
from collections.abc import Callable
from typing import Any, ClassVar

import torch


class Placeholder:
    """Stand-in for an object of a class that was not imported (its state is kept as data)."""

    target: ClassVar[str] = "?"
    calls: ClassVar[list[str]]
    state: Any

    def __new__(cls, *args: Any, **kwargs: Any) -> Placeholder:  # noqa: D102
        obj = super().__new__(cls)
        obj.__dict__.update(args=args, kwargs=kwargs, state=None, items={}, list=[])
        return obj

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        # Reached only when the pickle *calls* the class or function (REDUCE): that call would
        # have run code; it is recorded, never made.
        type(self).calls.append(type(self).target)

    def __setstate__(self, state: Any) -> None:  # noqa: D105
        self.__dict__["state"] = state

    def __setitem__(self, key: Any, value: Any) -> None:  # noqa: D105
        self.__dict__["items"][key] = value

    def append(self, value: Any) -> None:  # noqa: D102
        self.__dict__["list"].append(value)

    def extend(self, values: Any) -> None:  # noqa: D102
        self.__dict__["list"].extend(values)

    def __repr__(self) -> str:
        return f"<not imported: {self.target}>"


def _rebuild_tensor(
    storage: Any, offset: int, size: Any, stride: Any, *_rest: Any, **_kw: Any
) -> torch.Tensor:
    if not isinstance(storage, torch.storage.TypedStorage):
        raise pickle.UnpicklingError(f"tensor storage is a {type(storage).__name__}")
    return torch._utils._rebuild_tensor(storage, int(offset), tuple(size), tuple(stride))


def _rebuild_parameter(data: Any, *_rest: Any) -> torch.Tensor:
    if not isinstance(data, torch.Tensor):
        raise pickle.UnpicklingError(f"parameter data is a {type(data).__name__}")
    return data.detach()


def _rebuild_from_type(func: Any, _new_type: Any, args: Any, _state: Any) -> torch.Tensor:
    if func not in (_rebuild_tensor, _rebuild_parameter):
        raise pickle.UnpicklingError("tensor subclass rebuilt by a function that is not allowed")
    return func(*args)


def _reconstructor(cls: Any, base: Any, state: Any) -> Any:
    if isinstance(cls, type) and issubclass(cls, Placeholder):
        return cls.__new__(cls, state)
    if cls in (collections.OrderedDict, dict, list, set) and base is object:
        return cls()
    raise pickle.UnpicklingError(f"copyreg._reconstructor of {cls!r} is not allowed")


_ALLOWED: dict[tuple[str, str], Any] = {
    ("collections", "OrderedDict"): collections.OrderedDict,
    ("builtins", "set"): set,
    ("builtins", "frozenset"): frozenset,
    ("builtins", "list"): list,
    ("builtins", "dict"): dict,
    ("builtins", "tuple"): tuple,
    ("builtins", "slice"): slice,
    ("builtins", "complex"): complex,
    ("builtins", "bytearray"): bytearray,
    ("torch._utils", "_rebuild_tensor"): _rebuild_tensor,
    ("torch._utils", "_rebuild_tensor_v2"): _rebuild_tensor,
    ("torch._utils", "_rebuild_parameter"): _rebuild_parameter,
    ("torch._utils", "_rebuild_parameter_with_state"): _rebuild_parameter,
    ("torch._tensor", "_rebuild_from_type_v2"): _rebuild_from_type,
    ("torch", "Size"): torch.Size,
    ("copyreg", "_reconstructor"): _reconstructor,
}
"""(module, name) -> the object returned instead of importing; everything else is a placeholder."""


def _make_module(record: list[str], calls: list[str]) -> types.SimpleNamespace:
    """A ``pickle_module`` for ``torch.load`` whose Unpickler imports nothing."""
    cache: dict[str, type[Placeholder]] = {}

    class RestrictedUnpickler(pickle.Unpickler):
        def find_class(self, module: str, name: str) -> Any:
            # Python 2 names (protocol < 3 pickles write __builtin__.set), as pickle maps them.
            if (module, name) in _compat_pickle.NAME_MAPPING:
                module, name = _compat_pickle.NAME_MAPPING[(module, name)]
            module = _compat_pickle.IMPORT_MAPPING.get(module, module)
            if (module, name) in _ALLOWED:
                return _ALLOWED[(module, name)]
            if module == "torch" and isinstance(getattr(torch, name, None), torch.dtype):
                return getattr(torch, name)
            if (module, name) == ("torch.storage", "_load_from_bytes"):
                return lambda b: restricted_load(io.BytesIO(b), record, calls)
            target = f"{module}.{name}"
            if target not in cache:
                record.append(target)
                cache[target] = type(
                    name, (Placeholder,), {"target": target, "calls": calls, "__module__": __name__}
                )
            return cache[target]

    def load(file: Any, **kwargs: Any) -> Any:
        return RestrictedUnpickler(file, **kwargs).load()

    return types.SimpleNamespace(
        __name__="feddistort_restricted_pickle", Unpickler=RestrictedUnpickler, load=load
    )


def restricted_load(file: Any, record: list[str], calls: list[str]) -> Any:
    """``torch.load`` (zip or legacy format) or a plain pickle, with nothing imported.

    Parameters
    ----------
    file : path or binary file object
    record : list of str
        Filled with the ``module.name`` of every class or function replaced by a placeholder.
    calls : list of str
        Filled with those the pickle would have called (code that would have run).

    Returns
    -------
    object
        Tensors, plain containers and :class:`Placeholder` objects.
    """
    module = _make_module(record, calls)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # source-change warnings of pickled containers
            return torch.load(file, map_location="cpu", weights_only=False, pickle_module=module)
    except (RuntimeError, pickle.UnpicklingError) as err:
        if "magic number" not in str(err) or not hasattr(file, "read"):
            raise
    file.seek(0)  # a plain pickle (pickle.dump), not a torch.save file
    return module.load(file, encoding="utf-8")


def is_module_tree(obj: Any) -> bool:
    """Whether ``obj`` is a placeholder holding the state of an ``nn.Module``."""
    return (
        isinstance(obj, Placeholder)
        and isinstance(obj.state, dict)
        and isinstance(obj.state.get("_parameters"), dict)
    )


def module_tree_state_dict(obj: Any, where: Callable[[str], str]) -> dict[str, torch.Tensor]:
    """Rebuild ``state_dict()`` from a pickled module tree (parameters, persistent buffers).

    Keys and order are those of ``nn.Module.state_dict``: per module its parameters, then its
    persistent buffers, then each child under ``child.``. ``where`` formats error messages.
    """
    out: dict[str, torch.Tensor] = {}

    def walk(node: Any, prefix: str) -> None:
        state = node.state
        skip = set(state.get("_non_persistent_buffers_set") or ())
        for name, value in (state.get("_parameters") or {}).items():
            if value is not None:
                out[prefix + name] = _tensor(value, prefix + name)
        for name, value in (state.get("_buffers") or {}).items():
            if value is not None and name not in skip:
                out[prefix + name] = _tensor(value, prefix + name)
        for name, child in (state.get("_modules") or {}).items():
            if child is None:
                continue
            if not is_module_tree(child):
                raise ValueError(where(f"submodule {prefix + name!r} is not a module"))
            walk(child, f"{prefix}{name}.")

    def _tensor(value: Any, key: str) -> torch.Tensor:
        if isinstance(value, Placeholder):
            raise ValueError(where(f"{key!r} holds an object of {value.target} (not imported, "
                                   "not run), not a tensor"))  # fmt: skip
        if not isinstance(value, torch.Tensor):
            raise ValueError(where(f"{key!r} holds a {type(value).__name__}, not a tensor"))
        return value.detach()

    walk(obj, "")
    return out


__all__ = ["Placeholder", "is_module_tree", "module_tree_state_dict", "restricted_load"]
