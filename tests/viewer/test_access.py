"""Nobody without the right changes anything through the viewer: a read-only user, an anonymous visitor
(anonymous read off), a signed-out session, a forged or missing CSRF token, another origin."""

from __future__ import annotations

from typing import Any

from ..server_fixtures import ref_files, request
from .conftest import IMAGE, Site, Tab

EDIT = {"image": IMAGE, "message": "should not land",
        "create": [{"label": "mitosis", "geometry": {"type": "Point", "coordinates": [100, 100]}}]}
POST = """async ([token, body]) => {
    const headers = {"Content-Type": "application/json"};
    if (token !== null) headers["X-CSRF-Token"] = token;
    const r = await fetch("/api/v1/repos/cells/edits", {method: "POST", headers, body: JSON.stringify(body),
                                                         credentials: "same-origin"});
    return [r.status, (await r.json()).error?.type ?? null];
}"""
CSRF = "async () => (await (await fetch('/api/v1/session')).json()).csrf_token"


def test_read_only_user_sees_no_tools_and_cannot_write(tab: Tab, site: Site) -> None:
    before = ref_files(site.repo_path)
    tab.sign_in("rita")
    page = tab.open_slide()
    assert page.locator("#toolbar").count() == 0 and page.locator("#save").count() == 0
    assert "Read-only" in page.locator("#readonly-note").inner_text()
    tab.key("m")
    tab.key("Shift+P")  # no such tool for her
    tab.click(1000, 1000)
    tab.key("Control+s")
    assert page.evaluate("() => window.exact.editor.state.size") == 0
    csrf = page.evaluate(CSRF)
    status, kind = page.evaluate(POST, [csrf, {**EDIT, "branch": "users/rita/edits"}])
    assert status == 403, kind
    assert ref_files(site.repo_path) == before


def test_anonymous_visitor_sees_nothing_and_cannot_write(tab: Tab, site: Site) -> None:
    before = ref_files(site.repo_path)
    page = tab.page
    page.goto(f"{site.url}/cells/slide/{IMAGE}")
    page.wait_for_function("() => document.body.dataset.ready === '1'")
    assert "authentication required" in page.locator("#page-error").inner_text()
    assert page.locator("#signin-link").is_visible()
    fp = site.repo().image(IMAGE, "HEAD").fingerprint
    assert request("GET", f"{site.url}/slides/{fp}.dzi").status == 401
    assert request("GET", f"{site.url}/slides/{fp}_files/8/0_0.jpeg").status == 401
    status, _ = page.evaluate(POST, [None, EDIT])
    assert status == 401
    page.goto(f"{site.url}/cells")
    page.wait_for_function("() => document.body.dataset.ready === '1'")
    assert page.locator(".error").count() == 1 and page.locator(".image-card").count() == 0
    assert ref_files(site.repo_path) == before


def _cookie(tab: Tab) -> str:
    cookies = {c["name"]: c["value"] for c in tab.page.context.cookies()}
    return cookies["exact_session"]


def test_signed_out_session_cannot_write(tab: Tab, site: Site) -> None:
    before = ref_files(site.repo_path)
    tab.sign_in("ada")
    page = tab.open_slide()
    csrf = page.evaluate(CSRF)
    cookie = _cookie(tab)
    page.click("#signout")
    page.wait_for_function("() => document.body.dataset.ready === '1'")
    page.wait_for_selector("#signin-link")
    status, _ = page.evaluate(POST, [csrf, EDIT])
    assert status == 401
    # the old cookie, replayed from outside the browser, is dead too
    r = request("POST", f"{site.url}/api/v1/repos/cells/edits", EDIT,
                headers={"Cookie": f"exact_session={cookie}", "X-CSRF-Token": csrf, "Origin": site.url})
    assert r.status == 401, r.body
    assert ref_files(site.repo_path) == before


def test_forged_csrf_and_other_origins_are_refused(tab: Tab, site: Site) -> None:
    before = ref_files(site.repo_path)
    tab.sign_in("ada")
    page = tab.open_slide()
    csrf = page.evaluate(CSRF)
    for token in (None, "forged-" + csrf[:8], ""):
        status, kind = page.evaluate(POST, [token, EDIT])
        assert (status, kind) == (403, "csrf"), token
    cookie = _cookie(tab)
    hdr: dict[str, Any] = {"Cookie": f"exact_session={cookie}", "X-CSRF-Token": csrf}
    for origin in ("http://evil.example", None):
        h = dict(hdr) if origin is None else {**hdr, "Origin": origin}
        r = request("POST", f"{site.url}/api/v1/repos/cells/edits", EDIT, headers=h)
        assert r.status == 403, (origin, r.body)
    assert ref_files(site.repo_path) == before
    # the real thing, same cookie and token from this origin, does work (so the refusals above meant it)
    r = request("POST", f"{site.url}/api/v1/repos/cells/edits", EDIT, headers={**hdr, "Origin": site.url})
    assert r.status == 201, r.body
