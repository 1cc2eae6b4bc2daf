"""Find a claim by name: a built-in id, or ``MODULE:NAME`` of a user's :func:`theory.claim`."""

from __future__ import annotations

import importlib
import os
import sys

from theory.declare import Claim, ClaimError


def resolve_claim(text: str) -> Claim:
    """A built-in claim id, or ``MODULE:NAME`` of a user's claim (module in the cwd or path).

    Raises
    ------
    ClaimError
        Unknown id, module or name, a module that fails to import, or an object that is not
        a :class:`Claim`; the message says which.
    """
    if ":" not in text:
        from theory.claims import get_claim

        return get_claim(text)
    module_name, _, attr = text.partition(":")
    if not module_name or not attr:
        raise ClaimError(f"claim {text!r} is invalid: expected a claim id or MODULE:NAME")
    cwd = os.getcwd()
    if cwd not in sys.path and "" not in sys.path:
        sys.path.insert(0, cwd)
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as err:
        if err.name is not None and module_name.startswith(err.name):
            raise ClaimError(
                f"claim {text!r}: module {module_name!r} not found (looked in the working "
                f"directory {cwd} and on sys.path)"
            ) from None
        raise ClaimError(f"claim {text!r}: importing {module_name!r} failed: {err}") from err
    except Exception as err:
        raise ClaimError(
            f"claim {text!r}: importing {module_name!r} raised {type(err).__name__}: {err}"
        ) from err
    if not hasattr(module, attr):
        raise ClaimError(f"claim {text!r}: module {module_name!r} has no attribute {attr!r}")
    found = getattr(module, attr)
    if not isinstance(found, Claim):
        raise ClaimError(
            f"claim {text!r} is a {type(found).__name__}, not a claim: expected a function "
            "decorated with @theory.claim(...)"
        )
    return found


__all__ = ["resolve_claim"]
