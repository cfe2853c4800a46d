"""Hardening of the server: pixels follow repositories (not fingerprints), strict settings and roles,
unambiguous ref names, hidden private names, hostile pushes refused as fsck would, strict edits, one
error vocabulary over every route."""

from __future__ import annotations

import re
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

import blake3
import pytest

from exactvc import porcelain
from exactvc.errors import ExactError, InvalidInput, RefNameConflict
from exactvc.images import fingerprint_file
from exactvc.objects import Commit, ImageRecord
from exactvc.repo import Repository
from exactvc.store import pending

from .conftest import REAL_SLIDE, square
from .server_fixtures import (
    AUTHOR,
    Reply,
    ThreadServer,
    fsck_clean,
    make_repo,
    object_stream,
    push_body,
    push_commit,
    ref_files,
    request,
    stream,
    thread_server,
    update,
    users,
)

IMAGE = "slide-1"
DOCS = Path(__file__).resolve().parents[1] / "docs" / "api.md"


@dataclass
class Site:
    root: Path
    srv: ThreadServer
    tok: dict[str, str]
    fp: str  # the real slide, referenced by "priv" only
    tmp: Path

    def u(self, path: str) -> str:
        return self.srv.url + path

    def get(self, path: str, who: str | None = "admin", **kw: Any) -> Reply:
        return request("GET", self.u(path), token=self.tok[who] if who else None, **kw)

    def send(self, method: str, path: str, body: Any = None, who: str | None = "admin") -> Reply:
        return request(method, self.u(path), body, token=self.tok[who] if who else None)

    def copy(self, name: str, dest: str) -> Repository:
        """A local copy of server repository ``name`` to build pushes from."""
        shutil.copytree(self.root / name, self.tmp / dest)
        return Repository.open(self.tmp / dest)


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    base = tmp_path_factory.mktemp("hard")
    root, folder = base / "root", base / "slides"
    root.mkdir()
    folder.mkdir()
    shutil.copy(REAL_SLIDE, folder / "cmu.svs")
    fp = fingerprint_file(REAL_SLIDE)
    pub = make_repo(root / "pub", IMAGE, n=3)
    porcelain.tag_create(pub, "v1")
    priv = make_repo(root / "priv", IMAGE, n=1)
    priv.add_image_record(ImageRecord("secret", fp, 2220, 2967, 1, 0.499, "aperio"))
    priv.commit("the private slide", author=AUTHOR)
    tok = users(root, {"admin": None, "anna": "annotate", "max": "maintain", "out": None, "rita": None}, "pub")
    from exactvc.access import AccessStore

    acc = AccessStore(root)
    acc.grant("pub", "admin", "admin")
    acc.grant("priv", "admin", "admin")
    acc.grant("priv", "rita", "read")
    acc.grant("pub", "rita", "annotate")
    with thread_server(root, slide_folders=[str(folder)]) as srv:
        yield Site(root, srv, tok, fp, base)


def _with_record(local: Repository, fp: str, name: str = "borrowed") -> bytes:
    local.add_image_record(ImageRecord(name, fp, 2220, 2967, 1, 0.499, "aperio"))
    return bytes.fromhex(local.commit(f"add {name}", author=AUTHOR))


PIXELS = ["{fp}.dzi", "{fp}_files/12/3_4.jpeg", "{fp}_files/12/3_4.jpeg", "{fp}/info.json",
          "{fp}/thumbnail.jpeg", "{fp}/region?x=0&y=0&w=10&h=10", "{fp}/upload"]


def _pixel_statuses(site: Site, who: str, fp: str) -> list[int]:
    out = [site.get("/slides/" + p.format(fp=fp), who).status for p in PIXELS]
    out.append(site.send("PUT", f"/slides/{fp}/upload?offset=0", b"x", who).status)
    out.append(site.send("POST", f"/slides/{fp}/upload/complete", None, who).status)
    return out


