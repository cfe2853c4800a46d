"""Browser sign-in: passwords, sessions in the ``exact_session`` cookie, expiry, rate limits and CSRF.

Every case runs against a real waitress server (in a thread) holding one repository; requests are raw
HTTP with the cookie carried by hand, as a browser would send it. Refused writes are checked to change
nothing on disk (every file of the repository, byte for byte).
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from exactvc.access import DB_NAME, AccessStore
from exactvc.repo import Repository

from .conftest import square
from .server_fixtures import (
    Reply,
    ThreadServer,
    exact,
    make_repo,
    ok,
    repo_files,
    request,
    thread_server,
    users,
)

IMAGE = "slide-1"
PASSWORDS = {"anna": "anna-secret-1", "rita": "rita-secret-1", "ada": "ada-secret-1"}


@dataclass
class World:
    srv: ThreadServer
    root: Path
    tokens: dict[str, str]

    def u(self, path: str) -> str:
        return self.srv.url + path

    @property
    def origin(self) -> str:
        return self.srv.url

    def files(self) -> dict[str, str]:
        return repo_files(self.root / "proj")


def _world(tmp_path: Path, **config: Any) -> Iterator[World]:
    root = tmp_path / "root"
    make_repo(root / "proj")
    tokens = users(root, {"anna": "annotate", "rita": "read", "ada": "admin", "tom": "annotate"}, "proj")
    acc = AccessStore(root)
    for name, pw in PASSWORDS.items():
        acc.set_password(name, pw)
    with thread_server(root, **config) as srv:
        yield World(srv, root, tokens)


@pytest.fixture
def world(tmp_path: Path) -> Iterator[World]:
    yield from _world(tmp_path)


class Browser:
    """Holds the session cookie the way a browser does: stored from Set-Cookie, sent with every request."""

    def __init__(self, w: World) -> None:
        self.w = w
        self.cookie: str | None = None
        self.csrf: str | None = None

    def send(self, method: str, path: str, body: Any = None, origin: str | None = "self",
             csrf: str | None = "session", headers: dict[str, str] | None = None) -> Reply:
        h = dict(headers or {})
        if self.cookie:
            h["Cookie"] = f"exact_session={self.cookie}"
        if origin == "self":
            h["Origin"] = self.w.origin
        elif origin is not None:
            h["Origin"] = origin
        token = self.csrf if csrf == "session" else csrf
        if token:
            h["X-CSRF-Token"] = token
        rep = request(method, self.w.u(path), body, headers=h)
        set_cookie = rep.headers.get("set-cookie")
        if set_cookie and set_cookie.startswith("exact_session="):
            value = set_cookie.split(";", 1)[0].split("=", 1)[1]
            self.cookie = value or None
        return rep

    def sign_in(self, user: str, password: str | None = None) -> Reply:
        rep = self.send("POST", "/api/v1/session", {"user": user, "password": password or PASSWORDS[user]},
                        csrf=None)
        if rep.status == 200:
            self.csrf = rep.json()["csrf_token"]
        return rep

    def edit(self, branch: str | None = None, **kw: Any) -> Reply:
        body = {"image": IMAGE, "from": "main", "message": "from the browser", "branch": branch,
                "create": [{"label": "cell", "geometry": square(5000, 5000)}]}
        return self.send("POST", "/api/v1/repos/proj/edits", body, **kw)


def _sessions(root: Path) -> int:
    with sqlite3.connect(root / DB_NAME) as db:
        n: int = db.execute("SELECT count(*) FROM sessions").fetchone()[0]
    return n


def _db_holds(root: Path, needle: bytes) -> bool:
    """Whether the server's database files (with its write-ahead log) contain ``needle``."""
    return any(needle in p.read_bytes() for p in root.glob(DB_NAME + "*"))


