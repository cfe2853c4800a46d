"""Robustness: long names, huge coordinates, odd numbers and boxes, oversized bodies against a real
``exact serve``, and a bounded property-based fuzz of every route of the OpenAPI document (0 replies >= 500)."""

from __future__ import annotations

import json
import re
import shutil
import socket
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlencode

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from exactvc.access import AccessStore
from exactvc.images import fingerprint_file
from exactvc.objects import ImageRecord

from .conftest import REAL_SLIDE, square
from .server_fixtures import (
    AUTHOR,
    Reply,
    ServerProcess,
    ThreadServer,
    fsck_clean,
    make_repo,
    request,
    thread_server,
    users,
)
from .test_server_hardening import documented_errors

IMAGE = "slide-1"


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    base = tmp_path_factory.mktemp("fuzz")
    root, folder = base / "root", base / "slides"
    root.mkdir()
    folder.mkdir()
    shutil.copy(REAL_SLIDE, folder / "cmu.svs")
    fp = fingerprint_file(REAL_SLIDE)
    repo = make_repo(root / "proj", IMAGE, n=20)
    repo.add_image_record(ImageRecord("cmu", fp, 2220, 2967, 1, 0.499, "aperio"))
    repo.commit("slide", author=AUTHOR)
    make_repo(root / "priv", IMAGE)
    tok = users(root, {"admin": None, "anna": "annotate", "rita": "read"}, "proj")
    acc = AccessStore(root)
    acc.grant("proj", "admin", "admin")
    # a pull request (#1), so that the fuzz reaches the pull request routes' handlers too
    from exactvc.history import commit_changes
    from exactvc.pulls import service
    from exactvc.pulls.store import PullStore

    commit_changes(repo, "users/anna/x", None, IMAGE, "one more cell", AUTHOR,
                   create=[{"label": "cell", "geometry": square(500, 500)}], start="main")
    service.create(repo, PullStore(root), "proj", "anna", "fuzz me", "", "users/anna/x", "main")
    with thread_server(root, slide_folders=[str(folder)]) as srv:
        ids = sorted(a.id for a in repo.annotations(IMAGE))
        yield {"srv": srv, "root": root, "tok": tok, "fp": fp, "ids": ids, "head": repo.head_commit()}


def _get(w: dict[str, Any], path: str, who: str | None = "admin") -> Reply:
    srv: ThreadServer = w["srv"]
    return request("GET", srv.url + path, token=w["tok"][who] if who else None)


def _edit(w: dict[str, Any], body: dict[str, Any]) -> Reply:
    srv: ThreadServer = w["srv"]
    return request("POST", srv.url + "/api/v1/repos/proj/edits", {"image": IMAGE, "expected_parent": None, **body},
                   token=w["tok"]["admin"])


def _json_4xx(rep: Reply, status: int | None = None, kind: str | None = None) -> None:
    assert 400 <= rep.status < 500, (rep.status, rep.body[:300])
    err = rep.error()
    if status is not None:
        assert rep.status == status, (rep.status, err)
    if kind is not None:
        assert err["type"] == kind, err


# --- 11. long names, huge coordinates ------------------------------------------------------------------


@pytest.mark.parametrize("path", ["/api/v1/repos/proj/commits/{long}", "/api/v1/repos/proj/log?rev={long}",
                                  "/api/v1/repos/proj/images?rev={long}", "/api/v1/repos/proj/labels?rev={long}",
                                  "/api/v1/repos/proj/diff?old={long}&new=HEAD",
                                  "/api/v1/repos/proj/images/slide-1/annotations?rev={long}",
                                  "/api/v1/repos/proj/commits/{long}~3", "/api/v1/repos/{long}/refs",
                                  "/{long}/info/refs", "/api/v1/repos/proj/images/{long}/annotations"])
@pytest.mark.parametrize("n", [255, 256, 300, 4000])
def test_long_revisions_and_names_are_4xx(world: dict[str, Any], path: str, n: int) -> None:
    _json_4xx(_get(world, path.format(long="r" * n)))


@pytest.mark.parametrize("rev", ["../../../../../../etc/passwd@{0}", "..@{0}", "heads/../../HEAD@{0}",
                                 "r" * 300 + "@{0}", "main@{x}", "main@{99999999999999999999}", "@{0}",
                                 "tags@{0}", "main/@{0}"])
