"""The server's stores (access, pull requests, screening, EXACT ids), the same tests over both implementations:
SQLite under ROOT and a real PostgreSQL (exactvc.backends.config.Backends chooses). Concurrency: 16 threads
race on one store; outages: PostgreSQL stopped is BackendUnavailable, and the store works again after."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

import pytest

from exactvc.access import hash_token
from exactvc.backends.config import Backends
from exactvc.errors import BackendUnavailable, Conflict, InvalidInput, NotFound

T = TypeVar("T")
THREADS = 16


@pytest.fixture(params=["sqlite", "postgres"])
def backends(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Backends]:
    if request.param == "sqlite":
        yield Backends()
        return
    b = Backends(db=request.getfixturevalue("postgres").fresh())
    try:
        yield b
    finally:
        b.database().close()


def race(fn: Callable[[int], T]) -> list[T | Exception]:
    """``fn(i)`` for i in 0..15 on 16 threads released at once; each result or the exception raised."""
    import threading

    gate = threading.Barrier(THREADS)

    def one(i: int) -> T | Exception:
        gate.wait()
        try:
            return fn(i)
        except Exception as exc:
            return exc

    with ThreadPoolExecutor(THREADS) as ex:
        return list(ex.map(one, range(THREADS)))


def test_users_tokens_teams_roles_and_settings(backends: Backends, tmp_path: Path) -> None:
    acc = backends.access_store(tmp_path)
    tok = acc.add_user("ada", site_admin=False)
    assert tok.startswith("exv_") and acc.authenticate(tok) is not None
    with pytest.raises(Conflict):
        acc.add_user("ada")
    with pytest.raises(InvalidInput):
        acc.add_user("no spaces")
    tok2 = acc.new_token("ada")
    ada = acc.authenticate(tok2)
    assert ada is not None and ada.name == "ada" and not ada.site_admin
    assert acc.authenticate("exv_" + "x" * 43) is None
    boss = acc.authenticate(acc.add_user("boss", site_admin=True))
    assert boss is not None and boss.site_admin
    v0 = acc.version()
    acc.grant("proj", "ada", "annotate")
    assert acc.version() != v0  # cached answers about roles are forgotten
    assert acc.role("proj", ada) == "annotate" and acc.role("other", ada) is None
    assert acc.role("anything", boss) == "admin"
    acc.add_team("lab")
    acc.add_team("lab")  # twice is once
    acc.team_add("lab", "ada")
    acc.grant("proj", "lab", "maintain", team=True)
    assert acc.role("proj", ada) == "maintain"  # the strongest of her own and her teams' roles
    assert acc.roles("proj") == [{"kind": "team", "who": "lab", "role": "maintain"},
                                 {"kind": "user", "who": "ada", "role": "annotate"}]
    acc.team_remove("lab", "ada")
    assert acc.role("proj", ada) == "annotate"
    for bad in (("proj", "ada", "owner"), ("proj", "", "read")):
        with pytest.raises(InvalidInput):
            acc.grant(*bad)
    with pytest.raises(NotFound):
        acc.grant("proj", "nobody", "read")
    with pytest.raises(NotFound):
        acc.team_add("no-team", "ada")
    # settings: defaults, partial changes keep the rest, bad values change nothing
    assert acc.settings("proj") == {"anonymous_read": False, "protected": ["main"], "required_approvals": 0,
                                    "mode": "cooperative", "opinions": 1}
    acc.set_settings("proj", protected=["main", "release", "main"], required_approvals=2)
    acc.set_settings("proj", mode="blind")
    for bad_kw in ({"mode": "secret"}, {"opinions": 0}, {"protected": ["heads/x"]}, {"anonymous_read": "yes"},
                   {"required_approvals": True}):
        with pytest.raises(InvalidInput):
            acc.set_settings("proj", **bad_kw)  # type: ignore[arg-type]
    assert acc.settings("proj") == {"anonymous_read": False, "protected": ["main", "release"],
                                    "required_approvals": 2, "mode": "blind", "opinions": 1}
    assert acc.role("open", None) is None
    acc.set_settings("open", anonymous_read=True)
    assert acc.role("open", None) == "read"
    # removal: tokens, roles and the name go; the row stays (commits keep their author)
    acc.remove_user("ada")
    assert acc.authenticate(tok) is None and acc.authenticate(tok2) is None
    assert acc.roles("proj") == [{"kind": "team", "who": "lab", "role": "maintain"}]
    with pytest.raises(NotFound):
        acc.new_token("ada")
    names = {u["name"]: u["active"] for u in acc.users()}
    assert "ada" not in names and names["boss"] is True and any(n.startswith("deleted-") for n in names)


def test_tokens_are_stored_hashed_only(backends: Backends, tmp_path: Path) -> None:
    acc = backends.access_store(tmp_path)
    tok = acc.add_user("ada")
    if backends.db is None:
        import sqlite3

        rows = sqlite3.connect(tmp_path / ".exact-server.sqlite").execute("SELECT hash FROM tokens").fetchall()
    else:
        with backends.database().tx() as cur:
            cur.execute("SELECT hash FROM tokens")
            rows = cur.fetchall()
    assert [r[0] for r in rows] == [hash_token(tok)]


def test_passwords_sessions_and_sign_in_limits(backends: Backends, tmp_path: Path) -> None:
    acc = backends.access_store(tmp_path)
    acc.add_user("ada")
    assert not acc.has_password("ada") and acc.check_password("ada", "whatever-long") is None
    with pytest.raises(InvalidInput):
        acc.set_password("ada", "short")
    acc.set_password("ada", "correct horse")
    ada = acc.check_password("ada", "correct horse")
    assert ada is not None and acc.has_password("ada")
    assert acc.check_password("ada", "wrong horse!") is None and acc.check_password("bob", "correct horse") is None
    secret, s = acc.create_session(ada, idle=3600, absolute=7200)
    assert secret.startswith("exs_") and s.user == ada
    again = acc.session(secret, 3600, 7200)
    assert again is not None and again.csrf == s.csrf
    assert acc.session("exs_unknown", 3600, 7200) is None
    acc.end_session(secret)
    assert acc.session(secret, 3600, 7200) is None
    gone, _ = acc.create_session(ada, idle=3600, absolute=0)
    assert acc.session(gone, 3600, 0) is None  # past its absolute lifetime
    idle, _ = acc.create_session(ada, idle=1, absolute=3600)
    time.sleep(1.05)
    assert acc.session(idle, 1, 3600) is None  # unused for longer than the idle limit
    live, _ = acc.create_session(ada, idle=3600, absolute=7200)
    acc.set_password("ada", "battery staple")  # a new password ends the sessions
    assert acc.session(live, 3600, 7200) is None
    # sign-in limits: blocked after the allowed failures within the window, per key
    keys = {"user\0ada\0c": 2, "client\0c": 10}
    assert acc.login_blocked(keys, 60) == 0
    acc.login_failed(list(keys), 60)
    acc.login_failed(list(keys), 60)
    assert 0 < acc.login_blocked(keys, 60) <= 60
    assert acc.login_blocked({"user\0bob\0c": 2}, 60) == 0
    acc.login_succeeded("user\0ada\0c")
    assert acc.login_blocked(keys, 60) == 0


def test_pull_requests(backends: Backends, tmp_path: Path) -> None:
    pulls = backends.pull_store(tmp_path)
    a = pulls.create("proj", "First", "", "ada", "open", "feature", "main", "b" * 64, "a" * 64)
    b = pulls.create("proj", "Second", "body", "bob", "draft", "f2", "main", "b" * 64, "c" * 64, origin="x")
    assert (a["number"], b["number"], pulls.create("other", "T", "", "ada", "open", "s", "main", "b", "h")["number"]) \
        == (1, 2, 1)
    with pytest.raises(InvalidInput):
        pulls.create("proj", "T", "", "ada", "merged", "s", "main", "b", "h")
    assert [p["number"] for p in pulls.list_pulls("proj")] == [2, 1]
    assert [p["number"] for p in pulls.list_pulls("proj", "draft")] == [2]
    assert pulls.update("proj", 2, state="open", title="Second!")["title"] == "Second!"
    with pytest.raises(InvalidInput):
        pulls.update("proj", 2, author="eve")
    with pytest.raises(NotFound):
        pulls.update("proj", 9, title="x")
    pulls.add_revision("proj", 1, "d" * 64, "b" * 64)
    pulls.add_revision("proj", 1, "d" * 64, "b" * 64)  # the same head again: recorded once
    assert [r["head"] for r in pulls.revisions("proj", 1)] == ["a" * 64, "d" * 64]
    assert pulls.get("proj", 1)["head"] == "d" * 64
    rv = pulls.add_review("proj", 1, "bob", "approve", "fine", "d" * 64)
    assert [r["id"] for r in pulls.reviews("proj", 1)] == [rv["id"]]
    with pytest.raises(InvalidInput):
        pulls.add_review("proj", 1, "bob", "love", "", "d" * 64)
    anchor = {"image": "s1", "annotation": "x"}
    c1 = pulls.add_comment("proj", 1, "bob", "why?", "d" * 64, anchor, None)
    c2 = pulls.add_comment("proj", 1, "ada", "because", "d" * 64, None, c1["id"])
    assert c1["thread"] == c1["id"] and c2["thread"] == c1["id"] and c2["anchor"] == anchor
    pulls.resolve_thread("proj", 1, c1["id"], True)
    assert all(c["resolved"] for c in pulls.comments("proj", 1))
    with pytest.raises(NotFound):
        pulls.add_comment("proj", 1, "ada", "?", "d" * 64, None, 999)
    pulls.set_decisions("proj", 1, [("s1", "a1", "v1"), ("s1", "a2", "v1")], "accept", "bob")
    pulls.set_decisions("proj", 1, [("s1", "a2", "v2")], "reject", "bob")
    pulls.set_decisions("proj", 1, [("s1", "a1", "v1")], None, "bob")
    d = pulls.decisions("proj", 1)
    assert list(d) == [("s1", "a2")] and d[("s1", "a2")]["decision"] == "reject"
    assert pulls.checks("proj", 1, "d" * 64) is None
    pulls.set_checks("proj", 1, "d" * 64, {"ok": True})
    pulls.set_checks("proj", 1, "d" * 64, {"ok": False})
    assert pulls.checks("proj", 1, "d" * 64) == {"ok": False}
    assert pulls.overridden("proj", 1, "d" * 64) is None
    pulls.override("proj", 1, "d" * 64, "max")
    assert pulls.overridden("proj", 1, "d" * 64) == "max"


def test_screening_progress_and_exact_ids(backends: Backends, tmp_path: Path) -> None:
    scr = backends.screening_store(tmp_path)
    assert scr.get("proj", "s1", "ada") is None
    scr.put("proj", "s1", "ada", {"current": 1})
    scr.put("proj", "s1", "ada", {"current": 2})
    scr.put("proj", "s1", "bob", {"current": 5})
    assert scr.get("proj", "s1", "ada") == {"current": 2}
    scr.reset("proj", "s1", "ada")
    assert scr.get("proj", "s1", "ada") is None and scr.get("proj", "s1", "bob") == {"current": 5}
    ids = backends.id_store(tmp_path)
    assert ids.ids("image", ["a", "b", "a"]) == [1, 2, 1]
    assert ids.ids("image", ["c", "b"]) == [3, 2] and ids.id("user", "b") == 1
    assert ids.key("image", 3) == "c" and ids.key("image", 9) is None
    assert ids.keys("image", [1, 3, 9]) == {1: "a", 3: "c"}
    assert ids.ids("image", []) == []
    with pytest.raises(ValueError):
        ids.ids("planet", ["x"])
    assert ids.read_branch("proj") == "main"
    ids.set_read_branch("proj", "release")
    assert ids.read_branch("proj") == "release"
    with pytest.raises(InvalidInput):
        ids.set_read_branch("proj", "heads/x")


def test_sixteen_threads_race_on_each_store(backends: Backends, tmp_path: Path) -> None:
    acc = backends.access_store(tmp_path)
    got = race(lambda i: acc.add_user("same"))
    assert sum(isinstance(r, str) for r in got) == 1, got
    assert all(isinstance(r, Conflict) for r in got if not isinstance(r, str))
    tokens = race(lambda i: acc.new_token("same"))
    assert len({t for t in tokens if isinstance(t, str)}) == THREADS
    assert all(isinstance(t, str) and acc.authenticate(t) is not None for t in tokens)
    race(lambda i: acc.add_user(f"u{i}"))
    assert len(acc.users()) == THREADS + 1
    race(lambda i: acc.set_settings("proj", required_approvals=i) if i % 2 else acc.set_settings("proj", mode="blind"))
    assert acc.settings("proj")["mode"] == "blind"  # no change lost to another one of a different setting
    pulls = backends.pull_store(tmp_path)
    made = race(lambda i: pulls.create("proj", f"t{i}", "", "ada", "open", f"s{i}", "main", "b", "h"))
    assert sorted(p["number"] for p in made if isinstance(p, dict)) == list(range(1, THREADS + 1)), made
    race(lambda i: pulls.add_revision("proj", 1, "n" * 64, "b"))
    assert [r["head"] for r in pulls.revisions("proj", 1)] == ["h", "n" * 64]
    ids = backends.id_store(tmp_path)
    keys = [f"k{j}" for j in range(40)]
    answers = race(lambda i: ids.ids("annotation", keys[i:] + keys[:i]))
    maps = [dict(zip(keys[i:] + keys[:i], a, strict=True)) for i, a in enumerate(answers) if isinstance(a, list)]
    assert len(maps) == THREADS and all(m == maps[0] for m in maps), answers
    assert sorted(maps[0].values()) == list(range(1, 41))


def test_a_session_made_through_one_pool_is_valid_through_another(postgres: Any, tmp_path: Path) -> None:
    url = postgres.fresh()
    one, two = Backends(db=url), Backends(db=url)  # as two server processes: two pools, one database
    try:
        a, b = one.access_store(tmp_path), two.access_store(tmp_path)
        a.add_user("ada")
        a.set_password("ada", "correct horse")
        ada = b.check_password("ada", "correct horse")
        assert ada is not None
        secret, s = b.create_session(ada, 3600, 7200)
        seen = a.session(secret, 3600, 7200)
        assert seen is not None and seen.csrf == s.csrf
        v = b.version()
        a.grant("proj", "ada", "read")
        assert b.version() != v and b.role("proj", ada) == "read"
        a.end_session(secret)
        assert b.session(secret, 3600, 7200) is None
    finally:
        one.database().close()
        two.database().close()


def test_postgres_stopped_is_backend_unavailable_then_ok(postgres: Any, tmp_path: Path) -> None:
    from exactvc.backends.postgres import Database
    from exactvc.backends.postgres_access import PgAccessStore
    from exactvc.backends.postgres_pulls import PgPullStore

    db = Database(postgres.fresh(), timeout=2)
    try:
        acc, pulls = PgAccessStore(db), PgPullStore(db)
        tok = acc.add_user("ada")
        with postgres.stopped():
            for call in (lambda: acc.authenticate(tok), lambda: acc.add_user("bob"), lambda: pulls.list_pulls("p")):
                with pytest.raises(BackendUnavailable) as e:
                    call()
                assert e.value.http_status == 503 and "unavailable" in e.value.message
                assert "postgres@" not in e.value.message
        for _ in range(100):  # the pool reconnects (bounded)
            try:
                assert acc.authenticate(tok) is not None
                break
            except BackendUnavailable:
                time.sleep(0.2)
        acc.add_user("bob")  # nothing was half-written: the name is free
        assert {u["name"] for u in acc.users()} == {"ada", "bob"}
    finally:
        db.close()


def test_a_database_without_the_schema_is_refused_until_migrated(postgres: Any, tmp_path: Path) -> None:
    url = postgres.database("t_" + uuid.uuid4().hex[:12])
    b = Backends(db=url)
    try:
        with pytest.raises(InvalidInput, match="exact server migrate"):
            b.check_schema()
        assert b.migrate()[:2] == [1, 2]
        b.check_schema()
    finally:
        b.database().close()


def test_migrate_copies_a_local_servers_own_data_once(postgres: Any, tmp_path: Path) -> None:
    from .server_fixtures import exact, ok

    root = tmp_path / "srv"
    root.mkdir()
    local = Backends()
    acc = local.access_store(root)
    tok = acc.add_user("ada")
    acc.set_password("ada", "correct horse")
    acc.add_team("lab")
    acc.team_add("lab", "ada")
    acc.grant("proj", "lab", "maintain", team=True)
    acc.set_settings("proj", mode="blind", opinions=3)
    ada = acc.check_password("ada", "correct horse")
    assert ada is not None
    secret, _ = acc.create_session(ada, 3600, 7200)
    pulls = local.pull_store(root)
    pr = pulls.create("proj", "First", "", "ada", "open", "f", "main", "b", "h")
    c = pulls.add_comment("proj", 1, "ada", "see", "h", {"image": "s"}, None)
    local.screening_store(root).put("proj", "s1", "ada", {"current": 3})
    ids = local.id_store(root)
    assert ids.ids("annotation", ["proj\0s1\0a", "proj\0s1\0b"]) == [1, 2]
    url = postgres.database("t_" + uuid.uuid4().hex[:12])
    out = ok(exact("server", "migrate", "--root", str(root), "--db", url))
    assert "copied access" in out and "copied pulls" in out and "copied compat" in out, out
    assert "copied" not in ok(exact("server", "migrate", "--root", str(root), "--db", url))  # once
    pg = Backends(db=url)
    try:
        pacc = pg.access_store(root)
        user = pacc.authenticate(tok)  # hashes copied as they are: tokens, passwords and sessions still work
        assert user is not None and user.name == "ada" and pacc.check_password("ada", "correct horse") == user
        assert pacc.session(secret, 3600, 7200) is not None and pacc.role("proj", user) == "maintain"
        assert pacc.settings("proj")["mode"] == "blind" and pacc.settings("proj")["opinions"] == 3
        assert pacc.add_user("bob")  # the id sequence continues after the copied ids
        ppulls = pg.pull_store(root)
        assert ppulls.get("proj", 1)["title"] == pr["title"] and ppulls.comments("proj", 1)[0]["id"] == c["id"]
        assert ppulls.create("proj", "Second", "", "ada", "open", "g", "main", "b", "h")["number"] == 2
        assert ppulls.add_comment("proj", 1, "ada", "more", "h", None, None)["id"] > c["id"]
        assert pg.screening_store(root).get("proj", "s1", "ada") == {"current": 3}
        pids = pg.id_store(root)
        assert pids.ids("annotation", ["proj\0s1\0b", "proj\0s1\0c"]) == [2, 3]
    finally:
        pg.close()


def test_admin_commands_take_db_and_write_nothing_under_root(postgres: Any, tmp_path: Path) -> None:
    from .server_fixtures import exact, ok

    root = tmp_path / "srv"
    root.mkdir()
    bare = postgres.database("t_" + uuid.uuid4().hex[:12])
    r = exact("server", "user", "add", "ada", "--root", str(root), "--db", bare)
    assert r.returncode != 0 and "exact server migrate" in r.stderr and len(r.stderr.strip().splitlines()) == 1
    url = postgres.fresh()
    tok = ok(exact("server", "user", "add", "ada", "--root", str(root), "--db", url)).strip()
    ok(exact("server", "team", "add", "lab", "--root", str(root), "--db", url))
    ok(exact("server", "team", "member", "lab", "ada", "--root", str(root), "--db", url))
    listed = ok(exact("server", "user", "ls", "--json", "--root", str(root), "--db", url))
    assert "ada" in listed
    pg = Backends(db=url)
    try:
        assert pg.access_store(root).authenticate(tok) is not None
    finally:
        pg.close()
    assert list(root.iterdir()) == []  # nothing under ROOT: no SQLite file, no backends.json
