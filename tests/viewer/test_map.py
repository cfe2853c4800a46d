"""The annotation map page in real headless Chromium: a map of a label opens, its patches show the source
slide's pixels, and a relabel on the map changes the ORIGINAL annotation (checked through the REST API) in
one commit on the user's branch; so do a delete and a verification."""

from __future__ import annotations

import io
from typing import Any

import numpy as np
from PIL import Image

from .conftest import IMAGE, Site, Tab

POINTS = [(400, 500), (1200, 700), (1800, 1300), (700, 2500), (1600, 2700)]


def _seed(site: Site) -> tuple[list[str], str]:
    body = {"branch": "seed/map", "expected_parent": None, "from": "main", "image": IMAGE,
            "message": "five mitoses for the map",
            "create": [{"label": "mitosis", "geometry": {"type": "Point", "coordinates": list(p)}} for p in POINTS]}
    r = site.api("POST", "/api/v1/repos/cells/edits", body, token=site.tokens["ada"])
    return r["created"], r["commit"]


def _wait_map(tab: Tab, query: str) -> Any:
    page = tab.page
    page.goto(f"{tab.site.url}/cells/map?{query}")
    page.wait_for_function("() => document.body.dataset.ready === '1'", timeout=60000)
    err = page.locator("#page-error")
    assert err.count() == 0, f"the map page failed: {err.inner_text()} {tab.errors}"
    page.evaluate("() => window.exact.whenIdle()")
    return page


def _jpeg(data: bytes) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(data)).convert("RGB"), dtype=np.int16)


def _screen(page: Any, x: float, y: float) -> tuple[float, float]:
    """Viewer-element coordinates of map pixel (x, y)."""
    sx, sy = page.evaluate("""([x, y]) => { const v = window.exact.viewer.viewport;
        const q = v.viewportToViewerElementCoordinates(v.imageToViewportCoordinates(x, y)); return [q.x, q.y]; }""",
                           [x, y])
    return float(sx), float(sy)