def test_reflog_revisions_stay_inside_the_repository(world: dict[str, Any], rev: str) -> None:
    for path in ("/api/v1/repos/proj/log?rev=", "/api/v1/repos/proj/images?rev="):
        rep = _get(world, path + quote(rev, safe=""))
        assert rep.status in (200, 404, 422), (rev, rep.status, rep.body[:300])
        if rep.status != 200:
            assert rep.error()["type"] in ("not_found", "invalid_input")
        assert b"root:" not in rep.body


def test_long_branch_names_and_huge_coordinates_are_4xx(world: dict[str, Any]) -> None:
    for n in (255, 256, 300):
        rep = _edit(world, {"branch": "b" * n, "create": [{"label": "cell", "geometry": square(1, 1)}]})
        _json_4xx(rep, 422, "invalid_input")
    for xy in ([1e308, 1e308], [-1e308, 5], [1e20, 1], [10**30, 1], [2**63, 2**63]):
        rep = _edit(world, {"create": [{"label": "mitosis", "geometry": {"type": "Point", "coordinates": xy}}]})
        _json_4xx(rep, 422, "invalid_geometry")
    poly = {"type": "Polygon", "coordinates": [[[0, 0], [1e308, 0], [1e308, 1e308], [0, 0]]]}
    _json_4xx(_edit(world, {"create": [{"label": "cell", "geometry": poly}]}), 422, "invalid_geometry")
    big = "x" * 300
    _json_4xx(_edit(world, {"from": big, "create": [{"label": "cell", "geometry": square(1, 1)}]}), 404)


# --- 12. boxes and integers ---------------------------------------------------------------------------


@pytest.mark.parametrize("bbox", ["nan,nan,nan,nan", "0,0,inf,10", "-inf,0,10,10", "10,0,0,10", "0,10,10,0",
                                  "1,2,3", "1,2,3,4,5", "a,b,c,d", "", "1e999,0,1,1"])
def test_bad_boxes_are_refused(world: dict[str, Any], bbox: str) -> None:
    rep = _get(world, f"/api/v1/repos/proj/images/{IMAGE}/annotations?bbox={quote(bbox)}")
    _json_4xx(rep, 422, "invalid_input")


@pytest.mark.parametrize("value", ["１２", " 12 ", "1_0", "+5", "-1", "0x10", "1e2", "12.0", "", "9" * 40])
def test_integers_are_ascii_digits(world: dict[str, Any], value: str) -> None:
    for path in (f"/api/v1/repos/proj/images/{IMAGE}/annotations?limit=", "/api/v1/repos/proj/log?n=",
                 f"/slides/{world['fp']}/thumbnail.jpeg?size=", f"/slides/{world['fp']}.dzi?frame="):
        _json_4xx(_get(world, path + quote(value)), 422, "invalid_input")


def test_a_good_box_and_limit_still_work(world: dict[str, Any]) -> None:
    rep = _get(world, f"/api/v1/repos/proj/images/{IMAGE}/annotations?bbox=0,0,50,50&limit=12")
    assert rep.status == 200 and 1 <= len(rep.json()["annotations"]) <= 12, rep.body[:300]
    assert _get(world, f"/api/v1/repos/proj/images/{IMAGE}/annotations?bbox=5,5,5,5").status == 200


# --- 13. oversized bodies, refused from Content-Length by a real `exact serve` ----------------------------


def test_huge_content_length_gets_the_json_413_promptly(tmp_path: Path) -> None:
    root = tmp_path / "root"
    make_repo(root / "proj", IMAGE)
    tok = users(root, {"admin": None}, "proj")["admin"]
    AccessStore(root).grant("proj", "admin", "admin")
    srv = ServerProcess(root, tmp_path / "serve.log")
    try:
        host, port = srv.url.split("//")[1].split(":")
        for path in ("/proj/push", "/api/v1/repos/proj/edits", f"/slides/{'0' * 64}/upload?offset=0"):
            t0 = time.monotonic()
            with socket.create_connection((host, int(port)), timeout=10) as s:
                s.sendall(f"POST {path} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {tok}\r\n"
                          f"Content-Type: application/json\r\nContent-Length: {600 * 1000 * 1000}\r\n\r\n{{}}"
                          .encode())
                data = b""
                while b"\r\n\r\n" not in data or len(data.split(b"\r\n\r\n", 1)[1]) < _length(data):
                    more = s.recv(65536)
                    if not more:
                        break
                    data += more
            assert time.monotonic() - t0 < 5, "the 413 must not wait for the body"
            head, body = data.split(b"\r\n\r\n", 1)
            assert head.startswith(b"HTTP/1.1 413"), head
            assert b"content-type: application/json" in head.lower(), head
            err = json.loads(body)["error"]
            assert err["type"] == "too_large" and "limit" in err["message"], err
    finally:
        srv.stop()