# --- 1. pixels of a private repository do not leak through a fingerprint ------------------------------


def test_a_copied_fingerprint_grants_no_pixels(site: Site) -> None:
    fp = site.fp
    assert site.get(f"/slides/{fp}_files/12/3_4.jpeg", "rita").status == 200  # a reader of priv sees it
    assert _pixel_statuses(site, "anna", fp) == [403] * 9
    local = site.copy("pub", "anna-pub")
    main = local.refs.read("heads/main")
    assert main is not None
    cid = _with_record(local, fp)
    before = ref_files(site.root / "pub")
    rep = site.send("POST", "/pub/push", push_commit(local, "heads/users/anna/steal", None, cid, [main]), "anna")
    assert rep.status == 403 and rep.error()["type"] == "forbidden", rep.body
    assert "may not read" in rep.error()["message"]
    assert ref_files(site.root / "pub") == before
    # every pixel route, the WSGI fast path included (a tile asked twice), still refuses
    assert _pixel_statuses(site, "anna", fp) == [403] * 9
    # a fingerprint nobody references and no pixels are stored for: a new slide, accepted
    new_fp = blake3.blake3(b"a slide anna holds").hexdigest()
    local2 = site.copy("pub", "anna-pub-2")
    cid2 = _with_record(local2, new_fp, "anna-slide")
    rep = site.send("POST", "/pub/push", push_commit(local2, "heads/users/anna/own", None, cid2, [main]), "anna")
    assert rep.status == 200, rep.body
    assert site.get(f"/slides/{new_fp}/upload", "anna").status == 200  # she may now upload it
    # rita may read priv: she may reference the slide in pub, and then pub's readers see it
    local3 = site.copy("pub", "rita-pub")
    cid3 = _with_record(local3, fp, "shared-on-purpose")
    rep = site.send("POST", "/pub/push", push_commit(local3, "heads/users/rita/share", None, cid3, [main]), "rita")
    assert rep.status == 200, rep.body
    assert site.get(f"/slides/{fp}_files/12/3_4.jpeg", "anna").status == 200
    rep = site.send("POST", "/pub/push", push_body({"updates": [update("heads/users/rita/share", cid3, None)]},
                                                   stream([])), "rita")
    assert rep.status == 200, rep.body
    fsck_clean(site.root / "pub")


# --- 2. settings and roles take values of the right type only -----------------------------------------


@pytest.mark.parametrize("body", [{"anonymous_read": "false"}, {"anonymous_read": [1]}, {"anonymous_read": 1},
                                  {"anonymous_read": 0}, {"anonymous_read": None}, {"anonymous_read": "true"},
                                  {"protected": "main"}, {"protected": [1]}, {"protected": ["heads/main"]},
                                  {"protected": ["refs/heads/main"]}, {"protected": ["tags/v1"]},
                                  {"protected": [""]}, {"protected": ["a,b"]}, {"public": True}, [True], "x"])
def test_settings_refuse_wrong_types(site: Site, body: Any) -> None:
    before = site.get("/api/v1/repos/pub").json()["settings"]
    rep = site.send("PUT", "/api/v1/repos/pub/settings", body)
    assert rep.status == 422 and rep.error()["type"] == "invalid_input", rep.body
    assert site.get("/api/v1/repos/pub").json()["settings"] == before
    assert site.get("/api/v1/repos/pub", None).status == 401  # anonymous read still off


@pytest.mark.parametrize("body", [{"who": 1, "role": "read"}, {"who": "out", "role": 1},
                                  {"who": "out", "role": "owner"}, {"who": "out", "role": "read", "team": "yes"},
                                  {"who": "out", "role": "read", "team": 1}, {"who": ["out"], "role": "read"},
                                  {"who": "out", "role": "read", "extra": 1}, {"who": "", "role": "read"}])
