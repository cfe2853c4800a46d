"""Helpers of the server tests: real servers, the CLI with a token, raw HTTP, hand-made protocol bodies.

Servers are real waitress servers on 127.0.0.1 with a free port, either a subprocess
(``exact serve ROOT --port 0``, :class:`ServerProcess`) or in this process in a daemon
thread (:class:`ThreadServer`). Nothing is mocked.

Backend pairs: while the ``backend_pair`` fixture (tests/conftest.py) selects PostgreSQL (+ S3), every
server ROOT these helpers touch first gets a ``backends.json`` naming a fresh database (and object
prefix), so servers, ``exact server ...`` and :func:`server_access` all use those backends.
"""

from __future__ import annotations

import hashlib
import http.client
import io
import json
import os
import queue
import re
import struct
import subprocess
import sys
import tempfile
import threading
import zlib
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import blake3

from exactvc import transfer
from exactvc.access import Access
from exactvc.backends.config import CONFIG_FILE, Backends
from exactvc.objects import ImageRecord
from exactvc.repo import Repository
from exactvc.store import TYPE_CODES

from .conftest import square

AUTHOR = "Test <test@example.org>"
# a config folder nobody writes to: the CLI never sees the developer's own credentials
NO_CONFIG = Path(tempfile.gettempdir()) / "exactvc-tests-no-config"
START_TIMEOUT = 30.0


# --- backend pairs ------------------------------------------------------------------------------------

# "make": () -> the backends.json of a new server ROOT, while a pair other than the embedded one is chosen
PAIR: dict[str, Any] = {}


def prepare_root(root: Path) -> None:
    """Give a new server ROOT the backends of the chosen pair (nothing for the embedded default)."""
    make = PAIR.get("make")
    if make is None:
        return
    root.mkdir(parents=True, exist_ok=True)
    f = root / CONFIG_FILE
    if not f.exists():
        f.write_text(json.dumps(make()))


def make_root(root: Path) -> Path:
    """A new, empty server ROOT with the chosen pair's backends."""
    root.mkdir(parents=True)
    prepare_root(root)
    return root


def server_access(root: Path) -> Access:
    """The access store of server ROOT, as its server opens it (SQLite under ROOT, or the database of
    ROOT/backends.json)."""
    prepare_root(root)
    b = Backends.load(root)
    if b.db is not None:
        _OPEN.append(b)
    return b.access_store(root)


_OPEN: list[Backends] = []  # database pools opened by server_access, closed by close_pools()


def close_pools() -> None:
    from exactvc.backends.config import close_shared

    while _OPEN:
        _OPEN.pop().close()
    close_shared()


# --- the CLI ------------------------------------------------------------------------------------------


def exact(*args: str, token: str | None = None, config_dir: Path | None = None, author: str = AUTHOR,
          timeout: float = 120) -> subprocess.CompletedProcess[str]:
    """Run ``exact ARGS`` as a subprocess with ``EXACT_TOKEN`` (or none) and its own ``EXACT_CONFIG_DIR``."""
    env = dict(os.environ)
    env.pop("EXACT_TOKEN", None)
    env.pop("EXACT_DEBUG", None)
    env["EXACT_AUTHOR"] = author
    env["EXACT_CONFIG_DIR"] = str(config_dir or NO_CONFIG)
    if token:
        env["EXACT_TOKEN"] = token
    return subprocess.run([sys.executable, "-m", "exactvc.cli", *args], capture_output=True, text=True,
                          env=env, timeout=timeout)


def ok(r: subprocess.CompletedProcess[str]) -> str:
    assert r.returncode == 0, f"exit {r.returncode}: {r.args[3:]}\n{r.stderr}{r.stdout}"
    return r.stdout


def admin(root: Path, *args: str) -> str:
    """``exact server ARGS --root ROOT`` (the server administrator's commands), stdout stripped."""
    prepare_root(root)
    return ok(exact("server", *args, "--root", str(root))).strip()


def fsck_clean(path: Path) -> None:
    r = exact("-C", str(path), "fsck", "--json")
    assert r.returncode == 0, f"fsck of {path}: {r.stdout}{r.stderr}"
    assert json.loads(r.stdout)["exactvc.fsck/v1"]["ok"] is True


# --- servers ------------------------------------------------------------------------------------------


