"""Screening mode's server side: the grid of fields of view (15 % overlap, row order) and each user's
position and progress per image, kept across server restarts (a real server)."""

from __future__ import annotations

from pathlib import Path

import pytest

from exactvc.screening import fields

from .server_fixtures import ServerProcess, make_repo, request, users


def test_fields_cover_the_image_with_overlap_in_row_order() -> None:
    grid = fields(1000, 500, 200, 100)
    xs = sorted({x for x, _, _, _ in grid})
    ys = sorted({y for _, y, _, _ in grid})
    assert xs[0] == 0 and xs[-1] + 200 == 1000 and ys[0] == 0 and ys[-1] + 100 == 500
    assert all(b - a <= 170 for a, b in zip(xs, xs[1:], strict=False))  # at least 15 % overlap
    assert all(b - a <= 85 for a, b in zip(ys, ys[1:], strict=False))
    assert grid == sorted(grid, key=lambda f: (f[1], f[0]))  # row by row, left to right
    assert fields(100, 100, 400, 400) == [(0, 0, 100, 100)]  # a field larger than the image: one


def test_state_per_user_and_image_survives_a_restart(tmp_path: Path) -> None:
    root = tmp_path / "root"
    make_repo(root / "proj", "slide-1")
    tok = users(root, {"ada": "annotate", "ben": "read"}, "proj")
    url_of = "/api/v1/repos/proj/images/slide-1/screening"
    srv = ServerProcess(root, tmp_path / "a.log")
    try:
        r = request("GET", srv.url + url_of, token=tok["ada"])
        assert r.status == 200 and r.json()["state"] is None
        r = request("PUT", srv.url + url_of, {"field": [40000, 30000], "current": 7, "screened": [0, 1, 2, 7, 2]},
                    token=tok["ada"])
        assert r.status == 200, r.body[:300]
        st = r.json()["state"]
        assert st["screened"] == [0, 1, 2, 7] and st["count"] == st["columns"] * st["rows"]
        bad = request("PUT", srv.url + url_of, {"field": [40000, 30000], "current": 10 ** 6}, token=tok["ada"])
        assert bad.status == 422 and bad.json()["error"]["type"] == "invalid_input"
        assert request("GET", srv.url + url_of).status == 401
        assert request("GET", srv.url + url_of, token=tok["ben"]).json()["state"] is None  # per user
    finally:
        srv.stop()
    srv = ServerProcess(root, tmp_path / "b.log")
    try:
        got = request("GET", srv.url + url_of, token=tok["ada"]).json()
        assert got["state"]["current"] == 7 and got["state"]["screened"] == [0, 1, 2, 7]
        assert len(got["fields"]) == got["state"]["count"]
        assert tuple(got["fields"][7]) == fields(200000, 200000, 40000, 30000)[7]
        assert request("DELETE", srv.url + url_of, token=tok["ada"]).json()["state"] is None
        assert request("GET", srv.url + url_of, token=tok["ada"]).json()["state"] is None
    finally:
        srv.stop()


def test_a_grid_too_fine_is_refused() -> None:
    from exactvc.errors import InvalidInput

    with pytest.raises(InvalidInput, match="lower zoom"):
        fields(10 ** 7, 10 ** 7, 10, 10)
