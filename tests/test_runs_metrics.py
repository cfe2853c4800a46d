"""Metrics across commits with label-diff columns, predictions as run layers, evaluation against pinned
truth checked against a brute-force matcher (issue 13, acceptance 3)."""

from __future__ import annotations

import json
import random
import subprocess
import sys
from pathlib import Path

from shapely.geometry import box as sbox

from exactvc import evaluate, runs
from exactvc.objects import ImageRecord
from exactvc.repo import Repository

from .server_fixtures import AUTHOR

IMAGE = "slide-1"


def _cli(repo: Path, *args: str) -> subprocess.CompletedProcess[str]:
    import os

    env = dict(os.environ, EXACT_AUTHOR=AUTHOR)
    env.pop("EXACT_RUN_DIR", None)
    return subprocess.run([sys.executable, "-m", "exactvc.cli", "-C", str(repo), *args], capture_output=True,
                          text=True, env=env, timeout=300)


def _json(repo: Path, *args: str) -> dict:
    r = _cli(repo, *args)
    assert r.returncode == 0, r.stderr + r.stdout
    return next(iter(json.loads(r.stdout).values()))


def _sq(x: float, y: float, s: float) -> dict:
    return {"type": "Polygon", "coordinates": [[[x, y], [x + s, y], [x + s, y + s], [x, y + s], [x, y]]]}


