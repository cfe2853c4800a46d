"""Multi-frame images in the slide page: the frame slider switches the tiles (each plane its own pyramid)
and the annotations drawn (each plane's own annotation tiles), on a real two-page TIFF served by exact serve."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator

import numpy as np
import pytest

from exactvc.access import AccessStore
from exactvc.repo import Repository

from ..server_fixtures import AUTHOR
from .conftest import Site, Tab, hex_rgb, near_color, start_server

W, H = 1024, 768
PLANES = [(200, 40, 40), (40, 40, 200)]  # frame 0 red, frame 1 blue
GREEN = "#00ff00"
BOXES = {0: (150, 150, 450, 400), 1: (600, 350, 900, 650)}  # the annotation of each frame (x0, y0, x1, y1)


def _ring(b: tuple[int, int, int, int]) -> dict[str, object]:
    x0, y0, x1, y1 = b
    return {"type": "Polygon", "coordinates": [[[x0, y0], [x1, y0], [x1, y1], [x0, y1], [x0, y0]]]}


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    import tifffile

    base = tmp_path_factory.mktemp("frames")
    root, slides = base / "root", base / "root-slides"
    slides.mkdir(parents=True)
    stack = np.zeros((2, H, W, 3), dtype=np.uint8)
    for i, rgb in enumerate(PLANES):
        stack[i] = rgb
    tifffile.imwrite(slides / "stack.tif", stack, photometric="rgb")  # two full-size pages: two frames
    repo = Repository.init(root / "cells")
    repo.add_image(slides / "stack.tif", name="stack")
    assert repo.image("stack").frames == 2
    repo.add_label("cell", shape="polygon", color=GREEN, key="c")
    ids = {}
    with repo.edit("stack") as ed:
        for z, b in BOXES.items():
            ids[z] = ed.add("cell", _ring(b), plane=z)
    repo.commit("one annotation on each frame", author=AUTHOR)
    acc = AccessStore(root)
    acc.set_settings("cells", anonymous_read=True)
    token = acc.add_user("ada")
    acc.grant("cells", "ada", "annotate")
    acc.set_password("ada", "pw-ada-frames")
    s = Site("", root, {"ada": token}, {"ada": "pw-ada-frames"},
             [("cell", _ring(b), ids[z]) for z, b in BOXES.items()])
    start_server(s, slides, base / "server.log")
    try:
        yield s
    finally:
        assert s.proc is not None
        s.proc.terminate()
        try:
            s.proc.wait(10)
        except subprocess.TimeoutExpired:
            s.proc.kill()
            s.proc.wait(10)


def _check_frame(tab: Tab, frame: int) -> None:
    img = tab.pixels()
    sx, sy = tab.to_screen(520, 100)  # no annotation here on either frame: the plane's own colour
    px = img.getpixel((int(sx), int(sy)))
    assert all(abs(a - b) <= 40 for a, b in zip(px, PLANES[frame], strict=True)), (frame, px)
    for z, (x0, y0, x1, _y1) in BOXES.items():
        ex, ey = tab.to_screen((x0 + x1) / 2, y0)  # the middle of the top edge
        assert near_color(img, ex, ey, hex_rgb(GREEN)) == (z == frame), (frame, z, img.getpixel((int(ex), int(ey))))
        cx, cy = (x0 + x1) / 2, (y0 + BOXES[z][3]) / 2
        got = tab.page.evaluate(f"() => window.exact.annotationsAt({cx}, {cy})")
        assert got == ([tab.site.known[z][2]] if z == frame else []), (frame, z, got)


def test_the_frame_slider_switches_tiles_and_annotations(tab: Tab, site: Site) -> None:
    page = tab.open_slide(image="stack")
    _check_frame(tab, 0)
    page.locator("#frame").fill("1")
    page.wait_for_function("() => new URL(location.href).searchParams.get('frame') === '1'", timeout=10000)
    for _ in range(40):  # the new plane opens asynchronously: until its tiles show (bounded, ~20 s)
        tab.idle()
        sx, sy = tab.to_screen(520, 100)
        if tab.pixels().getpixel((int(sx), int(sy)))[2] > 150:
            break
        page.wait_for_timeout(500)
    tab.idle()
    _check_frame(tab, 1)
    # a deep link to frame 1 restores it
    tab.open_slide("?frame=1", image="stack")
    _check_frame(tab, 1)
    assert not tab.errors, tab.errors


def test_an_annotation_drawn_on_a_frame_is_saved_on_its_plane(tab: Tab, site: Site) -> None:
    from ..server_fixtures import request

    tab.sign_in("ada")
    page = tab.open_slide("?frame=1", image="stack")
    drawn = {"type": "Polygon", "coordinates": [[[100, 600], [300, 600], [300, 700], [100, 700], [100, 600]]]}
    new_id = page.evaluate("(g) => window.exact.editor.create(g)", drawn)
    assert new_id and tab.pending()["create"][0]["plane"] == {"z": 1, "t": 0}
    page.fill("#commit-message", "a cell on frame 1")
    got = page.evaluate("() => window.exact.editor.save()")
    commit = got["commit"]
    rec = request("GET", f"{site.url}/api/v1/repos/cells/images/stack/annotiles/{commit}/records/{new_id}",
                  token=site.tokens["ada"]).json()
    assert rec["plane"] == {"z": 1, "t": 0}
    counts = {}
    for f in ("", "/f1"):
        man = request("GET", f"{site.url}/api/v1/repos/cells/images/stack/annotiles/{commit}{f}/manifest.json",
                      token=site.tokens["ada"]).json()
        counts[f] = man["count"]
    assert counts == {"": 1, "/f1": 2}  # frame 0 keeps its one annotation; frame 1 has two now
    assert not tab.errors, tab.errors
