"""Editing in the browser: every tool makes the right shape, selection and label keys, vertex edit, brush,
undo/redo, save as one commit on users/NAME/edits, reload keeps unsaved edits, two tabs and a conflict."""

from __future__ import annotations

import json
from typing import Any

import pytest

from .conftest import IMAGE, Site, Tab

VIEW = "?x=1100&y=1300&zoom=1"  # 1 screen px = 1 image px; x 610..1590, y 880..1720 visible


def ring_bounds(g: dict[str, Any]) -> tuple[float, float, float, float]:
    pts = g["coordinates"][0] if g["type"] == "Polygon" else g["coordinates"]
    xs, ys = [p[0] for p in pts], [p[1] for p in pts]
    return min(xs), min(ys), max(xs), max(ys)


def vertex_sets(g: dict[str, Any]) -> Any:
    c = g["coordinates"]
    if g["type"] == "Point":
        return [tuple(c)]
    if g["type"] == "LineString":
        return [tuple(map(tuple, c))]
    polys = [c] if g["type"] == "Polygon" else c
    return sorted(sorted(frozenset(map(tuple, r)) for r in p) for p in polys)


def same_shape(a: dict[str, Any], b: dict[str, Any]) -> bool:
    return a["type"] == b["type"] and vertex_sets(a) == vertex_sets(b)


def close(a: float, b: float, tol: float = 2.0) -> bool:
    return abs(a - b) <= tol


@pytest.fixture
def ada(tab: Tab) -> Tab:
    tab.sign_in("ada")
    return tab


def branch_tip(site: Site, user: str) -> str | None:
    refs = site.api("GET", "/api/v1/repos/cells/refs", token=site.tokens[user])["refs"]
    tip: str | None = refs.get(f"heads/users/{user}/edits")
    return tip


def annotations_at(site: Site, rev: str) -> dict[str, dict[str, Any]]:
    out = site.api("GET", f"/api/v1/repos/cells/images/{IMAGE}/annotations?rev={rev}&limit=5000",
                   token=site.tokens["ada"])["annotations"]
    return {a["id"]: a for a in out}


def test_each_tool_makes_its_shape_and_save_commits_them(ada: Tab, site: Site) -> None:
    t = ada
    t.open_slide(VIEW)
    assert t.page.locator("#toolbar").is_visible()
    # point
    t.key("m")
    t.key("Shift+P")
    t.click(700, 1000)
    # single click with the label's default size: cell 40x40 around the click
    t.key("c")
    t.key("Shift+C")
    t.click(800, 1000)
    # box (region)
    t.key("r")
    t.key("Shift+B")
    t.drag([(650, 1100), (750, 1180)])
    # ellipse (nucleus)
    t.key("n")
    t.key("Shift+O")
    t.drag([(800, 1100), (900, 1160)])
    # polygon closed on its first vertex (tumor)
    t.key("t")
    t.key("Shift+G")
    for x, y in [(650, 1250), (760, 1250), (700, 1330)]:
        t.click(x, y)
    t.click(650, 1250)
    # polygon closed with Enter
    for x, y in [(800, 1250), (900, 1250), (900, 1330), (800, 1330)]:
        t.click(x, y)
    t.key("Enter")
    # polyline (fiber)
    t.key("f")
    t.key("Shift+L")
    for x, y in [(650, 1400), (750, 1450), (850, 1400)]:
        t.click(x, y)
    t.key("Enter")
    # freehand polygon (tumor)
    t.key("t")
    t.key("Shift+F")
    t.drag([(650, 1500), (750, 1500), (750, 1600), (650, 1600)], steps=6)
    body = t.pending()
    made = body["create"]
    assert not body["update"] and not body["delete"]
    by = {}
    for c in made:
        by.setdefault(c["label"], []).append(c["geometry"])
    assert [g["coordinates"] for g in by["mitosis"]] == [[pytest.approx(700, abs=1.5), pytest.approx(1000, abs=1.5)]]
    (cell,) = by["cell"]
    x0, y0, x1, y1 = ring_bounds(cell)
    assert close(x1 - x0, 40, 0.01) and close(y1 - y0, 40, 0.01) and close((x0 + x1) / 2, 800) and close((y0 + y1) / 2, 1000)
    (box,) = by["region"]
    assert [close(a, b) for a, b in zip(ring_bounds(box), (650, 1100, 750, 1180), strict=True)] == [True] * 4
    assert len(box["coordinates"][0]) == 5
    (ell,) = by["nucleus"]
    assert ell.get("isEllipse") is True
    assert [close(a, b) for a, b in zip(ring_bounds(ell), (800, 1100, 900, 1160), strict=True)] == [True] * 4
    tri, quad, free = by["tumor"]
    assert len(tri["coordinates"][0]) == 4 and len(quad["coordinates"][0]) == 5
    assert len(free["coordinates"][0]) >= 8
    fx0, fy0, fx1, fy1 = ring_bounds(free)
    assert close(fx0, 650, 3) and close(fy1, 1600, 3)
    (line,) = by["fiber"]
    assert line["type"] == "LineString" and len(line["coordinates"]) == 3
    # the pending shapes are drawn by the overlay
    assert t.page.locator(".edit-overlay .pending").count() == len(made)

    before = branch_tip(site, "ada")
    assert before is None
    r = t.save("Draw every kind of shape")
    assert r and r["commit"]
    tip = branch_tip(site, "ada")
    assert tip == r["commit"]
    assert t.pending() == {"create": [], "update": [], "delete": []}
    # one commit on users/ada/edits, on top of main, holding exactly what was drawn
    log = json.loads(site.exact("log", "--json", "users/ada/edits"))
    entries = next(iter(log.values()))
    assert entries[0]["id"] == tip and entries[0]["message"] == "Draw every kind of shape"
    assert entries[1]["id"] == site.repo().resolve("main").hex()
    show = json.loads(site.exact("show", "--json", tip))
    assert "ada" in json.dumps(show)
    saved = annotations_at(site, tip)
    for c in made:
        a = saved[c["id"]]
        assert a["label"] == c["label"]
        if c["geometry"].get("isEllipse"):
            assert a["kind"] == "ellipse"
        else:  # the server keeps rings from their smallest vertex, exteriors counter-clockwise
            assert same_shape(a["geometry"], c["geometry"]), c["label"]
    assert len(saved) == len(site.known) + len(made)
    assert not t.errors, t.errors


