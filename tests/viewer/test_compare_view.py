"""The geometric comparison in real Chromium: a "model" revision that shares no ids with the truth is
compared on the diff page (`?match=iou=0.5`, reached by its toggle): matched pairs, only-in-A and only-in-B
drawn in the diff colours where they lie, and the legend's counts and precision / recall / F1 per label
equal to `exact diff --match --json`."""

from __future__ import annotations

import json
from typing import Any

from .conftest import IMAGE, Site, Tab, hex_rgb, near_color

KIND = {"added": "#2ecc40", "deleted": "#ff4136", "modified": "#ffb700"}


def box(x0: float, y0: float, x1: float, y1: float) -> dict[str, Any]:
    return {"type": "Polygon", "coordinates": [[[x0, y0], [x1, y0], [x1, y1], [x0, y1], [x0, y0]]]}


def _model_branch(site: Site) -> None:
    """model/run1: every truth annotation deleted and fresh ones created (no shared ids): the tumor shifted
    (matched), the cell and the mitosis as they are (matched), the region missed (only in A) and a region
    where there is none (only in B)."""
    site.api("POST", "/api/v1/repos/cells/edits", {
        "branch": "model/run1", "expected_parent": None, "from": "main", "image": IMAGE, "message": "model run 1",
        "delete": [aid for _l, _g, aid in site.known],
        "create": [{"label": "tumor", "geometry": box(330, 320, 730, 620)},
                   {"label": "cell", "geometry": box(400, 2200, 500, 2300)},
                   {"label": "mitosis", "geometry": {"type": "Point", "coordinates": [1505, 800]}},
                   {"label": "region", "geometry": box(1700, 300, 2000, 500)}]}, token=site.tokens["ada"])


def test_compare_view_draws_matches_and_the_figures_of_exact_diff_match(tab: Tab, site: Site) -> None:
    _model_branch(site)
    cli = json.loads(site.exact("diff", "main", "model/run1", "--match", "iou=0.5", "--json"))["exactvc.match/v1"]
    assert cli["total"]["matched"] == 3 and cli["total"]["only_a"] == 1 and cli["total"]["only_b"] == 1
    tab.sign_in("ada")
    page = tab.page
    page.goto(f"{site.url}/cells/diff/{IMAGE}?old=main&new=model/run1")
    page.wait_for_function("() => document.body.dataset.ready === '1'", timeout=60000)
    page.click("#match-toggle")
    page.wait_for_url("**match=iou%3D0.5*")
    page.wait_for_function("() => document.body.dataset.ready === '1'", timeout=60000)
    assert page.locator("#page-error").count() == 0, page.locator("#page-error").inner_text()
    tab.idle()

    # the legend: counts and the per-label figures exactly as the CLI reports them
    counts = {li.get_attribute("data-status"): int(li.locator(".n").inner_text())
              for li in page.locator("#diff-legend li[data-status]").all()}
    assert counts == {"matched": cli["total"]["matched"], "only_in_a": cli["total"]["only_a"],
                      "only_in_b": cli["total"]["only_b"]}

    def shown(v: Any) -> str:
        return "—" if v is None else f"{v:.3f}"

    for label, r in [*cli["labels"].items(), ("(all)", cli["total"])]:
        row = page.locator(f"#match-figures tr[data-label='{label}']")
        assert row.count() == 1, label
        assert [row.locator(f"td.{k}").inner_text() for k in ("precision", "recall", "f1")] == [
            shown(r["precision"]), shown(r["recall"]), shown(r["f1"])], label
    assert page.locator("#match-figures tr[data-label='region'] td.f1").inner_text() == "0.000"

    # drawn in the diff colours: only in B as added, only in A as deleted, a matched pair as modified
    img = tab.pixels()
    assert near_color(img, *tab.to_screen(1850, 300), hex_rgb(KIND["added"]), radius=3)  # the model's region
    assert near_color(img, *tab.to_screen(1300, 1500), hex_rgb(KIND["deleted"]), radius=5)  # the missed region
    assert near_color(img, *tab.to_screen(730, 470), hex_rgb(KIND["modified"]), radius=3)  # B's tumor, right edge
    assert not near_color(img, *tab.to_screen(700, 470), hex_rgb(KIND["modified"]), radius=2)  # A's edge: the ghost
    assert not near_color(img, *tab.to_screen(1300, 1750), hex_rgb(KIND["added"]), radius=4)  # nothing inside

    # n walks the entries; the selected one shows A and B side by side, with the pair's score
    entries = page.evaluate("() => window.exact.changes().map((c) => [c.status, c.label.old, c.label.new])")
    assert sorted(e[0] for e in entries) == ["matched", "matched", "matched", "only_in_a", "only_in_b"]
    tab.key("n")
    tab.idle()
    sel = page.evaluate("() => window.exact.selected()")
    assert sel["status"] == entries[0][0]
    page.select_option("#kind-filter", "modified")  # "matched"
    assert page.locator("#change-list li[data-id]").count() == 3
    tab.key("n")
    sel = page.evaluate("() => window.exact.selected()")
    assert sel["status"] == "matched" and sel["old"]["id"] != sel["new"]["id"]
    assert page.locator("#change-detail .old .label").inner_text() == page.locator(
        "#change-detail .new .label").inner_text() == sel["label"]["old"]
    assert not tab.errors, tab.errors