def test_sign_in_edit_sign_out(world: World) -> None:
    b = Browser(world)
    rep = b.sign_in("anna")
    assert rep.status == 200, rep.body
    body = rep.json()
    assert body["user"] == "anna" and len(body["csrf_token"]) >= 32
    assert time.strptime(body["expires"], "%Y-%m-%dT%H:%M:%SZ")
    attrs = {a.strip().split("=")[0].lower() for a in rep.headers["set-cookie"].split(";")}
    assert {"httponly", "path"} <= attrs and "secure" not in attrs  # plain http: no Secure
    assert "SameSite=Strict" in rep.headers["set-cookie"] and "Path=/" in rep.headers["set-cookie"]
    assert b.cookie and not _db_holds(world.root, b.cookie.encode())  # stored hashed only
    # the session, as the viewer asks for it after a reload
    cur = b.send("GET", "/api/v1/session")
    assert cur.status == 200 and cur.json() == {**body, "expires": cur.json()["expires"]}
    assert b.send("GET", "/api/v1/repos/proj").json()["role"] == "annotate"
    # an edit with the cookie, the CSRF token and the own origin
    rep = b.edit()
    assert rep.status == 201, rep.body
    branch = rep.json()["branch"]
    assert branch == "users/anna/edits"
    proj = Repository.open(world.root / "proj")
    assert proj.count(IMAGE, branch) == 1
    # sign out: deleted on the server, the cookie cleared
    cookie = b.cookie
    out = b.send("DELETE", "/api/v1/session")
    assert out.status == 204 and b.cookie is None
    assert _sessions(world.root) == 0
    b.cookie = cookie  # a browser (or thief) that kept the old cookie
    assert b.send("GET", "/api/v1/session").error()["type"] == "unauthorized"
    before = world.files()
    rep = b.edit()
    assert rep.status == 401 and rep.error()["type"] == "unauthorized"
    assert world.files() == before


def test_wrong_password_and_unknown_user_look_the_same(world: World) -> None:
    b = Browser(world)
    replies = [b.sign_in("anna", "wrong-password"), b.sign_in("nobody", "whatever-1"),
               b.sign_in("tom", "tom-has-no-password")]  # tom has a token but no password
    assert [r.status for r in replies] == [401, 401, 401]
    assert len({r.body for r in replies}) == 1, [r.body for r in replies]
    assert replies[0].error()["type"] == "unauthorized"
    assert b.cookie is None and _sessions(world.root) == 0
    # timing: an unknown user costs a hash verification as a known one does
    def took(user: str) -> float:
        t = time.perf_counter()
        b.sign_in(user, "wrong-password")
        return time.perf_counter() - t
    known = min(took("ada") for _ in range(2))
    unknown = min(took("nobody2") for _ in range(2))
    assert unknown > known * 0.5, (known, unknown)
    # malformed bodies: 422 with a message, no session
    for bad in (b"[]", b"{not json", b'{"user": "anna"}', b'{"token": 5}'):
        rep = b.send("POST", "/api/v1/session", bad, csrf=None, headers={"Content-Type": "application/json"})
        assert rep.status == 422 and rep.error()["type"] == "invalid_input", bad


def test_sign_in_with_token(world: World) -> None:
    b = Browser(world)
    rep = b.send("POST", "/api/v1/session", {"token": world.tokens["rita"]}, csrf=None)
    assert rep.status == 200 and rep.json()["user"] == "rita"
    b.csrf = rep.json()["csrf_token"]
    assert b.send("GET", "/api/v1/session").json()["user"] == "rita"
    bad = Browser(world).send("POST", "/api/v1/session", {"token": "exv_not-a-token"}, csrf=None)
    assert bad.status == 401 and bad.error()["type"] == "unauthorized"


def test_rate_limit_per_user_and_client(tmp_path: Path) -> None:
    for w in _world(tmp_path, login_limit=3, login_window_s=60):
        b = Browser(w)
        assert [b.sign_in("anna", f"guess-{i}xxx").status for i in range(3)] == [401, 401, 401]
        limited = b.sign_in("anna")  # even the right password, while limited
        assert limited.status == 429 and limited.error()["type"] == "rate_limited"
        assert 0 < int(limited.headers["retry-after"]) <= 60
        assert b.cookie is None and _sessions(w.root) == 0
        # another user from the same client is not locked out by anna's failures
        assert Browser(w).sign_in("rita").status == 200
        # a success resets the count of that user: two failures, success, two failures: still allowed
        assert Browser(w).sign_in("ada", "nope-nope-1").status == 401
        assert Browser(w).sign_in("ada").status == 200
        assert [Browser(w).sign_in("ada", "nope-nope-2").status for _ in range(2)] == [401, 401]
        assert Browser(w).sign_in("ada").status == 200


def test_session_expiry_idle_and_absolute(tmp_path: Path) -> None:
    for w in _world(tmp_path, session_idle_s=3, session_max_s=6):
        idle = Browser(w)
        assert idle.sign_in("anna").status == 200
        busy = Browser(w)
        assert busy.sign_in("anna").status == 200
        cookie = idle.cookie
        t0 = time.monotonic()
        while time.monotonic() - t0 < 4.5:  # used every ~second: outlives the idle limit
            assert busy.send("GET", "/api/v1/session").status == 200
            time.sleep(0.7)
        rep = idle.send("GET", "/api/v1/session")  # unused for > 3 s: gone, and the cookie is cleared
        assert rep.status == 401 and idle.cookie is None
        idle.cookie = cookie
        assert idle.send("GET", "/api/v1/repos/proj").status == 401  # anonymous read is off
        while time.monotonic() - t0 < 6.5:
            time.sleep(0.2)
        assert busy.send("GET", "/api/v1/session").status == 401  # the absolute limit, however busy
        assert _sessions(w.root) == 0