class ServerProcess:
    """``exact serve ROOT --port 0`` in a subprocess; the URL is read from its first line of output."""

    def __init__(self, root: Path, log: Path, extra_args: tuple[str, ...] = ()) -> None:
        self.root = root
        root.mkdir(parents=True, exist_ok=True)
        prepare_root(root)
        self._log = open(log, "wb")  # noqa: SIM115 - closed in stop()
        env = dict(os.environ)
        env.pop("EXACT_TOKEN", None)
        self.proc = subprocess.Popen([sys.executable, "-m", "exactvc.cli", "serve", str(root), "--port", "0",
                                      *extra_args],
                                     stdout=subprocess.PIPE, stderr=self._log, env=env)
        lines: queue.Queue[bytes] = queue.Queue()

        def drain() -> None:
            assert self.proc.stdout is not None
            for line in self.proc.stdout:
                lines.put(line)
            lines.put(b"")

        threading.Thread(target=drain, daemon=True).start()
        try:
            first = lines.get(timeout=START_TIMEOUT).decode()
        except queue.Empty:
            self.stop()
            raise AssertionError(f"server did not start within {START_TIMEOUT}s") from None
        m = re.search(r"exactvc server listening on (http://127\.0\.0\.1:\d+)/", first)
        if m is None:
            self.stop()
            raise AssertionError(f"unexpected first line from exact serve: {first!r} ({log.read_text()})")
        self.url = m.group(1)

    def repo_url(self, name: str) -> str:
        return f"{self.url}/{name}"

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        self._log.close()


class ThreadServer:
    """``create_app(config)`` served by waitress in a daemon thread of this process."""

    def __init__(self, root: Path, **config: Any) -> None:
        from server.app import create_app
        from server.waitress_server import make_server

        self.root = root
        prepare_root(root)
        self.app = create_app({"root": str(root), **config})
        self.srv = make_server(self.app, host="127.0.0.1", port=0, threads=8)
        self.url = f"http://127.0.0.1:{self.srv.effective_port}"  # type: ignore[union-attr]
        self.thread = threading.Thread(target=self.srv.run, daemon=True)
        self.thread.start()

    def repo_url(self, name: str) -> str:
        return f"{self.url}/{name}"

    def close(self) -> None:
        """``srv.close()``, run by the server's own loop (woken through its trigger): no select() on a
        closed socket, no wait for the loop's 1 s poll timeout."""
        self.srv.task_dispatcher.shutdown(timeout=5)  # type: ignore[union-attr]
        self.srv.trigger.pull_trigger(self.srv.close)  # type: ignore[union-attr]
        self.thread.join(10)
        assert not self.thread.is_alive(), "server thread did not stop"
        from exactvc.backends.config import is_shared

        backends = self.app.extensions["exact_repos"].backends
        if not is_shared(backends):  # a ROOT's shared pool serves the test's own handles too: close_pools()
            backends.close()


@contextmanager
def thread_server(root: Path, **config: Any) -> Iterator[ThreadServer]:
    s = ThreadServer(root, **config)
    try:
        yield s
    finally:
        s.close()


# --- raw HTTP -----------------------------------------------------------------------------------------


@dataclass
class Reply:
    status: int
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)

    def error(self) -> dict[str, str]:
        """The ``{"error": {"type", "message"}}`` body of an error reply."""
        assert self.headers.get("content-type", "").startswith("application/json"), self.headers
        err = self.json()["error"]
        assert isinstance(err["type"], str) and err["type"]
        assert isinstance(err["message"], str) and err["message"]
        return dict(err)


def request(method: str, url: str, body: bytes | Any = None, token: str | None = None,
            headers: dict[str, str] | None = None, chunked: bool = False, timeout: float = 60) -> Reply:
    """One HTTP request sent as given (the path is not normalised, so ``..`` and ``%2F`` reach the server).

    ``body``: bytes as they are, anything else as JSON.
    """
    u = urlsplit(url)
    path = u.path + ("?" + u.query if u.query else "")
    h = dict(headers or {})
    if token:
        h["Authorization"] = f"Bearer {token}"
    if body is not None and not isinstance(body, bytes):
        body = json.dumps(body).encode()
        h.setdefault("Content-Type", "application/json")
    conn = http.client.HTTPConnection(u.hostname or "127.0.0.1", u.port, timeout=timeout)
    try:
        if chunked and body is not None:
            chunks = [body[i:i + 16384] for i in range(0, len(body), 16384)]
            conn.request(method, path, body=iter(chunks), headers=h, encode_chunked=True)
        else:
            conn.request(method, path, body=body, headers=h)
        resp = conn.getresponse()
        data = resp.read()
        return Reply(resp.status, {k.lower(): v for k, v in resp.getheaders()}, data)
    finally:
        conn.close()


# --- protocol bodies, by hand -------------------------------------------------------------------------


