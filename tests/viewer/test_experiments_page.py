"""The experiments page (runs table, metric chart) and a run's TP / FP / FN overlay on the slide, in real
headless Chromium against a real ``exact serve`` (tests/viewer/conftest.py)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from ..server_fixtures import AUTHOR, NO_CONFIG
from .conftest import IMAGE, Site, Tab, hex_rgb, near_color

# predictions on the seeded truth (conftest KNOWN): the tumour square found (TP), a mitosis where there
# is none (FP); the mitosis, the region box and the cell square are missed (FN)
TP_TUMOR = [[[305, 305], [700, 305], [700, 600], [305, 600], [305, 305]]]
FP_POINT = (2000.0, 400.0)


def _cli(site: Site, cwd: Path, *args: str) -> Any:
    env = {**os.environ, "EXACT_CONFIG_DIR": str(NO_CONFIG), "EXACT_AUTHOR": AUTHOR}
    env.pop("EXACT_TOKEN", None)
    r = subprocess.run([sys.executable, "-m", "exactvc.cli", "-C", str(site.repo_path), *args], cwd=cwd,
                       capture_output=True, text=True, env=env, timeout=300)
    assert r.returncode == 0, r.stderr + r.stdout
    return r.stdout


@pytest.fixture(scope="module")
def runs(site: Site, tmp_path_factory: pytest.TempPathFactory) -> list[dict[str, Any]]:
    work = tmp_path_factory.mktemp("train")
    script = work / "train.py"
    script.write_text("import json, os, sys\n"
                      "d = os.environ['EXACT_RUN_DIR']\n"
                      "json.dump({'f1': float(sys.argv[1]), 'loss': 1 - float(sys.argv[1])},"
                      " open(os.path.join(d, 'metrics.json'), 'w'))\n")
    for lr, f1 in (("0.1", "0.42"), ("0.01", "0.61")):
        _cli(site, work, "run", "--name", f"lr{lr}", "-p", f"lr={lr}", "--", sys.executable, str(script), f1)
    # a relabel between the runs: the third run's row shows it in the label-diff columns
    repo = site.repo()
    cell_id = next(i for lb, _g, i in site.known if lb == "cell")
    with repo.edit(IMAGE) as ed:
        ed.update(cell_id, label="tumor")
    repo.commit("cell -> tumor", author=AUTHOR)
    _cli(site, work, "run", "--name", "lr0.01-b", "-p", "lr=0.01", "--", sys.executable, str(script), "0.7")
    listed = json.loads(_cli(site, work, "runs", "--json"))
    rows = next(iter(listed.values())) if isinstance(listed, dict) else listed
    return list(rows)


def _open_experiments(tab: Tab) -> Any:
    tab.sign_in("rita")  # a reader
    tab.page.goto(f"{tab.site.url}/cells/experiments")
    tab.page.wait_for_function("() => document.body.dataset.ready === '1'", timeout=60000)
    return tab.page


def test_experiments_page_lists_runs_and_charts_one_point_per_run(tab: Tab, runs: list[dict[str, Any]]) -> None:
    page = _open_experiments(tab)
    ids = page.eval_on_selector_all("#runs-table tbody tr", "rs => rs.map(r => r.dataset.run)")
    assert sorted(ids) == sorted(r["id"] for r in runs) and len(ids) == 3
    heads = page.eval_on_selector_all("#runs-table thead th", "hs => hs.map(h => h.textContent)")
    for col in ("labels commit", "code commit", "dirty", "lr", "f1", "loss"):
        assert col in heads, heads
    assert any(h.startswith("cell +/") for h in heads) and any(h.startswith("tumor +/") for h in heads), heads
    last = next(r for r in runs if r["name"] == "lr0.01-b")
    cell = page.inner_text(f"#run-{last['id']} td[data-key='l:tumor']")
    assert cell.startswith("+0 −0 ~1"), cell
    f1 = page.inner_text(f"#run-{last['id']} td[data-key='m:f1']")
    assert float(f1) == pytest.approx(0.7)
    # sorting by f1 descending puts the best run first
    page.click("#runs-table th[data-key='m:f1']")
    page.click("#runs-table th[data-key='m:f1']")
    first = page.eval_on_selector("#runs-table tbody tr", "r => r.dataset.run")
    assert first == last["id"]
    # the chart: one point per run, drawn where uPlot says (pixels of the series colour there)
    page.select_option("#metric-select", "f1")
    page.wait_for_timeout(200)
    pts = page.evaluate("() => window.exact.chart.points()")
    assert len(pts) == 3 and sorted(p["value"] for p in pts) == pytest.approx([0.42, 0.61, 0.7])
    tops = [p["top"] for p in sorted(pts, key=lambda p: p["value"])]
    assert tops[0] > tops[1] > tops[2]  # higher values higher up
    img = tab.pixels()
    for p in pts:
        assert near_color(img, p["left"], p["top"], hex_rgb("#3f6fd8"), radius=2, tol=40), p
    # two runs compared: metric deltas and the label changes between their commits
    a = next(r for r in runs if r["name"] == "lr0.01")
    page.check(f"#run-{a['id']} input.pick")
    page.check(f"#run-{last['id']} input.pick")
    page.wait_for_selector("#compare-metrics tr[data-metric='f1']")
    delta = page.inner_text("#compare-metrics tr[data-metric='f1'] td:last-child")
    assert float(delta) == pytest.approx(0.09, abs=1e-3)
    assert page.inner_text("#compare-labels tr[data-label='tumor'] td:nth-child(4)") == "1"
    assert tab.errors == []


def _pixel(page: Any, x: float, y: float) -> list[int]:
    """The overlay canvas's own pixel (RGBA, premultiplied) at image point (x, y)."""
    return list(page.evaluate("""([x, y]) => { const vp = window.exact.viewer.viewport;
        const p = vp.viewportToViewerElementCoordinates(vp.imageToViewportCoordinates(x, y));
        return document.querySelector('canvas.evaluation-layer').exactOverlay._pixel(p.x, p.y); }""", [x, y]))


