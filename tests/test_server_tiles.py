"""Tiles over HTTP: access control, bad addresses, caching headers, resumable verified uploads."""

from __future__ import annotations

import io
import json
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from exactvc.images import fingerprint_file
from exactvc.objects import ImageRecord
from exactvc.repo import Repository

from .conftest import REAL_SLIDE
from .server_fixtures import AUTHOR, ThreadServer, admin, request, thread_server


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    base = tmp_path_factory.mktemp("tiles")
    root, folder = base / "root", base / "slides"
    root.mkdir()
    folder.mkdir()
    shutil.copy(REAL_SLIDE, folder / "cmu.svs")
    fp = fingerprint_file(REAL_SLIDE)
    admin(root, "repo", "add", "proj")
    admin(root, "repo", "add", "other")
    repo = Repository.open(root / "proj")
    repo.add_image_record(ImageRecord("cmu", fp, 2220, 2967, 1, 0.499, "aperio"))
    repo.commit("image", author=AUTHOR)
    toks = {"reader": admin(root, "user", "add", "reader"), "outsider": admin(root, "user", "add", "outsider"),
            "annotator": admin(root, "user", "add", "annotator")}
    admin(root, "grant", "reader", "read", "proj")
    admin(root, "grant", "outsider", "maintain", "other")
    admin(root, "grant", "annotator", "annotate", "proj")
    with thread_server(root, slide_folders=[str(folder)]) as srv:
        yield {"srv": srv, "fp": fp, "tok": toks, "root": root, "base": base}


def get(site: dict[str, Any], path: str, who: str | None = "reader", **kw: Any) -> Any:
    srv: ThreadServer = site["srv"]
    return request("GET", srv.url + path, token=site["tok"][who] if who else None, **kw)


def test_descriptor_info_tiles_and_caching(site: dict[str, Any]) -> None:
    fp = site["fp"]
    r = get(site, f"/slides/{fp}.dzi")
    assert r.status == 200 and b'TileSize="240"' in r.body and b'Width="2220"' in r.body
    info = get(site, f"/slides/{fp}/info.json").json()
    assert info["width"] == 2220 and info["max_level"] == 12 and info["levels"][12]["passthrough"]
    t = get(site, f"/slides/{fp}_files/12/3_4.jpeg")
    assert t.status == 200 and t.headers["content-type"] == "image/jpeg"
    assert Image.open(io.BytesIO(t.body)).size == (240, 240)
    assert "immutable" in t.headers["cache-control"] and t.headers["etag"]
    again = get(site, f"/slides/{fp}_files/12/3_4.jpeg", headers={"If-None-Match": t.headers["etag"]})
    assert again.status == 304 and again.body == b""
    edge = get(site, f"/slides/{fp}_files/12/9_12.jpeg")
    assert Image.open(io.BytesIO(edge.body)).size == (2220 - 9 * 240, 2967 - 12 * 240)
    low = get(site, f"/slides/{fp}_files/8/0_0.jpeg")
    assert Image.open(io.BytesIO(low.body)).size == (139, 186)
    th = get(site, f"/slides/{fp}/thumbnail.jpeg?size=256")
    assert th.status == 200 and max(Image.open(io.BytesIO(th.body)).size) == 256
    reg = get(site, f"/slides/{fp}/region?x=100&y=200&w=300&h=150&level=12")
    assert reg.status == 200 and Image.open(io.BytesIO(reg.body)).size == (300, 150)


@pytest.mark.parametrize("path", ["{fp}.dzi", "{fp}/info.json", "{fp}_files/12/0_0.jpeg", "{fp}/thumbnail.jpeg",
                                  "{fp}/region?x=0&y=0&w=10&h=10"])
def test_no_read_access_no_pixels(site: dict[str, Any], path: str) -> None:
    p = "/slides/" + path.format(fp=site["fp"])
    assert get(site, p, "outsider").status == 403
    anon = get(site, p, None)
    assert anon.status == 401 and anon.error()["type"] == "unauthorized"


