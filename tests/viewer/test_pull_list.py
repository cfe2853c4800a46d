"""The pull request list and the life of a review in real Chromium: the list (linked from the image set
page, filtered by state) shows title, author, branches, approvals and checks; an approval given in the
browser turns stale after a new push, a comment pinned to an annotation that the push changed is shown
as outdated, and a thread is resolved in the browser."""

from __future__ import annotations

from typing import Any

from .conftest import IMAGE, Site, Tab


def _pull(site: Site, branch: str, title: str, points: list[list[int]]) -> dict[str, Any]:
    made = site.api("POST", "/api/v1/repos/cells/edits", {
        "branch": branch, "expected_parent": None, "from": "main", "image": IMAGE, "message": title,
        "create": [{"label": "mitosis", "geometry": {"type": "Point", "coordinates": c}} for c in points]},
        token=site.tokens["ada"])
    pr: dict[str, Any] = site.api("POST", "/api/v1/repos/cells/pulls", {"title": title, "source": branch},
                                  token=site.tokens["ada"])
    pr["created"] = made["created"] if "created" in made else made["ids"]
    return pr


def _open_pull(tab: Tab, n: int) -> Any:
    page = tab.page
    page.goto(f"{tab.site.url}/cells/pull/{n}")
    page.wait_for_function("() => document.body.dataset.ready === '1'", timeout=60000)
    assert page.locator("#page-error").count() == 0, page.locator("#page-error").inner_text()
    tab.idle()
    return page


def test_pull_list_stale_approval_outdated_comment_and_resolved_thread(tab: Tab, site: Site) -> None:
    from exactvc.access import AccessStore

    AccessStore(site.root).grant("cells", "ben", "maintain")
    pr = _pull(site, "users/ada/two", "Two mitoses", [[200, 1200], [260, 1300]])
    other = _pull(site, "users/ada/old", "Abandoned", [[900, 900]])
    site.api("PATCH", f"/api/v1/repos/cells/pulls/{other['number']}", {"state": "closed"}, token=site.tokens["ada"])
    n = pr["number"]

    # the list, reached from the image set page: the open one only, with its branches, approvals and checks
    tab.sign_in("ben")
    page = tab.page
    page.goto(f"{site.url}/cells")
    page.wait_for_function("() => document.body.dataset.ready === '1'")
    page.click("#pulls-link")
    page.wait_for_url(f"{site.url}/cells/pulls")
    page.wait_for_function("() => document.body.dataset.ready === '1'")
    rows = page.locator("#pull-list tr[data-number]")
    assert rows.count() == 1
    row = page.locator(f"#pull-list tr[data-number='{n}']")
    assert row.locator("td.title").inner_text() == "Two mitoses" and row.locator("td.author").inner_text() == "ada"
    assert row.locator("td.branches").inner_text() == "users/ada/two → main"
    assert row.locator("td.checks").inner_text() == "passed" and row.locator("td.state").inner_text() == "open"
    assert row.locator("td.approvals").get_attribute("data-valid") == "0"
    page.select_option("#state-filter", "closed")
    page.wait_for_url("**state=closed")
    page.wait_for_function("() => document.body.dataset.ready === '1'")
    assert [r.get_attribute("data-number") for r in page.locator("#pull-list tr[data-number]").all()] == [
        str(other["number"])]
    page.select_option("#state-filter", "merged")
    page.wait_for_url("**state=merged")
    page.wait_for_function("() => document.body.dataset.ready === '1'")
    assert page.locator("#no-pulls").count() == 1

    # ben pins a comment to the first change and approves, in the browser
    page = _open_pull(tab, n)
    tab.key("n")
    first = page.evaluate("() => window.exact.selected()")
    page.fill("#comment-text", "Too close to the edge?")
    page.click("#comment-send")
    page.wait_for_selector(f"#comments li.comment[data-annotation='{first['id']}'][data-outdated='0']")
    page.click("#approve")
    page.wait_for_function("() => document.querySelector('#approvals').textContent.startsWith('1 of')")

    # ada moves that mitosis in a new push: the approval is stale, the comment outdated (not lost)
    head = site.api("GET", f"/api/v1/repos/cells/pulls/{n}", token=site.tokens["ada"])["head"]
    site.api("POST", "/api/v1/repos/cells/edits", {
        "branch": "users/ada/two", "expected_parent": head, "image": IMAGE, "message": "moved",
        "update": [{"id": first["id"], "geometry": {"type": "Point", "coordinates": [230, 1250]}}]},
        token=site.tokens["ada"])
    page = _open_pull(tab, n)
    approvals = page.locator("#approvals").inner_text()
    assert approvals.startswith("0 of") and "stale: ben" in approvals, approvals
    c = page.locator(f"#comments li.comment[data-annotation='{first['id']}']")
    assert c.get_attribute("data-outdated") == "1" and c.locator(".outdated").count() == 1
    assert "Too close to the edge?" in c.inner_text()
    page.goto(f"{site.url}/cells/pulls")
    page.wait_for_function("() => document.body.dataset.ready === '1'")
    cell = page.locator(f"#pull-list tr[data-number='{n}'] td.approvals")
    assert cell.get_attribute("data-valid") == "0" and cell.get_attribute("data-stale") == "1"
    assert "stale: ben" in cell.inner_text()

    # the thread is resolved in the browser, and everyone sees it resolved
    page = _open_pull(tab, n)
    page.click(f"#comments li.comment[data-annotation='{first['id']}'] button.resolve")
    page.wait_for_selector(f"#comments li.comment[data-annotation='{first['id']}'][data-resolved='1']")
    got = site.api("GET", f"/api/v1/repos/cells/pulls/{n}/comments", token=site.tokens["ada"])["comments"]
    assert [(x["body"], x["resolved"], x["outdated"]) for x in got] == [("Too close to the edge?", True, True)]
    assert not tab.errors, tab.errors
