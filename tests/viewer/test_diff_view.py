"""The diff view in real Chromium: added, deleted and modified annotations drawn in their colours at their
places (a modified one's old geometry as a ghost), the legend's counts, filters, n/p navigation and the
side-by-side values of the selected change."""

from __future__ import annotations

from typing import Any

from ..server_fixtures import AUTHOR
from .conftest import IMAGE, Site, Tab, hex_rgb, near_color

KIND = {"added": "#2ecc40", "deleted": "#ff4136", "modified": "#ffb700"}


def _second_commit(site: Site) -> dict[str, Any]:
    """On top of the seed: one added box, the mitosis deleted, the cell polygon moved, the tumor relabelled."""
    repo = site.repo()
    ids = {label: aid for label, _g, aid in site.known}
    with repo.edit(IMAGE) as ed:
        added = ed.add("region", {"type": "Polygon", "coordinates": [[[1700, 300], [2000, 300], [2000, 500],
                                                                     [1700, 500], [1700, 300]]]})
        ed.delete(ids["mitosis"])
        ed.update(ids["cell"], geometry={"type": "Polygon", "coordinates": [[[600, 2400], [700, 2400], [700, 2500],
                                                                              [600, 2500], [600, 2400]]]})
        ed.update(ids["tumor"], label="cell")
    new = repo.commit("review me", author=AUTHOR)
    return {"added": added, "ids": ids, "new": new}


def test_diff_view_draws_changes_and_navigates(tab: Tab, site: Site) -> None:
    old = site.repo().head_commit()
    assert old is not None
    made = _second_commit(site)
    tab.sign_in("ada")
    page = tab.page
    page.goto(f"{site.url}/cells/diff/{IMAGE}?old={old.hex()}&new={made['new']}")
    page.wait_for_function("() => document.body.dataset.ready === '1'", timeout=60000)
    assert page.locator("#page-error").count() == 0, page.locator("#page-error").inner_text()
    tab.idle()

    # the legend counts what the REST diff counts
    rest = site.api("GET", f"/api/v1/repos/cells/images/{IMAGE}/changes?old={old.hex()}&new={made['new']}",
                    token=site.tokens["ada"])
    legend = {li.get_attribute("data-kind"): int(li.locator(".n").inner_text())
              for li in page.locator("#diff-legend li[data-kind]").all()}
    assert legend == rest["counts"] == {"added": 1, "deleted": 1, "modified": 2, "property_only": 0}
    assert page.locator("#diff-legend li.relabel").inner_text().replace("\n", "").strip().startswith("tumor → cell")

    # each change drawn in its kind's colour where it lies; the moved cell's old place as a ghost
    img = tab.pixels()
    assert near_color(img, *tab.to_screen(1850, 300), hex_rgb(KIND["added"]), radius=4)  # the box's edge
    assert near_color(img, *tab.to_screen(1500, 800), hex_rgb(KIND["deleted"]), radius=5)  # the deleted point
    assert near_color(img, *tab.to_screen(650, 2400), hex_rgb(KIND["modified"]), radius=4)  # the moved cell's edge
    assert near_color(img, *tab.to_screen(450, 2200), hex_rgb("#ffff00"), radius=8)  # its ghost: the old label colour
    assert not near_color(img, *tab.to_screen(1300, 1750), hex_rgb(KIND["added"]), radius=4)  # unchanged region

    # n / p walk the changes and fly there; the detail shows old and new side by side
    tab.key("n")
    tab.idle()
    first = page.evaluate("() => window.exact.selected()")
    assert first["id"] == rest["changes"][0]["id"]
    tab.key("n")
    tab.idle()
    second = page.evaluate("() => window.exact.selected()")
    assert second["id"] == rest["changes"][1]["id"]
    v = page.evaluate("() => { const v = window.exact.viewer; const b = v.viewport.viewportToImageRectangle("
                      "v.viewport.getBounds()); return [b.x, b.y, b.x + b.width, b.y + b.height]; }")
    cx = sum(second["bounds"][0::2]) / 2
    cy = sum(second["bounds"][1::2]) / 2
    assert v[0] <= cx <= v[2] and v[1] <= cy <= v[3]  # the view flew to the selected change
    tab.key("p")
    assert page.evaluate("() => window.exact.selected().id") == first["id"]
    tumor = next(c for c in rest["changes"] if c["id"] == made["ids"]["tumor"])
    page.click(f"#change-list li[data-id='{tumor['id']}']")
    detail = page.locator("#change-detail")
    assert detail.locator(".old .label").inner_text() == "tumor" and detail.locator(".new .label").inner_text() == "cell"

    # the kind filter narrows the list and what n reaches
    page.select_option("#kind-filter", "added")
    assert page.locator("#change-list li[data-id]").count() == 1
    tab.key("n")
    assert page.evaluate("() => window.exact.selected().id") == made["added"]
    assert not tab.errors, tab.errors