@pytest.mark.parametrize("path", ["{fp}/label.jpeg", "{fp}/macro.jpeg", "{fp}/associated/label.jpeg",
                                  "{fp}_files/12/-1_0.jpeg", "{fp}_files/12/0_13.jpeg", "{fp}_files/13/0_0.jpeg",
                                  "{fp}_files/-1/0_0.jpeg", "{fp}_files/12/a_0.jpeg", "{fp}_files/x/0_0.jpeg",
                                  "{fp}_files/12/99999999999999999999_0.jpeg",
                                  "{fp}/region?x=0&y=0&w=9000&h=9000", "{fp}/region?x=-5&y=0&w=10&h=10",
                                  "{fp}/region?x=0&y=0&w=abc&h=10", "{fp}/region?x=99999&y=0&w=10&h=10",
                                  "{fp}/region?x=0&y=0&w=10&h=10&level=99", "{fp}/thumbnail.jpeg?size=0",
                                  "{fp}.dzi?frame=3", "nothex.dzi", "{fp}x/info.json"])
def test_bad_addresses_are_4xx(site: dict[str, Any], path: str) -> None:
    r = get(site, "/slides/" + path.format(fp=site["fp"]))
    assert 400 <= r.status < 500, (path, r.status, r.body[:200])
    assert r.headers["content-type"].startswith("application/json")


def test_upload_resumes_is_verified_and_never_served_partially(site: dict[str, Any], tmp_path: Path) -> None:
    from exactvc.testing.slides import make_pyramidal_tiff

    srv: ThreadServer = site["srv"]
    slide = make_pyramidal_tiff(tmp_path / "up.svs", 1500, 1200, tile=256, min_level_size=300)
    fp = fingerprint_file(slide)
    repo = Repository.open(site["root"] / "proj")
    repo.add_image_record(ImageRecord("up", fp, 1500, 1200))
    repo.commit("second image", author=AUTHOR)
    tok = site["tok"]["annotator"]
    data = slide.read_bytes()
    half = len(data) // 2
    url = f"{srv.url}/slides/{fp}/upload"
    assert request("PUT", f"{url}?offset=0", data[:half], token=tok).status == 200
    # the connection drops here; meanwhile nothing of it is served
    assert get(site, f"/slides/{fp}_files/0/0_0.jpeg", "annotator").status == 404
    assert request("GET", url, token=tok).json()["received"] == half
    wrong = request("PUT", f"{url}?offset=0", data[:10], token=tok)
    assert wrong.status == 409 and "resume" in wrong.error()["message"]
    assert request("PUT", f"{url}?offset={half}", data[half:], token=tok).status == 200
    assert request("POST", f"{url}/complete?suffix=.svs", b"", token=tok).status == 200
    t = get(site, f"/slides/{fp}_files/11/0_0.jpeg", "annotator")
    assert t.status == 200 and Image.open(io.BytesIO(t.body)).size == (256, 256)
    # a reader may not upload
    assert request("GET", url, token=site["tok"]["reader"]).status == 403


def test_upload_with_wrong_bytes_is_refused(site: dict[str, Any]) -> None:
    srv: ThreadServer = site["srv"]
    fp = "ab" * 32
    repo = Repository.open(site["root"] / "proj")
    repo.add_image_record(ImageRecord("fake", fp, 100, 100))
    repo.commit("fake image", author=AUTHOR)
    tok = site["tok"]["annotator"]
    url = f"{srv.url}/slides/{fp}/upload"
    assert request("PUT", f"{url}?offset=0", b"not the right bytes", token=tok).status == 200
    r = request("POST", f"{url}/complete", b"", token=tok)
    assert r.status == 422 and "do not match" in r.error()["message"]
    assert get(site, f"/slides/{fp}.dzi", "annotator").status == 404
    assert json.loads(request("GET", url, token=tok).body)["received"] == 0  # discarded
