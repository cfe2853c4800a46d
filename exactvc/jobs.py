"""Background jobs of a server (detector runs) kept where every server process sees them.

A job is a row in a :class:`JobStore`: its state (``running``, ``done``, ``failed``, ``cancelled``),
progress 0-1, message, result or error, a cancel flag, the process running it (``owner``) and that
process's last ``heartbeat``. The worker thread lives in the process that started the job; a
:class:`JobPulse` there writes its progress (at most every :data:`PROGRESS_EVERY` s) and a heartbeat,
and reads the cancel flag, so a request answered by any other process (``exact serve --processes N``,
several servers on one ``--db``) polls and cancels it. A running job whose heartbeat is older than
:func:`stale_after` seconds (its process was killed) is reported, and recorded, as failed.

:class:`SqliteJobStore` keeps the jobs in ``ROOT/.exact-jobs.sqlite`` (the embedded default);
``exactvc.backends.postgres_jobs.PgJobStore`` in the shared PostgreSQL. ``Backends.job_store`` chooses.
Job ids are 128 random bits (``secrets``): unguessable, so knowing one is what lets a caller poll it.
"""

from __future__ import annotations

import json
import os
import secrets
import socket
import threading
import time
from pathlib import Path
from typing import Any, Protocol

from .errors import InvalidInput
from .sqlitedb import SqliteDB

STATES = ("running", "done", "failed", "cancelled")
PROGRESS_EVERY = 0.5  # seconds between two progress writes of one job
DEFAULT_STALE_AFTER = 30.0  # seconds without a heartbeat after which a running job is taken as dead
STALE_ENV = "EXACT_JOB_HEARTBEAT_TIMEOUT"
KEEP = 1000  # finished jobs kept per repository (older ones are forgotten when a new one starts)
STOPPED = "the server process running it stopped"
FIELDS = ("id", "repo", "user", "plugin", "image", "state", "progress", "message", "result", "error",
          "owner", "created", "heartbeat")


def stale_after() -> float:
    """Seconds without a heartbeat after which a running job is failed (``EXACT_JOB_HEARTBEAT_TIMEOUT``)."""
    raw = os.environ.get(STALE_ENV, "")
    if not raw:
        return DEFAULT_STALE_AFTER
    try:
        v = float(raw)
    except ValueError:
        raise InvalidInput(f"{STALE_ENV} must be a number of seconds, not {raw[:40]!r}") from None
    if not 0.5 <= v <= 86400:
        raise InvalidInput(f"{STALE_ENV} must be from 0.5 to 86400 seconds")
    return v


def owner() -> str:
    """This process, as recorded on the jobs it runs: host and pid."""
    return f"{socket.gethostname()}:{os.getpid()}"


def new_id() -> str:
    return secrets.token_hex(16)


def stopped_error() -> dict[str, Any]:
    return {"type": "plugin_failed", "message": STOPPED, "status": 422}


def public(job: dict[str, Any]) -> dict[str, Any]:
    """A job as the API shows it (no heartbeat bookkeeping)."""
    return {k: job[k] for k in ("id", "repo", "user", "plugin", "image", "state", "progress", "message",
                                "result", "error", "created")}


class JobStore(Protocol):
    def create(self, repo: str, user: str, plugin: str, image: str) -> dict[str, Any]:
        """A new running job owned by this process."""

    def update(self, ident: str, progress: float | None = None, message: str | None = None,
               state: str | None = None, result: Any = None, error: Any = None) -> bool:
        """Record progress (and a heartbeat) or the end of a running job; True when the job should stop
        (cancel requested, or it is no longer running: another process found it stale)."""

    def cancel(self, ident: str) -> None:
        """Ask the job to stop (the process running it sees the flag at its next pulse)."""

    def get(self, ident: str, stale: float | None = None) -> dict[str, Any] | None:
        """The job, or None; a running one with a heartbeat older than ``stale`` s is failed first."""

    def recent(self, repo: str, limit: int = 50) -> list[dict[str, Any]]:
        """The newest jobs of ``repo``, newest first (stale ones failed)."""


def row_to_job(row: tuple[Any, ...]) -> dict[str, Any]:
    d = dict(zip(FIELDS, row, strict=True))
    d["progress"] = float(d["progress"])
    for k in ("result", "error"):
        d[k] = json.loads(d[k]) if d[k] is not None else None
    return d


def check_update(state: str | None, progress: float | None) -> None:
    if state is not None and state not in STATES:
        raise InvalidInput(f"job state must be one of {', '.join(STATES)}")
    if progress is not None and not 0.0 <= progress <= 1.0:
        raise InvalidInput("job progress must be from 0 to 1")


_SCHEMA = """
CREATE TABLE IF NOT EXISTS jobs (
    id TEXT PRIMARY KEY, repo TEXT NOT NULL, user TEXT NOT NULL, plugin TEXT NOT NULL, image TEXT NOT NULL,
    state TEXT NOT NULL, progress REAL NOT NULL, message TEXT NOT NULL, result TEXT, error TEXT,
    owner TEXT NOT NULL, created REAL NOT NULL, heartbeat REAL NOT NULL, cancel INTEGER NOT NULL DEFAULT 0);
CREATE INDEX IF NOT EXISTS jobs_by_repo ON jobs (repo, created);
"""
_COLS = ", ".join(FIELDS)


