"""Conflicts of a pull request resolved in real Chromium: two branches redraw the same two annotations
differently; the pull request page lists both conflicts, draws base / ours / theirs in their styles where
they lie, flies to each, keeps merging disabled until both have a choice; the reviewer keeps "theirs" for
one (a row's button, then a key) and "ours" for the other (in bulk for its label) and merges; the merge
commit holds exactly the chosen values."""

from __future__ import annotations

from typing import Any

from .conftest import IMAGE, Site, Tab, hex_rgb, near_color

SIDE = {"base": "#9e9e9e", "ours": "#0074d9", "theirs": "#f012be"}


def box(x0: float, y0: float, x1: float, y1: float) -> dict[str, Any]:
    return {"type": "Polygon", "coordinates": [[[x0, y0], [x1, y0], [x1, y1], [x0, y1], [x0, y0]]]}


def _conflicting_pull(site: Site) -> dict[str, Any]:
    """ada redraws the tumor and the cell on users/ada/fix; main redraws both differently afterwards."""
    from exactvc.access import AccessStore
    from exactvc.history import commit_changes

    AccessStore(site.root).grant("cells", "ben", "maintain")
    ids = {label: aid for label, _g, aid in site.known}
    theirs = {"tumor": box(350, 350, 650, 550), "cell": box(420, 2220, 480, 2280)}
    ours = {"tumor": box(250, 250, 750, 650), "cell": box(380, 2180, 560, 2360)}
    site.api("POST", "/api/v1/repos/cells/edits", {
        "branch": "users/ada/fix", "expected_parent": None, "from": "main", "image": IMAGE, "message": "tighter outlines",
        "update": [{"id": ids[k], "geometry": g} for k, g in theirs.items()]}, token=site.tokens["ada"])
    pr = site.api("POST", "/api/v1/repos/cells/pulls", {"title": "Tighter outlines", "source": "users/ada/fix"},
                  token=site.tokens["ada"])
    repo = site.repo()
    commit_changes(repo, "main", repo.refs.read("heads/main"), IMAGE, "wider outlines on main", "ben <ben@x>",
                   update=[{"id": ids[k], "geometry": g} for k, g in ours.items()])
    return {"n": pr["number"], "ids": ids, "theirs": theirs, "ours": ours}


def _view_contains(tab: Tab, x: float, y: float) -> bool:
    v = tab.page.evaluate("() => { const v = window.exact.viewer; const b = v.viewport.viewportToImageRectangle("
                          "v.viewport.getBounds()); return [b.x, b.y, b.x + b.width, b.y + b.height]; }")
    return bool(v[0] <= x <= v[2] and v[1] <= y <= v[3])


def test_conflicts_resolved_in_the_browser(tab: Tab, site: Site) -> None:
    made = _conflicting_pull(site)
    n, ids = made["n"], made["ids"]
    rest = site.api("GET", f"/api/v1/repos/cells/pulls/{n}/conflicts", token=site.tokens["ben"])
    assert {c["id"] for c in rest["conflicts"]} == {ids["tumor"], ids["cell"]}

    tab.sign_in("ben")
    page = tab.page
    page.goto(f"{site.url}/cells/pull/{n}")
    page.wait_for_function("() => document.body.dataset.ready === '1'", timeout=60000)
    assert page.locator("#page-error").count() == 0, page.locator("#page-error").inner_text()
    tab.idle()
    assert page.locator("#conflict-list li").count() == 2
    assert page.locator("#conflict-summary").get_attribute("data-unresolved") == "2"
    assert page.locator("#merge").is_disabled()

    # the first conflict: the view flies there and base / ours / theirs are drawn in their styles
    tab.key("c")
    tab.idle()
    first = page.evaluate("() => window.exact.conflicts.selected()")
    which = "tumor" if first["id"] == ids["tumor"] else "cell"
    other = "cell" if which == "tumor" else "tumor"
    (tx0, ty0, tx1, _), (ox0, oy0, ox1, _) = (made["theirs"][which]["coordinates"][0][0] + made["theirs"][which][
        "coordinates"][0][2], made["ours"][which]["coordinates"][0][0] + made["ours"][which]["coordinates"][0][2])
    assert _view_contains(tab, (tx0 + tx1) / 2, ty0) and _view_contains(tab, (ox0 + ox1) / 2, oy0)
    img = tab.pixels()
    assert near_color(img, *tab.to_screen((tx0 + tx1) / 2, ty0), hex_rgb(SIDE["theirs"]), radius=3)
    assert near_color(img, *tab.to_screen((ox0 + ox1) / 2, oy0), hex_rgb(SIDE["ours"]), radius=3)
    assert not near_color(img, *tab.to_screen((tx0 + tx1) / 2, ty0), hex_rgb(SIDE["ours"]), radius=3)
    base = site.api("GET", f"/api/v1/repos/cells/pulls/{n}/conflicts", token=site.tokens["ben"])
    bg = next(c for c in base["conflicts"] if c["id"] == first["id"])["base"]["geometry"]["coordinates"][0]
    bx0, by0, bx1 = bg[0][0], bg[0][1], bg[2][0]
    assert near_color(img, *tab.to_screen((bx0 + bx1) / 2, by0), hex_rgb(SIDE["base"]), radius=6)

    # the first: "base" by its row's button, changed to "theirs" by key; the second "ours" in bulk for its
    # label; merge is enabled only then
    page.click(f"#conflict-list li[data-id='{first['id']}'] button[data-side='base']")
    page.wait_for_selector(f"#conflict-list li[data-id='{first['id']}'][data-chosen='base']")
    tab.key("t")
    page.wait_for_selector(f"#conflict-list li[data-id='{first['id']}'][data-chosen='theirs']")
    assert page.locator("#merge").is_disabled()
    page.select_option("#conflict-bulk-label", other)
    page.click("#conflict-bulk button[data-side='ours']")
    page.wait_for_selector(f"#conflict-list li[data-id='{ids[other]}'][data-chosen='ours']")
    assert page.locator(f"#conflict-list li[data-id='{first['id']}']").get_attribute("data-chosen") == "theirs"
    assert page.locator("#conflict-summary").get_attribute("data-unresolved") == "0"
    assert page.locator("#merge").is_enabled()
    page.click(f"#conflict-list li[data-id='{ids[other]}']")  # selecting it flies there
    tab.idle()
    oc = made["ours"][other]["coordinates"][0]
    assert _view_contains(tab, (oc[0][0] + oc[2][0]) / 2, (oc[0][1] + oc[2][1]) / 2)

    page.click("#merge")
    page.wait_for_function("() => document.querySelector('#pull-status').textContent.startsWith('Merged')")
    got = site.api("GET", f"/api/v1/repos/cells/pulls/{n}", token=site.tokens["ben"])
    assert got["state"] == "merged"
    main = site.api("GET", "/api/v1/repos/cells/resolve?rev=main", token=site.tokens["ben"])["commit"]
    assert main == got["merge_commit"]
    commit = site.api("GET", f"/api/v1/repos/cells/commits/{main}", token=site.tokens["ben"])
    assert len(commit["parents"]) == 2
    anns = {a["id"]: a for a in site.api("GET", f"/api/v1/repos/cells/images/{IMAGE}/annotations?rev={main}",
                                         token=site.tokens["ben"])["annotations"]}
    assert anns[ids[which]]["geometry"] == made["theirs"][which]  # theirs, chosen by key
    assert anns[ids[other]]["geometry"] == made["ours"][other]  # ours, chosen in bulk
    shown = site.exact("show", main, "--json")
    assert main in shown
    assert not tab.errors, tab.errors
