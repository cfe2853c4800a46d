"""The two-annotator story, through the CLI only (export, edit the GeoJSON, import, commit, merge, resolve)."""

from __future__ import annotations

import json
import math
import random
from pathlib import Path
from typing import Any

from .conftest import run_exact


def ok(*args: str) -> str:
    r = run_exact(*args)
    assert r.returncode == 0, (args, r.stderr)
    return r.stdout


def cell(cx: float, cy: float, r: float) -> dict[str, Any]:
    ring = [[round(cx + r * math.cos(t * math.pi / 8), 2), round(cy + r * math.sin(t * math.pi / 8), 2)]
            for t in range(16)]
    return {"type": "Polygon", "coordinates": [[*ring, ring[0]]]}


def feature(fid: str, label: str, geom: dict[str, Any]) -> dict[str, Any]:
    return {"type": "Feature", "id": fid, "geometry": geom,
            "properties": {"objectType": "annotation", "classification": {"name": label}}}


def write(path: Path, feats: list[dict[str, Any]]) -> str:
    path.write_text(json.dumps({"type": "FeatureCollection", "features": feats}))
    return str(path)


def export(d: str, tmp: Path, name: str) -> list[dict[str, Any]]:
    out = tmp / f"{name}.geojson"
    ok("-C", d, "export", "--rev", "HEAD", "--image", "slide", "-o", str(out))
    feats: list[dict[str, Any]] = json.loads(out.read_text())["features"]
    return feats


def test_two_annotators_and_a_third_with_conflicts(tmp_path: Path) -> None:
    d = str(tmp_path / "set")
    ok("init", d)
    for label in ("cell", "tumor", "lymphocyte"):
        ok("-C", d, "label", "add", label, "--shape", "polygon")
    # a pixel-less image record is enough for annotations: register a real slide
    from .conftest import REAL_SLIDE

    ok("-C", d, "image", "add", str(REAL_SLIDE), "--name", "slide")
    rng = random.Random(7)
    base = [feature(f"00000000-0000-4000-8000-{i:012d}", "cell",
                    cell(rng.uniform(30, 2190), rng.uniform(30, 2930), rng.uniform(6, 12))) for i in range(2000)]
    ok("-C", d, "import", write(tmp_path / "base.geojson", base), "--image", "slide")
    ok("-C", d, "commit", "-m", "2000 cells")
    for b in ("ann-a", "ann-b", "ann-c"):
        ok("-C", d, "branch", b)

    # annotator A relabels cells 0..99
    ok("-C", d, "switch", "ann-a")
    feats = export(d, tmp_path, "a")
    for f in feats[:100]:
        f["properties"]["classification"] = {"name": "tumor"}
    ok("-C", d, "import", write(tmp_path / "a-edit.geojson", feats[:100]), "--image", "slide")
    ok("-C", d, "commit", "-m", "A: relabel 100 cells as tumor")

    # annotator B redraws cells 100..199 and adds 1,000 new ones
    ok("-C", d, "switch", "ann-b")
    feats = export(d, tmp_path, "b")
    redrawn = []
    for f in feats[100:200]:
        ring = f["geometry"]["coordinates"][0]
        cx = sum(p[0] for p in ring[:-1]) / (len(ring) - 1)
        cy = sum(p[1] for p in ring[:-1]) / (len(ring) - 1)
        f["geometry"] = cell(cx, cy, 9.5)
        redrawn.append(f)
    new = [feature(f"11111111-0000-4000-8000-{i:012d}", "lymphocyte",
                   cell(rng.uniform(30, 2190), rng.uniform(30, 2930), 5)) for i in range(1000)]
    ok("-C", d, "import", write(tmp_path / "b-edit.geojson", redrawn + new), "--image", "slide")
    st = json.loads(ok("-C", d, "status", "--json"))["exactvc.status/v1"]
    assert st["images"]["slide"] == {"added": 1000, "modified": 100, "deleted": 0}
    ok("-C", d, "commit", "-m", "B: redraw 100 cells, add 1000 lymphocytes")

    # annotator C relabels 10 of A's 100 cells differently
    ok("-C", d, "switch", "ann-c")
    feats = export(d, tmp_path, "c")
    for f in feats[:10]:
        f["properties"]["classification"] = {"name": "lymphocyte"}
    ok("-C", d, "import", write(tmp_path / "c-edit.geojson", feats[:10]), "--image", "slide")
    ok("-C", d, "commit", "-m", "C: 10 of them are lymphocytes")

    # A and B merge cleanly into main
    ok("-C", d, "switch", "main")
    ok("-C", d, "merge", "ann-a")
    res = json.loads(ok("-C", d, "merge", "ann-b", "--json"))["exactvc.merge/v1"]
    assert res["status"] == "merged" and res["conflicts"] == []
    merged = {f["id"]: f for f in export(d, tmp_path, "merged")}
    assert len(merged) == 3000
    assert sum(1 for f in merged.values() if f["properties"]["classification"]["name"] == "tumor") == 100

    # C conflicts on exactly those 10 labels
    r = run_exact("-C", d, "merge", "ann-c", "--json")
    assert r.returncode == 6, r.stderr
    res = json.loads(r.stdout)["exactvc.merge/v1"]
    assert res["status"] == "conflicts"
    assert len(res["conflicts"]) == 10 and all(c["fields"] == ["label"] for c in res["conflicts"])
    st = json.loads(ok("-C", d, "status", "--json"))["exactvc.status/v1"]
    assert st["merging"]["conflicts"] == 10
    r = run_exact("-C", d, "merge", "--continue")
    assert r.returncode == 6 and "10 conflicts left" in r.stderr
    addrs = [c["address"] for c in res["conflicts"]]
    for a in addrs[:5]:
        ok("-C", d, "resolve", a, "--theirs")
    ok("-C", d, "resolve", "--image", "slide", "--ours")
    r = run_exact("-C", d, "resolve", addrs[0], "--ours")
    assert r.returncode == 4 and "not in conflict" in r.stderr
    ok("-C", d, "merge", "--continue")
    final = {f["id"]: f for f in export(d, tmp_path, "final")}
    labels = [final[a.split(":", 1)[1]]["properties"]["classification"]["name"] for a in addrs]
    assert labels == ["lymphocyte"] * 5 + ["tumor"] * 5
    fs = json.loads(ok("-C", d, "fsck", "--json"))["exactvc.fsck/v1"]
    assert fs["ok"] is True
    r = run_exact("-C", d, "merge", "no-such-branch")
    assert r.returncode == 4 and "no-such-branch" in r.stderr
