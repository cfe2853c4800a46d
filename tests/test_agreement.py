"""exact agreement: detection F1 and Cohen's kappa on matched pairs, checked against a brute-force count.

The raters' squares sit on a grid far apart, so the test pairs them itself (IoU of two axis-aligned squares,
computed here) and builds the confusion matrix by hand; kappa and F1 come from that matrix, never from the
library under test.
"""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest

from exactvc import agreement as ag
from exactvc.history import commit_changes
from exactvc.objects import ImageRecord
from exactvc.repo import Repository

from .conftest import run_exact, square

LABELS = ("tumor", "stroma", "immune")
AUTHOR = "T <t@x>"


def _iou(a: tuple[float, float, float], b: tuple[float, float, float]) -> float:
    (ax, ay, s), (bx, by, t) = a, b
    w = max(0.0, min(ax + s, bx + t) - max(ax, bx))
    h = max(0.0, min(ay + s, by + t) - max(ay, by))
    inter = w * h
    return inter / (s * s + t * t - inter)


def _rater(rng: random.Random, truth: list[tuple[float, float, str]], keep: float, relabel: float,
           extra: int, at: tuple[float, float] = (5000.0, 5000.0)) -> list[tuple[float, float, float, str]]:
    """A rater's view of ``truth``: some cells missed, some labelled otherwise, some shifted, some added."""
    out = []
    for x, y, label in truth:
        if rng.random() > keep:
            continue
        lb = rng.choice([v for v in LABELS if v != label]) if rng.random() < relabel else label
        dx = rng.choice([0.0, 1.0, 2.0, 6.0])  # 6 px on a 10 px square: IoU 0.25, no pair
        out.append((x + dx, y, 10.0, lb))
    for i in range(extra):
        out.append((at[0] + 40 * i, at[1], 10.0, rng.choice(LABELS)))
    return out


def _repo(tmp_path: Path) -> Repository:
    r = Repository.init(tmp_path / "study")
    for i, name in enumerate(LABELS):
        r.add_label(name, shape="polygon", color=f"#0{i}0000")
    r.add_image_record(ImageRecord("slide", "ef" * 32, 100000, 100000, levels=4, mpp=0.25))
    r.commit("seed", author=AUTHOR)
    return r


def _commit(repo: Repository, branch: str, shapes: list[tuple[float, float, float, str]]) -> None:
    commit_changes(repo, branch, None, "slide", f"{branch} labels", AUTHOR,
                   create=[{"label": lb, "geometry": square(x, y, s)} for x, y, s, lb in shapes], start="main")


def _brute(a: list[tuple[float, float, float, str]], b: list[tuple[float, float, float, str]]) -> dict[str, object]:
    """Pairs, confusion matrix, kappa (overall and one label against the rest) and F1, by hand."""
    pairs = []
    used: set[int] = set()
    for sa in a:
        cands = [j for j, sb in enumerate(b) if j not in used and _iou(sa[:3], sb[:3]) >= 0.5]
        assert len(cands) <= 1  # the grid keeps candidates unique: no assignment problem to solve
        if cands:
            used.add(cands[0])
            pairs.append((sa[3], b[cands[0]][3]))
    cats = sorted(set(LABELS))
    conf = {r: {c: 0 for c in cats} for r in cats}
    for la, lb in pairs:
        conf[la][lb] += 1

    def kappa_of(m: dict[str, dict[str, int]]) -> float | None:
        n = sum(sum(row.values()) for row in m.values())
        po = sum(m[k][k] for k in m) / n
        pe = sum(sum(m[k].values()) * sum(m[r][k] for r in m) for k in m) / n / n
        return None if pe == 1 else (po - pe) / (1 - pe)

    per = {}
    for lab in cats:
        binary = {"y": {"y": 0, "n": 0}, "n": {"y": 0, "n": 0}}
        for r in cats:
            for c in cats:
                binary["y" if r == lab else "n"]["y" if c == lab else "n"] += conf[r][c]
        na = sum(1 for s in a if s[3] == lab)
        nb = sum(1 for s in b if s[3] == lab)
        per[lab] = {"kappa": kappa_of(binary), "f1": 2 * conf[lab][lab] / (na + nb) if na + nb else None,
                    "a": na, "b": nb, "matched": conf[lab][lab]}
    return {"pairs": len(pairs), "kappa": kappa_of(conf), "f1": 2 * len(pairs) / (len(a) + len(b)),
            "conf": conf, "per": per}