def test_metrics_table_shows_relabels_per_label_between_run_commits(tmp_path: Path) -> None:
    lab = tmp_path / "lab"
    r = Repository.init(lab)
    r.add_label("cell", shape="polygon", color="#ff0000")
    r.add_label("tumor", shape="polygon", color="#0000ff")
    r.add_image_record(ImageRecord(IMAGE, "ab" * 32, 100000, 100000))
    ids: list[str] = []
    with r.edit(IMAGE) as ed:
        for i in range(700):
            ids.append(ed.add("cell" if i < 500 else "tumor", _sq((i % 50) * 30, (i // 50) * 30, 20)))
    c1 = r.commit("v1", author=AUTHOR)
    with r.edit(IMAGE) as ed:
        for aid in ids[:200]:
            ed.update(aid, label="tumor")
        for aid in ids[500:600]:
            ed.update(aid, label="cell")
        ed.add("cell", _sq(5000, 5000, 20))
        ed.delete(ids[650])
    c2 = r.commit("v2: 300 relabels", author=AUTHOR)
    script = tmp_path / "s.py"
    script.write_text("import json, os, sys\njson.dump({'f1': float(sys.argv[1])}, "
                      "open(os.path.join(os.environ['EXACT_RUN_DIR'], 'metrics.json'), 'w'))\n")
    assert _cli(lab, "run", "--rev", c1, "-p", "lr=0.1", "--", sys.executable, str(script), "0.6").returncode == 0
    assert _cli(lab, "run", "--rev", c2, "-p", "lr=0.1", "--", sys.executable, str(script), "0.75").returncode == 0
    t = _json(lab, "metrics", "--json")
    assert [row["commit"] for row in t["rows"]] == [c1, c2]
    assert [row["metrics"]["f1"] for row in t["rows"]] == [0.6, 0.75]
    assert t["rows"][0]["labels"] == {}
    ch = t["rows"][1]["labels"]
    assert ch["tumor"] == {"added": 0, "removed": 1, "relabelled_to": 200, "relabelled_from": 100}
    assert ch["cell"] == {"added": 1, "removed": 0, "relabelled_to": 100, "relabelled_from": 200}
    assert t["params"] == ["lr"] and t["metrics"] == ["f1"]
    only = _json(lab, "metrics", "--only-changed", "--json")
    assert only["params"] == [] and only["metrics"] == ["f1"]
    assert len(_json(lab, "metrics", "--revs", f"{c1}..{c2}", "--json")["rows"]) == 1
    assert len(_json(lab, "metrics", "--branch", "main", "--json")["rows"]) == 2
    md = _cli(lab, "metrics", "--md").stdout.splitlines()
    assert md[0].startswith("| run |") and len(md) == 4 and "+1/-0/~300" in md[3]
    csv = _cli(lab, "metrics", "--csv").stdout.splitlines()
    assert csv[0].startswith("run,name,commit") and len(csv) == 3
    a, b = (row["run"] for row in t["rows"])
    d = _json(lab, "metrics", "diff", a, b, "--json")
    assert abs(d["metrics"]["f1"]["delta"] - 0.15) < 1e-9
    assert d["labels"]["tumor"]["relabelled_to"] == 200


def _max_matching(truth: list[tuple[str, tuple]], preds: list[tuple[str, tuple]], thr: float) -> int:
    """Brute force: every truth/prediction pair's IoU with shapely, then augmenting paths (Kuhn)."""
    adj: list[list[int]] = []
    for lt, bt in truth:
        ga = sbox(*bt)
        adj.append([j for j, (lp, bp) in enumerate(preds)
                    if lp == lt and ga.intersection(sbox(*bp)).area / ga.union(sbox(*bp)).area >= thr])
    mate: dict[int, int] = {}

    def augment(i: int, seen: set[int]) -> bool:
        for j in adj[i]:
            if j in seen:
                continue
            seen.add(j)
            if j not in mate or augment(mate[j], seen):
                mate[j] = i
                return True
        return False

    return sum(augment(i, set()) for i in range(len(truth)))


def test_eval_of_imported_predictions_matches_a_brute_force_matcher(tmp_path: Path) -> None:
    rnd = random.Random(13)
    lab = tmp_path / "lab"
    r = Repository.init(lab)
    r.add_label("cell", shape="polygon", color="#ff0000")
    r.add_label("tumor", shape="polygon", color="#0000ff")
    r.add_image_record(ImageRecord(IMAGE, "ab" * 32, 100000, 100000))
    truth: list[tuple[str, tuple]] = []
    with r.edit(IMAGE) as ed:
        for i in range(150):
            x, y = (i % 15) * 100 + rnd.uniform(0, 20), (i // 15) * 100 + rnd.uniform(0, 20)
            lb = "cell" if i % 4 else "tumor"
            ed.add(lb, _sq(x, y, 40))
            truth.append((lb, (x, y, x + 40, y + 40)))
    c = r.commit("truth", author=AUTHOR)
    preds: list[tuple[str, tuple]] = []
    feats = []
    for lb, (x0, y0, _x1, _y1) in truth:
        if rnd.random() < 0.2:
            continue  # a miss
        dx, dy = rnd.uniform(-15, 15), rnd.uniform(-15, 15)
        plb = lb if rnd.random() < 0.9 else ("tumor" if lb == "cell" else "cell")
        preds.append((plb, (x0 + dx, y0 + dy, x0 + dx + 40, y0 + dy + 40)))
    for _ in range(30):  # false positives
        x, y = rnd.uniform(0, 1500), rnd.uniform(1100, 1500)
        preds.append(("cell", (x, y, x + 40, y + 40)))
    for i, (lb, bb) in enumerate(preds):
        feats.append({"type": "Feature", "geometry": _sq(bb[0], bb[1], 40),
                      "properties": {"objectType": "annotation", "classification": {"name": lb},
                                     "measurements": {"score": round(1 - i / len(preds), 4)}}})
    pf = tmp_path / "preds.geojson"
    pf.write_text(json.dumps({"type": "FeatureCollection", "features": feats}))
    script = tmp_path / "s.py"
    script.write_text("print('trained')\n")
    assert _cli(lab, "run", "--name", "m", "--", sys.executable, str(script)).returncode == 0
    before = sum(1 for _ in Repository.open(lab).annotations(IMAGE, "HEAD"))
    imp = _json(lab, "predict", "import", str(pf), "--run", "m", "--image", IMAGE, "--json")
    assert imp["count"] == len(preds) and imp["scored"] == len(preds)
    repo = Repository.open(lab)
    assert repo.head_commit() == bytes.fromhex(c)  # predictions never touch a label branch
    assert sum(1 for _ in repo.annotations(IMAGE, "HEAD")) == before
    res = _json(lab, "eval", "m", "--match", "iou=0.5", "--by", "label", "--json")
    for label in ("cell", "tumor"):
        t = [x for x in truth if x[0] == label]
        p = [x for x in preds if x[0] == label]
        m = _max_matching(t, p, 0.5)
        g = next(x for x in res["groups"] if x["label"] == label)
        assert (g["tp"], g["fp"], g["fn"]) == (m, len(p) - m, len(t) - m)
        assert g["precision"] == round(m / len(p), 6) and g["recall"] == round(m / len(t), 6)
        assert 0 < g["ap"] <= g["recall"] + 1e-9
    m_all = _max_matching(truth, preds, 0.5)
    assert res["total"]["tp"] == m_all
    shown = _json(lab, "run", "show", "m", "--json")
    assert shown["metrics"]["eval/precision"] == round(m_all / len(preds), 6)
    assert shown["evals"]["truth"] == c
    # per label and image; a score threshold drops the low scores
    both = _json(lab, "eval", "m", "--json")
    assert {(g["label"], g["image"]) for g in both["groups"]} == {("cell", IMAGE), ("tumor", IMAGE)}
    hi = _json(lab, "eval", "m", "--score-threshold", "0.5", "--json")
    assert hi["total"]["tp"] + hi["total"]["fp"] == sum(1 for i in range(len(preds))
                                                       if round(1 - i / len(preds), 4) >= 0.5)
    bad = _cli(lab, "eval", "m", "--by", "colour")
    assert bad.returncode == 2 and bad.stderr.startswith("error:")
    assert runs.resolve(repo, "m")[0] == shown["id"]
    # the outcomes the experiments page draws are the same matching: every tp/fp/fn, each where it lies
    out = evaluate.outcomes(Repository.open(lab), "m", IMAGE)
    assert out["counts"] == {"tp": m_all, "fp": len(preds) - m_all, "fn": len(truth) - m_all}
    assert len(out["items"]) == len(preds) + len(truth) - m_all and not out["truncated"]
    window = evaluate.outcomes(Repository.open(lab), "m", IMAGE, bbox=(0, 1100, 1600, 1600), limit=10)
    assert window["counts"] == out["counts"] and len(window["items"]) == 10 and window["truncated"]
    for it in window["items"]:
        ys = [y for _x, y in it["geometry"]["coordinates"][0]]
        assert max(ys) >= 1100


def test_average_precision_by_hand() -> None:
    from exactvc.evaluate import average_precision

    # ranked: hit, miss, hit; 2 truths -> precision 1, 1/2, 2/3 at recall 1/2, 1/2, 1
    assert average_precision([0.9, 0.8, 0.7], [True, False, True], 2) == round(0.5 * 1 + 0.5 * (2 / 3), 6)
    assert average_precision([], [], 0) is None
    assert average_precision([0.5], [False], 3) == 0.0