def test_rectangle_selection_and_label_key(ada: Tab, site: Site) -> None:
    t = ada
    t.open_slide(VIEW)
    t.key("m")
    t.key("Shift+P")
    for x in (1300, 1360, 1420):
        t.click(x, 950)
    t.click(1000, 1200)  # outside the rectangle
    t.key("Shift+S")
    t.drag([(1260, 900), (1460, 990)])
    assert len(t.page.evaluate("() => window.exact.editor.selection()")) == 3
    t.key("a")  # apoptosis: assigned to all three
    labels = sorted(c["label"] for c in t.pending()["create"])
    assert labels == ["apoptosis", "apoptosis", "apoptosis", "mitosis"]
    # shift-click adds the fourth, click alone selects one
    t.click(1000, 1200, "Shift")
    assert len(t.page.evaluate("() => window.exact.editor.selection()")) == 4
    t.click(1300, 950)
    assert len(t.page.evaluate("() => window.exact.editor.selection()")) == 1
    # a saved annotation: the mitosis at (1500, 800) is outside this view; the region box is inside
    t.drag([(990, 1490), (1610, 1710)])  # region spans 1000..1600 x 1500..2000: not fully inside
    assert t.page.evaluate("() => window.exact.editor.selection()") == []
    assert not t.errors, t.errors


def test_vertex_edit_undo_redo(ada: Tab, site: Site) -> None:
    t = ada
    t.open_slide("?x=500&y=450&zoom=1")
    tumor = site.known[0][2]
    t.key("Shift+S")
    t.click(500, 450)
    assert t.page.evaluate("() => window.exact.editor.selection()") == [tumor]
    t.key("Shift+E")
    t.drag([(700, 300), (750, 260)])  # drag a vertex
    t.click(500, 600)  # insert a vertex on the bottom edge
    t.click(300, 300, "Alt")  # delete a vertex
    (upd,) = t.pending()["update"]
    ring = upd["geometry"]["coordinates"][0]
    assert [750, 260] in [[round(x), round(y)] for x, y in ring]
    assert [500, 600] in [[round(x), round(y)] for x, y in ring]
    assert [300, 300] not in [[round(x), round(y)] for x, y in ring]
    assert len(ring) == 5  # 4 corners - 1 + 1, closed
    # undo / redo, step by step
    t.key("Control+z")
    ring2 = t.pending()["update"][0]["geometry"]["coordinates"][0]
    assert [300, 300] in [[round(x), round(y)] for x, y in ring2]
    t.key("Control+z")
    t.key("Control+z")
    assert t.pending()["update"] == []
    t.key("Control+Shift+z")
    t.key("Control+Shift+z")
    t.key("Control+Shift+z")
    assert t.pending()["update"][0]["geometry"]["coordinates"][0] == ring
    # delete key and undo
    t.key("Shift+S")
    t.click(500, 450)
    t.key("Delete")
    assert t.pending()["delete"] == [tumor]
    t.key("Control+z")
    assert t.pending()["delete"] == []
    assert not t.errors, t.errors


