"""One sweep at a time per folder: the lock file ``DIR/.sweep.lock``.

The lock names its holder (pid, host, the process's start time where ``/proc`` tells it, and
when it was taken). It is created whole and atomically (written beside, then hard-linked into
place, which fails if a lock exists), so a reader never sees a half-written lock; on a filesystem
without hard links it is created exclusively and then written, and a lock left unreadable by a
kill between the two is stale after :data:`UNREADABLE_GRACE_S` seconds. A second sweep
on a held folder is refused at once; a lock whose holder is a dead process of this host (or a
process whose start time differs: its pid was reused) is stale and taken over, with a message.
A holder on another host cannot be checked from here and is refused (the message says so).
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import socket
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path

from synthetic.config import ConfigError

LOCK_NAME = ".sweep.lock"
# Writing a lock takes microseconds: one still unreadable after this long was left by a kill.
UNREADABLE_GRACE_S = 10.0


class SweepLocked(ConfigError):
    """The sweep folder is held by another running sweep (the message names pid and host)."""


@dataclass(frozen=True)
class Holder:
    """Who holds a sweep folder."""

    pid: int
    host: str
    start: str | None
    since: str

    @classmethod
    def me(cls) -> Holder:
        """The holder record of the calling process."""
        pid = os.getpid()
        since = time.strftime("%Y-%m-%dT%H:%M:%S%z")
        return cls(pid, socket.gethostname(), process_start(pid), since)


def process_start(pid: int) -> str | None:
    """Start time of process ``pid`` in clock ticks since boot (``/proc``), None if unknown."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text(encoding="ascii", errors="replace")
    except OSError:
        return None
    fields = stat.rpartition(")")[2].split()  # the command name may hold spaces or ')'
    return fields[19] if len(fields) > 19 else None


def holder_alive(holder: Holder) -> bool | None:
    """Whether the holder still runs: True, False (stale), or None (another host: unknown)."""
    if holder.host != socket.gethostname():
        return None
    try:
        os.kill(holder.pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, owned by another user
        pass
    start = process_start(holder.pid)
    # A different start time: the pid now belongs to another process.
    return holder.start is None or start is None or start == holder.start


def _read(path: Path) -> Holder | None:
    try:
        values = json.loads(path.read_text(encoding="utf-8"))
        return Holder(
            int(values["pid"]), str(values["host"]), values.get("start"), str(values["since"])
        )
    except (OSError, ValueError, KeyError, TypeError):
        return None


def _refusal(folder: Path, holder: Holder, alive: bool | None) -> SweepLocked:
    who = f"pid {holder.pid} on host {holder.host}, since {holder.since}"
    if alive is None:
        return SweepLocked(
            f"--out {str(folder)!r} is in use: a sweep on another host holds it ({who}); this "
            f"host cannot tell whether it still runs: expected a folder no sweep holds (delete "
            f"{folder / LOCK_NAME} only if that sweep is gone)"
        )
    return SweepLocked(
        f"--out {str(folder)!r} is in use: a running sweep holds it ({who}); expected a folder "
        "no running sweep holds (wait for it to finish, or choose another --out)"
    )


def acquire(folder: Path, notify: Callable[[str], None]) -> Holder:
    """Take the lock of ``folder`` (which must exist) for this process.

    Parameters
    ----------
    folder : Path
    notify : callable
        Receives the message when a stale lock is taken over.

    Returns
    -------
    Holder
        This process, as written in the lock.

    Raises
    ------
    SweepLocked
        A live holder (or one on another host, or an unreadable lock).
    """
    path = folder / LOCK_NAME
    mine = Holder.me()
    tmp = folder / f"{LOCK_NAME}.{mine.pid}.{secrets.token_hex(4)}.tmp"
    tmp.write_text(json.dumps(asdict(mine), sort_keys=True) + "\n", encoding="utf-8")
    try:
        for attempt in range(20):
            try:
                _create(tmp, path)
                return mine
            except FileExistsError:
                pass
            holder = _read(path)
            if holder is None:
                if not path.exists():
                    continue  # released meanwhile: try again
                if _unreadable_stale(path):
                    if _take_over(path, tmp, None):
                        notify(
                            f"took over the unreadable lock of {folder} (left by a killed sweep)"
                        )
                        return mine
                    continue
                if attempt < 19:
                    time.sleep(0.05)  # perhaps being written (exclusive-create fallback)
                    continue
                raise SweepLocked(
                    f"--out {str(folder)!r} is in use: {path} exists but names no holder; "
                    "expected a readable lock (delete it only if no sweep runs there; one left "
                    f"unreadable for {UNREADABLE_GRACE_S:g} s is taken over)"
                )
            alive = holder_alive(holder)
            if alive is not False:
                raise _refusal(folder, holder, alive)
            if _take_over(path, tmp, holder):
                notify(
                    f"took over the stale lock of {folder} (pid {holder.pid} on host "
                    f"{holder.host}, since {holder.since}, no longer runs)"
                )
                return mine
        raise SweepLocked(f"--out {str(folder)!r} is in use: expected its lock to settle")
    finally:
        tmp.unlink(missing_ok=True)


def _create(tmp: Path, path: Path) -> None:
    """Put the complete lock ``tmp`` at ``path``; FileExistsError if a lock is there."""
    try:
        os.link(tmp, path)
    except FileExistsError:
        raise
    except OSError:  # a filesystem without hard links: exclusive create, then write
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        with os.fdopen(fd, "wb") as handle:
            handle.write(tmp.read_bytes())


def _unreadable_stale(path: Path) -> bool:
    """Whether the unreadable lock ``path`` is older than :data:`UNREADABLE_GRACE_S`."""
    try:
        return time.time() - path.stat().st_mtime > UNREADABLE_GRACE_S
    except FileNotFoundError:
        return False


def _take_over(path: Path, tmp: Path, stale: Holder | None) -> bool:
    """Replace the stale lock by ours unless another process replaced it first."""
    import fcntl

    guard = path.with_name(LOCK_NAME + ".guard")
    with open(guard, "a") as handle:  # serializes takeovers on this host
        fcntl.flock(handle, fcntl.LOCK_EX)
        if _read(path) != stale:
            return False
        os.replace(tmp, path)
        return True


def release(folder: Path, holder: Holder) -> None:
    """Remove the lock if it is still ``holder``'s."""
    path = folder / LOCK_NAME
    if _read(path) == holder:
        path.unlink(missing_ok=True)


@contextlib.contextmanager
def sweep_lock(folder: Path, notify: Callable[[str], None]) -> Iterator[Holder]:
    """Hold the lock of ``folder`` for the duration of the block (:func:`acquire`)."""
    holder = acquire(folder, notify)
    try:
        yield holder
    finally:
        release(folder, holder)


__all__ = ["LOCK_NAME", "Holder", "SweepLocked", "acquire", "release", "sweep_lock"]
