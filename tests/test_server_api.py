"""Bad input to a real server (each refused with a 4xx JSON error, the repository untouched) and the
REST API v1 (OpenAPI document, read endpoints, annotation pages, edits with expected_parent)."""

from __future__ import annotations

import io
import itertools
import struct
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

import blake3
import pytest

from exactvc import codec, transfer
from exactvc.access import AccessStore
from exactvc.history import commit_changes
from exactvc.ids import parse_id
from exactvc.objects import Commit
from exactvc.repo import Repository
from exactvc.store import TYPE_CODES, pending

from .conftest import square
from .server_fixtures import (
    Reply,
    ThreadServer,
    exact,
    frame,
    fsck_clean,
    make_repo,
    object_stream,
    ok,
    push_body,
    push_commit,
    ref_files,
    repo_files,
    request,
    stream,
    update,
    users,
)

IMAGE = "slide-1"
BIG = "big-1"
MAX_BYTES = 64 * 1024


@dataclass
class Api:
    root: Path
    srv: ThreadServer
    tok: dict[str, str]
    local: Repository  # a copy of proj's history, to build pushes from

    def u(self, path: str) -> str:
        return self.srv.url + path

    def get(self, path: str, who: str = "admin") -> Reply:
        return request("GET", self.u(path), token=self.tok.get(who))

    def state(self) -> tuple[object, ...]:
        """Every file of every repository (caches aside), and which entries ROOT holds."""
        return (repo_files(self.root / "proj"), ref_files(self.root / "proj"), repo_files(self.root / "big"),
                sorted(p.name for p in self.root.iterdir() if not p.name.startswith(".exact-server.sqlite")))