def test_roles_refuse_wrong_types(site: Site, body: Any) -> None:
    before = site.get("/api/v1/repos/pub/roles").json()
    rep = site.send("POST", "/api/v1/repos/pub/roles", body)
    assert rep.status == 422 and rep.error()["type"] == "invalid_input", rep.body
    assert site.get("/api/v1/repos/pub/roles").json() == before


# --- 3, 4. ref names resolve unambiguously; protected names are plain ------------------------------


def test_a_branch_cannot_shadow_a_tag(site: Site) -> None:
    pub = Repository.open(site.root / "pub")
    v1 = pub.refs.read("tags/v1")
    assert v1 is not None
    main = pub.refs.read("heads/main")
    edit = {"image": IMAGE, "expected_parent": None, "create": [{"label": "cell", "geometry": square(5, 5)}]}
    rep = site.send("POST", "/api/v1/repos/pub/edits", {**edit, "branch": "v1"}, "max")
    assert rep.status == 409 and rep.error()["type"] == "ref_name_conflict", rep.body
    for name in ("heads/main", "refs/heads/main", "tags/x", "remotes/origin/main", "HEAD", "x" * 300):
        rep = site.send("POST", "/api/v1/repos/pub/edits", {**edit, "branch": name}, "max")
        assert rep.status == 422 and rep.error()["type"] == "invalid_input", (name, rep.body)
    assert site.get("/api/v1/repos/pub/commits/v1").json()["id"] == v1.hex()
    assert pub.refs.read("heads/heads/main") is None and pub.refs.read("heads/main") == main
    # push: the same rules
    local = site.copy("pub", "max-pub")
    cid, _ = porcelain_commit(local)
    for ref, status, kind in (("heads/v1", 409, "ref_name_conflict"), ("heads/heads/main", 422, "invalid_input"),
                              ("heads/refs/x", 422, "invalid_input"), ("remotes/origin/x", 422, "invalid_input"),
                              ("tags/main", 409, "ref_name_conflict")):
        rep = site.send("POST", "/pub/push", push_commit(local, ref, None, cid, [main] if main else []), "max")
        assert rep.status == status and rep.error()["type"] == kind, (ref, rep.body)
    assert site.get("/api/v1/repos/pub/commits/v1").json()["id"] == v1.hex()


def porcelain_commit(local: Repository) -> tuple[bytes, str]:
    with local.edit(IMAGE) as ed:
        aid = ed.add("cell", square(300, 300))
    return bytes.fromhex(local.commit("one more", author=AUTHOR)), aid


def test_library_refuses_ambiguous_branch_and_tag_names(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "r", IMAGE)
    porcelain.tag_create(repo, "v1")
    with pytest.raises(RefNameConflict):
        porcelain.branch_create(repo, "v1")
    with pytest.raises(RefNameConflict):
        porcelain.switch(repo, "v1", create=True)
    for bad in ("heads/x", "tags/x", "refs/heads/x", "remotes/o/x", "HEAD"):
        with pytest.raises(InvalidInput):
            porcelain.branch_create(repo, bad)
        with pytest.raises(InvalidInput):
            porcelain.tag_create(repo, bad)
    porcelain.branch_create(repo, "topic")
    with pytest.raises(RefNameConflict):
        porcelain.tag_create(repo, "topic")
    # a repository that has both anyway (made before the rule): the documented order, tags first
    first = repo.head_commit()
    assert first is not None
    with repo.edit(IMAGE) as ed:
        ed.add("cell", square(10, 10))
    second = bytes.fromhex(repo.commit("second", author=AUTHOR))
    repo.refs.cas("heads/v1", None, second)
    assert repo.resolve("v1") == first
    assert repo.resolve("heads/v1") == repo.resolve("refs/heads/v1") == second
    assert repo.resolve("tags/v1") == first