def _dominant(px: list[int]) -> str:
    assert px[3] > 0, px
    return "rgb"[max(range(3), key=lambda i: px[i])]


def test_overlay_draws_tp_fp_fn_at_their_places(tab: Tab, site: Site, runs: list[dict[str, Any]],
                                               tmp_path: Path) -> None:
    run = next(r for r in runs if r["name"] == "lr0.1")
    feats = [
        {"type": "Feature", "geometry": {"type": "Polygon", "coordinates": TP_TUMOR},
         "properties": {"objectType": "annotation", "classification": {"name": "tumor"}, "score": 0.9}},
        {"type": "Feature", "geometry": {"type": "Point", "coordinates": list(FP_POINT)},
         "properties": {"objectType": "annotation", "classification": {"name": "mitosis"}, "score": 0.4}},
    ]
    pf = tmp_path / "preds.geojson"
    pf.write_text(json.dumps({"type": "FeatureCollection", "features": feats}))
    _cli(site, tmp_path, "predict", "import", str(pf), "--run", run["id"], "--image", IMAGE)
    page = _open_experiments(tab)
    link = page.get_attribute(f"#run-{run['id']} a.overlay-link", "href")
    assert link and f"run={run['id']}" in link
    page.goto(link if link.startswith("http") else site.url + link)
    page.wait_for_function("() => document.body.dataset.ready === '1'", timeout=60000)
    tab.idle()
    counts = page.evaluate("() => window.exact.evaluation.counts")
    assert counts == {"tp": 1, "fp": 1, "fn": 3}  # mitosis, region and cell at the run's commit are missed
    assert page.inner_text("#eval-fn") == "3"
    assert _dominant(_pixel(page, 500, 450)) == "g"  # inside the matched tumour: TP
    assert _dominant(_pixel(page, *FP_POINT)) == "r"  # the stray point: FP
    assert _dominant(_pixel(page, 1500, 800)) == "b"  # the missed mitosis: FN
    assert _dominant(_pixel(page, 1300, 1750)) == "b"  # inside the missed region box: FN
    assert _pixel(page, 2000, 1200)[3] == 0  # nothing where there is nothing
    page.uncheck("#eval-show")
    assert _pixel(page, 500, 450)[3] == 0
    assert tab.errors == []
