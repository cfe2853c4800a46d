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
