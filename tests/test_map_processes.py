"""Stateless map serving (issue 16): a map opened through one `exact serve` process is answered by another
on the same ROOT (its record in the server's map store: SQLite under ROOT, or PostgreSQL with --db), with
the same bytes; the blind-mode rule (only the rater who opened a map of their branch sees it) holds on
every process; so does a user's screening progress on a map."""

from __future__ import annotations

import json
import shutil
import uuid
from pathlib import Path
from typing import Any

from exactvc.images import fingerprint_file
from exactvc.objects import ImageRecord
from exactvc.repo import Repository

from .conftest import REAL_SLIDE
from .server_fixtures import AUTHOR, ServerProcess, admin, close_pools, exact, ok, request, server_access

POINTS = [(300 + 97 * i % 1700, 250 + 53 * i % 2500) for i in range(23)]


def _seed(root: Path) -> dict[str, str]:
    admin(root, "repo", "add", "proj")
    repo = Repository.open(root / "proj")
    repo.add_image_record(ImageRecord("cmu", fingerprint_file(REAL_SLIDE), 2220, 2967, 1, 0.499, "aperio"))
    repo.add_label("mitosis", shape="point", color="#00ff00")
    with repo.edit("cmu") as ed:
        for x, y in POINTS:
            ed.add("mitosis", {"type": "Point", "coordinates": [x, y]})
    repo.commit("seed", author=AUTHOR)
    toks = {who: admin(root, "user", "add", who) for who in ("reader", "annotator")}
    admin(root, "grant", "reader", "read", "proj")
    admin(root, "grant", "annotator", "annotate", "proj")
    return toks


def test_a_map_opened_on_one_process_is_served_by_another(tmp_path: Path) -> None:
    _run(tmp_path, None)


def test_the_same_on_postgres(tmp_path: Path, postgres: Any) -> None:
    _run(tmp_path, postgres)


def _run(tmp_path: Path, pg: Any) -> None:
    root, folder = tmp_path / "root", tmp_path / "slides"
    root.mkdir()
    folder.mkdir()
    shutil.copy(REAL_SLIDE, folder / "cmu.svs")
    extra: tuple[str, ...] = ("--slides", str(folder))
    if pg is not None:
        url = pg.database("t_" + uuid.uuid4().hex[:12])
        ok(exact("server", "migrate", "--root", str(root), "--db", url))
        (root / "backends.json").write_text(json.dumps({"db": url}))
        extra += ("--db", url)
    toks = _seed(root)
    a = ServerProcess(root, tmp_path / "a.log", extra)
    b = ServerProcess(root, tmp_path / "b.log", extra)
    try:
        def get(srv: ServerProcess, path: str, who: str = "reader") -> Any:
            return request("GET", srv.url + path, token=toks[who])

        m = get(a, "/api/v1/repos/proj/maps?label=mitosis&patch=64&per_row=4&limit=5")
        assert m.status == 200, m.body[:300]
        mid, top = m.json()["map"], m.json()["max_level"]
        paths = [f"/maps/{mid}.dzi", f"/maps/{mid}_files/{top}/0_0.jpeg", f"/maps/{mid}_files/{top}/0_1.jpeg",
                 f"/maps/{mid}_files/0/0_0.jpeg", f"/api/v1/repos/proj/maps/{mid}/patches?offset=2&limit=7"]
        on_b = [get(b, p) for p in paths]  # B never saw the map opened: it rebuilds it from the shared record
        on_a = [get(a, p) for p in paths]
        for p, rb, ra in zip(paths, on_b, on_a, strict=True):
            assert rb.status == 200 and ra.status == 200, (p, rb.status, rb.body[:200])
            assert rb.body == ra.body, p
        assert [q["index"] for q in on_b[-1].json()["patches"]] == list(range(2, 9))
        assert request("GET", b.url + paths[1]).status == 401  # access is still checked on every request
        assert get(b, "/maps/" + "0" * 32 + ".dzi").status == 404
        # screening the map: progress put through A is read through B (per user and map)
        scr = f"/api/v1/repos/proj/maps/{mid}/screening"
        put = request("PUT", a.url + scr, {"field": [128, 128], "current": 1, "screened": [0]}, token=toks["reader"])
        assert put.status == 200, put.body[:300]
        seen = get(b, scr).json()
        assert seen["state"]["current"] == 1 and seen["state"]["screened"] == [0] and len(seen["fields"]) > 2
        assert get(b, scr, "annotator").json()["state"] is None  # another user's progress is their own
        bad = request("PUT", b.url + scr, {"field": [128, 128], "current": 10**6}, token=toks["reader"])
        assert bad.status == 422 and bad.error()["type"] == "invalid_input"
        assert request("GET", b.url + scr).status == 401

        # blind mode: a rater's map of their own branch is theirs on every process
        r = request("POST", a.url + "/api/v1/repos/proj/edits", {
            "branch": "users/annotator/blind", "expected_parent": None, "from": "main", "image": "cmu",
            "message": "a rater's mitosis", "create": [{"label": "mitosis", "geometry": {
                "type": "Point", "coordinates": [900, 900]}}]}, token=toks["annotator"])
        assert r.status == 201, r.body[:300]
        acc = server_access(root)
        acc.set_settings("proj", mode="blind")
        mine = get(a, "/api/v1/repos/proj/maps?label=mitosis&rev=users/annotator/blind", "annotator")
        assert mine.status == 200 and mine.json()["count"] == len(POINTS) + 1
        bid = mine.json()["map"]
        for p in (f"/maps/{bid}.dzi", f"/maps/{bid}_files/0/0_0.jpeg", f"/api/v1/repos/proj/maps/{bid}/patches"):
            assert get(b, p, "annotator").status == 200, p
            got = get(b, p, "reader")  # another rater: not even by its id, on whichever process
            assert got.status == 404 and b"annotator" not in got.body, (p, got.body[:200])
        assert get(b, paths[1], "reader").status == 200  # the reader opened the map of main themselves
    finally:
        a.stop()
        b.stop()
        close_pools()
