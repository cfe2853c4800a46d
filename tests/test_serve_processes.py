"""`exact serve --processes N`: pre-forked workers on one port; stopping the parent stops them all, and a
parent killed with -9 does not leave them running."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

from .server_fixtures import request


def _children(pid: int) -> list[int]:
    out = []
    for d in os.listdir("/proc"):
        if d.isdigit():
            try:
                stat = Path(f"/proc/{d}/stat").read_text()
            except OSError:
                continue
            if int(stat[stat.rindex(")") + 2:].split()[1]) == pid:
                out.append(int(d))
    return out


def _alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat[stat.rindex(")") + 2] != "Z"


def _start(root: Path) -> tuple[subprocess.Popen[bytes], str, list[int]]:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen([sys.executable, "-m", "exactvc.cli", "serve", str(root), "--port", str(port),
                             "--processes", "2"], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    assert proc.stdout is not None
    assert b"2 processes" in proc.stdout.readline()
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while len(_children(proc.pid)) < 2 and time.monotonic() < deadline:
        time.sleep(0.1)
    workers = _children(proc.pid)
    assert len(workers) == 2
    return proc, url, workers


def _gone(pids: list[int], within: float) -> bool:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        if not any(_alive(p) for p in pids):
            return True
        time.sleep(0.1)
    return False


def test_stopping_the_parent_stops_every_worker(tmp_path: Path) -> None:
    proc, url, workers = _start(tmp_path / "a")
    try:
        assert request("GET", url + "/api/v1/repos").status in (200, 401)
        proc.send_signal(signal.SIGTERM)
        proc.wait(15)
        assert _gone(workers, 15)
    finally:
        for p in workers:
            if _alive(p):
                os.kill(p, signal.SIGKILL)
    proc2, _url, workers2 = _start(tmp_path / "b")
    try:
        proc2.send_signal(signal.SIGKILL)  # no chance to stop them: they notice and exit by themselves
        proc2.wait(15)
        assert _gone(workers2, 15)
    finally:
        for p in workers2:
            if _alive(p):
                os.kill(p, signal.SIGKILL)