def frame(type_tag: str, oid: bytes, raw: bytes) -> bytes:
    z = zlib.compress(raw)
    return struct.pack("<B32sI", TYPE_CODES[type_tag], oid, len(z)) + z


def stream(frames: list[bytes]) -> bytes:
    """A well-formed object stream carrying ``frames`` (magic, frames, end frame, blake3 trailer)."""
    body = transfer.MAGIC + b"".join(frames) + struct.pack("<BI", 0, len(frames))
    return body + blake3.blake3(body).digest()


def object_stream(repo: Repository, oids: Iterable[bytes]) -> bytes:
    buf = io.BytesIO()
    transfer.write_stream(repo, oids, buf)
    return buf.getvalue()


def update(ref: str, old: bytes | None, new: bytes | None, force: bool = False) -> dict[str, Any]:
    return {"ref": ref, "old": old.hex() if old else None, "new": new.hex() if new else None, "force": force}


def push_body(header: Any, stream_bytes: bytes) -> bytes:
    """u32 LE header length, the JSON header, then the object stream."""
    h = header if isinstance(header, bytes) else json.dumps(header).encode()
    return struct.pack("<I", len(h)) + h + stream_bytes


def push_commit(repo: Repository, ref: str, old: bytes | None, new: bytes, haves: list[bytes],
                force: bool = False) -> bytes:
    """The body of a push of ``new`` to ``ref`` carrying what a receiver holding ``haves`` lacks."""
    oids = list(transfer.objects_to_send(repo, [new], haves))
    return push_body({"updates": [update(ref, old, new, force)]}, object_stream(repo, oids))


# --- repositories -------------------------------------------------------------------------------------


def make_repo(path: Path, image: str = "slide-1", n: int = 0, author: str = AUTHOR) -> Repository:
    """A repository with labels ``cell`` and ``mitosis``, one image, ``n`` squares, and one commit."""
    r = Repository.init(path)
    r.add_label("cell", shape="polygon", color="#ff0000")
    r.add_label("mitosis", shape="point", color="#00ff00", size=(50, 50), key="1")
    r.add_image_record(ImageRecord(image, "cd" * 32, 200000, 200000, levels=5, mpp=0.25))
    if n:
        add_squares(r, image, n)
    r.commit("seed", author=author)
    return r


def add_squares(repo: Repository, image: str, n: int, x0: float = 0, y0: float = 0, label: str = "cell",
                properties: dict[str, Any] | None = None) -> list[str]:
    """``n`` 10x10 squares in rows of 100 (in the working state); their ids."""
    with repo.edit(image) as ed:
        return [ed.add(label, square(x0 + 20 * (i % 100), y0 + 20 * (i // 100)), properties) for i in range(n)]


def annotation_ids(repo: Repository, image: str, rev: str = "HEAD") -> set[str]:
    return {a.id for a in repo.annotations(image, rev)}


def users(root: Path, roles: dict[str, str | None], repo: str) -> dict[str, str]:
    """Create users (library, straight into the server's access store) with a role on ``repo``; their tokens."""
    acc = server_access(root)
    out = {}
    for name, role in roles.items():
        out[name] = acc.add_user(name)
        if role is not None:
            acc.grant(repo, name, role)
    return out


def repo_files(path: Path) -> dict[str, str]:
    """sha256 of every file under ``path/.exact`` (refs, logs, objects, packs, config); caches excluded."""
    out = {}
    for p in sorted((path / ".exact").rglob("*")):
        rel = p.relative_to(path).as_posix()
        if p.is_file() and not rel.startswith(".exact/cache/"):
            out[rel] = hashlib.sha256(p.read_bytes()).hexdigest()
    return out


def ref_files(path: Path) -> dict[str, str]:
    """Every ref file of a repository and its content."""
    refs = path / ".exact" / "refs"
    return {p.relative_to(refs).as_posix(): p.read_text() for p in sorted(refs.rglob("*")) if p.is_file()}


def occurrences(root: Path, needle: bytes) -> list[str]:
    """Where ``needle`` occurs under ``root``: raw file bytes, and the decoded objects of every repository."""
    hits = []
    for p in sorted(root.rglob("*")):
        if p.is_file() and needle in p.read_bytes():
            hits.append(p.relative_to(root).as_posix())
    for head in sorted(root.rglob(".exact/HEAD")):
        repo = Repository.open(head.parent.parent, search_parents=False)
        for oid in repo.store.iter_ids():
            t, data = repo.store.get(oid)
            if needle in data:
                hits.append(f"{head.parent.parent.relative_to(root)}: {t} {oid.hex()}")
    return hits
