"""The job store contract (exactvc/jobs.py), the same on SQLite under ROOT and on PostgreSQL: progress and
heartbeat, the cancel flag seen by the running side, stale jobs failed by the reader, per-repository
listing and pruning, and JobPulse driving a store from a worker."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from exactvc import jobs as J
from exactvc.backends.config import Backends
from exactvc.errors import InvalidInput


@pytest.fixture(params=["sqlite", "postgres"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Any]:
    if request.param == "sqlite":
        yield Backends().job_store(tmp_path)
        return
    b = Backends(db=request.getfixturevalue("postgres").database("t_" + uuid.uuid4().hex[:12]))
    assert 60 in b.migrate()
    try:
        yield b.job_store(tmp_path)
    finally:
        b.close()


def test_progress_cancel_and_end(store: Any) -> None:
    job = store.create("cells", "ada", "slow", "cmu")
    other = store.create("cells", "ada", "slow", "cmu")
    assert job["state"] == "running" and job["owner"] == J.owner() and job["id"] != other["id"]
    assert store.update(job["id"], 0.25, "step 1") is False
    got = store.get(job["id"])
    assert (got["progress"], got["message"], got["state"]) == (0.25, "step 1", "running")
    store.cancel(job["id"])
    assert store.update(job["id"], 0.5, "step 2") is True  # the running side is told to stop
    assert store.get(other["id"])["state"] == "running"  # only that job
    store.update(job["id"], state="cancelled", message="cancelled", error={"message": "plugin was cancelled"})
    got = store.get(job["id"])
    assert got["state"] == "cancelled" and got["error"] == {"message": "plugin was cancelled"}
    # an ended job is not written again, and a cancel of it changes nothing
    store.update(job["id"], state="done", result={"proposals": 3})
    store.cancel(job["id"])
    assert store.get(job["id"])["state"] == "cancelled" and store.get(job["id"])["result"] is None
    assert store.get("f" * 32) is None
    with pytest.raises(InvalidInput):
        store.update(other["id"], state="exploded")
    with pytest.raises(InvalidInput):
        store.update(other["id"], progress=1.5)
    assert [j["id"] for j in store.recent("cells")] == [other["id"], job["id"]]
    assert store.recent("other") == []


def test_stale_running_job_is_failed_by_the_reader(store: Any) -> None:
    job = store.create("cells", "ada", "slow", "cmu")
    time.sleep(0.3)
    assert store.get(job["id"], stale=5)["state"] == "running"
    got = store.get(job["id"], stale=0.2)
    assert got["state"] == "failed" and got["error"]["message"] == J.STOPPED
    # the late owner (it was only paused) is told to stop and cannot bring the job back
    assert store.update(job["id"], 0.9, "late") is True
    assert store.get(job["id"], stale=5)["state"] == "failed"


def test_pulse_heartbeat_progress_and_remote_cancel(store: Any) -> None:
    job = store.create("cells", "ada", "slow", "cmu")
    pulse = J.JobPulse(store, job["id"], every=0.1)
    for i in range(5):
        pulse.progress(i / 10, f"step {i}")
    time.sleep(0.35)  # the heartbeat thread writes what the throttle held back
    got = store.get(job["id"], stale=0.3)
    assert got["state"] == "running" and got["message"] == "step 4" and got["progress"] == pytest.approx(0.4)
    assert not pulse.cancel.is_set()
    store.cancel(job["id"])  # as another process does: only the store is touched
    assert pulse.cancel.wait(2)
    pulse.fail({"type": "plugin_failed", "message": "plugin 'slow' was cancelled", "status": 422})
    assert store.get(job["id"])["state"] == "cancelled"
    done = store.create("cells", "ada", "slow", "cmu")
    p2 = J.JobPulse(store, done["id"], every=0.1)
    p2.finish({"proposals": 2})
    got = store.get(done["id"])
    assert got["state"] == "done" and got["progress"] == 1.0 and got["result"] == {"proposals": 2}


def test_old_finished_jobs_are_pruned_per_repository(store: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(J, "KEEP", 3)
    ids = []
    for i in range(5):
        j = store.create("cells", "ada", "slow", "cmu")
        if i != 0:  # the first stays running: never pruned
            store.update(j["id"], state="done")
        ids.append(j["id"])
    keep = store.create("other", "ada", "slow", "cmu")
    store.update(keep["id"], state="done")
    new = store.create("cells", "ada", "slow", "cmu")["id"]
    # the newest 3 before the new one (ids 4, 3, 2), the running one (ids 0) and the new one stay
    assert {j["id"] for j in store.recent("cells", 100)} == {ids[0], ids[2], ids[3], ids[4], new}
    assert store.get(keep["id"]) is not None


def test_heartbeat_timeout_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(J.STALE_ENV, raising=False)
    assert J.stale_after() == J.DEFAULT_STALE_AFTER
    monkeypatch.setenv(J.STALE_ENV, "2.5")
    assert J.stale_after() == 2.5
    for bad in ("soon", "0", "-1"):
        monkeypatch.setenv(J.STALE_ENV, bad)
        with pytest.raises(InvalidInput, match=J.STALE_ENV):
            J.stale_after()
