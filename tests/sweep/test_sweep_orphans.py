"""Loky workers do not outlive a driver killed with SIGKILL."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from feddistort.sweep.backends import _exit_when_orphaned, _Watched


def _children(pid: int) -> set[int]:
    """Live (not zombie) processes whose parent is ``pid``, from /proc."""
    out = set()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        fields = stat.rpartition(")")[2].split()
        if int(fields[1]) == pid and fields[0] != "Z":
            out.add(int(entry.name))
    return out


def _alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rpartition(")")[2].split()[0] != "Z"


@pytest.mark.slow
@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="needs /proc (Linux)")
def test_loky_workers_exit_when_the_driver_is_killed(tmp_path: Path) -> None:
    out = tmp_path / "out"
    cmd = [
        sys.executable,
        "-m",
        "feddistort.cli",
        "sweep",
        "--backend",
        "loky",
        "--workers",
        "2",
        "--no-progress",
        "--set",
        "global_model=fedavg",
        "--grid",
        "lam=0:2:400",
        "--chunk",
        "1",
        "--methods",
        "ft",
        "--metrics",
        "local_loss",
        "--out",
        str(out),
    ]
    driver = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline and len(list(out.glob("shards/*.json"))) < 4:
            time.sleep(0.05)
        assert driver.poll() is None, "the sweep ended before it could be killed"
        children = _children(driver.pid)
        assert len(children) >= 2  # the loky workers (and loky's resource trackers)
    finally:
        driver.send_signal(signal.SIGKILL)
        driver.wait(timeout=30)
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline and any(_alive(pid) for pid in children):
        time.sleep(0.1)
    survivors = [pid for pid in children if _alive(pid)]
    for pid in survivors:  # do not leak processes from a failing test
        os.kill(pid, signal.SIGKILL)
    assert survivors == []


def test_watch_is_off_outside_a_direct_child() -> None:
    # In the driver itself (its parent is not the driver), the wrapper only calls the function.
    assert _Watched(len)([1, 2, 3]) == 3
    _exit_when_orphaned(os.getpid(), 0.01)  # not our parent: returns at once, no thread
    import threading

    assert not any(t.name == "feddistort-orphan-watch" for t in threading.enumerate())
