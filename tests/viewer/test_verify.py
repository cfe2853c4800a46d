"""Second opinion in real headless Chromium: the verification panel walks a verifier through the annotations
still needing their verification (the view flies to each, Y / X / → with the keys), each verdict is a commit
on their branch, and the selection panel shows an annotation's verifications."""

from __future__ import annotations

from typing import Any

from exactvc.access import AccessStore

from .conftest import IMAGE, Site, Tab


def _in_view(page: Any, bounds: list[float]) -> bool:
    v = page.evaluate("() => window.exact.view()")
    x0, y0, x1, y1 = bounds
    return bool(x0 - 1 <= v["x"] <= x1 + 1 and y0 - 1 <= v["y"] <= y1 + 1)


def test_verification_walk_with_the_keys(tab: Tab, new_tab: Any, site: Site) -> None:
    AccessStore(site.root).set_settings("cells", mode="second-opinion", opinions=2)
    pending_url = f"/api/v1/repos/cells/images/{IMAGE}/verifications/pending"
    before = site.api("GET", pending_url, token=site.tokens["ben"])["pending"]
    assert len(before) == len(site.known)
    tab.sign_in("ben")
    page = tab.open_slide()
    page.evaluate("() => window.exact.verify.ready()")
    assert page.is_visible("#verify")
    assert page.inner_text("#verify-progress") == f"{len(before)} to verify"
    page.click("#verify-start")
    page.evaluate("() => window.exact.verify.settled()")
    st = page.evaluate("() => window.exact.verify.state()")
    order = [p["id"] for p in before]
    assert st["walking"] and st["current"]["id"] == order[0]
    assert _in_view(page, before[0]["bounds"])
    assert page.evaluate("() => window.exact.editor.selection()") == [order[0]]
    page.fill("#verify-comment", "clear case")
    page.focus("#verify-start")
    tab.key("y")  # yes to the first
    page.evaluate("() => window.exact.verify.settled()")
    st = page.evaluate("() => window.exact.verify.state()")
    assert st["current"]["id"] == order[1] and _in_view(page, before[1]["bounds"])
    tab.key("x")  # no to the second
    page.evaluate("() => window.exact.verify.settled()")
    tab.key("ArrowRight")  # skip the third
    page.evaluate("() => window.exact.verify.settled()")
    st = page.evaluate("() => window.exact.verify.state()")
    assert st["current"]["id"] == order[3] and _in_view(page, before[3]["bounds"])
    tab.key("Shift+N")  # no to the fourth (Shift+N, not the navigate tool)
    page.evaluate("() => window.exact.verify.settled()")
    assert page.evaluate("() => window.exact.editor.tool().name") != "navigate"
    # on the server: two verdicts more on ben's branch, the skipped one still pending for him
    left = site.api("GET", pending_url, token=site.tokens["ben"])
    assert left["rev"] == "users/ben/edits" and [p["id"] for p in left["pending"]] == [order[2]]
    for i, yes, comment in ((0, True, "clear case"), (1, False, ""), (3, False, "")):
        rec = site.api("GET", f"/api/v1/repos/cells/images/{IMAGE}/annotations?rev=users/ben/edits&limit=50",
                       token=site.tokens["ben"])
        got = next(a for a in rec["annotations"] if a["id"] == order[i])
        assert [(v["user"], v["yes"], v["comment"]) for v in got["verifications"]] == [("ben", yes, comment)]
    assert "verified yes by ben" in site.exact("blame", IMAGE, order[0], "--rev", "users/ben/edits")
    # the annotation panel shows the verifications of the selected annotation
    page.evaluate("(id) => window.exact.editor.select([id])", order[0])
    page.wait_for_selector(f"#selection-info ul.verifications[data-id='{order[0]}'] li.yes")
    assert "ben" in page.inner_text("#selection-info ul.verifications") and "clear case" in page.inner_text(
        "#selection-info ul.verifications")
    # after a reload only the skipped one is left for ben
    page.reload()
    page.wait_for_function("() => document.body.dataset.ready === '1'")
    page.evaluate("() => window.exact.verify.ready()")
    assert page.evaluate("() => window.exact.verify.state()")["pending"] == [order[2]]
    # a reader sees no verification panel
    reader = new_tab()
    reader.sign_in("rita")
    p2 = reader.open_slide()
    assert not p2.is_visible("#verify")
    assert not tab.errors and not reader.errors, (tab.errors, reader.errors)
