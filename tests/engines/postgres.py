"""A real PostgreSQL for the tests: Debian's PostgreSQL 15 (`make test` installs the package), a cluster
in a temporary folder on a free 127.0.0.1 port, started once per test session and stopped at its end.

PostgreSQL refuses to run as root: when the tests run as root the cluster belongs to the ``postgres``
user and every server command runs through ``runuser``. ``postgres.stopped()`` stops it for a while and
starts it again on the same port and data (faults).
"""

from __future__ import annotations

import contextlib
import os
import queue
import shutil
import socket
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

BIN = Path("/usr/lib/postgresql/15/bin")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Postgres:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.data = root / "data"
        self.port = _free_port()
        self.as_root = os.geteuid() == 0
        self._template = False
        self._template_lock = threading.Lock()
        self._ready: queue.Queue[str] | None = None
        self._closing = False

    def _run(self, *args: str, timeout: float = 120) -> None:
        cmd = [str(BIN / args[0]), *args[1:]]
        if self.as_root:
            cmd = ["runuser", "-u", "postgres", "--", *cmd]
        r = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
        if r.returncode != 0:
            raise RuntimeError(f"{args[0]} failed: {r.stdout[-1000:]} {r.stderr[-2000:]}")

    def init(self) -> None:
        if self.as_root:
            shutil.chown(self.root, "postgres", "postgres")
        self._run("initdb", "-D", str(self.data), "-A", "trust", "-U", "postgres", "--no-sync", "-E", "UTF8")

    def start(self) -> None:
        opts = f"-p {self.port} -k {self.root} -c listen_addresses=127.0.0.1 -c fsync=off"
        self._run("pg_ctl", "-D", str(self.data), "-o", opts, "-l", str(self.root / "server.log"), "-w",
                  "-t", "60", "start")

    def stop(self) -> None:
        with contextlib.suppress(RuntimeError, subprocess.TimeoutExpired):
            self._run("pg_ctl", "-D", str(self.data), "-m", "fast", "-w", "stop", timeout=60)

    @property
    def url(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def database(self, name: str) -> str:
        """A fresh database ``name`` (dropped first if it exists); its URL."""
        import psycopg

        with psycopg.connect(self.url, autocommit=True) as c:
            c.execute(f'DROP DATABASE IF EXISTS "{name}"')
            c.execute(f'CREATE DATABASE "{name}"')
        return f"postgresql://postgres@127.0.0.1:{self.port}/{name}"

    def fresh(self) -> str:
        """The URL of a new database with exactvc's schema, made ahead of need by a background thread
        (a clone costs about a second here; tests that want one per server ROOT need not wait for it)."""
        import uuid

        if self._ready is None:
            self._ready = queue.Queue(maxsize=3)
            ready = self._ready

            def fill() -> None:
                while not self._closing:
                    try:
                        url = self.migrated("t_" + uuid.uuid4().hex[:12])
                    except Exception:  # the engine stopped (a fault test, the session's end): try later
                        time.sleep(0.5)
                        continue
                    while not self._closing:
                        try:
                            ready.put(url, timeout=0.5)
                            break
                        except queue.Full:
                            continue

            threading.Thread(target=fill, daemon=True).start()
        return self._ready.get(timeout=120)

    def migrated(self, name: str) -> str:
        """A fresh database ``name`` with exactvc's schema (cloned from a template migrated once); its URL."""
        import psycopg

        with self._template_lock:
            if not self._template:
                self._make_template()
        with psycopg.connect(self.url, autocommit=True) as c:
            c.execute(f'DROP DATABASE IF EXISTS "{name}"')
            c.execute(f'CREATE DATABASE "{name}" TEMPLATE exact_template')
        return f"postgresql://postgres@127.0.0.1:{self.port}/{name}"

    def _make_template(self) -> None:
        if not self._template:
            from exactvc.backends.postgres import Database

            db = Database(self.database("exact_template"))
            try:
                db.migrate()
            finally:
                db.close()
            self._template = True

    @contextlib.contextmanager
    def stopped(self) -> Iterator[None]:
        """The engine is down inside the block and back (same port, same data) after it."""
        self.stop()
        try:
            yield
        finally:
            self.start()


@pytest.fixture(scope="session")
def postgres() -> Iterator[Postgres]:
    if not (BIN / "initdb").exists():
        pytest.fail(f"{BIN}/initdb is missing: `make test` installs PostgreSQL 15 (apt-get install postgresql)")
    root = Path(tempfile.mkdtemp(prefix="exact-pg-"))
    engine = Postgres(root)
    engine.init()
    engine.start()
    try:
        yield engine
    finally:
        engine._closing = True
        engine.stop()
        shutil.rmtree(root, ignore_errors=True)