def test_secure_cookie_and_trusted_origins(tmp_path: Path) -> None:
    """Behind a TLS proxy: the cookie can be forced Secure, and the proxy's public origin trusted."""
    for w in _world(tmp_path, session_cookie_secure=True, trusted_origins=["https://slides.example.org"]):
        b = Browser(w)
        rep = b.sign_in("anna")
        assert rep.status == 200 and "secure" in rep.headers["set-cookie"].lower()
        assert b.edit(origin="https://slides.example.org").status == 201
        assert b.edit("other", origin="https://evil.example.org").error()["type"] == "csrf"


def test_forged_requests_are_refused_and_change_nothing(world: World) -> None:
    b = Browser(world)
    assert b.sign_in("ada").status == 200
    before = world.files()
    settings = b.send("GET", "/api/v1/repos/proj").json()["settings"]
    forged = [
        b.edit(csrf=None),  # no token
        b.edit(csrf="x" * 43),  # wrong token
        b.edit(origin="http://evil.example"),  # right token, foreign origin
        b.edit(origin="null"),  # sandboxed frame
        b.edit(origin=None),  # neither Origin nor Referer
        b.edit(origin=None, headers={"Referer": "http://evil.example/page"}),
        b.send("PUT", "/api/v1/repos/proj/settings", {"anonymous_read": True}, csrf=None),
        b.send("POST", "/api/v1/repos/proj/roles", {"user": "rita", "role": "admin"},
               origin="http://127.0.0.1:1"),
        b.send("DELETE", "/api/v1/session", csrf=None),  # a forced sign-out
    ]
    for rep in forged:
        assert rep.status == 403 and rep.error()["type"] == "csrf", rep.body
    assert world.files() == before
    assert b.send("GET", "/api/v1/repos/proj").json()["settings"] == settings
    assert AccessStore(world.root).role("proj", AccessStore(world.root).check_password("rita", "rita-secret-1")) \
        == "read"
    assert b.send("GET", "/api/v1/session").status == 200  # still signed in
    # the same page's own requests work, with Origin or with only a same-origin Referer
    assert b.edit().status == 201
    assert b.edit("second", origin=None, headers={"Referer": world.origin + "/viewer/proj"}).status == 201
    # a sign-in posted from a foreign page (login CSRF) is refused too
    other = Browser(world)
    rep = other.send("POST", "/api/v1/session", {"user": "anna", "password": PASSWORDS["anna"]}, csrf=None,
                     origin="http://evil.example")
    assert rep.status == 403 and rep.error()["type"] == "csrf" and other.cookie is None


def test_token_scripts_need_no_csrf_token(world: World) -> None:
    body = {"image": IMAGE, "from": "main", "message": "script",
            "create": [{"label": "cell", "geometry": square(7000, 7000)}]}
    for headers in ({}, {"Origin": "http://elsewhere.example"}):
        rep = request("POST", world.u("/api/v1/repos/proj/edits"), body, token=world.tokens["anna"],
                      headers=headers)
        assert rep.status == 201, rep.body
        body["expected_parent"] = rep.json()["commit"]
        body["from"] = None
    # a Bearer token wins over a cookie sent along, and a bad one is still 401
    b = Browser(world)
    b.sign_in("rita")
    rep = request("GET", world.u("/api/v1/repos/proj"), token=world.tokens["anna"],
                  headers={"Cookie": f"exact_session={b.cookie}"})
    assert rep.json()["role"] == "annotate"
    assert request("GET", world.u("/api/v1/repos"), token="exv_bogus").status == 401


def test_read_only_session_cannot_edit_and_anonymous_gets_nothing(world: World) -> None:
    b = Browser(world)
    assert b.sign_in("rita").status == 200
    assert b.send("GET", "/api/v1/repos/proj").json()["role"] == "read"
    before = world.files()
    rep = b.edit()
    assert rep.status == 403 and rep.error()["type"] == "forbidden"
    rep = b.send("PUT", "/api/v1/repos/proj/settings", {"anonymous_read": True})
    assert rep.status == 403 and rep.error()["type"] == "forbidden"
    assert world.files() == before
    anon = Browser(world)
    assert anon.send("GET", "/api/v1/repos").json() == {"repos": []}
    assert anon.send("GET", "/api/v1/repos/proj").status == 401
    assert anon.send("GET", f"/api/v1/repos/proj/images/{IMAGE}/annotations").status == 401
    assert anon.send("GET", "/api/v1/session").status == 401
    assert anon.edit().status == 401
    assert world.files() == before