@pytest.mark.parametrize("raw, status, kind", [
    (b"GET / HTTP/1.1\r\nHost: x\r\nContent-Length: abc\r\n\r\n", 400, "bad_request"),
    (b"GET /x HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip\r\n\r\n", 501, "not_implemented"),
    (b"POST /proj/push HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n", 400, "bad_request"),
    (b"POST /proj/push HTTP/1.1\r\nHost: x\r\nContent-Length: 99999999999\r\n\r\n", 413, "too_large")])
def test_the_http_servers_own_errors_are_json(world: dict[str, Any], raw: bytes, status: int, kind: str) -> None:
    srv: ThreadServer = world["srv"]
    with socket.create_connection(("127.0.0.1", int(srv.url.rsplit(":", 1)[1])), timeout=10) as s:
        s.sendall(raw)
        data = b""
        while more := s.recv(65536):
            data += more
    head, body = data.split(b"\r\n\r\n", 1)
    assert head.startswith(f"HTTP/1.1 {status}".encode()), head
    assert b"content-type: application/json" in head.lower(), head
    assert json.loads(body)["error"]["type"] == kind == next(k for k, v in documented_errors().items()
                                                           if k == kind and v == status)


def _length(data: bytes) -> int:
    m = re.search(rb"(?i)content-length:\s*(\d+)", data)
    return int(m.group(1)) if m else 0


# --- acceptance 2: a bounded fuzz of every route from the OpenAPI document ------------------------------


WEIRD = ["", " ", "HEAD", "HEAD~999999", "HEAD^^^^", "main", "v1", "heads/main", "refs/heads/main", "tags/v1",
         "..", "../..", "%00", "\x00", "１２", " 12 ", "1_0", "-1", "0", "1", "4096", "99999999999999999999", "nan",
         "inf", "1e308", "-0", "r" * 300, "é" * 100, "a/b", "proj", "priv", "nope", "slide-1", "cmu", "main@{1}",
         "..@{0}", "HEAD@{99}", "r" * 300 + "@{0}"]


def _ops() -> list[tuple[str, str, dict[str, Any]]]:
    from server.openapi import OPENAPI

    return [(path, method, op) for path, item in sorted(OPENAPI["paths"].items())
            for method, op in sorted(item.items())]


def _value(schema: dict[str, Any], name: str, w: dict[str, Any]) -> st.SearchStrategy[str]:
    """Mostly values that get past the first checks (a known repository, slide, revision, a number in
    range), so the fuzz reaches the code behind them; sometimes odd, long or arbitrary text."""
    known: list[str] = {"name": ["proj", "proj", "proj", "priv", "nope"], "fp": [w["fp"], w["fp"], "0" * 64, "zz"],
                        "image": [IMAGE, IMAGE, "cmu"], "rev": ["HEAD", "main", w["head"].hex(), "HEAD~1"],
                        "old": ["HEAD~1", "main"], "new": ["HEAD", "main"],
                        "cursor": w["ids"][:2], "bbox": ["0,0,100,100", "0,0,1e9,1e9", "50,50,10,10"],
                        "level": ["12", "8", "0"], "col": ["0", "3", "9"], "row": ["0", "4", "12"],
                        "suffix": [".svs", ".tiff"], "label": ["cell", "mitosis"],
                        "n": ["1", "1", "2"], "cid": ["1", "2"], "a": ["HEAD~1", "main"], "b": ["HEAD", "main"]
                        }.get(name, [])
    good: st.SearchStrategy[str]
    if schema.get("type") == "integer":
        lo, hi = schema.get("minimum", -(2**40)), schema.get("maximum", 2**40)
        good = st.integers(lo, min(hi, lo + 5000)).map(str) | st.integers(lo, hi).map(str)
    elif "enum" in schema:
        good = st.sampled_from([str(x) for x in schema["enum"]])
    else:
        good = st.text(max_size=40)
    odd = st.sampled_from(WEIRD) | st.text(max_size=300)
    known_s = st.sampled_from(known) if known else good
    # weights by hand (one_of draws its branches evenly): 6 in 10 known, 2 by the schema, 2 odd
    return st.integers(0, 9).flatmap(lambda i: known_s if i < 6 else good if i < 8 else odd)


