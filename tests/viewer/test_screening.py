"""Screening mode in real headless Chromium: fields of view stepped through with the keys, progress on the
thumbnail map (screened green, current purple), position and progress restored in a new browser context."""

from __future__ import annotations

from typing import Any

from .conftest import IMAGE, Site, Tab


def _map_pixel(page: Any, x: float, y: float) -> list[int]:
    """RGBA of the thumbnail map at image point (x, y)."""
    return list(page.evaluate("""([x, y, w]) => { const c = document.getElementById('screening-map');
        const s = c.width / w; return Array.from(c.getContext('2d').getImageData(
          Math.min(c.width - 1, Math.floor(x * s)), Math.min(c.height - 1, Math.floor(y * s)), 1, 1).data); }""",
                              [x, y, 2220]))


def test_screening_keys_thumbnail_and_restore(tab: Tab, new_tab: Any, site: Site) -> None:
    tab.sign_in("ben")
    page = tab.open_slide()
    page.evaluate("() => window.exact.screening.ready()")
    page.evaluate("() => window.exact.viewer.viewport.zoomTo(window.exact.viewer.viewport.getZoom() * 6, null, true)")
    tab.idle()
    page.click("#screening-start")
    page.evaluate("() => window.exact.screening.settled()")
    st = page.evaluate("() => window.exact.screening.state()")
    assert st["current"] == 0 and st["screened"] == [] and st["count"] > 4
    for _ in range(3):
        tab.key("PageDown")
    tab.key("PageUp")
    tab.key("PageDown")
    page.evaluate("() => window.exact.screening.settled()")
    st = page.evaluate("() => window.exact.screening.state()")
    assert st["current"] == 3 and st["screened"] == [0, 1, 2]
    fields = st["fields"]
    assert fields[1][1] == fields[0][1] and fields[1][0] > fields[0][0]  # row order
    x, y, w, h = fields[0]
    assert fields[1][0] <= x + 0.85 * w + 1  # 15 % overlap
    assert page.inner_text("#screening-progress").startswith("field 4 of")
    # the map: a screened field is green, the current one has a purple frame
    g = _map_pixel(page, x + w / 2, y + h / 2)
    assert g[1] > g[0] + 40 and g[1] > g[2] + 40, g
    cx, cy, cw, ch = fields[3]
    pfx = next(p for p in [_map_pixel(page, cx + cw / 2, cy + dy) for dy in (0, 5, 10, 15)]
               if p[2] > 150 and p[1] < 100)
    assert pfx[0] > 100, pfx
    # the view shows the current field
    view = page.evaluate("() => window.exact.view()")
    assert cx <= view["x"] <= cx + cw and cy <= view["y"] <= cy + ch
    # kept on the server, per user and image
    got = site.api("GET", f"/api/v1/repos/cells/images/{IMAGE}/screening", token=site.tokens["ben"])
    assert got["state"]["current"] == 3 and got["state"]["screened"] == [0, 1, 2]
    # another browser (a new context: no cookies, no local storage) restores position and progress
    other = new_tab()
    other.sign_in("ben")
    p2 = other.open_slide()
    p2.evaluate("() => window.exact.screening.ready()")
    other.idle()
    st2 = p2.evaluate("() => window.exact.screening.state()")
    assert st2["current"] == 3 and st2["screened"] == [0, 1, 2]
    v2 = p2.evaluate("() => window.exact.view()")
    assert cx <= v2["x"] <= cx + cw and cy <= v2["y"] <= cy + ch
    g2 = _map_pixel(p2, x + w / 2, y + h / 2)
    assert g2[1] > g2[0] + 40, g2
    tab.key("PageDown")  # the first tab goes on; the second sees it after a reload
    page.evaluate("() => window.exact.screening.settled()")
    p2.reload()
    p2.wait_for_function("() => document.body.dataset.ready === '1'")
    p2.evaluate("() => window.exact.screening.ready()")
    assert p2.evaluate("() => window.exact.screening.state()")["current"] == 4
    assert not tab.errors and not other.errors, (tab.errors, other.errors)
