"""The slide page renders the real slide's tiles and the known annotations at their places."""

from __future__ import annotations

from .conftest import LABELS, Site, Tab, hex_rgb, near_color

COLORS = {name: color for name, _s, color, *_ in LABELS}


def test_pages_are_served_with_a_strict_csp(site: Site) -> None:
    from ..server_fixtures import request

    html = {"Accept": "text/html"}
    for path in ("/", "/-/signin", "/cells", "/cells/slide/cmu"):
        r = request("GET", site.url + path, token=site.tokens["ada"], headers=html)
        assert r.status == 200, (path, r.status)
        csp = r.headers["content-security-policy"]
        assert "script-src 'self'" in csp and "unsafe-inline" not in csp and "frame-ancestors 'none'" in csp
        assert b"<script type=\"module\" src=\"/-/assets/" in r.body
    # a repository page tells a browser what the API would: 401 anonymous, 404 for private and missing alike
    assert request("GET", site.url + "/cells", headers=html).status == 401
    assert request("GET", site.url + "/no-such-repo", headers=html).status == 401
    outsider = _outsider(site)
    assert request("GET", site.url + "/cells/slide/cmu", token=outsider, headers=html).status == 404
    assert request("GET", site.url + "/no-such-repo", token=outsider, headers=html).status == 404
    # other clients get the JSON error
    r = request("GET", site.url + "/cells")
    assert r.status == 401 and r.error()["type"] == "unauthorized"
    # the sync protocol's routes still answer as before
    assert request("GET", site.url + "/cells/info/refs").status == 401
    assert request("GET", site.url + "/cells/info/refs", token=site.tokens["ada"]).status == 200


def test_slide_renders_tiles_and_annotations(tab: Tab, site: Site) -> None:
    site.api("PUT", "/api/v1/repos/cells/settings", {"anonymous_read": True}, token=_admin(site))
    try:
        page = tab.open_slide()
        img = tab.pixels()
        vb = page.locator("#viewer").bounding_box()
        assert vb is not None
        # tiles: inside the image the canvas shows the slide (bright, varied), not the black background
        samples = []
        for i in range(10):
            for j in range(10):
                sx, sy = tab.to_screen(100 + 200 * i, 100 + 270 * j)
                if vb["x"] < sx < vb["x"] + vb["width"] and vb["y"] < sy < vb["y"] + vb["height"]:
                    samples.append(sum(img.getpixel((int(sx), int(sy)))) / 3)
        assert len(samples) >= 50
        assert sum(v > 60 for v in samples) >= 0.9 * len(samples), samples
        mean = sum(samples) / len(samples)
        assert mean > 120 and max(samples) - min(samples) > 30, samples
        outside = tab.to_screen(-50, 1480)
        if outside[0] > vb["x"]:
            assert sum(img.getpixel((int(outside[0]), int(outside[1])))) < 60  # beside the slide: background
        # annotations: each known shape's outline carries its label's colour on the canvas
        for label, geom, _id in site.known:
            rgb = hex_rgb(COLORS[label])
            if geom["type"] == "Point":
                x, y = geom["coordinates"]
            else:
                (x0, y0), (x1, _y1) = geom["coordinates"][0][0], geom["coordinates"][0][1]
                x, y = (x0 + x1) / 2, y0  # the middle of the top edge
            sx, sy = tab.to_screen(x, y)
            assert vb["x"] <= sx <= vb["x"] + vb["width"] and vb["y"] <= sy <= vb["y"] + vb["height"]
            assert near_color(img, sx, sy, rgb), (label, (sx, sy), img.getpixel((int(sx), int(sy))))
        # and a place without annotations does not
        sx, sy = tab.to_screen(1900, 300)
        assert not any(near_color(img, sx, sy, hex_rgb(c), tol=40) for c in COLORS.values())
        # picking through the JS API: the tumour polygon at its centre
        ids = page.evaluate("() => window.exact.annotationsAt(500, 450)")
        assert ids == [site.known[0][2]]
        assert not tab.errors, tab.errors
    finally:
        site.api("PUT", "/api/v1/repos/cells/settings", {"anonymous_read": False}, token=_admin(site))


def _admin(site: Site) -> str:
    if "admin" not in site.tokens:
        from exactvc.access import AccessStore

        site.tokens["admin"] = AccessStore(site.root).add_user("admin", site_admin=True)
    return site.tokens["admin"]




def _outsider(site: Site) -> str:
    if "outsider" not in site.tokens:
        from exactvc.access import AccessStore

        site.tokens["outsider"] = AccessStore(site.root).add_user("outsider")
    return site.tokens["outsider"]
