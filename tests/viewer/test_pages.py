"""The other pages and the view: repository list, image set page, deep links, label panel, help, scale
bar, filters, the revision picker and the plain message without WebGL2."""

from __future__ import annotations

import re
from urllib.parse import parse_qs, urlsplit

from .conftest import IMAGE, LABELS, Site, Tab


def test_repository_list_and_image_set_page(tab: Tab, site: Site) -> None:
    tab.sign_in("ada")
    page = tab.page
    assert page.locator("#repo-list a", has_text="cells").count() == 1
    assert page.locator("#whoami").inner_text() == "ada"
    page.click("#repo-list a")
    page.wait_for_function("() => document.body.dataset.ready === '1'")
    card = page.locator(f".image-card[data-image='{IMAGE}']")
    assert "2220 × 2967 px" in card.inner_text()
    page.wait_for_selector(".counts li")
    counts = {li.get_attribute("data-label"): int(li.locator(".n").inner_text()) for li in card.locator(".counts li").all()}
    assert counts == {"tumor": 1, "mitosis": 1, "region": 1, "cell": 1}
    assert "Seed" in page.locator("#last-commit").inner_text()
    page.wait_for_function("() => document.querySelector('.thumb').naturalWidth > 0")  # the thumbnail loads
    page.click(f".image-card[data-image='{IMAGE}'] a.name")
    page.wait_for_function("() => document.body.dataset.ready === '1'")
    assert page.url.endswith(f"/cells/slide/{IMAGE}")
    assert not tab.errors, tab.errors


def test_deep_link_restores_the_view_and_follows_it(tab: Tab, site: Site) -> None:
    tab.sign_in("ada")
    page = tab.open_slide("?rev=main&x=700&y=900&zoom=2")
    v = page.evaluate("() => window.exact.view()")
    assert abs(v["x"] - 700) <= 1 and abs(v["y"] - 900) <= 1 and abs(v["zoom"] - 2) < 0.01
    # the picker shows the revision; panning rewrites the address bar's link
    assert page.locator("#rev-picker").input_value() == "main"
    page.evaluate("() => { const vp = window.exact.viewer.viewport; vp.panTo(vp.imageToViewportCoordinates(750, 900)); }")
    tab.idle()
    page.wait_for_timeout(400)
    q = parse_qs(urlsplit(page.url).query)
    assert q["rev"] == ["main"] and abs(float(q["x"][0]) - 750) <= 2 and q["zoom"] == ["2"]
    # a second tab opening that link sees the same place
    link = page.url
    page.goto(link)
    page.wait_for_function("() => document.body.dataset.ready === '1'")
    tab.idle()
    v2 = page.evaluate("() => window.exact.view()")
    assert abs(v2["x"] - float(q["x"][0])) <= 1 and abs(v2["zoom"] - 2) < 0.01


def test_label_panel_help_scale_bar_and_filters(tab: Tab, site: Site) -> None:
    tab.sign_in("ada")
    page = tab.open_slide("?rev=main&x=1100&y=1300&zoom=1")
    rows = page.locator("#label-panel tr[data-label]")
    assert [r.get_attribute("data-label") for r in rows.all()] == [name for name, *_ in LABELS]  # sort order
    assert page.locator("#label-panel td.count[data-label='tumor']").inner_text() == "1"
    # counts follow pending edits
    tab.key("m")
    tab.key("Shift+P")
    tab.click(1200, 1000)
    assert page.locator("#label-panel td.count[data-label='mitosis']").inner_text() == "2"
    tab.key("Control+z")
    # hiding a label: the layer no longer picks (or draws) it
    region = next(i for label, _g, i in site.known if label == "region")
    assert region in page.evaluate("() => window.exact.annotationsAt(1100, 1600)")
    page.locator("#label-panel input[data-label='region']").uncheck()
    tab.idle()
    assert region not in page.evaluate("() => window.exact.annotationsAt(1100, 1600)")
    # help overlay on ?
    assert page.locator("#help").is_hidden()
    tab.key("?")
    help_text = page.locator("#help").inner_text()
    assert "Shift+B" in help_text and "label tumor" in help_text and "Ctrl+Z" in help_text
    tab.key("Escape")
    assert page.locator("#help").is_hidden()
    # scale bar in µm from the slide's mpp (0.499 µm/px at zoom 1: an 80+ px bar is 50 µm)
    assert re.fullmatch(r"\d+(\.\d)? µm", page.locator("#scalebar .text").inner_text())
    w = page.evaluate("() => parseFloat(document.querySelector('#scalebar .bar').style.width)")
    mpp0 = site.repo().image(IMAGE, "HEAD").mpp
    assert abs(w - float(page.locator("#scalebar .text").inner_text().split()[0]) / mpp0) < 1
    # selection shows µm²
    page.locator("#label-panel input[data-label='region']").check()
    tab.key("Shift+S")
    tab.click(1100, 1600)
    page.wait_for_selector("#selection-info .area", timeout=5000)  # 600x500 px = 74700.6 µm²
    mpp = site.repo().image(IMAGE, "HEAD").mpp
    assert f"{600 * 500 * mpp * mpp:.1f} µm²" in page.locator("#selection-info").inner_text()
    # filters go onto the tile canvas
    page.locator("#filter-brightness").fill("150")
    page.locator("#filter-gamma").fill("200")
    f = page.evaluate("() => window.exact.viewer.drawer.canvas.style.filter")
    assert "brightness(150%)" in f and "url" in f


def test_without_webgl2_the_page_says_so(browser: object, site: Site) -> None:
    ctx = browser.new_context()  # type: ignore[attr-defined]
    try:
        ctx.add_init_script("""(() => { const orig = HTMLCanvasElement.prototype.getContext;
            HTMLCanvasElement.prototype.getContext = function (kind, ...rest) {
                return kind === "webgl2" ? null : orig.call(this, kind, ...rest); }; })()""")
        page = ctx.new_page()
        page.goto(f"{site.url}/cells/slide/{IMAGE}")
        page.wait_for_function("() => document.body.dataset.ready === '1'")
        assert "no WebGL2" in page.locator("#no-webgl").inner_text()
    finally:
        ctx.close()
