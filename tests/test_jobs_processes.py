"""Detector jobs across server processes (issue 16): two real `exact serve` processes on one ROOT (SQLite job
store under ROOT) or on one PostgreSQL database. A job started on A is polled and cancelled on B; a job
whose process is killed with -9 is reported failed by B once its heartbeat is older than the timeout."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from exactvc.backends.config import Backends
from exactvc.repo import Repository

from .server_fixtures import AUTHOR, ServerProcess, exact, ok, users
from .server_fixtures import request as http
from .viewer.conftest import real_slide

TIMEOUT = 2.0  # EXACT_JOB_HEARTBEAT_TIMEOUT of both servers: a dead job is failed after 2 s

PLUGIN = '''
import time

class Slow:
    kind = "detector"
    label = "mitosis"
    time_limit = 120
    def detect(self, image, region, params, progress):
        for i in range(1200):  # about 2 minutes; the tests end it long before
            progress(i / 1200, "step %d" % i)
            time.sleep(0.1)
        return [{"geometry": {"type": "Point", "coordinates": [10, 10]}, "score": 0.5}]

slow = Slow()
'''


def _install(where: Path) -> None:
    (where / "exactvc_jobplugins.py").write_text(PLUGIN)
    dist = where / "exactvc_jobplugins-0.1.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: exactvc-jobplugins\nVersion: 0.1\n")
    (dist / "entry_points.txt").write_text("[exactvc.plugins]\nslow = exactvc_jobplugins:slow\n")


@pytest.fixture(params=["sqlite", "postgres"])
def two(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, request: pytest.FixtureRequest) -> Iterator[dict[str, Any]]:
    plug = tmp_path / "plugins"
    plug.mkdir()
    _install(plug)
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(p for p in (str(plug), os.environ.get("PYTHONPATH")) if p))
    monkeypatch.setenv("EXACT_JOB_HEARTBEAT_TIMEOUT", str(TIMEOUT))
    root = tmp_path / "root"
    repo = Repository.init(root / "cells")
    repo.add_image(real_slide(), name="cmu")
    repo.add_label("mitosis", shape="point", color="#00ff00")
    repo.commit("seed", author=AUTHOR)
    tokens = users(root, {"ada": "annotate"}, "cells")
    extra: tuple[str, ...] = ()
    if request.param == "postgres":
        url = request.getfixturevalue("postgres").database("t_" + uuid.uuid4().hex[:12])
        out = ok(exact("server", "migrate", "--root", str(root), "--db", url))
        assert "60" in out, out  # the jobs table (migration 0060)
        extra = ("--db", url)
    a = ServerProcess(root, tmp_path / "a.log", extra)
    b = ServerProcess(root, tmp_path / "b.log", extra)
    try:
        yield {"a": a, "b": b, "root": root, "token": tokens["ada"], "db": extra[1] if extra else None}
    finally:
        a.stop()
        b.stop()


def _refs(w: dict[str, Any]) -> dict[str, bytes]:
    b = Backends.load(w["root"], None, w["db"])
    try:
        return dict(b.open_repository(w["root"], "cells").refs.list())
    finally:
        b.close()


def _job(srv: ServerProcess, job: str, tok: str) -> dict[str, Any]:
    r = http("GET", f"{srv.url}/api/v1/repos/cells/proposals/jobs/{job}", token=tok)
    assert r.status == 200, r.body
    return dict(r.json())


def _start(w: dict[str, Any]) -> str:
    r = http("POST", f"{w['a'].url}/api/v1/repos/cells/proposals", {"image": "cmu", "plugin": "slow",
                                                                       "wait": False}, token=w["token"])
    assert r.status == 202, r.body
    assert r.json()["state"] == "running"
    return str(r.json()["id"])


def _until(pred: Any, what: str, limit: float = 20.0) -> None:
    deadline = time.monotonic() + limit
    while not pred():
        assert time.monotonic() < deadline, f"not within {limit} s: {what}"
        time.sleep(0.1)


def test_a_job_started_on_one_process_is_polled_and_cancelled_on_another(two: dict[str, Any]) -> None:
    a, b, tok = two["a"], two["b"], two["token"]
    before = _refs(two)
    job = _start(two)
    assert len(job) == 32 and int(job, 16) >= 0  # 128 random bits, not a counter
    seen: list[float] = []

    def progressed() -> bool:
        st = _job(b, job, tok)
        assert st["state"] == "running", st
        seen.append(st["progress"])
        return st["message"].startswith("step") and st["progress"] > 0.004

    _until(progressed, "progress visible on B")
    # B sees the progress move on (A writes it at most every 0.5 s), across more than the heartbeat timeout
    time.sleep(TIMEOUT + 0.5)
    st = _job(b, job, tok)
    assert st["state"] == "running" and st["progress"] > seen[-1], (st, seen[-1])
    assert [j["id"] for j in http("GET", f"{b.url}/api/v1/repos/cells/proposals/jobs", token=tok).json()["jobs"]] \
        == [job]
    r = http("DELETE", f"{b.url}/api/v1/repos/cells/proposals/jobs/{job}", token=tok)
    assert r.status == 200, r.body
    t0 = time.monotonic()
    _until(lambda: _job(a, job, tok)["state"] != "running", "A's job stopped", 10)
    took = time.monotonic() - t0
    for srv in (a, b):
        st = _job(srv, job, tok)
        assert st["state"] == "cancelled" and "cancelled" in st["error"]["message"], st
    assert took < 3, took
    assert _refs(two) == before  # nothing committed, no proposals branch
    assert http("GET", f"{b.url}/api/v1/repos/cells/proposals/jobs/{'0' * 32}", token=tok).status == 404
    # both servers still answer
    for srv in (a, b):
        assert http("GET", f"{srv.url}/api/v1/repos/cells/refs", token=tok).status == 200


def test_a_job_whose_process_was_killed_is_failed_after_the_heartbeat_timeout(two: dict[str, Any]) -> None:
    a, b, tok = two["a"], two["b"], two["token"]
    before = _refs(two)
    job = _start(two)
    _until(lambda: _job(b, job, tok)["message"].startswith("step"), "progress visible on B")
    os.kill(a.proc.pid, signal.SIGKILL)
    a.proc.wait(10)
    killed = time.monotonic()
    _until(lambda: _job(b, job, tok)["state"] != "running", "B fails the dead job", 15)
    took = time.monotonic() - killed
    st = _job(b, job, tok)
    assert st["state"] == "failed" and st["error"]["message"] == "the server process running it stopped", st
    assert TIMEOUT - 0.6 <= took <= TIMEOUT + 3, took  # not before the heartbeat is stale, soon after
    assert _refs(two) == before


def test_serve_processes_every_worker_answers_for_a_job(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """`exact serve --processes 2`: the workers share the port, so polls land on either; every one answers."""
    plug = tmp_path / "plugins"
    plug.mkdir()
    _install(plug)
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(p for p in (str(plug), os.environ.get("PYTHONPATH")) if p))
    root = tmp_path / "root"
    repo = Repository.init(root / "cells")
    repo.add_image(real_slide(), name="cmu")
    repo.add_label("mitosis", shape="point", color="#00ff00")
    repo.commit("seed", author=AUTHOR)
    tok = users(root, {"ada": "annotate"}, "cells")["ada"]
    srv = ServerProcess(root, tmp_path / "s.log", ("--processes", "2", "--threads", "2"))
    try:
        w = {"a": srv, "token": tok}
        job = _start(w)
        states = [_job(srv, job, tok)["state"] for _ in range(40)]  # each a new connection
        assert states == ["running"] * 40
        assert http("DELETE", f"{srv.url}/api/v1/repos/cells/proposals/jobs/{job}", token=tok).status == 200
        _until(lambda: _job(srv, job, tok)["state"] == "cancelled", "cancelled", 10)
    finally:
        srv.stop()


def test_a_bad_heartbeat_timeout_stops_the_server_start(tmp_path: Path) -> None:
    env = {**os.environ, "EXACT_JOB_HEARTBEAT_TIMEOUT": "soon"}
    r = subprocess.run([sys.executable, "-m", "exactvc.cli", "serve", str(tmp_path), "--port", "0"],
                       capture_output=True, text=True, env=env, timeout=60)
    assert r.returncode != 0 and "EXACT_JOB_HEARTBEAT_TIMEOUT must be a number of seconds" in r.stderr, r.stderr
    assert len(r.stderr.strip().splitlines()) == 1, r.stderr
