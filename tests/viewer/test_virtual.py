"""Virtual image sets: server A holds the annotations, server B the pixels (two real ``exact serve``
processes). A's image record names B as its ``origin``; the slide page draws A's annotations over B's
tiles, fetched cross-origin (B's tile routes answer with CORS headers, A's pages allow B in their CSP)."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from exactvc.access import AccessStore
from exactvc.repo import Repository

from ..server_fixtures import AUTHOR, request
from .conftest import KNOWN, LABELS, Site, Tab, hex_rgb, near_color, real_slide, start_server

COLORS = {name: color for name, _s, color, *_ in LABELS}


def _stop(s: Site) -> None:
    assert s.proc is not None
    s.proc.terminate()
    try:
        s.proc.wait(10)
    except subprocess.TimeoutExpired:
        s.proc.kill()
        s.proc.wait(10)


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    """Server A (the annotations, no pixels); ``site.known`` its annotations; B is ``site.pixels``."""
    base = tmp_path_factory.mktemp("virtual")
    # B: the pixel owner, its repository readable by anyone (so are the slide's tiles)
    b_slides = base / "b-slides"
    b_slides.mkdir()
    (b_slides / "cmu.svs").symlink_to(real_slide())
    b = Site("", base / "b", {}, {})
    rb = Repository.init(b.root / "pixels")
    rb.add_image(b_slides / "cmu.svs", name="cmu")
    rb.commit("the slide", author=AUTHOR)
    AccessStore(b.root).set_settings("pixels", anonymous_read=True)
    start_server(b, b_slides, base / "b.log")
    try:
        # A: the same slide by fingerprint, its pixels at B; no slide file of its own
        ra = Repository.init(base / "a" / "cells")
        ra.add_image(b_slides / "cmu.svs", name="cmu", origin=b.url)
        for name, shape, color, key, size, order in LABELS:
            ra.add_label(name, shape=shape, color=color, key=key, size=size, order=order)
        known = []
        with ra.edit("cmu") as ed:
            for label, geom in KNOWN:
                known.append((label, geom, ed.add(label, geom)))
        ra.commit("annotations of B's slide", author=AUTHOR)
        AccessStore(base / "a").set_settings("cells", anonymous_read=True)
        a = Site("", base / "a", {}, {}, known)
        a_slides = base / "a-slides"
        a_slides.mkdir()
        start_server(a, a_slides, base / "a.log", "--tile-origin", b.url)
        a.pixels = b  # type: ignore[attr-defined]
        try:
            yield a
        finally:
            _stop(a)
    finally:
        _stop(b)


def test_annotations_of_server_a_are_drawn_over_tiles_of_server_b(tab: Tab, site: Site) -> None:
    b: Site = site.pixels  # type: ignore[attr-defined]
    fp = Repository.open(site.root / "cells").image("cmu").fingerprint
    # A has no pixels of its own; B's tile routes allow other origins; A's pages allow B
    assert request("GET", f"{site.url}/slides/{fp}.dzi").status == 404
    dzi = request("GET", f"{b.url}/slides/{fp}.dzi", headers={"Origin": site.url})
    assert dzi.status == 200 and dzi.headers["access-control-allow-origin"] in ("*", site.url)
    csp = request("GET", f"{site.url}/cells/slide/cmu", headers={"Accept": "text/html"}).headers[
        "content-security-policy"]
    img_src = next(d for d in csp.split(";") if d.strip().startswith("img-src"))
    connect_src = next(d for d in csp.split(";") if d.strip().startswith("connect-src"))
    assert b.url in img_src and b.url in connect_src and "*" not in img_src
    urls: list[str] = []
    tab.page.on("request", lambda r: urls.append(r.url))
    page = tab.open_slide()
    slide_requests = [u for u in urls if "/slides/" in u]
    assert slide_requests and all(u.startswith(b.url + "/slides/") for u in slide_requests), slide_requests[:5]
    assert any(u.endswith(".jpeg") for u in slide_requests)
    annotile_requests = [u for u in urls if "/annotiles/" in u]
    assert annotile_requests and all(u.startswith(site.url + "/api/v1/") for u in annotile_requests)
    img = tab.pixels()
    vb = page.locator("#viewer").bounding_box()
    assert vb is not None
    samples = []  # B's tiles: the bright, varied slide, not the background
    for i in range(8):
        for j in range(8):
            sx, sy = tab.to_screen(150 + 220 * i, 150 + 300 * j)
            if vb["x"] < sx < vb["x"] + vb["width"] and vb["y"] < sy < vb["y"] + vb["height"]:
                samples.append(sum(img.getpixel((int(sx), int(sy)))) / 3)
    assert len(samples) >= 30 and sum(v > 60 for v in samples) >= 0.9 * len(samples), samples
    assert max(samples) - min(samples) > 30, samples
    for label, geom, _id in site.known:  # A's annotations at their places, over B's pixels
        if geom["type"] == "Point":
            x, y = geom["coordinates"]
        else:
            (x0, y0), (x1, _y1) = geom["coordinates"][0][0], geom["coordinates"][0][1]
            x, y = (x0 + x1) / 2, y0
        sx, sy = tab.to_screen(x, y)
        assert near_color(img, sx, sy, hex_rgb(COLORS[label])), (label, img.getpixel((int(sx), int(sy))))
    assert page.evaluate("() => window.exact.annotationsAt(500, 450)") == [site.known[0][2]]
    assert not tab.errors, tab.errors  # no CSP violation, no CORS failure


def test_a_tile_origin_must_be_an_origin(tmp_path: Path) -> None:
    from ..server_fixtures import NO_CONFIG

    env = {**os.environ, "EXACT_CONFIG_DIR": str(NO_CONFIG)}
    for bad in ("ftp://pixels.example.org", "https://pixels.example.org/slides"):
        r = subprocess.run([sys.executable, "-m", "exactvc.cli", "serve", str(tmp_path), "--port", "0",
                            "--tile-origin", bad], capture_output=True, text=True, timeout=60, env=env)
        assert r.returncode != 0 and "tile origin must be scheme://host[:port]" in r.stderr, (bad, r.stderr)
        assert len(r.stderr.strip().splitlines()) == 1, r.stderr
