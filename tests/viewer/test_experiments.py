"""The experiments page in real Chromium: the runs table, a metric across runs (one point per run, pixel
checked on uPlot's canvas) and the TP/FP/FN overlay of a run's predictions against its pinned truth."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from ..server_fixtures import AUTHOR, NO_CONFIG
from .conftest import IMAGE, Site, Tab, hex_rgb, near_color

OUTCOME = {"tp": "#00c853", "fp": "#ff1744", "fn": "#2979ff"}
F1 = [0.41, 0.58, 0.73]  # the metric each run logs


def _exact(site: Site, cwd: Path, *args: str) -> str:
    env = {**os.environ, "EXACT_CONFIG_DIR": str(NO_CONFIG), "EXACT_AUTHOR": AUTHOR}
    env.pop("EXACT_TOKEN", None)
    r = subprocess.run([sys.executable, "-m", "exactvc.cli", "-C", str(site.repo_path), *args], cwd=cwd,
                       capture_output=True, text=True, env=env, timeout=120)
    assert r.returncode == 0, r.stderr
    return r.stdout


def _runs(site: Site, tmp: Path) -> dict[str, Any]:
    """Three runs (the third on a commit with one more mitosis) and predictions for the third."""
    tmp.mkdir(exist_ok=True)
    script = tmp / "train.py"
    script.write_text("import sys\nfrom exactvc.runs import log_metric\nlog_metric('f1', float(sys.argv[1]))\n")
    ids = []
    for i, f1 in enumerate(F1):
        if i == 2:
            repo = site.repo()
            with repo.edit(IMAGE) as ed:
                ed.add("mitosis", {"type": "Point", "coordinates": [1900, 2600]})
            repo.commit("one more mitosis", author=AUTHOR)
        out = _exact(site, tmp, "run", "--name", f"m{i}", "-p", f"lr={0.1 / (i + 1):.3f}", "--json", "--",
                     sys.executable, str(script), str(f1))
        ids.append(next(iter(json.loads(out).values()))["id"])
    preds = [("mitosis", [1505, 803], 0.9), ("mitosis", [1800, 400], 0.7)]  # a hit near the known one, a miss
    feats = [{"type": "Feature", "geometry": {"type": "Point", "coordinates": c},
              "properties": {"objectType": "annotation", "classification": {"name": lb},
                             "measurements": {"score": s}}} for lb, c, s in preds]
    pf = tmp / "preds.geojson"
    pf.write_text(json.dumps({"type": "FeatureCollection", "features": feats}))
    _exact(site, tmp, "predict", "import", str(pf), "--run", ids[2], "--image", IMAGE, "--json")
    return {"ids": ids, "preds": preds}


def test_experiments_page_table_chart_and_outcome_overlay(tab: Tab, site: Site, tmp_path: Path) -> None:
    made = _runs(site, tmp_path / "runs")
    ids = made["ids"]
    # what the server says, independently of the page: one tp, one fp, every other truth annotation missed
    truth = site.api("GET", f"/api/v1/repos/cells/images/{IMAGE}/annotations?rev=HEAD", token=site.tokens["ada"])
    n_truth = len(truth["annotations"]) if "annotations" in truth else len(truth["features"])
    rest = site.api("GET", f"/api/v1/repos/cells/runs/{ids[2]}/outcomes?image={IMAGE}", token=site.tokens["ada"])
    assert rest["counts"] == {"tp": 1, "fp": 1, "fn": n_truth - 1}

    tab.sign_in("ada")
    page = tab.page
    page.set_viewport_size({"width": 1280, "height": 1500})
    page.goto(f"{site.url}/cells/experiments?run={ids[2]}")
    page.wait_for_function("() => document.body.dataset.ready === '1'", timeout=60000)
    assert page.locator("#page-error").count() == 0, page.locator("#page-error").inner_text()
    tab.idle()

    # the table: one row per run in commit order, the metric, the label change of the third run
    rows = page.locator("tr.run-row")
    assert [rows.nth(i).get_attribute("data-run") for i in range(rows.count())] == ids
    assert [float(rows.nth(i).locator("td.metric[data-metric='f1']").inner_text()) for i in range(3)] == F1
    assert "mitosis +1" in rows.nth(2).locator("td.changes").inner_text()
    assert rows.nth(2).get_attribute("class") is not None and "selected" in rows.nth(2).get_attribute("class")

    # the chart: one point per run, at increasing heights, drawn in the series colour
    pts = page.evaluate("() => window.exact.chart.points()")
    assert [p["run"] for p in pts] == ids and [p["value"] for p in pts] == F1
    assert pts[0]["y"] > pts[1]["y"] > pts[2]["y"]  # higher values are drawn higher up
    img = tab.pixels()
    if os.environ.get("EXACT_SHOT"):
        img.save(os.environ["EXACT_SHOT"])
    for p in pts:
        assert near_color(img, p["x"], p["y"], hex_rgb("#1a5fb4"), radius=2), p

    # the overlay: the counts in the legend, each outcome drawn at its place
    legend = {li.get_attribute("data-outcome"): int(li.locator(".n").inner_text())
              for li in page.locator("#outcome-legend li[data-outcome]").all()}
    assert legend == rest["counts"]
    tp_xy, fp_xy = made["preds"][0][1], made["preds"][1][1]
    assert near_color(img, *tab.to_screen(*tp_xy), hex_rgb(OUTCOME["tp"]))
    assert near_color(img, *tab.to_screen(*fp_xy), hex_rgb(OUTCOME["fp"]))
    assert near_color(img, *tab.to_screen(1900, 2600), hex_rgb(OUTCOME["fn"]))  # the new mitosis, missed
    assert not near_color(img, *tab.to_screen(1000, 1000), hex_rgb(OUTCOME["fp"]), radius=4)  # nothing there
    # the cell polygon (missed) is outlined in the fn colour along its top edge
    assert near_color(img, *tab.to_screen(450, 2200), hex_rgb(OUTCOME["fn"]))

    # another run has no predictions: the page says so instead of drawing
    page.evaluate("(id) => window.exact.selectRun(id)", ids[0])
    page.wait_for_selector("#no-predictions")
    assert not tab.errors, tab.errors


def test_experiments_page_names_a_run_that_does_not_exist(tab: Tab, site: Site) -> None:
    tab.sign_in("ada")
    page = tab.page
    page.goto(f"{site.url}/cells/experiments?run=nosuchrun")
    page.wait_for_function("() => document.body.dataset.ready === '1'", timeout=60000)
    msg = page.locator("#run-detail .error, #page-error, #no-runs")
    msg.first.wait_for()
    assert "nosuchrun" in msg.first.inner_text() or page.locator("#no-runs").count() == 1
