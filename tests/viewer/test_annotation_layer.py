"""The WebGL2 annotation layer (viewer/src/layer/) in the slide page: shapes at their screen positions
(pixel checks with the slide's own tiles hidden), density cells zoomed out, label style, opacity and
hidden annotations without reloading, picking, records, another commit, and whenIdle."""

from __future__ import annotations

from typing import Any

from .conftest import LABELS, Site, Tab, hex_rgb

COLORS = {name: color for name, _s, color, *_ in LABELS}
LAYER = "document.querySelector('canvas.annotation-layer').exactLayer"


def _open(tab: Tab, site: Site) -> Any:
    tab.sign_in("rita")
    page = tab.open_slide()
    # the slide's own tiles out of the way: what is left on screen is the annotation layer
    page.evaluate("() => window.exact.viewer.world.getItemAt(0).setOpacity(0)")
    tab.idle()
    return page


def _rgb(tab: Tab, x: float, y: float) -> tuple[int, int, int]:
    sx, sy = tab.to_screen(x, y)
    px: tuple[int, int, int] = tab.pixels().getpixel((int(round(sx)), int(round(sy))))
    return px


def _tinted(px: tuple[int, int, int], bg: tuple[int, int, int], rgb: tuple[int, int, int]) -> bool:
    """``px`` moved from the background towards the label colour (a translucent fill)."""
    moved = [p - b for p, b in zip(px, bg, strict=True)]
    want = [c - b for c, b in zip(rgb, bg, strict=True)]
    return sum(m * w for m, w in zip(moved, want, strict=True)) > 0 and max(map(abs, moved)) >= 20


def test_shapes_at_their_screen_positions(tab: Tab, site: Site) -> None:
    page = _open(tab, site)
    bg = _rgb(tab, 2100, 2900)  # no annotation near the slide's far corner
    tumor, mitosis, region, cell = site.known
    red = hex_rgb(COLORS["tumor"])
    # the tumour polygon (300..700 x 300..600): filled inside, not outside, the edge between
    assert _tinted(_rgb(tab, 500, 450), bg, red)
    for x, y in ((320, 450), (680, 450), (500, 320), (500, 580)):  # just inside each edge
        assert _tinted(_rgb(tab, x, y), bg, red), (x, y)
    for x, y in ((270, 450), (730, 450), (500, 270), (500, 630)):  # just outside
        assert _rgb(tab, x, y) == bg, (x, y)
    sx, sy = tab.to_screen(300, 450)
    from .conftest import near_color

    img = tab.pixels()
    assert near_color(img, sx, sy, red, radius=2, tol=70)  # the outline, in the label's colour
    # the point: a disc in its colour, centred on it
    assert near_color(img, *tab.to_screen(*mitosis[1]["coordinates"]), hex_rgb(COLORS["mitosis"]), radius=4, tol=90)
    # the box and the small cell
    assert _tinted(_rgb(tab, 1300, 1750), bg, hex_rgb(COLORS["region"]))
    assert _tinted(_rgb(tab, 450, 2250), bg, hex_rgb(COLORS["cell"]))
    assert _rgb(tab, 1900, 300) == bg
    stats = page.evaluate(f"() => {LAYER}._stats()")
    assert stats["geometry"] >= 1 and stats["annotations"] == len(site.known) and stats["density"] == 0
    assert not tab.errors, tab.errors


def test_density_zoomed_out_and_geometry_zoomed_in(tab: Tab, site: Site) -> None:
    page = _open(tab, site)
    page.evaluate("() => { const v = window.exact.viewer.viewport; v.zoomTo(v.getHomeZoom() * 0.3, null, true); }")
    tab.idle()
    stats = page.evaluate(f"() => {LAYER}._stats()")
    assert stats["density"] >= 1 and stats["counted"] == stats["count"] == len(site.known)
    bg = _rgb(tab, 2100, 2900)
    assert _tinted(_rgb(tab, 500, 450), bg, hex_rgb(COLORS["tumor"]))  # the tumour's density cell
    assert _rgb(tab, 1900, 300) == bg
    page.evaluate("() => { const v = window.exact.viewer.viewport; v.zoomTo(v.getHomeZoom() * 6, null, true);"
                  " v.panTo(v.imageToViewportCoordinates(500, 450), true); }")
    tab.idle()
    stats = page.evaluate(f"() => {LAYER}._stats()")
    assert stats["density"] == 0 and stats["annotations"] >= 1
    assert _tinted(_rgb(tab, 500, 450), _rgb(tab, 800, 450), hex_rgb(COLORS["tumor"]))
    assert not tab.errors, tab.errors


