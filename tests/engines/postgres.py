"""A real PostgreSQL 15 for the tests: a temporary data dir, a free port on 127.0.0.1, stopped at session end.

PostgreSQL refuses to run as root, so (as root) the cluster belongs to and runs as user ``postgres``.
``stop()`` / ``start()`` let fault tests take the database away for a while.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import uuid
from pathlib import Path

BIN = Path("/usr/lib/postgresql/15/bin")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class PostgresEngine:
    def __init__(self) -> None:
        if not (BIN / "initdb").exists():
            raise RuntimeError("PostgreSQL 15 is not installed (make postgresql)")
        self.dir = Path(tempfile.mkdtemp(prefix="exact-pg-"))
        self.data = self.dir / "data"
        self.port = _free_port()
        self._as = ["runuser", "-u", "postgres", "--"] if os.getuid() == 0 else []
        if os.getuid() == 0:
            shutil.chown(self.dir, "postgres", "postgres")
        self.dir.chmod(0o755)
        subprocess.run([*self._as, str(BIN / "initdb"), "-D", str(self.data), "-A", "trust", "-U", "postgres",
                        "--no-sync"], check=True, capture_output=True, timeout=120)
        self.start()

    def start(self) -> None:
        opts = f"-p {self.port} -k {self.dir} -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=200"
        subprocess.run([*self._as, str(BIN / "pg_ctl"), "-D", str(self.data), "-o", opts, "-l",
                        str(self.dir / "log"), "-w", "-t", "60", "start"], check=True, capture_output=True, timeout=90)

    def stop(self) -> None:
        subprocess.run([*self._as, str(BIN / "pg_ctl"), "-D", str(self.data), "-m", "fast", "-w", "-t", "60",
                        "stop"], check=False, capture_output=True, timeout=90)

    def url(self, db: str = "postgres") -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{db}"

    def new_database(self) -> str:
        """A fresh, empty database (one per test) and its URL."""
        name = "t_" + uuid.uuid4().hex[:12]
        subprocess.run([*self._as, str(BIN / "psql"), "-h", "127.0.0.1", "-p", str(self.port), "-U", "postgres",
                        "-q", "-c", f"CREATE DATABASE {name}"], check=True, capture_output=True, timeout=60)
        return self.url(name)

    def close(self) -> None:
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)
