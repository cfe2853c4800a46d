"""Who may do what on a server: the role x action matrix, anonymous read, removed users, login.

Every case runs against a fresh real server (waitress in a thread) holding one repository;
the client is the library (``exactvc.remote``) or the `exact` CLI, and every refusal is also
sent as the raw protocol request to check the status and the JSON error body.
"""

from __future__ import annotations

import json
import re
import shutil
import stat
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from exactvc import remote
from exactvc.errors import PermissionDenied
from exactvc.history import commit_changes
from exactvc.objects import ImageRecord
from exactvc.repo import Repository

from .conftest import square
from .server_fixtures import (
    Reply,
    ThreadServer,
    add_squares,
    admin,
    exact,
    make_repo,
    make_root,
    ok,
    push_body,
    push_commit,
    ref_files,
    repo_files,
    request,
    stream,
    thread_server,
    update,
    users,
)

# every test on each backend pair: disk+SQLite and PostgreSQL(+S3) (tests/conftest.py backend_pair)
pytestmark = pytest.mark.usefixtures("backend_pair")
IMAGE = "slide-1"
PRINCIPALS = ("anonymous", "read", "annotate", "maintain", "admin")
ACTIONS = ("clone", "fetch", "push_own_branch", "push_main", "force_push_shared", "delete_branch", "grant_role")
ALLOWED = {
    "anonymous": set(),
    "read": {"clone", "fetch"},
    "annotate": {"clone", "fetch", "push_own_branch"},
    "maintain": set(ACTIONS) - {"grant_role"},
    "admin": set(ACTIONS),
}
USER_OF = {"read": "rita", "annotate": "anna", "maintain": "max", "admin": "ada"}


@dataclass
class World:
    root: Path
    srv: ThreadServer
    tokens: dict[str, str]
    base: Path  # a clone made before main moved on (main at m1 there, m2 on the server)
    m1: bytes
    m2: bytes
    s2: bytes  # the server's shared branch (a child of m1 the base clone does not have)
    base_new: Path  # a clone made after main moved on
    tmp: Path
    extra: dict[str, object] = field(default_factory=dict)

    @property
    def url(self) -> str:
        return self.srv.repo_url("proj")

    @property
    def server_repo(self) -> Path:
        return self.root / "proj"

    def state(self) -> tuple[object, ...]:
        """What a refused request must not change."""
        adv = request("GET", self.url + "/info/refs", token=self.tokens["admin"]).json()
        roles = request("GET", f"{self.srv.url}/api/v1/repos/proj/roles", token=self.tokens["admin"]).json()
        return adv, ref_files(self.server_repo), repo_files(self.server_repo), roles


def _commit_on(repo: Repository, branch: str, parent: bytes, who: str, x: float) -> bytes:
    """A commit adding one square on ``branch`` (which is at ``parent`` or does not exist yet)."""
    cur = repo.refs.read(f"heads/{branch}")
    assert cur in (None, parent)
    cid, _ = commit_changes(repo, branch, cur, IMAGE, f"work of {who}", f"{who} <{who}@example.org>",
                            create=[{"label": "cell", "geometry": square(x, 9000)}], start=parent.hex())
    return cid