def test_protected_branches_must_be_plain_names(site: Site) -> None:
    for prot in (["heads/main"], ["refs/heads/main"]):
        rep = site.send("PUT", "/api/v1/repos/pub/settings", {"protected": prot})
        assert rep.status == 422, rep.body
    assert site.get("/api/v1/repos/pub").json()["settings"]["protected"] == ["main"]
    local = site.copy("pub", "anna-main")
    main = local.refs.read("heads/main")
    cid, _ = porcelain_commit(local)
    rep = site.send("POST", "/pub/push", push_commit(local, "heads/main", main, cid, [main] if main else []), "anna")
    assert rep.status == 403 and "protected" in rep.error()["message"]


# --- 5. a private repository's name is not revealed ---------------------------------------------------


def _routes(site: Site) -> list[tuple[str, str]]:
    out = []
    for rule in site.srv.app.url_map.iter_rules():
        if rule.endpoint == "static":
            continue
        for method in sorted((rule.methods or set()) - {"HEAD", "OPTIONS"}):
            out.append((rule.rule, method))
    return out


def _fill(rule: str, **values: str) -> str:
    def sub(m: re.Match[str]) -> str:
        name = m.group(1).split(":")[-1]
        return values.get(name, {"level": "0", "col": "0", "row": "0", "fp": "0" * 64}.get(name, "x"))
    return re.sub(r"<([^>]+)>", sub, rule)


def test_private_and_missing_repositories_answer_alike(site: Site) -> None:
    named = [(r, m) for r, m in _routes(site) if "<name>" in r]
    assert len(named) >= 16
    for rule, method in named:
        for who in ("out", None):
            hidden = request(method, site.u(_fill(rule, name="priv")), b"{}", token=site.tok[who] if who else None)
            missing = request(method, site.u(_fill(rule, name="nope")), b"{}", token=site.tok[who] if who else None)
            assert hidden.status == missing.status == (401 if who is None else 404), (rule, method, who)
            assert hidden.error()["type"] == missing.error()["type"]
            assert hidden.body.replace(b"priv", b"nope") == missing.body, (rule, method)


# --- 6. no response carries a local path --------------------------------------------------------------


def test_upload_errors_carry_no_local_path(site: Site) -> None:
    data = b"not a slide at all " * 100
    fp = blake3.blake3(data).hexdigest()
    local = site.copy("pub", "anna-upload")
    main = local.refs.read("heads/main")
    cid = _with_record(local, fp, "garbage")
    assert site.send("POST", "/pub/push", push_commit(local, "heads/users/anna/up", None, cid, [main] if main else []),
                     "anna").status == 200
    assert site.send("PUT", f"/slides/{fp}/upload?offset=0", data, "anna").status == 200
    rep = site.send("POST", f"/slides/{fp}/upload/complete?suffix=.svs", None, "anna")
    assert rep.status == 422 and rep.error()["type"] == "invalid_input", rep.body
    assert str(site.root).encode() not in rep.body and b"/tmp" not in rep.body and b"<path>" not in rep.body


# --- 7 and acceptance 3. hostile pushes: refused before any ref moves, fsck clean everywhere ---------------


def _forged(local: Repository, parent: bytes, generation: int, root: bytes | None = None) -> bytes:
    c = local.commit_object(parent)
    p = pending("commit", Commit(root or c.root, (parent,), c.author, c.author, c.time + 1, 0, "forged",
                                 generation).to_body())
    local.store.write([p])
    return p.oid