@pytest.mark.parametrize("seed", [1, 7])
def test_two_raters_match_the_brute_force_figures(tmp_path: Path, seed: int) -> None:
    rng = random.Random(seed)
    truth = [(100.0 + 40 * (i % 10), 100.0 + 40 * (i // 10), rng.choice(LABELS)) for i in range(60)]
    a = _rater(rng, truth, keep=0.9, relabel=0.15, extra=3)
    b = _rater(rng, truth, keep=0.85, relabel=0.25, extra=5)
    repo = _repo(tmp_path)
    _commit(repo, "users/ann/study", a)
    _commit(repo, "users/bob/study", b)
    want = _brute(a, b)
    got = ag.agreement(repo, "users/ann/study", "users/bob/study", "iou=0.5")
    assert got["detection"]["matched"] == want["pairs"] and want["pairs"] > 20
    assert got["detection"]["a"] == len(a) and got["detection"]["b"] == len(b)
    assert got["detection"]["f1"] == pytest.approx(want["f1"], abs=1e-4)
    assert got["labels_agreement"]["kappa"] == pytest.approx(want["kappa"], abs=1e-4)
    conf = want["conf"]
    assert got["confusion"] == {r: {c: n for c, n in row.items() if n} for r, row in conf.items()  # type: ignore[union-attr]
                                if any(row.values())}
    for lab, w in want["per"].items():  # type: ignore[union-attr]
        g = got["labels"][lab]
        assert (g["a"], g["b"], g["matched"]) == (w["a"], w["b"], w["matched"])
        assert g["f1"] == pytest.approx(w["f1"], abs=1e-4)
        assert g["kappa"] == pytest.approx(w["kappa"], abs=1e-4)


def test_identical_raters_agree_fully_and_one_label_leaves_kappa_undefined(tmp_path: Path) -> None:
    repo = _repo(tmp_path)
    shapes = [(100.0 + 40 * i, 100.0, 10.0, LABELS[i % 3]) for i in range(9)]
    _commit(repo, "users/ann/study", shapes)
    _commit(repo, "users/bob/study", shapes)
    _commit(repo, "users/cid/study", [(x, y, s, "tumor") for x, y, s, _ in shapes])
    same = ag.agreement(repo, "users/ann/study", "users/bob/study", "iou=0.5", image="slide")
    assert same["detection"]["f1"] == 1.0 and same["labels_agreement"]["kappa"] == 1.0
    one = ag.agreement(repo, "users/cid/study", "users/cid/study")
    assert one["labels_agreement"]["kappa"] is None and one["labels_agreement"]["observed"] == 1.0
    assert ag.kappa([]) == {"kappa": None, "observed": None, "expected": None}


def test_pairwise_table_of_the_user_branches_and_the_cli(tmp_path: Path) -> None:
    rng = random.Random(3)
    truth = [(100.0 + 40 * (i % 8), 100.0 + 40 * (i // 8), rng.choice(LABELS)) for i in range(40)]
    repo = _repo(tmp_path)
    raters = {}
    for who in ("ann", "bob", "cid"):
        raters[who] = _rater(rng, truth, keep=0.9, relabel=0.2, extra=2)
        _commit(repo, f"users/{who}/study", raters[who])
    branches = ag.rater_branches(repo, "users/*/study")
    assert branches == ["users/ann/study", "users/bob/study", "users/cid/study"]
    table = ag.pairwise(repo, branches)
    assert table["raters"] == branches
    assert table["annotations"] == {f"users/{w}/study": len(s) for w, s in raters.items()}
    for i, x in enumerate(("ann", "bob", "cid")):
        assert table["f1"][i][i] is None
        for j, y in enumerate(("ann", "bob", "cid")):
            if i < j:
                want = _brute(raters[x], raters[y])
                assert table["f1"][i][j] == table["f1"][j][i] == pytest.approx(want["f1"], abs=1e-4)
                assert table["kappa"][j][i] == pytest.approx(want["kappa"], abs=1e-4)
    out = run_exact("-C", str(repo.path), "agreement", "--branches", "users/*/study", "--json")
    assert out.returncode == 0, out.stderr
    cli = json.loads(out.stdout)["exactvc.agreement-table/v1"]
    assert cli["kappa"] == table["kappa"] and cli["f1"] == table["f1"]
    text = run_exact("-C", str(repo.path), "agreement", "users/ann/study", "users/bob/study", "--match", "iou=0.5")
    assert text.returncode == 0, text.stderr
    want = _brute(raters["ann"], raters["bob"])
    assert f"kappa {want['kappa']:.3f}" in text.stdout and f"F1 {want['f1']:.3f}" in text.stdout
    bad = run_exact("-C", str(repo.path), "agreement", "users/ann/study")
    assert bad.returncode != 0 and "two revisions" in bad.stderr and "Traceback" not in bad.stderr
    bad = run_exact("-C", str(repo.path), "agreement", "users/ann/study", "nope")
    assert bad.returncode != 0 and "nope" in bad.stderr and len(bad.stderr.strip().splitlines()) == 1
