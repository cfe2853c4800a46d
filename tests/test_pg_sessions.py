"""Two `exact serve` processes on one PostgreSQL: a browser session made by one is valid in the other, an
edit through the other with its CSRF token commits, signing out in one ends it in both, failed sign-ins
count across processes, and nothing of the server's data is written to SQLite under ROOT."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from exactvc.repo import Repository

from .conftest import square
from .server_fixtures import ServerProcess, make_repo, request, server_access, thread_server

PASSWORD = "anna-secret-1"


def _send(url: str, method: str, path: str, cookie: str | None, body: Any = None, csrf: str | None = None,
          origin: str | None = None) -> Any:
    h = {"Origin": origin or url}
    if cookie:
        h["Cookie"] = f"exact_session={cookie}"
    if csrf:
        h["X-CSRF-Token"] = csrf
    return request(method, url + path, body, headers=h)


def test_a_session_made_by_one_process_works_in_another(tmp_path: Path, postgres: Any) -> None:
    root = tmp_path / "srv"
    root.mkdir()
    (root / "backends.json").write_text(json.dumps({"db": postgres.fresh()}))
    make_repo(root / "proj")
    acc = server_access(root)
    acc.add_user("anna")
    acc.grant("proj", "anna", "annotate")
    acc.set_password("anna", PASSWORD)
    a = ServerProcess(root, tmp_path / "a.log")
    b = ServerProcess(root, tmp_path / "b.log")
    try:
        rep = _send(a.url, "POST", "/api/v1/session", None, {"user": "anna", "password": PASSWORD})
        assert rep.status == 200, rep.body
        cookie = rep.headers["set-cookie"].split(";", 1)[0].split("=", 1)[1]
        csrf = rep.json()["csrf_token"]
        got = _send(b.url, "GET", "/api/v1/session", cookie)
        assert got.status == 200 and got.json()["user"] == "anna" and got.json()["csrf_token"] == csrf
        edit = {"image": "slide-1", "from": "main", "message": "from the browser", "branch": "users/anna/x",
                "create": [{"label": "cell", "geometry": square(5000, 5000)}]}
        assert _send(b.url, "POST", "/api/v1/repos/proj/edits", cookie, edit).status == 403  # no CSRF token
        made = _send(b.url, "POST", "/api/v1/repos/proj/edits", cookie, edit, csrf=csrf)
        assert made.status in (200, 201), made.body
        assert Repository.open(root / "proj").refs.read("heads/users/anna/x") is not None  # in the database
        seen = _send(a.url, "GET", "/proj/info/refs", cookie)  # and process A advertises it at once
        assert seen.status == 200 and b"heads/users/anna/x" in seen.body, seen.body[:300]
        assert _send(b.url, "DELETE", "/api/v1/session", cookie, csrf=csrf).status == 204
        assert _send(a.url, "GET", "/api/v1/session", cookie).status == 401  # ended everywhere
        # failed sign-ins count in the shared database: the limit holds whichever process answers
        for i in range(5):
            url = (a.url, b.url)[i % 2]
            assert _send(url, "POST", "/api/v1/session", None, {"user": "anna", "password": "wrong-pass"}).status == 401
        limited = _send(a.url, "POST", "/api/v1/session", None, {"user": "anna", "password": PASSWORD})
        assert limited.status == 429 and int(limited.headers["retry-after"]) > 0
    finally:
        a.stop()
        b.stop()
    assert not list(root.glob("*.sqlite")), list(root.iterdir())  # with --db no server data under ROOT


def test_forked_workers_each_open_their_own_pool(tmp_path: Path, postgres: Any) -> None:
    """`exact serve --processes 2` on a ROOT whose backends.json names the database: the parent checks the
    schema before forking; each worker must use connections of its own, never the parent's."""
    root = tmp_path / "srv"
    root.mkdir()
    (root / "backends.json").write_text(json.dumps({"db": postgres.fresh()}))
    make_repo(root / "proj")
    acc = server_access(root)
    tok = acc.add_user("ada")
    acc.grant("proj", "ada", "read")
    srv = ServerProcess(root, tmp_path / "s.log", ("--processes", "2", "--threads", "4"))
    try:
        from concurrent.futures import ThreadPoolExecutor

        with ThreadPoolExecutor(8) as ex:
            got = list(ex.map(lambda i: request("GET", srv.url + "/proj/info/refs", token=tok).status, range(64)))
        assert got == [200] * 64
    finally:
        srv.stop()


def test_sign_in_while_the_database_is_down_is_503_then_works(tmp_path: Path, postgres: Any) -> None:
    root = tmp_path / "srv"
    root.mkdir()
    (root / "backends.json").write_text(json.dumps({"db": postgres.fresh()}))
    make_repo(root / "proj")
    acc = server_access(root)
    tok = acc.add_user("anna")
    acc.grant("proj", "anna", "read")
    acc.set_password("anna", PASSWORD)
    with thread_server(root) as srv:
        creds = {"user": "anna", "password": PASSWORD}
        assert _send(srv.url, "POST", "/api/v1/session", None, creds).status == 200
        with postgres.stopped():
            rep = _send(srv.url, "POST", "/api/v1/session", None, creds)
            assert rep.status == 503 and rep.error()["type"] == "backend_unavailable", rep.body
            assert "postgres@" not in rep.body.decode()
        for _ in range(100):  # the pool reconnects (bounded)
            rep = _send(srv.url, "POST", "/api/v1/session", None, creds)
            if rep.status != 503:
                break
            time.sleep(0.2)
        assert rep.status == 200 and request("GET", srv.url + "/api/v1/repos", token=tok).status == 200