def test_hostile_pushes_are_refused_and_fsck_stays_clean(site: Site, tmp_path: Path,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    local = site.copy("pub", "hostile")
    main = local.refs.read("heads/main")
    assert main is not None
    gen = local.commit_object(main).generation
    snap = local.snapshot_object(local.commit_object(main).root)
    bad_count = local.put("snapshot", snap.with_tree(IMAGE, snap.images[IMAGE].tree, 999).to_body())
    cases: list[tuple[str, bytes, int, str]] = []
    for g in (1, gen, gen + 2, 2**62):
        cid = _forged(local, main, g)
        cases.append((f"generation {g}", push_commit(local, "heads/main", main, cid, [main]), 422, "invalid_object"))
    labels_root = _forged(local, main, gen + 1, root=snap.labels)
    cases.append(("root is a label set", push_body({"updates": [update("heads/main", main, labels_root)]},
                                                   object_stream(local, [labels_root])), 422, "invalid_object"))
    count = _forged(local, main, gen + 1, root=bad_count)
    cases.append(("count mismatch", push_commit(local, "heads/main", main, count, [main]), 422, "invalid_object"))
    cases.append(("branch at a snapshot", push_body({"updates": [update("heads/main", main, bad_count)]},
                                                    object_stream(local, [bad_count])), 422, "invalid_object"))
    cases.append(("unknown target", push_body({"updates": [update("heads/main", main, b"\x42" * 32)]}, stream([])),
                  422, "missing_reference"))
    good = push_commit(local, "heads/main", main, _forged(local, main, gen + 1), [main])
    cases.append(("truncated", good[:-40], 422, "bad_stream"))
    cases.append(("stale old", push_commit(local, "heads/main", b"\x01" * 32, _forged(local, main, gen + 1), [main]),
                  409, "non_fast_forward"))
    cases.append(("a beside a/b", push_commit(local, "heads/main/x", None, _forged(local, main, gen + 1), [main]),
                  409, "ref_name_conflict"))
    forced = _forged(local, main, gen + 1)
    cases.append(("force as a string", push_body({"updates": [{**update("heads/main", main, forced), "force": "false"}]},
                                                 object_stream(local, [forced])), 422, "invalid_input"))
    before = ref_files(site.root / "pub")
    for what, body, status, kind in cases:
        rep = site.send("POST", "/pub/push", body, "max")
        assert rep.status == status, (what, rep.body)
        assert rep.error()["type"] == kind, (what, rep.body)
        assert ref_files(site.root / "pub") == before, what
    fsck_clean(site.root / "pub")
    # the good one goes through; a fresh clone is clean too
    rep = site.send("POST", "/pub/push", good, "max")
    assert rep.status == 200, rep.body
    fsck_clean(site.root / "pub")
    from exactvc import remote

    monkeypatch.setenv("EXACT_CONFIG_DIR", str(tmp_path / "no-config"))
    monkeypatch.setenv("EXACT_TOKEN", site.tok["admin"])
    remote.clone(site.u("/pub"), tmp_path / "clone")
    fsck_clean(tmp_path / "clone")


# --- 8, 9, 10. strict edits ---------------------------------------------------------------------------


def test_edits_refuse_existing_ids_missing_planes_and_empty_changes(site: Site) -> None:
    pub = Repository.open(site.root / "pub")
    ids = sorted(a.id for a in pub.annotations(IMAGE, "main"))
    before = ref_files(site.root / "pub")

    def edit(**kw: Any) -> Reply:
        return site.send("POST", "/api/v1/repos/pub/edits", {"image": IMAGE, "expected_parent": None,
                                                             "branch": "users/anna/strict", **kw}, "anna")

    rep = edit(create=[{"id": ids[0], "label": "cell", "geometry": square(900, 900)}])
    assert rep.status == 409 and rep.error()["type"] == "already_exists", rep.body
    twice = "0193a1b2-0000-7000-8000-000000000001"
    rep = edit(create=[{"id": twice, "label": "cell", "geometry": square(900, 900)},
                       {"id": twice, "label": "cell", "geometry": square(950, 950)}])
    assert rep.status == 409 and rep.error()["type"] == "already_exists", rep.body
    for plane in (99, [0, 5], {"z": 1}, -1, "x"):
        rep = edit(create=[{"label": "cell", "geometry": square(900, 900), "plane": plane}])
        assert rep.status == 422 and rep.error()["type"] == "invalid_input", (plane, rep.body)
    rep = edit(update=[{"id": ids[0], "plane": 99}])
    assert rep.status == 422, rep.body
    for empty in ({}, {"create": []}, {"create": [], "update": [], "delete": []}):
        rep = edit(**empty)
        assert rep.status == 422 and rep.error()["type"] == "invalid_input", (empty, rep.body)
    assert ref_files(site.root / "pub") == before
    rep = edit(update=[{"id": ids[0], "label": "cell"}])  # equal to what is there
    assert rep.status == 409 and rep.error()["type"] == "nothing_to_commit", rep.body
    assert ref_files(site.root / "pub") == before
    rep = edit(create=[{"label": "cell", "geometry": square(900, 900), "plane": 0}])
    assert rep.status == 201, rep.body


# --- 14. one error vocabulary over every route ---------------------------------------------------------


def documented_errors() -> dict[str, int]:
    """The error table of docs/api.md: type -> status."""
    text = DOCS.read_text()
    table = text[text.index("| type | status | when |"):]
    out = {}
    for line in table.splitlines()[2:]:
        if not line.startswith("|"):
            break
        cells = [c.strip() for c in line.strip("|").split("|")]
        for t in re.findall(r"`([a-z_]+)`", cells[0]):
            out[t] = int(cells[1])
    return out


def _all_error_classes() -> list[type[ExactError]]:
    import server.errors  # noqa: F401 - their classes join the hierarchy

    out: list[type[ExactError]] = []
    todo: list[type[ExactError]] = [ExactError]
    while todo:
        c = todo.pop()
        out.append(c)
        todo.extend(c.__subclasses__())
    return out


def test_every_error_type_is_documented_with_one_status() -> None:
    doc = documented_errors()
    for cls in _all_error_classes():
        if cls.kind in ("error", "usage", "merge_in_progress", "network"):
            continue  # the base, the CLI-only ones (usage errors reach HTTP as invalid_input)
        assert cls.kind in doc, f"{cls.__name__}: type {cls.kind!r} is not in docs/api.md"
        assert doc[cls.kind] == cls.http_status, (cls.__name__, cls.kind, cls.http_status)


BAD_QUERY = "rev=" + "r" * 300 + "&n=%EF%BC%91%EF%BC%92&limit=1_0&bbox=nan,nan,nan,nan&frame=-1&size=x&x=%2012%20" \
            "&y=1e3&w=&h=0&level=99999999999999&offset=-5&old=&new=" + "n" * 300 + "&image=" + "i" * 300


def test_every_route_answers_bad_input_in_the_vocabulary(site: Site) -> None:
    doc = documented_errors()
    routes = _routes(site)
    from server.openapi import OPENAPI

    paths = OPENAPI["paths"]
    for rule, method in routes:
        api_path = re.sub(r"<(?:[^:>]+:)?([^>]+)>", r"{\1}", rule)
        assert api_path in paths and method.lower() in paths[api_path], (rule, method, "not in the OpenAPI document")
        for values in ({"name": "pub", "fp": site.fp}, {"name": "pub", "fp": "zz", "rev": "x" * 300},
                       {"name": "x" * 300, "image": quote("../" * 50, safe="")}):
            for who in ("admin", "anna", None):
                rep = request(method, site.u(_fill(rule, **values) + "?" + BAD_QUERY), b"\xff{not json",
                              token=site.tok[who] if who else None)
                assert rep.status < 500, (rule, method, values, rep.body[:300])
                if rep.status >= 400:
                    err = rep.error()
                    assert doc.get(err["type"]) == rep.status, (rule, method, rep.status, err)
        others = {"GET", "PUT", "POST", "DELETE", "PATCH"} - {m for r, m in routes if r == rule}
        for m in sorted(others):
            rep = request(m, site.u(_fill(rule, name="pub", fp=site.fp)), b"{}", token=site.tok["admin"])
            assert rep.status == 405 and rep.error()["type"] == "method_not_allowed", (rule, m, rep.body)
            allowed = {x.strip() for x in rep.headers["allow"].split(",")}
            assert allowed >= {mm for r, mm in routes if r == rule}, (rule, allowed)