def test_brush_adds_and_eraser_subtracts(ada: Tab, site: Site) -> None:
    t = ada
    t.open_slide("?x=500&y=450&zoom=1")
    tumor = site.known[0][2]
    t.key("Shift+S")
    t.click(500, 450)
    t.key("Shift+R")
    t.drag([(650, 450), (720, 450), (790, 450)], steps=8)
    (upd,) = t.pending()["update"]
    g = upd["geometry"]
    assert upd["id"] == tumor and g["type"] == "Polygon"
    x0, y0, x1, y1 = ring_bounds(g)
    assert x1 >= 795 and close(x0, 300)  # grew to the right, by the stroke's end and its radius
    t.key("Shift+X")
    t.drag([(400, 250), (400, 450), (400, 650)], steps=10)  # cut through: two parts
    g2 = t.pending()["update"][0]["geometry"]
    assert g2["type"] == "MultiPolygon" and len(g2["coordinates"]) == 2
    # the cut area is gone: (400, 450) is in neither part
    inside = t.page.evaluate("([g]) => window.exact.editor.ctx && true", [g2])
    assert inside
    hits = t.page.evaluate("() => window.exact.annotationsAt(400, 450)")
    assert tumor not in hits
    assert tumor in t.page.evaluate("() => window.exact.annotationsAt(600, 450)")
    # a hole: cut into the right part
    t.key("Shift+H")
    for x, y in [(550, 400), (600, 400), (600, 500), (550, 500)]:
        t.click(x, y)
    t.key("Enter")
    g3 = t.pending()["update"][0]["geometry"]
    assert any(len(p) == 2 for p in g3["coordinates"])
    assert tumor not in t.page.evaluate("() => window.exact.annotationsAt(575, 450)")
    assert not t.errors, t.errors


def test_reload_restores_unsaved_edits(ada: Tab, site: Site) -> None:
    t = ada
    t.open_slide(VIEW)
    t.key("m")
    t.key("Shift+P")
    t.click(1200, 1000)
    t.click(1250, 1000)
    body = t.pending()
    assert len(body["create"]) == 2
    t.page.reload()
    t.page.wait_for_function("() => document.body.dataset.ready === '1'")
    t.idle()
    assert t.pending() == body
    assert "restored" in t.page.locator("#status").inner_text()
    assert t.page.locator(".edit-overlay .pending").count() == 2
    t.key("Control+z")  # undo history came back too
    assert len(t.pending()["create"]) == 1


def test_invalid_shapes_never_leave_the_browser(ada: Tab, site: Site) -> None:
    t = ada
    t.open_slide(VIEW)
    t.key("t")
    t.key("Shift+G")
    for x, y in [(700, 1000), (900, 1100), (900, 1000), (700, 1050)]:  # a bow tie
        t.click(x, y)
    t.key("Enter")
    assert t.pending()["create"] == []
    assert "self-intersection" in t.page.locator("#status").inner_text()
    t.key("m")
    assert t.page.evaluate("() => window.exact.editor.create({type: 'Point', coordinates: [-5, 10]})") is None
    assert "outside the image" in t.page.locator("#status").inner_text()
    t.key("r")  # a box label takes no point
    assert t.page.evaluate("() => window.exact.editor.create({type: 'Point', coordinates: [5, 10]})") is None
    assert "takes box shapes" in t.page.locator("#status").inner_text()
    assert t.page.evaluate("() => window.exact.editor.state.size") == 0


def test_two_tabs_conflict_loses_nothing(browser: Any, new_tab: Any, site: Site) -> None:
    ctx = browser.new_context(viewport={"width": 1280, "height": 860})
    try:
        a = new_tab(ctx)
        a.sign_in("ben")
        b = new_tab(ctx)
        a.open_slide("?x=500&y=450&zoom=1")
        b.open_slide("?x=500&y=450&zoom=1")
        tumor = site.known[0][2]
        for t, (dx, px) in ((a, (30, 850)), (b, (-30, 900))):
            t.key("Shift+V")
            t.drag([(500, 450), (500 + dx, 450)])
            t.key("Escape")  # with a selection, a label key would relabel it
            t.key("m")
            t.key("Shift+P")
            t.click(px, 500)
        ra = a.save("Tab A")
        assert ra and ra["commit"]
        assert b.pending()["update"][0]["id"] == tumor
        rb = b.save("Tab B")
        assert rb is None  # the conflict is shown, nothing committed yet
        assert b.page.locator("#conflicts .conflict").count() == 1
        # the point of tab B is still pending, the move too
        body = b.pending()
        assert len(body["create"]) == 1 and body["update"][0]["id"] == tumor
        b.page.click("#conflicts .keep-mine")
        rb = b.save("Tab B, keeping my move")
        assert rb and rb["commit"]
        final = annotations_at(site, rb["commit"])
        ex = final[tumor]["geometry"]["coordinates"][0]
        assert min(p[0] for p in ex) == pytest.approx(270, abs=2)  # tab B's move won, as chosen
        points = [p for p in final.values() if p["label"] == "mitosis" and p["id"] != site.known[1][2]]
        assert sorted(round(p["geometry"]["coordinates"][0]) for p in points) == [850, 900]  # both points
        log = json.loads(site.exact("log", "--json", "users/ben/edits"))
        msgs = [e["message"] for e in next(iter(log.values()))][:2]
        assert msgs == ["Tab B, keeping my move", "Tab A"]
    finally:
        ctx.close()
