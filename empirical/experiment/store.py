"""On-disk layout of an experiment run, byte-deterministic writes, and the checksums of resume.

A resume must not trust a file because it exists: a flipped byte, a truncated checkpoint or an
empty CSV would flow into the summary or crash the loader. So every file a finished unit owns
is hashed when it is written, the hashes go into the unit's ``done.json`` (written last), and a
later run reuses the unit only if every file still has its recorded sha256 (as the sweep's
shards do). The seed's inputs (FedAvg checkpoint, client test sets) get the same treatment in
``runs/[shift/]seed{S}/inputs.json``. Checkpoints (safetensors) and test sets (a ``.npz`` zip
with fixed timestamps) are written byte-deterministically, so recomputing a damaged file gives
exactly the bytes of an undamaged run.
"""

from __future__ import annotations

import hashlib
import io
import json
import zipfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from feddistort_io import atomic_write_bytes, atomic_write_text

__all__ = [
    "Unit",
    "checked_write",
    "file_sha256",
    "npz_bytes",
    "read_record",
    "record_mismatches",
    "seed_path",
    "write_record",
]

_ZIP_TIME = (1980, 1, 1, 0, 0, 0)  # the earliest zip timestamp: the same bytes on every run


@dataclass(frozen=True)
class Unit:
    """One resumable piece of work: a variant (at one FT learning rate) on one seed's clients.

    Attributes
    ----------
    shift : str or None
        Shift unit of a multi-shift preset (None otherwise).
    seed : int
    variant : str
        PFT variant, or ``"fedavg"`` (the global model evaluated like a variant).
    ft_lr : float or None
        FT learning rate of a step-size sweep (None where not swept).
    """

    shift: str | None
    seed: int
    variant: str
    ft_lr: float | None = None

    @property
    def tag(self) -> str:
        """Folder name: the variant, with ``-lr{ft_lr:g}`` in a step-size sweep."""
        return self.variant if self.ft_lr is None else f"{self.variant}-lr{self.ft_lr:g}"

    @property
    def label(self) -> str:
        """``[shift/]tag``: what :class:`~empirical.experiment.runner.RunReport` lists."""
        return self.tag if self.shift is None else f"{self.shift}/{self.tag}"

    def identity(self) -> dict[str, Any]:
        """The unit's fields as recorded in ``done.json``."""
        return {"shift": self.shift, "seed": self.seed, "variant": self.variant,
                "ft_lr": self.ft_lr}  # fmt: skip


def seed_path(out: Path, kind: str, shift: str | None, seed: int) -> Path:
    """``out/kind/[shift/]seed{seed}`` with ``kind`` in ``runs``, ``checkpoints``, ``data``."""
    base = out / kind if shift is None else out / kind / shift
    return base / f"seed{seed}"


def file_sha256(path: Path) -> str | None:
    """Hex sha256 of a file's bytes, or None if it cannot be read."""
    try:
        return hashlib.sha256(path.read_bytes()).hexdigest()
    except OSError:
        return None


def checked_write(path: Path, data: bytes) -> str:
    """Write ``data`` atomically and return its hex sha256."""
    atomic_write_bytes(path, data)
    return hashlib.sha256(data).hexdigest()


def npz_bytes(arrays: Mapping[str, NDArray[Any]]) -> bytes:
    """An uncompressed ``.npz`` (as :func:`numpy.savez` writes) with fixed zip timestamps.

    :func:`numpy.savez` stamps each member with the current time, so two saves of the same
    arrays differ; this one does not, and :func:`numpy.load` reads it the same way.

    Parameters
    ----------
    arrays : mapping of str to ndarray
        Member name (without ``.npy``) to array (no object arrays).

    Returns
    -------
    bytes
    """
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_STORED) as archive:
        for name, array in arrays.items():
            info = zipfile.ZipInfo(f"{name}.npy", date_time=_ZIP_TIME)
            with archive.open(info, "w", force_zip64=True) as handle:
                # np.require keeps a 0-d array 0-d (ascontiguousarray would make it (1,)).
                contiguous = np.require(array, requirements="C")
                np.lib.format.write_array(handle, contiguous, allow_pickle=False)
    return buffer.getvalue()


def write_record(path: Path, out: Path, files: Mapping[Path, str], **fields: Any) -> None:
    """Write a checksum record: ``fields`` plus ``files`` = {path relative to out: sha256}."""
    listing = {p.relative_to(out).as_posix(): sha for p, sha in sorted(files.items())}
    payload = {**fields, "files": listing}
    atomic_write_text(path, json.dumps(payload, indent=2, sort_keys=True) + "\n")


def read_record(path: Path) -> dict[str, Any] | None:
    """A checksum record, or None if it is missing, not JSON, or has no ``files`` mapping."""
    try:
        payload = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return None
    files = payload.get("files") if isinstance(payload, dict) else None
    if not isinstance(files, dict) or not all(isinstance(v, str) for v in files.values()):
        return None
    return payload


def record_mismatches(out: Path, record: Mapping[str, Any], expected: list[Path]) -> list[str]:
    """Files (relative to ``out``) that a record does not vouch for.

    Parameters
    ----------
    out : Path
        Experiment directory.
    record : mapping
        As returned by :func:`read_record`.
    expected : list of Path
        Every file the record must cover.

    Returns
    -------
    list of str
        Expected files missing from the record, and recorded files whose current sha256
        differs from the recorded one (missing or unreadable files included); empty when the
        record vouches for everything.
    """
    files: Mapping[str, str] = record["files"]
    wanted = [p.relative_to(out).as_posix() for p in expected]
    bad = [rel for rel in wanted if rel not in files]
    bad += [rel for rel, sha in sorted(files.items()) if file_sha256(out / rel) != sha]
    return list(dict.fromkeys(bad))