class SqliteJobStore(SqliteDB):
    """The jobs of a server in ``ROOT/.exact-jobs.sqlite`` (every process on this ROOT shares the file)."""

    def __init__(self, root: Path) -> None:
        super().__init__(Path(root) / ".exact-jobs.sqlite", _SCHEMA)

    def create(self, repo: str, user: str, plugin: str, image: str) -> dict[str, Any]:
        now = time.time()
        job = {"id": new_id(), "repo": repo, "user": user, "plugin": plugin, "image": image, "state": "running",
               "progress": 0.0, "message": "starting", "result": None, "error": None, "owner": owner(),
               "created": now, "heartbeat": now}
        with self._db() as c:
            c.execute("DELETE FROM jobs WHERE repo = ? AND state != 'running' AND id NOT IN "
                      "(SELECT id FROM jobs WHERE repo = ? ORDER BY created DESC LIMIT ?)", (repo, repo, KEEP))
            c.execute(f"INSERT INTO jobs ({_COLS}) VALUES ({', '.join('?' * len(FIELDS))})",
                      tuple(job[k] for k in FIELDS))
        return job

    def update(self, ident: str, progress: float | None = None, message: str | None = None,
               state: str | None = None, result: Any = None, error: Any = None) -> bool:
        check_update(state, progress)
        sets: list[str] = ["heartbeat = ?"]
        args: list[Any] = [time.time()]
        for col, v in (("progress", progress), ("message", message), ("state", state)):
            if v is not None:
                sets.append(f"{col} = ?")
                args.append(v)
        for col, v in (("result", result), ("error", error)):
            if v is not None:
                sets.append(f"{col} = ?")
                args.append(json.dumps(v))
        with self._db() as c:
            c.execute(f"UPDATE jobs SET {', '.join(sets)} WHERE id = ? AND state = 'running'", (*args, ident))
            row = c.execute("SELECT state, cancel FROM jobs WHERE id = ?", (ident,)).fetchone()
        return row is None or bool(row[1]) or (state is None and row[0] != "running")

    def cancel(self, ident: str) -> None:
        with self._db() as c:
            c.execute("UPDATE jobs SET cancel = 1 WHERE id = ? AND state = 'running'", (ident,))

    def _fail_stale(self, c: Any, where: str, args: tuple[Any, ...], stale: float) -> None:
        c.execute(f"UPDATE jobs SET state = 'failed', message = ?, error = ? WHERE {where} AND state = 'running' "
                  "AND heartbeat < ?", (STOPPED, json.dumps(stopped_error()), *args, time.time() - stale))

    def get(self, ident: str, stale: float | None = None) -> dict[str, Any] | None:
        with self._db() as c:
            self._fail_stale(c, "id = ?", (ident,), stale_after() if stale is None else stale)
            row = c.execute(f"SELECT {_COLS} FROM jobs WHERE id = ?", (ident,)).fetchone()
        return row_to_job(row) if row else None

    def recent(self, repo: str, limit: int = 50) -> list[dict[str, Any]]:
        with self._db() as c:
            self._fail_stale(c, "repo = ?", (repo,), stale_after())
            rows = c.execute(f"SELECT {_COLS} FROM jobs WHERE repo = ? ORDER BY created DESC LIMIT ?",
                             (repo, limit)).fetchall()
        return [row_to_job(r) for r in rows]


class JobPulse:
    """The running side of one job, in the process that started it: ``progress`` for the plugin runner,
    ``cancel`` (an Event the runner watches), a heartbeat thread, and ``finish``/``fail`` at the end.

    The heartbeat thread writes every ``every`` seconds (a quarter of the stale timeout, at most
    :data:`PROGRESS_EVERY`) and sets ``cancel`` when the store says stop, so a plugin that reports no
    progress is still cancelled from another process within a pulse."""

    def __init__(self, store: JobStore, ident: str, every: float | None = None) -> None:
        self.store, self.ident = store, ident
        self.cancel = threading.Event()
        self.every = every if every is not None else min(PROGRESS_EVERY, stale_after() / 4)
        self._lock = threading.Lock()
        self._pending: tuple[float, str] | None = None
        self._last = 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._beat, daemon=True, name=f"job-pulse-{ident[:8]}")
        self._thread.start()

    def _write(self, force: bool = False) -> None:
        with self._lock:
            now = time.monotonic()
            if not force and now - self._last < self.every:
                return
            self._last = now
            pending, self._pending = self._pending, None
        try:
            stop = self.store.update(self.ident, *(pending or (None, None)))
        except Exception:  # noqa: BLE001 - the database is away for a moment: the next pulse retries
            with self._lock:
                if self._pending is None:
                    self._pending = pending
            return
        if stop:
            self.cancel.set()

    def progress(self, fraction: float, message: str) -> None:
        with self._lock:
            self._pending = (max(0.0, min(1.0, fraction)), message[:200])
        self._write()

    def _beat(self) -> None:
        while not self._stop.wait(self.every):
            self._write(force=True)

    def _end(self, **fields: Any) -> None:
        self._stop.set()
        self._thread.join(10)
        for attempt in range(5):  # bounded: a store that stays away leaves the job to the stale check
            try:
                self.store.update(self.ident, **fields)
                return
            except Exception:  # noqa: BLE001
                time.sleep(0.2 * (attempt + 1))

    def finish(self, result: Any) -> None:
        self._end(state="done", progress=1.0, message="done", result=result)

    def fail(self, error: dict[str, Any]) -> None:
        """Failed, or cancelled when a cancel was asked for."""
        self._end(state="cancelled" if self.cancel.is_set() else "failed", message=str(error.get("message", "")),
                  error=error)