@pytest.fixture(scope="module")
def api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Api]:
    tmp = tmp_path_factory.mktemp("api")
    root = tmp / "srv"
    root.mkdir()
    proj = make_repo(root / "proj", IMAGE, n=20)
    proj.add_label("tumor", shape="polygon", color="#0000ff")
    with proj.edit(IMAGE) as ed:
        for i in range(5):
            ed.add("tumor", square(5000 + 100 * i, 5000, 50))
    proj.commit("tumor regions", author="Ann <ann@example.org>")
    big = make_repo(root / "big", BIG, n=2500)
    with big.edit(BIG) as ed:
        for i in range(500):
            ed.add("mitosis", {"type": "Point", "coordinates": [10 + 30 * (i % 100), 5000 + 30 * (i // 100)]})
    big.commit("points")
    tok = users(root, {"admin": "admin", "maintainer": "maintain", "annotator": "annotate", "reader": "read"},
                "proj")
    acc = AccessStore(root)
    for name, role in {"admin": "admin", "reader": "read"}.items():
        acc.grant("big", name, role)
    local = Repository.init(tmp / "local")
    main = proj.head_commit()
    assert main is not None
    local.store.write(transfer.read_stream(local, _as_file(_full_stream(proj, main))))
    local.refs.cas("heads/main", None, main)
    srv = ThreadServer(root, max_request_bytes=MAX_BYTES)
    try:
        yield Api(root, srv, tok, local)
    finally:
        srv.close()


def _full_stream(repo: Repository, tip: bytes) -> bytes:
    return object_stream(repo, transfer.objects_to_send(repo, [tip], []))


def _as_file(b: bytes) -> io.BytesIO:
    return io.BytesIO(b)


_WORK = itertools.count()


def _new_commit(api: Api, n: int = 3, x: float = 20000) -> tuple[bytes, bytes]:
    """A new commit on top of proj's main, in the local copy: (main, new commit)."""
    main = api.local.refs.read("heads/main")
    assert main is not None
    cid, _ = commit_changes(api.local, f"work-{next(_WORK)}", None, IMAGE, "more", "Bo <bo@example.org>", start=main.hex(),
                            create=[{"label": "cell", "geometry": square(x + 20 * i, 100)} for i in range(n)])
    return main, cid


# --- bad input: refused with a 4xx JSON error, nothing changes -----------------------------------------


def _push(api: Api, body: bytes, **kw: Any) -> Reply:
    return request("POST", api.u("/proj/push"), body, token=api.tok["admin"], **kw)


def _good_push(api: Api) -> tuple[bytes, bytes]:
    """(header part, stream part) of a valid push of a new commit to main."""
    main, cid = _new_commit(api)
    body = push_commit(api.local, "heads/main", main, cid, [main])
    (hlen,) = struct.unpack("<I", body[:4])
    return body[:4 + hlen], body[4 + hlen:]


def _missing_root(api: Api) -> bytes:
    main = api.local.refs.read("heads/main")
    assert main is not None
    c = api.local.commit_object(main)
    bad = pending("commit", Commit(b"\x11" * 32, (main,), c.author, c.author, c.time + 1, 0, "root is missing",
                                   c.generation + 1).to_body())
    return push_body({"updates": [update("heads/main", main, bad.oid)]},
                     stream([frame("commit", bad.oid, bad.data)]))


def _wrong_id(api: Api) -> bytes:
    head, st = _good_push(api)
    items = transfer.read_stream(api.local, _as_file(st))
    p = items[0]
    frames = [frame(q.type, q.oid, q.data) for q in items[1:]]
    frames.insert(0, frame(p.type, bytes(32 - 1) + b"\x01", p.data))  # right bytes, someone else's id
    return head + stream(frames)


def _bad_frames(kind: str) -> Callable[[Api], bytes]:
    def make(api: Api) -> bytes:
        head, st = _good_push(api)
        items = transfer.read_stream(api.local, _as_file(st))
        frames = [frame(q.type, q.oid, q.data) for q in items]
        body = transfer.MAGIC + b"".join(frames)
        if kind == "checksum":
            end = struct.pack("<BI", 0, len(frames))
            return head + body + end + b"\0" * 32
        if kind == "count":
            b = body + struct.pack("<BI", 0, len(frames) + 1)
            return head + b + blake3.blake3(b).digest()
        if kind == "type":
            return head + stream([struct.pack("<B32sI", 99, b"\1" * 32, 1) + b"x"])
        if kind == "zlib":
            return head + stream([struct.pack("<B32sI", TYPE_CODES["commit"], b"\1" * 32, 5) + b"notzl"])
        if kind == "magic":
            return head + b"NOTASTREAM" + st[8:]
        if kind == "undecodable":
            raw = b"\xc1\xc1\xc1"  # not msgpack, under its own (correct) id
            return head + stream([frame("commit", codec.object_id("commit", raw), raw)])
        raise AssertionError(kind)

    return make


BAD_PUSHES: list[Any] = [
    pytest.param(lambda a: b"".join(_good_push(a))[:-200], "bad_stream", "truncated", id="truncated-stream"),
    pytest.param(lambda a: (lambda h, s: h + s[:9])(*_good_push(a)), "bad_stream", "truncated",
                 id="truncated-after-magic"),
    pytest.param(lambda a: b"\x05\x00", "invalid_input", "truncated", id="truncated-length"),
    pytest.param(lambda a: struct.pack("<I", 200) + b'{"updates": []', "invalid_input", "not valid JSON",
                 id="truncated-header"),
    pytest.param(_wrong_id, "bad_stream", "do not match its id", id="bytes-do-not-match-id"),
    pytest.param(_bad_frames("checksum"), "bad_stream", "checksum", id="bad-checksum"),
    pytest.param(_bad_frames("count"), "bad_stream", "objects", id="wrong-count"),
    pytest.param(_bad_frames("type"), "bad_stream", "type code", id="unknown-type"),
    pytest.param(_bad_frames("zlib"), "bad_stream", "decompress", id="not-zlib"),
    pytest.param(_bad_frames("magic"), "bad_stream", "not an exactvc object stream", id="bad-magic"),
    pytest.param(_bad_frames("undecodable"), "bad_stream", "does not decode", id="undecodable-object"),
    pytest.param(lambda a: push_body(b"{not json", stream([])), "invalid_input", "not valid JSON",
                 id="header-not-json"),
    pytest.param(lambda a: push_body({"updates": []}, stream([])), "invalid_input", "no ref updates",
                 id="no-updates"),
    pytest.param(lambda a: push_body({"updates": [{"ref": "heads/../../x", "old": None, "new": "00" * 32}]},
                                     stream([])), "invalid_input", "invalid ref name", id="traversal-ref-name"),
    pytest.param(lambda a: push_body({"updates": [{"ref": "heads/x", "old": None, "new": "zz"}]}, stream([])),
                 "invalid_input", "not an object id", id="bad-object-id"),
    pytest.param(_missing_root, "missing_reference", "neither sent nor stored", id="references-missing-object"),
    pytest.param(lambda a: push_body(b"[]", stream([])), "invalid_input", "", id="header-not-an-object"),
]


@pytest.mark.parametrize(("make", "kind", "text"), BAD_PUSHES)
def test_bad_push_is_refused_and_changes_nothing(api: Api, make: Callable[[Api], bytes], kind: str,
                                                 text: str) -> None:
    body = make(api)
    before = api.state()
    rep = _push(api, body)
    assert 400 <= rep.status < 500, (rep.status, rep.body)
    err = rep.error()
    assert err["type"] == kind and text in err["message"], err
    assert api.state() == before


def test_a_good_push_after_the_bad_ones_goes_through(api: Api) -> None:
    """The bodies above are bad only where they say: the same construction, intact, is accepted."""
    head, st = _good_push(api)
    rep = _push(api, head + st)
    assert rep.status == 200, rep.body
    main = Repository.open(api.root / "proj").refs.read("heads/main")
    assert main is not None
    api.local.refs.cas("heads/main", api.local.refs.read("heads/main"), main)


@pytest.mark.parametrize("chunked", [False, True], ids=["content-length", "chunked"])
@pytest.mark.parametrize("endpoint", ["push", "fetch", "negotiate"])
def test_oversized_request_is_413(api: Api, endpoint: str, chunked: bool) -> None:
    if endpoint == "push":
        main, cid = _new_commit(api, n=1)
        body = push_commit(api.local, "heads/main", main, cid, [main]) + b"\0" * (MAX_BYTES + 1)
    else:
        body = b'{"ids": []}' + b" " * (MAX_BYTES + 10)
    before = api.state()
    rep = request("POST", api.u(f"/proj/{endpoint}"), body, token=api.tok["admin"], chunked=chunked)
    assert rep.status == 413, rep.body[:300]
    assert rep.error()["type"] == "too_large"
    assert api.state() == before


def test_oversized_edit_is_413(api: Api) -> None:
    before = api.state()
    big = [{"label": "cell", "geometry": square(10 * i, 10)} for i in range(1000)]
    rep = request("POST", api.u("/api/v1/repos/proj/edits"), {"branch": "huge", "image": IMAGE, "create": big},
                  token=api.tok["admin"])
    assert rep.status == 413 and rep.error()["type"] == "too_large"
    assert api.state() == before


TRAVERSALS: list[Any] = [
    "/..%2F..%2Fetc/info/refs",
    "/..%2f..%2fetc%2fpasswd/info/refs",
    "/%2e%2e/info/refs",
    "/../info/refs",
    "/%2e%2e%2fproj/info/refs",
    "/proj%2F..%2Fbig/info/refs",
    "/a/b/info/refs",
    "/%2Fetc/info/refs",
    "/.exact-server.sqlite/info/refs",
    "/proj%00/info/refs",
    "/api/v1/repos/..%2Fproj",
    "/api/v1/repos/%2e%2e/refs",
    "/api/v1/repos/..%2F..%2Fetc/log",
    "/api/v1/repos/proj%2F..%2Fbig/images",
    "/api/v1/repos/" + quote("/etc", safe="") + "/refs",
    "/proj%2F/info/refs",
]


@pytest.mark.parametrize("path", TRAVERSALS)
def test_path_traversal_repository_names_are_404(api: Api, path: str) -> None:
    before = api.state()
    for tok in (api.tok["admin"], None):
        rep = request("GET", api.u(path), token=tok)
        assert rep.status == 404, (path, rep.status, rep.body)
        assert rep.error()["type"] == "not_found"
        assert b"root:" not in rep.body and str(api.root).encode() not in rep.body
    assert api.state() == before


@pytest.mark.parametrize("name", ["..%2Fbig", "%2e%2e", "..", "a%2Fb", ".exact", "proj%2F..%2Fbig",
                                  "proj%2Fx", "%2F..%2Fbig"])
def test_path_traversal_names_cannot_be_pushed_to(api: Api, name: str) -> None:
    main, cid = _new_commit(api, n=1)
    before = api.state()
    rep = request("POST", api.u(f"/{name}/push"), push_commit(api.local, "heads/main", main, cid, [main]),
                  token=api.tok["admin"])
    assert rep.status == 404 and rep.error()["type"] == "not_found", rep.body
    assert api.state() == before


MALFORMED: list[Any] = [
    ("POST", "/proj/negotiate", b"{not json", "not valid JSON"),
    ("POST", "/proj/negotiate", b'{"ids": "abc"}', "must be a list"),
    ("POST", "/proj/negotiate", b'{"ids": [null]}', "null id"),
    ("POST", "/proj/negotiate", b"[1, 2]", "must be a list"),
    ("POST", "/proj/fetch", b"", "not valid JSON"),
    ("POST", "/proj/fetch", b"[]", "must be an object"),
    ("POST", "/proj/fetch", b'{"wants": ["zz"]}', "not an object id"),
    ("POST", "/proj/fetch", b'{"wants": ["' + b"00" * 32 + b'"]}', "unknown object"),
    ("POST", "/api/v1/repos/proj/edits", b"{not json", "not valid JSON"),
    ("POST", "/api/v1/repos/proj/edits", b"[]", "must be a JSON object"),
    ("POST", "/api/v1/repos/proj/edits", b'{"image": "slide-1", "branch": 5}', "branch must be a string"),
    ("POST", "/api/v1/repos/proj/edits", b'{"image": "slide-1", "branch": "x", "create": {}}', "must be a list"),
    ("POST", "/api/v1/repos/proj/edits", b'{"image": "slide-1", "branch": "x", "expected_parent": "zz"}',
     "expected_parent"),
    ("POST", "/api/v1/repos/proj/edits", b'{"image": "slide-1", "branch": "x", "create": [{"label": "cell"}]}',
     "malformed edit"),
    ("POST", "/api/v1/repos/proj/edits", b'{"image": "slide-1", "branch": "../../etc", "create": []}',
     "invalid ref name"),
    ("POST", "/api/v1/repos/proj/roles", b"{not json", "not valid JSON"),
    ("POST", "/api/v1/repos/proj/roles", b'{"who": 1}', "who must be"),
    ("POST", "/api/v1/repos/proj/roles", b'{"who": "reader", "role": "god"}', "unknown role"),
    ("PUT", "/api/v1/repos/proj/settings", b"{not json", "not valid JSON"),
    ("PUT", "/api/v1/repos/proj/settings", b'{"protected": "main"}', "protected must be a list"),
    ("GET", "/api/v1/repos/proj/images/slide-1/annotations?limit=0", None, "limit"),
    ("GET", "/api/v1/repos/proj/images/slide-1/annotations?limit=many", None, "limit"),
    ("GET", "/api/v1/repos/proj/images/slide-1/annotations?bbox=1,2,3", None, "bbox"),
    ("GET", "/api/v1/repos/proj/images/slide-1/annotations?bbox=a,b,c,d", None, "bbox"),
    ("GET", "/api/v1/repos/proj/images/slide-1/annotations?cursor=nope", None, "annotation id"),
    ("GET", "/api/v1/repos/proj/log?n=-1", None, "n must be"),
    ("GET", "/api/v1/repos/proj/diff?old=HEAD", None, "old and new"),
]


@pytest.mark.parametrize(("method", "path", "body", "text"), MALFORMED,
                         ids=[f"{m} {p.split('/proj/')[-1][:40]} {(b or b'')[:24]!r}" for m, p, b, _ in MALFORMED])
def test_malformed_requests_are_4xx_json(api: Api, method: str, path: str, body: bytes | None, text: str) -> None:
    before = api.state()
    rep = request(method, api.u(path), body, token=api.tok["admin"],
                  headers={"Content-Type": "application/json"} if body is not None else None)
    assert rep.status in (400, 422), (rep.status, rep.body)
    assert text in rep.error()["message"], rep.body
    assert api.state() == before


@pytest.mark.parametrize("field", ["wants", "haves"])
def test_fetch_naming_a_non_commit_is_4xx(api: Api, field: str) -> None:
    proj = Repository.open(api.root / "proj")
    main = proj.refs.read("heads/main")
    assert main is not None
    snap = proj.commit_object(main).root
    body = {"wants": [snap.hex()]} if field == "wants" else {"wants": [main.hex()], "haves": [snap.hex()]}
    rep = request("POST", api.u("/proj/fetch"), body, token=api.tok["admin"])
    assert 400 <= rep.status < 500, rep.body
    rep.error()


def test_a_tag_must_point_at_a_commit_or_tag(api: Api) -> None:
    proj = Repository.open(api.root / "proj")
    main = proj.refs.read("heads/main")
    assert main is not None
    snap = proj.commit_object(main).root
    before = api.state()
    rep = _push(api, push_body({"updates": [update("tags/bad", None, snap)]}, stream([])))
    try:
        assert 400 <= rep.status < 500, rep.body
        assert api.state() == before
    finally:
        if proj.refs.read("tags/bad") is not None:  # keep the shared server usable for the other tests
            proj.refs.cas("tags/bad", snap, None)


def test_ref_name_collision_does_not_reveal_server_paths(api: Api) -> None:
    main = api.local.refs.read("heads/main")
    assert main is not None
    before = api.state()
    rep = _push(api, push_body({"updates": [update("heads/main/x", None, main)]}, stream([])))
    assert 400 <= rep.status < 500, rep.body
    assert str(api.root) not in rep.error()["message"], rep.body
    assert api.state() == before


# --- REST API v1 --------------------------------------------------------------------------------------


def test_openapi_document_lists_the_paths_and_they_answer(api: Api) -> None:
    rep = api.get("/api/v1/openapi.json", who="nobody")
    assert rep.status == 200
    doc = rep.json()
    assert doc["openapi"].startswith("3.") and doc["info"]["version"] == "1"
    paths = doc["paths"]
    for p in ("/api/v1/repos", "/api/v1/repos/{name}", "/api/v1/repos/{name}/refs",
              "/api/v1/repos/{name}/commits/{rev}", "/api/v1/repos/{name}/log", "/api/v1/repos/{name}/diff",
              "/api/v1/repos/{name}/images", "/api/v1/repos/{name}/labels",
              "/api/v1/repos/{name}/images/{image}/annotations", "/api/v1/repos/{name}/edits"):
        assert p in paths, p
    assert "post" in paths["/api/v1/repos/{name}/edits"]
    proj = Repository.open(api.root / "proj")
    values = {"name": "proj", "rev": "HEAD", "image": IMAGE, "commit": (proj.head_commit() or b"").hex(),
              "kind": "d", "z": "0", "x": "0", "y": "0", "frame": "0", "aid": next(iter(proj.annotations(IMAGE))).id}
    for p, ops in paths.items():
        if "get" not in ops or p == "/api/v1/session":  # a browser session's, not a token's (test_server_session)
            continue
        if not p.startswith("/api/v1/"):  # slides and sync: tests/test_server_tiles.py, test_server_sync.py
            continue
        if "/pulls/{n}" in p or "{id}" in p or "{ident}" in p or "/artefacts/{artefact}" in p or "{mid}" in p:
            # a pull request (test_pulls_refusals.py), EXACT ids (test_exact_compat.py), runs (test_runs.py),
            # an open map (test_annomap.py)
            continue
        url = p.format(**values)
        if p.endswith("/diff") or p.endswith("/changes"):
            url += "?old=HEAD~1&new=HEAD"
        if p.endswith("/compare") or p.endswith("/matches"):
            url += "?a=HEAD~1&b=HEAD"
        if p.endswith("/agreement"):
            url += "?rev=HEAD~1&rev=HEAD"
        if p.endswith("/maps"):
            url += "?label=cell"
        got = api.get(url)
        assert got.status == 200, (p, got.body[:200])
        assert set(ops["get"]["responses"]) >= {"200", "401", "403", "404"}
    assert doc["components"]["schemas"]["Error"]["required"] == ["error"]


def test_every_api_route_is_in_the_openapi_document(api: Api) -> None:
    doc = api.get("/api/v1/openapi.json").json()
    for rule in api.srv.app.url_map.iter_rules():
        path = str(rule.rule)
        if not path.startswith("/api/v1/") or path.endswith("openapi.json"):
            continue
        oapi = path.replace("<", "{").replace(">", "}")
        assert oapi in doc["paths"], oapi
        for m in (rule.methods or set()) - {"HEAD", "OPTIONS"}:
            assert m.lower() in doc["paths"][oapi], (oapi, m)


def test_repos_refs_log_commits_diff_images_labels(api: Api) -> None:
    proj = Repository.open(api.root / "proj")
    main = proj.refs.read("heads/main")
    assert main is not None
    names = {r["name"]: r["role"] for r in api.get("/api/v1/repos").json()["repos"]}
    assert names == {"proj": "admin", "big": "admin"}
    assert [r["name"] for r in api.get("/api/v1/repos", who="annotator").json()["repos"]] == ["proj"]
    assert api.get("/api/v1/repos", who="nobody").json() == {"repos": []}
    info = api.get("/api/v1/repos/proj", who="reader").json()
    assert info["role"] == "read" and info["head"] == "ref: heads/main"
    assert {"name": "main", "commit": main.hex(), "current": True} in info["branches"]
    assert info["settings"] == {"anonymous_read": False, "protected": ["main"], "required_approvals": 0,
                                "mode": "cooperative", "opinions": 1}
    assert api.get("/api/v1/repos/nope").status == 404
    # no read access: a private repository answers like a missing one (404 signed in, 401 anonymous)
    hidden, missing = api.get("/api/v1/repos/big", who="annotator"), api.get("/api/v1/repos/nobig", who="annotator")
    assert hidden.status == missing.status == 404
    assert hidden.error()["type"] == missing.error()["type"] == "not_found"
    assert api.get("/api/v1/repos/big", who="nobody").status == 401
    assert api.get("/api/v1/repos/nobig", who="nobody").status == 401

    refs = api.get("/api/v1/repos/proj/refs").json()["refs"]
    assert refs == {k: v.hex() for k, v in proj.refs.list().items()}

    log = api.get("/api/v1/repos/proj/log").json()["log"]
    assert [e["id"] for e in log] == [e.to_dict()["id"] for e in proj.log("main")]
    assert log[-2]["message"] == "tumor regions" and log[-2]["author"].startswith("Ann")
    assert len(api.get("/api/v1/repos/proj/log?n=1").json()["log"]) == 1
    assert api.get("/api/v1/repos/proj/log?rev=nope").status == 404

    first, second = log[-1]["id"], log[-2]["id"]
    c = api.get(f"/api/v1/repos/proj/commits/{second}").json()
    assert c["id"] == second and c["parents"] == [first] and c["message"] == "tumor regions"
    assert c["changes"][IMAGE]["added"] == 5
    short = api.get(f"/api/v1/repos/proj/commits/{second[:12]}").json()
    assert short["id"] == second
    assert api.get("/api/v1/repos/proj/commits/deadbeef00").status == 404

    d = api.get(f"/api/v1/repos/proj/diff?old={first}&new={second}").json()["exactvc.diff/v1"]
    assert "slide-1" in str(d)
    stat = api.get(f"/api/v1/repos/proj/diff?old={first}&new={second}&stat=1").json()["exactvc.diff/v1"]
    assert "5" in str(stat)
    assert api.get(f"/api/v1/repos/proj/diff?old={first}&new=nope").status == 404

    imgs = api.get("/api/v1/repos/proj/images").json()["images"]
    assert [(i["name"], i["annotations"]) for i in imgs] == [(IMAGE, proj.count(IMAGE, "main"))]
    old_imgs = api.get(f"/api/v1/repos/proj/images?rev={first}").json()["images"]
    assert old_imgs[0]["annotations"] == 20
    labels = api.get("/api/v1/repos/proj/labels").json()
    assert [lb["name"] for lb in labels["labels"]] == ["cell", "mitosis", "tumor"]
    assert [lb["name"] for lb in api.get(f"/api/v1/repos/proj/labels?rev={first}").json()["labels"]] == [
        "cell", "mitosis"]


def _walk(api: Api, query: str, limit: int) -> tuple[list[dict[str, Any]], int]:
    out: list[dict[str, Any]] = []
    cursor = None
    pages = 0
    while True:
        q = f"/api/v1/repos/big/images/{BIG}/annotations?limit={limit}{query}"
        if cursor:
            q += f"&cursor={cursor}"
        page = api.get(q).json()
        pages += 1
        assert len(page["annotations"]) <= limit
        out.extend(page["annotations"])
        cursor = page["next_cursor"]
        if cursor is None:
            return out, pages
        assert cursor == page["annotations"][-1]["id"]
        assert pages < 1000


def _ordered(ids: list[str]) -> bool:
    keys = [parse_id(i) for i in ids]
    return keys == sorted(keys) and len(set(keys)) == len(keys)


def test_annotation_pages_cover_everything_once_in_id_order(api: Api) -> None:
    big = Repository.open(api.root / "big")
    every = [a.id for a in big.annotations(BIG)]
    assert len(every) == 3000
    got, pages = _walk(api, "", 500)
    assert pages == 6
    assert [a["id"] for a in got] == every
    assert _ordered([a["id"] for a in got])
    first = api.get(f"/api/v1/repos/big/images/{BIG}/annotations?limit=500").json()
    assert first["count"] == 3000 and first["image"] == BIG and len(first["annotations"]) == 500
    a = first["annotations"][0]
    assert set(a) >= {"id", "label", "kind", "geometry"} and a["geometry"]["type"] in ("Polygon", "Point")
    # a limit that divides nothing evenly, and one larger than the image
    assert [x["id"] for x in _walk(api, "", 777)[0]] == every
    one, pages = _walk(api, "", 5000)
    assert pages == 1 and len(one) == 3000


def test_annotation_pages_with_label_and_bbox(api: Api) -> None:
    big = Repository.open(api.root / "big")
    points = [a.id for a in big.annotations(BIG) if a.label == "mitosis"]
    assert len(points) == 500
    got, _ = _walk(api, "&label=mitosis", 120)
    assert [a["id"] for a in got] == points
    assert {a["label"] for a in got} == {"mitosis"}
    box = (0, 0, 1000, 300)  # squares of the first rows, no points
    want = [a.id for a in big.query(BIG, box)]
    assert 0 < len(want) < 3000
    got, pages = _walk(api, "&bbox=" + ",".join(map(str, box)), 37)
    assert [a["id"] for a in got] == want and pages == -(-len(want) // 37)
    assert _ordered(want)
    box2 = (0, 0, 3000, 6000)  # squares and points
    want2 = [a.id for a in big.query(BIG, box2, label="mitosis")]
    assert len(want2) == 500
    got, _ = _walk(api, "&label=mitosis&bbox=" + ",".join(map(str, box2)), 99)
    assert [a["id"] for a in got] == want2
    empty = api.get(f"/api/v1/repos/big/images/{BIG}/annotations?bbox=-100,-100,-50,-50").json()
    assert empty["annotations"] == [] and empty["next_cursor"] is None
    assert api.get(f"/api/v1/repos/big/images/{BIG}/annotations", who="annotator").status == 404
    assert api.get("/api/v1/repos/big/images/nope/annotations").status == 404


def _edit(api: Api, body: dict[str, Any], who: str = "maintainer") -> Reply:
    return request("POST", api.u("/api/v1/repos/proj/edits"), body, token=api.tok.get(who))


def test_edits_with_expected_parent(api: Api) -> None:
    proj = Repository.open(api.root / "proj")
    # create a branch from main with two annotations
    rep = _edit(api, {"branch": "review", "expected_parent": None, "from": "main", "image": IMAGE,
                      "message": "two cells", "create": [{"label": "cell", "geometry": square(30000, 30000)},
                                                         {"label": "cell", "geometry": square(30100, 30000),
                                                          "properties": {"score": 0.5}}]})
    assert rep.status == 201, rep.body
    c1, (a, b) = rep.json()["commit"], rep.json()["created"]
    assert rep.json()["branch"] == "review"
    assert proj.refs.read("heads/review") == bytes.fromhex(c1)
    n = proj.count(IMAGE, "review")
    # update one, delete the other
    rep = _edit(api, {"branch": "review", "expected_parent": c1, "image": IMAGE, "message": "fix",
                      "update": [{"id": a, "label": "tumor"}], "delete": [b]})
    assert rep.status == 201, rep.body
    c2 = rep.json()["commit"]
    page = api.get(f"/api/v1/repos/proj/images/{IMAGE}/annotations?rev=review&limit=5000").json()
    anns = {x["id"]: x for x in page["annotations"]}
    assert anns[a]["label"] == "tumor" and b not in anns and page["count"] == n - 1
    commit = api.get(f"/api/v1/repos/proj/commits/{c2}").json()
    assert commit["parents"] == [c1] and commit["author"].startswith("maintainer")
    # a second write with the stale parent: 409, nothing changes
    before = api.state()
    rep = _edit(api, {"branch": "review", "expected_parent": c1, "image": IMAGE, "message": "stale",
                      "delete": [a]})
    assert rep.status == 409, rep.body
    assert rep.error()["type"] == "ref_conflict" and "reload" in rep.error()["message"]
    rep = _edit(api, {"branch": "review", "expected_parent": None, "image": IMAGE, "message": "stale",
                      "create": [{"label": "cell", "geometry": square(1, 1)}]})
    assert rep.status == 409
    assert api.state() == before
    assert proj.refs.read("heads/review") == bytes.fromhex(c2)
    # refused edits change nothing either
    for body, who, status in [
        ({"branch": "main", "expected_parent": proj.refs.read("heads/main").hex(),  # type: ignore[union-attr]
          "image": IMAGE, "delete": [a]}, "annotator", 403),
        ({"branch": "review", "expected_parent": c2, "image": IMAGE, "delete": [a]}, "reader", 403),
        ({"branch": "review", "expected_parent": c2, "image": IMAGE, "delete": [a]}, "nobody", 401),
        ({"branch": "review", "expected_parent": c2, "image": IMAGE, "message": "x",
          "create": [{"label": "nope", "geometry": square(1, 1)}]}, "maintainer", 422),
        ({"branch": "review", "expected_parent": c2, "image": IMAGE, "message": "x",
          "create": [{"label": "cell", "geometry": square(-500, 1)}]}, "maintainer", 422),
        ({"branch": "review", "expected_parent": c2, "image": IMAGE, "message": "x",
          "update": [{"id": "00000000-0000-7000-8000-000000000000", "label": "cell"}]}, "maintainer", 404),
        ({"branch": "review", "expected_parent": c2, "image": "no-such-image", "delete": [a]}, "maintainer", 404),
        ({"branch": "users/annotator/x", "expected_parent": None, "from": "main", "image": IMAGE, "message": "x",
          "create": [{"label": "cell", "geometry": square(1, 1)}]}, "reader", 403),
    ]:
        rep = _edit(api, body, who)
        assert rep.status == status, (body, who, rep.body)
        rep.error()
    assert api.state() == before
    # annotators edit on their own branch (the default one)
    rep = _edit(api, {"from": "main", "image": IMAGE, "create": [{"label": "cell", "geometry": square(7, 7)}]},
                "annotator")
    assert rep.status == 201 and rep.json()["branch"] == "users/annotator/edits", rep.body


def test_concurrent_edits_with_the_same_parent_one_wins(api: Api) -> None:
    proj = Repository.open(api.root / "proj")
    rep = _edit(api, {"branch": "race", "from": "main", "image": IMAGE, "message": "start",
                      "create": [{"label": "cell", "geometry": square(40000, 40000)}]})
    assert rep.status == 201
    parent = rep.json()["commit"]
    barrier = threading.Barrier(8)

    def send(i: int) -> Reply:
        barrier.wait(timeout=30)
        return _edit(api, {"branch": "race", "expected_parent": parent, "image": IMAGE, "message": f"tab {i}",
                           "create": [{"label": "cell", "geometry": square(41000 + 20 * i, 40000)}]})

    with ThreadPoolExecutor(8) as ex:
        replies = list(ex.map(send, range(8)))
    won = [r for r in replies if r.status == 201]
    assert len(won) == 1, [(r.status, r.body[:120]) for r in replies]
    assert all(r.status == 409 and r.error()["type"] == "ref_conflict" for r in replies if r.status != 201)
    assert proj.refs.read("heads/race") == bytes.fromhex(won[0].json()["commit"])
    assert proj.count(IMAGE, "race") == proj.count(IMAGE, parent) + 1


def test_repositories_stay_consistent(api: Api) -> None:
    """After every hostile push above (forged, truncated, wrong-type ...): the server and a clone are clean."""
    fsck_clean(api.root / "proj")
    fsck_clean(api.root / "big")
    dest = api.root.parent / "clone-after-hostile-pushes"
    ok(exact("clone", api.u("/proj"), str(dest), token=api.tok["admin"]))
    fsck_clean(dest)
