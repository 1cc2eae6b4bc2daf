"""The bottom layer of feddistort: the version and atomic file writes (standard library only).

Every package (``synthetic``, ``theory``, ``empirical``, ``figures``, ``feddistort``) may import
this module; it imports none of them. A file written here is either complete or absent, never
half-written: the bytes go to a temporary file in the destination's folder, are flushed and
fsync'ed, and the temporary file is renamed over the destination (``os.replace``, atomic on
POSIX). On any failure the temporary file is removed. The temporary file is created with mode
0o666 filtered by the process umask, as ``open`` would create the destination, without changing
the umask (which is process-wide and not thread-safe to touch).
"""

from __future__ import annotations

import importlib
import json
import os
import secrets
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import IO, Any

__all__ = [
    "__version__",
    "atomic_write",
    "atomic_write_bytes",
    "atomic_write_csv",
    "atomic_write_json",
    "atomic_write_text",
    "lazy_exports",
]

# The one source of the version (pyproject.toml reads it from here).
__version__ = "0.2.0"


def _temporary(dest: Path) -> tuple[int, Path]:
    """Create and open a fresh temporary file beside ``dest`` (umask-filtered 0o666)."""
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0)
    for _ in range(100):
        tmp = dest.parent / f".{dest.name}.{secrets.token_hex(6)}.tmp"
        try:
            return os.open(tmp, flags, 0o666), tmp
        except FileExistsError:  # pragma: no cover - 48 random bits
            continue
    raise FileExistsError(f"could not create a temporary file beside {dest}")  # pragma: no cover


def atomic_write(
    path: str | os.PathLike[str], write: Callable[[IO[Any]], object], *, binary: bool
) -> Path:
    """Write a file atomically through ``write(handle)``.

    Parameters
    ----------
    path : str or PathLike
        Destination; its folder is created if needed.
    write : callable
        Called once with the open temporary file (text mode with ``newline=""`` and UTF-8, or
        binary).
    binary : bool
        Open the temporary file in binary mode.

    Returns
    -------
    Path
        The destination path.
    """
    dest = Path(path)
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = _temporary(dest)
    try:
        handle: IO[Any] = (
            os.fdopen(fd, "wb") if binary else os.fdopen(fd, "w", encoding="utf-8", newline="")
        )
        with handle:
            write(handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, dest)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return dest


def atomic_write_bytes(path: str | os.PathLike[str], data: bytes) -> Path:
    """Write ``data`` to ``path`` atomically."""
    return atomic_write(path, lambda handle: handle.write(data), binary=True)


def atomic_write_text(path: str | os.PathLike[str], text: str) -> Path:
    """Write ``text`` (UTF-8, newlines as given) to ``path`` atomically."""
    return atomic_write(path, lambda handle: handle.write(text), binary=False)


def atomic_write_csv(path: str | os.PathLike[str], frame: Any) -> Path:
    """Write a DataFrame-like object (anything with ``to_csv``) as CSV atomically, no index."""
    return atomic_write_text(path, frame.to_csv(index=False))


def atomic_write_json(path: str | os.PathLike[str], payload: Any) -> Path:
    """Write JSON atomically, pretty-printed with sorted keys and a final newline."""
    return atomic_write_text(
        path, json.dumps(payload, indent=2, sort_keys=True, default=str) + "\n"
    )


def remove_stale_temporaries(folder: str | os.PathLike[str], name: str) -> list[Path]:
    """Remove temporary files that a killed :func:`atomic_write` of ``folder/name`` left behind.

    Parameters
    ----------
    folder : str or PathLike
    name : str
        File name of the destination.

    Returns
    -------
    list of Path
        The files removed.
    """
    removed = []
    for tmp in Path(folder).glob(f".{name}.*.tmp"):
        tmp.unlink(missing_ok=True)
        removed.append(tmp)
    return removed


def lazy_exports(
    package: str, namespace: dict[str, Any], exports: Mapping[str, str]
) -> tuple[Callable[[str], Any], Callable[[], list[str]]]:
    """Module-level ``__getattr__`` and ``__dir__`` that load public names on first use (PEP 562).

    Parameters
    ----------
    package : str
        The package's ``__name__`` (for the error message).
    namespace : dict
        The package's ``globals()``; a loaded name is cached there.
    exports : mapping of str to str
        Public name to the module that defines it.

    Returns
    -------
    (callable, callable)
        ``__getattr__(name)`` (AttributeError for any other name) and ``__dir__()``.
    """

    def __getattr__(name: str) -> Any:
        module = exports.get(name)
        if module is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(module), name)
        namespace[name] = value
        return value

    def __dir__() -> list[str]:
        return sorted({*namespace, *exports})

    return __getattr__, __dir__
