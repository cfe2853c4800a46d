"""A detector's proposals in real headless Chromium: they appear as a pull request, the reviewer accepts 3 of
5 with the keys (rejecting one, leaving one undecided) and merging applies exactly those 3 (checked over REST)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

import pytest

from exactvc.access import AccessStore

from ..test_plugins import _install_test_plugins
from .conftest import IMAGE, Site, Tab, build_root, start_server


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    base = tmp_path_factory.mktemp("viewer-proposals")
    plug = base / "plugins"
    plug.mkdir()
    _install_test_plugins(plug)
    s = build_root(base / "root")
    acc = AccessStore(s.root)
    s.tokens["max"] = acc.add_user("max")
    acc.grant("cells", "max", "maintain")
    old = os.environ.get("PYTHONPATH")
    os.environ["PYTHONPATH"] = str(plug)
    try:
        start_server(s, base / "root-slides", base / "server.log")
    finally:
        if old is None:
            os.environ.pop("PYTHONPATH", None)
        else:
            os.environ["PYTHONPATH"] = old
    try:
        yield s
    finally:
        assert s.proc is not None
        s.proc.terminate()
        s.proc.wait(10)


def test_accept_three_of_five_with_keys_merges_exactly_those(tab: Tab, site: Site) -> None:
    tab.sign_in("max")
    # the detector runs from the viewer's button over the current field of view
    page = tab.open_slide()
    page.fill("#detect-plugin", "five")
    page.click("#detect-here")
    page.evaluate("() => window.exact.proposals.settled()")
    assert "5 proposals: pull request #" in page.inner_text("#proposals-status"), page.inner_text("#proposals-status")
    page.click("#proposals-open")
    page.wait_for_function("() => document.body.dataset.ready === '1'")
    page.evaluate("() => window.exact.proposals.ready()")
    items = page.evaluate("() => window.exact.proposals.items()")
    assert len(items) == 5 and [i["score"] for i in items] == sorted((i["score"] for i in items), reverse=True)
    for k in ("y", "y", "x", "y"):
        tab.key(k)
    page.evaluate("() => window.exact.proposals.settled()")
    items = page.evaluate("() => window.exact.proposals.items()")
    assert [i["decision"] for i in items] == ["accept", "accept", "reject", "accept", "undecided"]
    accepted = {i["id"] for i in items if i["decision"] == "accept"}
    page.click("#proposals-merge")
    page.evaluate("() => window.exact.proposals.settled()")
    assert page.inner_text("#proposals-status").startswith("merged: 3 applied, 2 not merged")
    anns = site.api("GET", f"/api/v1/repos/cells/images/{IMAGE}/annotations?rev=main", token=site.tokens["max"])
    merged = {a["id"] for a in anns["annotations"] if (a.get("properties") or {}).get("proposed_by") == "five"}
    assert merged == accepted
    assert not tab.errors, tab.errors


def test_threshold_slider_accepts_all_above(tab: Tab, site: Site) -> None:
    tok = site.tokens["max"]
    r = site.api("POST", "/api/v1/repos/cells/proposals", {"image": IMAGE, "plugin": "five"}, token=tok)
    res: dict[str, Any] = r["result"]
    tab.sign_in("max")
    page = tab.open_slide(f"?rev={res['branch']}&pull={res['pull']}")
    page.evaluate("() => window.exact.proposals.ready()")
    page.fill("#proposals-threshold", "0.45")
    page.click("#proposals-accept-above")
    page.evaluate("() => window.exact.proposals.settled()")
    items = page.evaluate("() => window.exact.proposals.items()")
    assert sorted(i["decision"] for i in items) == ["accept", "accept", "accept", "undecided", "undecided"]
    assert all((i["score"] >= 0.45) == (i["decision"] == "accept") for i in items)


def test_analysis_panel_shows_the_figures(tab: Tab, site: Site) -> None:
    tab.sign_in("max")
    page = tab.open_slide()
    page.click("#analyse-here")
    page.evaluate("() => window.exact.proposals.settled()")
    text = page.inner_text("#analysis-figures")
    assert "EIPH score (Doucet)" in text and "graded cells: 0" in text and "cells per grade: 0: 0" in text, text
    assert not tab.errors, tab.errors