JSON = st.recursive(st.none() | st.booleans() | st.integers(-(2**70), 2**70) | st.floats(allow_nan=False)
                    | st.text(max_size=30),
                    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner,
                                                                                  max_size=4),
                    max_leaves=12)


def _body(schema: dict[str, Any] | None, w: dict[str, Any]) -> st.SearchStrategy[bytes]:
    raw = st.binary(max_size=200)
    if schema is None:
        return st.just(b"")
    if schema.get("format") == "binary":
        return raw
    props = schema.get("properties", {})
    fields: dict[str, st.SearchStrategy[Any]] = {}
    for k in props:
        extra = {"ids": st.lists(st.sampled_from([w["head"].hex(), "00" * 32]), max_size=3),
                 "wants": st.lists(st.sampled_from([w["head"].hex(), "11" * 32]), max_size=3),
                 "create": st.lists(st.fixed_dictionaries({"label": st.sampled_from(["cell", "mitosis", "x"]),
                                                           "geometry": st.just(square(5, 5)) | JSON}), max_size=2),
                 "delete": st.lists(st.sampled_from(w["ids"][:3]) | st.text(max_size=40), max_size=2),
                 "image": st.sampled_from([IMAGE, "nope"])}.get(k, JSON)
        fields[k] = extra
    obj = st.fixed_dictionaries({}, optional=fields) if fields else st.just({})
    return st.one_of(obj.map(lambda d: json.dumps(d).encode()), JSON.map(lambda d: json.dumps(d).encode()), raw)


@st.composite
def _requests(draw: st.DrawFn, w: dict[str, Any]) -> tuple[str, str, bytes, str | None]:
    path, method, op = draw(st.sampled_from(_ops()))
    query: dict[str, str] = {}
    for p in op.get("parameters", []):
        v = draw(_value(p.get("schema", {}), p["name"], w))
        if p["in"] == "path":
            path = path.replace("{" + p["name"] + "}", quote(v, safe="") or "x")
        elif p.get("required") or draw(st.booleans()):
            query[p["name"]] = v
    schema = None
    if "requestBody" in op:
        schema = next(iter(op["requestBody"]["content"].values()))["schema"]
    body = draw(_body(schema, w))
    who = draw(st.integers(0, 5).map(lambda i: ["admin", "admin", "admin", "anna", "rita", None][i]))
    url = path + ("?" + urlencode(query) if query else "")
    return method.upper(), url, body, who


def test_fuzz_every_route_no_server_errors(world: dict[str, Any]) -> None:
    doc = documented_errors()
    srv: ThreadServer = world["srv"]
    seen: dict[str, int] = {}
    local = str(Path(world["root"]).resolve().parent).encode()

    @settings(max_examples=600, deadline=None, derandomize=True, database=None,
              suppress_health_check=list(HealthCheck))
    @given(_requests(world))
    def one(req: tuple[str, str, bytes, str | None]) -> None:
        method, url, body, who = req
        rep = request(method, srv.url + url, body or None, token=world["tok"][who] if who else None, timeout=30)
        assert rep.status < 500, (method, url, body[:200], rep.status, rep.body[:300])
        assert local not in rep.body, (method, url, rep.body[:300])  # no reply names the server's files
        if rep.status >= 400:
            err = rep.error()
            assert doc.get(err["type"]) == rep.status, (method, url, rep.status, err)
        if rep.status < 300:  # reached a handler and got through it
            key = url.split("?")[0].split("/")[1]
            seen[key] = seen.get(key, 0) + 1

    t0 = time.monotonic()
    one()
    assert time.monotonic() - t0 < 60
    # REST, tiles and sync requests got through to their handlers, not only refusals at the door
    assert {"api", "slides", "proj"} <= set(seen) and sum(seen.values()) >= 30, seen
    fsck_clean(world["root"] / "proj")