def test_style_opacity_hidden_picking_records(tab: Tab, site: Site) -> None:
    page = _open(tab, site)
    bg = _rgb(tab, 2100, 2900)
    tumor_id = site.known[0][2]
    red = hex_rgb(COLORS["tumor"])
    tumor_index = [n for n, *_ in LABELS].index("tumor")
    # the label hidden, then shown in another colour: no geometry reload (same tiles loaded)
    loaded = page.evaluate(f"() => {LAYER}._stats().loaded")
    page.evaluate(f"() => {LAYER}.setLabelStyle({tumor_index}, {{visible: false}})")
    tab.idle()
    assert _rgb(tab, 500, 450) == bg
    assert page.evaluate("() => window.exact.annotationsAt(500, 450)") == []
    page.evaluate(f"() => {LAYER}.setLabelStyle({tumor_index}, {{visible: true, color: '#0000ff'}})")
    tab.idle()
    assert _tinted(_rgb(tab, 500, 450), bg, (0, 0, 255)) and not _tinted(_rgb(tab, 500, 450), bg, red)
    page.evaluate(f"() => {LAYER}.setLabelStyle({tumor_index}, {{color: '{COLORS['tumor']}'}})")
    # opacity 0: nothing drawn; back to 1
    page.evaluate(f"() => {LAYER}.setOpacity(0)")
    tab.idle()
    assert _rgb(tab, 500, 450) == bg and _rgb(tab, 1300, 1750) == bg
    page.evaluate(f"() => {LAYER}.setOpacity(1)")
    # hidden (being edited locally): not drawn, not picked; the others still are
    page.evaluate(f"(id) => {LAYER}.setHidden([id])", tumor_id)
    page.wait_for_timeout(300)
    tab.idle()
    assert _rgb(tab, 500, 450) == bg
    assert _tinted(_rgb(tab, 1300, 1750), bg, hex_rgb(COLORS["region"]))
    assert page.evaluate("() => window.exact.annotationsAt(500, 450)") == []
    page.evaluate(f"() => {LAYER}.setHidden([])")
    page.wait_for_timeout(300)
    tab.idle()
    assert _tinted(_rgb(tab, 500, 450), bg, red)
    assert page.evaluate(f"() => {LAYER}.stats === undefined") and page.evaluate(
        f"() => {LAYER}._stats().loaded") == loaded
    # picking: a point, a rectangle; the record on demand
    assert page.evaluate("() => window.exact.annotationsAt(500, 450)") == [tumor_id]
    assert page.evaluate(f"() => {LAYER}.idsAt(1500, 800)") == [site.known[1][2]]  # the point, by its disc
    got = set(page.evaluate(f"() => {LAYER}.idsIn(0, 0, 1700, 2100)"))
    assert got == {site.known[0][2], site.known[1][2], site.known[2][2]}
    rec = page.evaluate(f"(id) => {LAYER}.record(id)", tumor_id)
    want = site.repo().annotation("cmu", tumor_id).to_dict()
    assert rec == {**want, "properties": want.get("properties", {}), "plane": None}
    assert not tab.errors, tab.errors


def test_set_commit_shows_another_revision(tab: Tab, site: Site) -> None:
    repo = site.repo()
    first = (repo.head_commit() or b"").hex()
    with repo.edit("cmu") as ed:
        new_id = ed.add("cell", {"type": "Polygon", "coordinates": [[[1800, 2600], [1900, 2600], [1900, 2700],
                                                                    [1800, 2700], [1800, 2600]]]})
    second = repo.commit("one more cell", author="T <t@example.org>")
    try:
        page = _open(tab, site)
        bg = _rgb(tab, 2100, 2900)
        yellow = hex_rgb(COLORS["cell"])
        assert _tinted(_rgb(tab, 1850, 2650), bg, yellow)  # the page opened the branch tip
        page.evaluate(f"() => {LAYER}.setCommit('{first}')")
        page.wait_for_timeout(300)
        tab.idle()
        assert _rgb(tab, 1850, 2650) == bg
        assert page.evaluate(f"() => {LAYER}._stats().commit") == first
        page.evaluate(f"() => {LAYER}.setCommit('{second}')")
        page.wait_for_timeout(300)
        tab.idle()
        assert _tinted(_rgb(tab, 1850, 2650), bg, yellow)
        assert page.evaluate("() => window.exact.annotationsAt(1850, 2650)") == [new_id]
        assert not tab.errors, tab.errors
    finally:
        with repo.edit("cmu") as ed:
            ed.delete(new_id)
        repo.commit("back to the four", author="T <t@example.org>")