def test_map_opens_shows_the_slide_and_relabels_the_source(tab: Tab, site: Site) -> None:
    ids, seeded = _seed(site)
    tab.sign_in("ada")
    page = _wait_map(tab, "label=mitosis&patch=96&per_row=3&rev=seed/map")
    m = page.evaluate("() => window.exact.map")
    assert m["count"] == 1 + len(POINTS) and m["commit"] == seeded  # the fixture's mitosis and the five
    # one map pixel per screen pixel, the map's top-left corner in view
    page.evaluate("""() => { const v = window.exact.viewer.viewport;
        v.zoomTo(v.imageToViewportZoom(1), null, true); v.panTo(v.imageToViewportCoordinates(250, 200), true); }""")
    page.evaluate("() => window.exact.whenIdle()")
    shot = np.asarray(Image.open(io.BytesIO(page.screenshot())).convert("RGB"), dtype=np.int16)
    rect = page.evaluate("() => window.exact.viewer.element.getBoundingClientRect().toJSON()")
    patches = page.evaluate("() => Promise.all([0, 1, 2].map((i) => window.exact.layout.get(i)))")
    fp = site.repo().image(IMAGE).fingerprint
    crops, refs = [], []
    for p in patches:
        cx, cy, side = p["cell"]
        sx, sy, _w, _h = p["source"]
        sx0, sy0 = _screen(page, cx, cy)
        x0, y0 = round(rect["x"] + sx0), round(rect["y"] + sy0)
        inset = 6  # the outline is drawn on the cell's edge
        crops.append(shot[y0 + inset:y0 + side - inset, x0 + inset:x0 + side - inset])
        r = page.request.get(f"{site.url}/slides/{fp}/region?x={sx}&y={sy}&w={side}&h={side}&level=12")
        assert r.ok, r.status
        refs.append(_jpeg(r.body())[inset:side - inset, inset:side - inset])
    for k in range(3):
        own = float(np.abs(crops[k] - refs[k]).mean())
        other = float(np.abs(crops[k] - refs[(k + 1) % 3]).mean())
        # the patch shows its own region of the slide (the view may sit between pixels: some resampling)
        assert own < 15 and own < other / 3, (k, own, other)

    # relabel patch 1 with the apoptosis key: the original annotation changes, in one commit
    target = patches[1]
    assert target["id"] in ids or target["id"] == site.known[1][2]
    sx0, sy0 = _screen(page, target["cell"][0] + 40, target["cell"][1] + 40)
    page.mouse.click(rect["x"] + sx0, rect["y"] + sy0)
    page.wait_for_function("() => window.exact.selected() === 1")
    page.keyboard.press("a")
    page.evaluate("() => window.exact.edited()")
    assert page.locator("#status").inner_text().startswith("Relabelled"), page.locator("#status").inner_text()
    assert page.locator("#patch-label").inner_text() == "apoptosis"
    branch = "users/ada/edits"
    tip = site.api("GET", "/api/v1/repos/cells/refs", token=site.tokens["ada"])["refs"][f"heads/{branch}"]
    c = site.api("GET", f"/api/v1/repos/cells/commits/{tip}", token=site.tokens["ada"])
    assert c["parents"] == [seeded]  # one commit on the user's branch, on top of what the map showed
    d = site.api("GET", f"/api/v1/repos/cells/diff?old={seeded}&new={tip}", token=site.tokens["ada"])
    changes = d["exactvc.diff/v1"]["images"][IMAGE]["changes"]
    assert [ch["id"] for ch in changes] == [target["id"]]
    anns = site.api("GET", f"/api/v1/repos/cells/images/{IMAGE}/annotations?rev={branch}&label=apoptosis",
                    token=site.tokens["ada"])["annotations"]
    assert [a["id"] for a in anns] == [target["id"]]
    main = site.api("GET", f"/api/v1/repos/cells/images/{IMAGE}/annotations?rev=seed/map&label=mitosis",
                    token=site.tokens["ada"])["annotations"]
    assert target["id"] in {a["id"] for a in main}  # the map's revision is untouched

    # Delete on the next patch: a second commit, the annotation is gone from the branch
    page.keyboard.press("ArrowRight")
    page.wait_for_function("() => window.exact.selected() === 2")
    page.keyboard.press("Delete")
    page.evaluate("() => window.exact.edited()")
    assert len(page.evaluate("() => window.exact.commits")) == 2
    left = site.api("GET", f"/api/v1/repos/cells/images/{IMAGE}/annotations?rev={branch}&label=mitosis",
                    token=site.tokens["ada"])["annotations"]
    assert patches[2]["id"] not in {a["id"] for a in left} and len(left) == len(POINTS) - 1

    # Shift+Y on the next: ada's verification of the original annotation, a third commit
    page.keyboard.press("ArrowRight")
    page.wait_for_function("() => window.exact.selected() === 3")
    page.keyboard.press("Shift+Y")
    page.evaluate("() => window.exact.edited()")
    assert len(page.evaluate("() => window.exact.commits")) == 3, page.locator("#status").inner_text()
    third = page.evaluate("() => window.exact.layout.get(3)")
    after = site.api("GET", f"/api/v1/repos/cells/images/{IMAGE}/annotations?rev={branch}&label=mitosis",
                     token=site.tokens["ada"])["annotations"]
    ver = next(a for a in after if a["id"] == third["id"]).get("verifications", [])
    assert [(v["user"], v["yes"]) for v in ver] == [("ada", True)], ver
    assert not tab.errors, tab.errors


def test_a_reader_sees_the_map_but_cannot_edit_it(tab: Tab, site: Site) -> None:
    tab.sign_in("rita")
    page = _wait_map(tab, "label=mitosis&patch=64&per_row=4")
    assert page.locator("#readonly-note").count() == 1
    page.evaluate("() => window.exact.select(0)")
    page.keyboard.press("a")
    assert page.evaluate("() => window.exact.commits.length") == 0
    bad = tab.page
    bad.goto(f"{site.url}/cells/map?label=mitosis&scale=3")
    bad.wait_for_function("() => document.body.dataset.ready === '1'")
    assert "power of two" in bad.locator("#page-error").inner_text()