@pytest.fixture
def world(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[World]:
    root = tmp_path / "srv"
    make_root(root)
    srv_repo = make_repo(root / "proj", IMAGE, n=3)
    m1 = srv_repo.head_commit()
    assert m1 is not None
    srv_repo.refs.cas("heads/shared", None, m1)
    srv_repo.refs.cas("heads/doomed", None, m1)
    tokens = users(root, {u: r for r, u in USER_OF.items()} | {"newbie": None}, "proj")
    tokens = {r: tokens[u] for r, u in USER_OF.items()} | {"newbie": tokens["newbie"]}
    monkeypatch.setenv("EXACT_CONFIG_DIR", str(tmp_path / "no-config"))
    monkeypatch.setenv("EXACT_AUTHOR", "Test <test@example.org>")
    with thread_server(root) as srv:
        monkeypatch.setenv("EXACT_TOKEN", tokens["admin"])
        base = tmp_path / "base"
        remote.clone(srv.repo_url("proj"), base)
        # after the clone: main and shared move on the server
        add_squares(srv_repo, IMAGE, 2, y0=4000)
        m2 = bytes.fromhex(srv_repo.commit("main moves on"))
        s2 = _commit_on(srv_repo, "shared", m1, "someone", 100)
        base_new = tmp_path / "base-new"
        remote.clone(srv.repo_url("proj"), base_new)
        monkeypatch.delenv("EXACT_TOKEN")
        yield World(root, srv, tokens, base, m1, m2, s2, base_new, tmp_path)


def as_principal(monkeypatch: pytest.MonkeyPatch, w: World, principal: str) -> str | None:
    tok = w.tokens.get(principal)
    if tok is None:
        monkeypatch.delenv("EXACT_TOKEN", raising=False)
    else:
        monkeypatch.setenv("EXACT_TOKEN", tok)
    return tok


def local_copy(w: World, name: str, src: Path | None = None) -> Repository:
    dest = w.tmp / name
    shutil.copytree(src or w.base, dest)
    return Repository.open(dest)


# --- each action: (run it with the library, then check its effect), and the same as a raw request ----


def act(w: World, action: str, principal: str) -> Callable[[], None]:
    """The action as the real client does it; returns the check of its effect on the server.

    Pushes leave the local repository and the pushed commit in ``w.extra`` for :func:`raw`.
    """
    user = USER_OF.get(principal, "anonymous")
    server = Repository.open(w.server_repo, search_parents=False)

    def server_ref(ref: str, expected: bytes | None) -> Callable[[], None]:
        return lambda: assert_eq(server.refs.read(ref), expected)

    if action == "clone":
        dest = w.tmp / "clone"
        w.extra["dest"] = dest
        remote.clone(w.url, dest)

        def check_clone() -> None:
            r = Repository.open(dest)
            assert r.refs.read("heads/main") == w.m2
            assert r.count(IMAGE) == 5
        return check_clone
    if action == "fetch":
        r = local_copy(w, "fetcher")
        remote.fetch(r)

        def check_fetch() -> None:
            assert r.refs.read("remotes/origin/main") == w.m2
            assert r.count(IMAGE, "origin/main") == 5
        return check_fetch
    if action == "delete_branch":
        remote.push(local_copy(w, "delete"), "origin", "doomed", delete=True)
        return server_ref("heads/doomed", None)
    if action == "grant_role":
        cl = remote.Client(w.srv.url + "/api/v1")
        res = cl.post_json("/repos/proj/roles", {"who": "newbie", "role": "annotate"})
        assert {"kind": "user", "who": "newbie", "role": "annotate"} in res["roles"]

        def check_grant() -> None:
            assert request("GET", w.url + "/info/refs", token=w.tokens["newbie"]).status == 200
        return check_grant
    r = local_copy(w, "pusher")
    w.extra["repo"] = r
    if action == "push_own_branch":
        cid = w.extra["cid"] = _commit_on(r, f"users/{user}/x", w.m1, user, 200)
        remote.push(r, "origin", f"users/{user}/x")
        return server_ref(f"heads/users/{user}/x", cid)
    if action == "push_main":
        r = w.extra["repo"] = local_copy(w, "pusher-new", w.base_new)
        cid = w.extra["cid"] = _commit_on(r, "topic", w.m2, user, 300)
        r.refs.cas("heads/main", w.m2, cid)
        remote.push(r, "origin", "main")
        return server_ref("heads/main", cid)
    if action == "force_push_shared":
        cid = w.extra["cid"] = _commit_on(r, "shared", w.m1, user, 400)  # diverges from the server's s2
        remote.push(r, "origin", "shared", force=True)
        return server_ref("heads/shared", cid)
    raise AssertionError(action)


def raw(w: World, action: str, principal: str) -> Reply:
    """The protocol request behind ``action``, sent by hand."""
    tok = w.tokens.get(principal)
    user = USER_OF.get(principal, "anonymous")
    if action == "clone":
        return request("GET", w.url + "/info/refs", token=tok)
    if action == "fetch":
        return request("POST", w.url + "/fetch", {"wants": [w.m2.hex()], "haves": [w.m1.hex()]}, token=tok)
    if action == "delete_branch":
        body = push_body({"updates": [update("heads/doomed", w.m1, None, force=True)]}, stream([]))
        return request("POST", w.url + "/push", body, token=tok)
    if action == "grant_role":
        return request("POST", f"{w.srv.url}/api/v1/repos/proj/roles", {"who": "newbie", "role": "admin"},
                       token=tok)
    r = w.extra["repo"]
    cid = w.extra["cid"]
    assert isinstance(r, Repository) and isinstance(cid, bytes)
    if action == "push_own_branch":
        body = push_commit(r, f"heads/users/{user}/x", None, cid, [w.m1])
    elif action == "push_main":
        body = push_commit(r, "heads/main", w.m2, cid, [w.m2])
    elif action == "force_push_shared":
        body = push_commit(r, "heads/shared", w.s2, cid, [w.m1], force=True)
    else:
        raise AssertionError(action)
    return request("POST", w.url + "/push", body, token=tok)


def assert_eq(a: object, b: object) -> None:
    assert a == b, (a, b)


@pytest.mark.parametrize("action", ACTIONS)
@pytest.mark.parametrize("principal", PRINCIPALS)
def test_role_action_matrix(world: World, monkeypatch: pytest.MonkeyPatch, principal: str, action: str) -> None:
    w = world
    as_principal(monkeypatch, w, principal)
    before = w.state()
    if action in ALLOWED[principal]:
        check = act(w, action, principal)
        check()
        if action == "clone":
            assert w.state() == before
        return
    status = 401 if principal == "anonymous" else 403
    with pytest.raises(PermissionDenied) as exc:
        act(w, action, principal)
    assert f"({status})" in exc.value.message, exc.value.message
    if action == "clone":
        assert not Path(str(w.extra["dest"])).exists()  # a refused clone leaves nothing behind
    rep = raw(w, action, principal)
    assert rep.status == status, rep.body
    err = rep.error()
    assert err["type"] == ("unauthorized" if status == 401 else "forbidden"), err
    assert reason(principal, action) in err["message"], err
    assert w.state() == before


def reason(principal: str, action: str) -> str:
    """What the refusal must say."""
    if principal == "anonymous":
        return "authentication required"
    if action == "grant_role":
        return "admin access to proj required"
    if principal == "read":
        return "cannot push"
    return {"push_main": "branch main is protected", "force_push_shared": "may force-push or delete",
            "delete_branch": "may force-push or delete"}[action]


def test_annotators_own_their_branches_only(world: World, monkeypatch: pytest.MonkeyPatch) -> None:
    w = world
    as_principal(monkeypatch, w, "annotate")
    server = Repository.open(w.server_repo, search_parents=False)
    r = local_copy(w, "anna")
    # own branch: create, rewrite (force), delete
    a1 = _commit_on(r, "users/anna/work", w.m1, "anna", 10)
    remote.push(r, "origin", "users/anna/work")
    a2 = _commit_on(r, "users/anna/other", w.m1, "anna", 20)
    r.refs.cas("heads/users/anna/work", a1, a2)
    remote.push(r, "origin", "users/anna/work", force=True)
    assert server.refs.read("heads/users/anna/work") == a2
    remote.push(r, "origin", "users/anna/work", delete=True)
    assert server.refs.read("heads/users/anna/work") is None
    # a shared, unprotected branch: fast-forward yes
    remote.fetch(r)
    c = _commit_on(r, "shared-ff", w.s2, "anna", 30)
    r.refs.cas("heads/shared", None, c)
    remote.push(r, "origin", "shared")
    assert server.refs.read("heads/shared") == c
    # somebody else's branch: no
    server.refs.cas("heads/users/max/x", None, w.m1)
    before = w.state()
    rep = request("POST", w.url + "/push", push_commit(r, "heads/users/max/x", w.m1, a1, [w.m1]),
                  token=w.tokens["annotate"])
    assert rep.status == 403 and "another user" in rep.error()["message"], rep.body
    # a tag: no
    rep = request("POST", w.url + "/push", push_commit(r, "tags/v1", None, a1, [w.m1]), token=w.tokens["annotate"])
    assert rep.status == 403, rep.body
    assert w.state() == before
    # once the admin protects "shared", annotators cannot push there any more
    rep = request("PUT", f"{w.srv.url}/api/v1/repos/proj/settings", {"protected": ["main", "shared"]},
                  token=w.tokens["admin"])
    assert rep.status == 200 and rep.json()["protected"] == ["main", "shared"]
    d = _commit_on(r, "shared-ff2", c, "anna", 40)
    r.refs.cas("heads/shared", c, d)
    with pytest.raises(PermissionDenied, match="protected"):
        remote.push(r, "origin", "shared")
    assert server.refs.read("heads/shared") == c


def test_anonymous_read_per_repository(tmp_path: Path) -> None:
    root = tmp_path / "srv"
    make_root(root)
    make_repo(root / "open", IMAGE, n=2)
    make_repo(root / "closed", IMAGE, n=2)
    tok = users(root, {"ada": "admin", "rita": "read"}, "open")
    with thread_server(root) as srv:
        anon_cfg = tmp_path / "anon-config"
        r = exact("clone", srv.repo_url("open"), str(tmp_path / "nope"), config_dir=anon_cfg)
        assert r.returncode == 9 and "401" in r.stderr, r.stderr
        assert not (tmp_path / "nope").exists()
        # only an admin of the repository may switch anonymous read on
        settings = f"{srv.url}/api/v1/repos/open/settings"
        assert request("PUT", settings, {"anonymous_read": True}).status == 401
        rep = request("PUT", settings, {"anonymous_read": True}, token=tok["rita"])
        assert rep.status == 403 and rep.error()["type"] == "forbidden"
        rep = request("PUT", settings, {"anonymous_read": True}, token=tok["ada"])
        assert rep.status == 200 and rep.json()["anonymous_read"] is True
        # anonymous clone works now, for this repository only
        c = tmp_path / "anon"
        ok(exact("clone", srv.repo_url("open"), str(c), config_dir=anon_cfg))
        assert Repository.open(c).count(IMAGE) == 2
        assert request("GET", srv.repo_url("closed") + "/info/refs").status == 401
        names = [x["name"] for x in request("GET", f"{srv.url}/api/v1/repos").json()["repos"]]
        assert names == ["open"]
        # anonymous push is still refused, and changes nothing
        before = repo_files(root / "open")
        add_squares(Repository.open(c), IMAGE, 1, y0=7000)
        ok(exact("-C", str(c), "commit", "-m", "anonymous work"))
        r = exact("-C", str(c), "push", config_dir=anon_cfg)
        assert r.returncode == 9 and "401" in r.stderr, r.stderr
        cr = Repository.open(c)
        head = cr.head_commit()
        assert head is not None
        rep = request("POST", srv.repo_url("open") + "/push",
                      push_commit(cr, "heads/main", cr.refs.read("remotes/origin/main"), head,
                                  [cr.refs.read("remotes/origin/main") or b""]))
        assert rep.status == 401 and rep.error()["type"] == "unauthorized"
        rep = request("POST", f"{srv.url}/api/v1/repos/open/edits",
                      {"branch": "x", "image": IMAGE, "create": [{"label": "cell", "geometry": square(1, 1)}]})
        assert rep.status == 401
        assert repo_files(root / "open") == before
        # and off again
        assert request("PUT", settings, {"anonymous_read": False}, token=tok["ada"]).status == 200
        r = exact("-C", str(c), "fetch", config_dir=anon_cfg)
        assert r.returncode == 9 and "401" in r.stderr, r.stderr


def test_removed_user_token_stops_working_and_commits_stay(tmp_path: Path) -> None:
    root = tmp_path / "srv"
    make_root(root)
    admin(root, "repo", "add", "proj")
    carol = admin(root, "user", "add", "carol")
    admin(root, "grant", "carol", "maintain", "proj")
    boss = admin(root, "user", "add", "boss", "--site-admin")
    with thread_server(root) as srv:
        c = tmp_path / "c"
        ok(exact("clone", srv.repo_url("proj"), str(c), token=carol))
        ok(exact("-C", str(c), "label", "add", "cell", "--shape", "polygon", "--color", "#ff0000"))
        Repository.open(c).add_image_record(ImageRecord(IMAGE, "ab" * 32, 10000, 10000))
        add_squares(Repository.open(c), IMAGE, 4)
        ok(exact("-C", str(c), "commit", "-m", "carol's work", author="Carol <carol@example.org>"))
        ok(exact("-C", str(c), "push", token=carol))
        ok(exact("-C", str(c), "switch", "-c", "users/carol/draft"))
        ok(exact("-C", str(c), "push", "origin", "users/carol/draft", token=carol))
        refs_before = ref_files(root / "proj")
        assert request("GET", srv.repo_url("proj") + "/info/refs", token=carol).status == 200

        assert "Deactivated carol" in ok(exact("server", "user", "rm", "carol", "--root", str(root)))
        rep = request("GET", srv.repo_url("proj") + "/info/refs", token=carol)
        assert rep.status == 401 and rep.error()["type"] == "unauthorized", rep.body
        assert request("GET", f"{srv.url}/api/v1/repos", token=carol).status == 401
        r = exact("-C", str(c), "fetch", token=carol)
        assert r.returncode == 9 and "401" in r.stderr, r.stderr
        # her work stays: branches, commits, authorship
        assert ref_files(root / "proj") == refs_before
        log = request("GET", f"{srv.url}/api/v1/repos/proj/log", token=boss).json()["log"]
        assert log[0]["author"].startswith("Carol") and log[0]["message"] == "carol's work"
        refs = request("GET", srv.repo_url("proj") + "/info/refs", token=boss).json()["refs"]
        assert "heads/users/carol/draft" in refs
        assert Repository.open(root / "proj").count(IMAGE, "main") == 4
        listed = json.loads(ok(exact("server", "user", "ls", "--root", str(root), "--json")))["exactvc.users/v1"]
        assert "carol" not in [u["name"] for u in listed]
        assert any(not u["active"] for u in listed)
        # a new token cannot be issued for a removed user
        r = exact("server", "user", "token", "carol", "--root", str(root))
        assert r.returncode == 4, r.stderr


def test_login_stores_the_token_with_mode_0600(tmp_path: Path) -> None:
    root = tmp_path / "srv"
    make_root(root)
    make_repo(root / "proj", IMAGE, n=1)
    tok = users(root, {"ada": "read"}, "proj")["ada"]
    cfg = tmp_path / "cfg"
    with thread_server(root) as srv, thread_server(tmp_path / "srv2") as other:
        # a wrong token is checked against the server and not stored
        r = exact("login", srv.url + "/", "--token", "exv_wrong", config_dir=cfg)
        assert r.returncode == 9 and "401" in r.stderr, r.stderr
        assert not (cfg / "credentials.json").exists()
        out = ok(exact("login", srv.url + "/", "--token", tok, config_dir=cfg))
        creds = cfg / "credentials.json"
        assert str(creds) in out
        assert stat.S_IMODE(creds.stat().st_mode) == 0o600
        assert stat.S_IMODE(cfg.stat().st_mode) & 0o077 == 0
        assert json.loads(creds.read_text()) == {"servers": {srv.url: tok}}
        assert tok not in out
        # the stored token is used (no EXACT_TOKEN)
        ok(exact("clone", srv.repo_url("proj"), str(tmp_path / "c"), config_dir=cfg))
        # a second server's token goes in the same file, still 0600
        tok2 = users(tmp_path / "srv2", {"bo2": None}, "x")["bo2"]
        ok(exact("login", other.url, "--token", tok2, config_dir=cfg))
        assert stat.S_IMODE(creds.stat().st_mode) == 0o600
        assert json.loads(creds.read_text())["servers"] == {srv.url: tok, other.url: tok2}
        assert not re.search(r"exv_", (tmp_path / "c" / ".exact" / "config.json").read_text())
