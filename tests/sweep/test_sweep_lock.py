"""The sweep folder's lock: a second sweep is refused at once; a stale lock is taken over."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from feddistort.cli import main
from feddistort.sweep.engine import run_sweep
from feddistort.sweep.lock import LOCK_NAME, Holder, SweepLocked, holder_alive, sweep_lock
from feddistort.sweep.spec import SweepSpec
from synthetic.config import SimConfig

SPEC = SweepSpec(
    base=SimConfig(d=9, m=2, C=3),
    grid={"lam": [0.0, 1.0]},
    methods=("ft",),
    metrics=("local_loss",),
    chunk=1,
)
ARGV = ["sweep", "--backend", "serial", "--no-progress", "--grid", "lam=0,1", "--set", "d=9"]


def _dead_pid() -> int:
    """The pid of a process of this host that has exited (and been reaped)."""
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def _write_lock(folder: Path, holder: Holder) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    payload = {"pid": holder.pid, "host": holder.host, "start": holder.start, "since": "t0"}
    (folder / LOCK_NAME).write_text(json.dumps(payload), encoding="utf-8")


def test_held_folder_is_refused_exit_2_naming_pid_and_host(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "out"
    out.mkdir()
    with sweep_lock(out, notify=print) as me:
        assert me.pid == os.getpid()
        assert main([*ARGV, "--out", str(out)]) == 2
        err = capsys.readouterr().err
        assert f"pid {os.getpid()} on host {socket.gethostname()}" in err
        assert "is in use: a running sweep holds it" in err
        assert "Traceback" not in err
        assert not (out / "spec.json").exists()  # refused before anything is written
        assert (out / LOCK_NAME).exists()  # the holder's lock is left alone
    assert not (out / LOCK_NAME).exists()  # released on exit
    assert main([*ARGV, "--out", str(out)]) == 0
    assert not (out / LOCK_NAME).exists()


def test_stale_lock_of_a_dead_pid_is_taken_over(tmp_path: Path) -> None:
    pid = _dead_pid()
    _write_lock(tmp_path, Holder(pid, socket.gethostname(), None, "t0"))
    assert holder_alive(Holder(pid, socket.gethostname(), None, "t0")) is False
    notices: list[str] = []
    report = run_sweep(SPEC, tmp_path, backend="serial", notify=notices.append)
    assert report.results is not None
    assert len(notices) == 1
    assert f"took over the stale lock of {tmp_path} (pid {pid} on host" in notices[0]
    assert not (tmp_path / LOCK_NAME).exists()


def test_reused_pid_with_another_start_time_is_stale(tmp_path: Path) -> None:
    me = Holder.me()
    if me.start is None:
        pytest.skip("no /proc: process start times are unknown here")
    reused = Holder(me.pid, me.host, str(int(me.start) + 1), "t0")
    assert holder_alive(reused) is False
    assert holder_alive(me) is True


def test_other_host_is_refused_not_taken_over(tmp_path: Path) -> None:
    _write_lock(tmp_path, Holder(_dead_pid(), "elsewhere.invalid", None, "t0"))
    expected = r"on another host holds it \(pid \d+ on host elsewhere.invalid"
    with pytest.raises(SweepLocked, match=expected):
        run_sweep(SPEC, tmp_path, backend="serial")
    assert (tmp_path / LOCK_NAME).exists()


def test_unreadable_lock_is_refused(tmp_path: Path) -> None:
    (tmp_path / LOCK_NAME).write_text("{", encoding="utf-8")
    with pytest.raises(SweepLocked, match="names no holder"):
        run_sweep(SPEC, tmp_path, backend="serial")


def test_old_unreadable_lock_is_taken_over(tmp_path: Path) -> None:
    """A lock left empty by a kill between exclusive create and write does not block forever."""

    from feddistort.sweep.lock import UNREADABLE_GRACE_S, acquire

    lock = tmp_path / LOCK_NAME
    lock.write_text("", encoding="utf-8")
    old = time.time() - 2 * UNREADABLE_GRACE_S
    os.utime(lock, (old, old))
    messages: list[str] = []
    holder = acquire(tmp_path, messages.append)
    assert holder.pid == os.getpid()
    assert "unreadable lock" in messages[0]
    assert json.loads(lock.read_text(encoding="utf-8"))["pid"] == os.getpid()


def _slow_sweep(out: Path) -> list[str]:
    return [
        sys.executable,
        "-m",
        "feddistort.cli",
        "sweep",
        "--backend",
        "serial",
        "--no-progress",
        "--set",
        "global_model=fedavg",
        "--grid",
        "lam=0:2:150",
        "--chunk",
        "1",
        "--methods",
        "ft",
        "--metrics",
        "local_loss",
        "--out",
        str(out),
    ]


@pytest.mark.slow
def test_running_sweep_in_another_process_is_refused_and_undisturbed(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    out = tmp_path / "out"
    proc = subprocess.Popen(_slow_sweep(out), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and len(list(out.glob("shards/*.json"))) < 2:
            time.sleep(0.01)
        assert proc.poll() is None, "the first sweep ended before the test could meet it"
        import feddistort.sweep.lock as lock_module

        def no_waiting(seconds: float) -> None:
            raise AssertionError(f"the refusal waited ({seconds} s): expected it at once")

        with monkeypatch.context() as patch:  # refused at once: no wait, whatever the load
            patch.setattr(lock_module.time, "sleep", no_waiting)
            assert main([*_slow_sweep(out)[3:], "--backend", "serial"]) == 2
        err = capsys.readouterr().err
        assert f"pid {proc.pid} on host {socket.gethostname()}" in err
        assert proc.poll() is None  # the running sweep goes on
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
    # Killed -9: its lock is stale now, and the next run takes it over and finishes.
    rerun = subprocess.run(_slow_sweep(out), capture_output=True, text=True, timeout=300)
    assert rerun.returncode == 0, rerun.stderr
    assert f"took over the stale lock of {out} (pid {proc.pid}" in rerun.stderr
    assert not (out / LOCK_NAME).exists()


def test_filesystem_without_hard_links_still_locks(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import feddistort.sweep.lock as lock

    def no_link(src: object, dst: object) -> None:
        raise PermissionError("hard links are not supported here")

    monkeypatch.setattr(lock.os, "link", no_link)
    with sweep_lock(tmp_path, notify=print) as me:
        assert json.loads((tmp_path / LOCK_NAME).read_text())["pid"] == me.pid
        with pytest.raises(SweepLocked, match=f"pid {me.pid} on host"):
            lock.acquire(tmp_path, print)
    assert not (tmp_path / LOCK_NAME).exists()
    assert not list(tmp_path.glob("*.tmp"))