def test_diff_view_of_a_missing_image_says_so(tab: Tab, site: Site) -> None:
    tab.sign_in("ada")
    page = tab.page
    page.goto(f"{site.url}/cells/diff/nosuchimage?old=HEAD&new=HEAD")
    page.wait_for_function("() => document.body.dataset.ready === '1'", timeout=60000)
    assert "nosuchimage" in page.locator("#page-error").inner_text()


def test_pull_request_review_in_the_browser(tab: Tab, site: Site, new_tab: Any) -> None:
    """ada proposes three mitoses; ben (maintain) accepts one with `a`, rejects one with `r`, pins a comment
    to the third, approves and merges; ada sees the pinned comment; main holds exactly the accepted and the
    undecided one."""
    from exactvc.access import AccessStore

    AccessStore(site.root).grant("cells", "ben", "maintain")
    ada = site.tokens["ada"]
    points = [[200, 1200], [260, 1300], [320, 1400]]
    made = site.api("POST", "/api/v1/repos/cells/edits", {
        "branch": "users/ada/mitoses", "expected_parent": None, "from": "main", "image": IMAGE,
        "message": "three mitoses", "create": [{"label": "mitosis", "geometry": {"type": "Point", "coordinates": c}}
                                               for c in points]}, token=ada)
    created = made["created"] if "created" in made else made["ids"]
    pr = site.api("POST", "/api/v1/repos/cells/pulls", {"title": "Three mitoses", "source": "users/ada/mitoses",
                                                         "target": "main"}, token=ada)
    n = pr["number"]
    before = {a["id"] for a in site.api("GET", f"/api/v1/repos/cells/images/{IMAGE}/annotations?rev=main",
                                        token=ada)["annotations"]}

    tab.sign_in("ben")
    page = tab.page
    page.goto(f"{site.url}/cells/pull/{n}")
    page.wait_for_function("() => document.body.dataset.ready === '1'", timeout=60000)
    assert page.locator("#page-error").count() == 0, page.locator("#page-error").inner_text()
    tab.idle()
    assert page.locator("#pull-title").inner_text() == "Three mitoses"
    img = tab.pixels()
    for c in points:  # the proposals are drawn as added
        assert near_color(img, *tab.to_screen(*c), hex_rgb(KIND["added"]), radius=5), c
    order = [c["id"] for c in page.evaluate("() => window.exact.changes()")]
    assert sorted(order) == sorted(created)
    tab.key("n")
    tab.key("a")
    page.wait_for_selector("#selected-decision[data-decision='accept']")
    tab.key("n")
    tab.key("r")
    page.wait_for_selector("#selected-decision[data-decision='reject']")
    decided = site.api("GET", f"/api/v1/repos/cells/pulls/{n}/changes", token=ada)["changes"]
    assert {c["id"]: c["decision"] for c in decided} == {order[0]: "accept", order[1]: "reject",
                                                         order[2]: "undecided"}
    # a comment pinned to the third change
    tab.key("n")
    page.fill("#comment-text", "Is this really a mitosis?")
    page.click("#comment-send")
    page.wait_for_selector(f"#comments li.comment[data-annotation='{order[2]}']")

    # ada sees it, anchored, in her own browser
    other = new_tab()
    other.sign_in("ada")
    other.page.goto(f"{site.url}/cells/pull/{n}")
    other.page.wait_for_function("() => document.body.dataset.ready === '1'", timeout=60000)
    other.page.wait_for_selector(f"#comments li.comment[data-annotation='{order[2]}']")
    assert "Is this really a mitosis?" in other.page.locator("#comments").inner_text()
    assert other.page.locator("#approve").count() == 0  # nobody approves their own pull request

    # ben approves and merges: main gains the accepted and the undecided proposal, not the rejected one
    page.click("#approve")
    page.wait_for_function("() => document.querySelector('#approvals').textContent.startsWith('1 of')")
    page.click("#merge")
    page.wait_for_function("() => document.querySelector('#pull-status').textContent.startsWith('Merged')")
    after = {a["id"] for a in site.api("GET", f"/api/v1/repos/cells/images/{IMAGE}/annotations?rev=main",
                                       token=ada)["annotations"]}
    assert after - before == {order[0], order[2]}
    assert site.api("GET", f"/api/v1/repos/cells/pulls/{n}", token=ada)["state"] == "merged"
    assert not tab.errors, tab.errors