def test_removed_user_and_new_password_end_sessions(world: World) -> None:
    anna, ada = Browser(world), Browser(world)
    assert anna.sign_in("anna").status == 200 and ada.sign_in("ada").status == 200
    ok(exact("server", "user", "rm", "anna", "--root", str(world.root)))
    before = world.files()
    assert anna.send("GET", "/api/v1/session").status == 401
    assert anna.edit().status == 401
    assert world.files() == before
    assert Browser(world).sign_in("anna").status == 401  # the password went with the user
    # a new password (set by the CLI, from a pipe) ends the user's sessions; the old password stops working
    r = exact_stdin("newer-password\n", "server", "user", "passwd", "ada", "--root", str(world.root))
    assert r.returncode == 0, r.stderr
    assert ada.send("GET", "/api/v1/session").status == 401
    assert Browser(world).sign_in("ada").status == 401
    assert Browser(world).sign_in("ada", "newer-password").status == 200


def exact_stdin(stdin: str, *args: str) -> Any:
    import os
    import subprocess
    import sys

    from .server_fixtures import NO_CONFIG

    env = dict(os.environ, EXACT_CONFIG_DIR=str(NO_CONFIG))
    env.pop("EXACT_TOKEN", None)
    return subprocess.run([sys.executable, "-m", "exactvc.cli", *args], input=stdin, capture_output=True,
                          text=True, env=env, timeout=60)


def test_cli_passwd(tmp_path: Path) -> None:
    root = tmp_path / "root"
    root.mkdir()
    AccessStore(root).add_user("bob")
    r = exact_stdin("correct horse battery\n", "server", "user", "passwd", "bob", "--root", str(root))
    assert r.returncode == 0 and "bob" in r.stdout
    acc = AccessStore(root)
    user = acc.check_password("bob", "correct horse battery")
    assert user is not None and user.name == "bob"
    assert not _db_holds(root, b"correct horse")
    for stdin, args, code, msg in (("short\n", ("bob",), 5, "too short"), ("", ("bob",), 5, "too short"),
                                   ("long enough pw\n", ("nobody",), 4, "no active user")):
        r = exact_stdin(stdin, "server", "user", "passwd", *args, "--root", str(root))
        assert r.returncode == code and msg in r.stderr and len(r.stderr.strip().splitlines()) == 1, r.stderr
    assert acc.check_password("bob", "correct horse battery") is not None  # unchanged by the refusals


def test_tiles_with_a_session_cookie(tmp_path: Path) -> None:
    """Tiles follow the session (the WSGI fast path keys its grants by token and cookie): a signed-in
    reader gets them, an anonymous visitor asking right after does not, nor does the cookie once signed out."""
    from exactvc.images import fingerprint_file
    from exactvc.objects import ImageRecord
    from exactvc.testing.slides import make_pyramidal_tiff

    from .server_fixtures import AUTHOR

    root, folder = tmp_path / "root", tmp_path / "slides"
    folder.mkdir()
    slide = make_pyramidal_tiff(folder / "gen.svs", 2048, 1536, tile=256, mpp=0.25, aperio=True, seed=3)
    fp = fingerprint_file(slide)
    repo = make_repo(root / "proj")
    repo.add_image_record(ImageRecord("gen", fp, 2048, 1536, 1, 0.25, "aperio"))
    repo.commit("image", author=AUTHOR)
    users(root, {"rita": "read"}, "proj")
    AccessStore(root).set_password("rita", PASSWORDS["rita"])
    with thread_server(root, slide_folders=[str(folder)]) as srv:
        w = World(srv, root, {})
        b = Browser(w)
        assert b.sign_in("rita").status == 200
        tiles = [f"/slides/{fp}_files/11/{c}_{r}.jpeg" for c in range(3) for r in range(3)]
        for t in tiles:
            rep = b.send("GET", t)
            assert rep.status == 200 and rep.headers["content-type"] == "image/jpeg"
            anon = request("GET", w.u(t))
            assert anon.status == 401 and anon.error()["type"] == "unauthorized"
        cookie = b.cookie
        assert b.send("DELETE", "/api/v1/session").status == 204
        b.cookie = cookie
        for t in tiles:
            assert b.send("GET", t).status == 401
