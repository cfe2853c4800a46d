"""Predictions of a run and their evaluation against truth pinned to a commit.

``import_predictions`` stores a model's output for one image as an artefact of kind ``predictions``
(canonical msgpack: ``[[label, kind, geometry, plane, score], ...]`` in the stored geometry form,
docs/format.md §3.1) named by the run's ``predictions`` map: a layer of the run, never a label branch.
``evaluate`` pairs them with the truth through :func:`exactvc.match.match_items` (the one matcher):
TP = matched predictions, FP = unmatched predictions, FN = unmatched truth; average precision is the
area under the precision/recall curve of the predictions ranked by score (all points, VOC style),
with the pairs the matcher made. Results become the run's metrics (``eval/...``).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import TYPE_CHECKING, Any

from . import artefacts, codec, geometry, runs, tree
from .errors import InvalidInput, NotFound, UsageError
from .match import label_radius, match_items, parse_spec

if TYPE_CHECKING:
    from .repo import Repository

SCORE_KEYS = ("score", "probability", "confidence", "prob")


def _score(props: dict[str, Any]) -> float | None:
    for src in (props, props.get("measurements") if isinstance(props.get("measurements"), dict) else {}):
        assert isinstance(src, dict)
        for k in SCORE_KEYS:
            v = src.get(k)
            if isinstance(v, int | float) and math.isfinite(v):
                return float(v)
    return None


def import_predictions(repo: Repository, ident: str, image: str, file: str, fmt: str | None = None
                       ) -> dict[str, Any]:
    from .formats import read_features

    run_id, oid = runs.resolve(repo, ident)
    body = runs.load(repo, oid)
    commit = body.get("commit")
    name = repo.image(image, commit.hex() if commit else "HEAD").name
    suffix = (fmt or Path(file).suffix.lstrip(".")).lower()
    if suffix not in ("geojson", "json"):
        raise UsageError(f"predictions are read from GeoJSON files (QuPath's export), not {suffix!r}")
    rows = []
    for f in read_features(file):
        if f.label is None:
            raise InvalidInput(f"prediction {f.index} has no label (classification)")
        kind, enc = geometry.canonical(f.geometry)
        rows.append([f.label, kind, enc, list(f.plane) if f.plane else None, _score(f.properties)])
    rows.sort(key=lambda r: codec.pack_canonical(r))
    aid, _b = artefacts.store_bytes(repo, codec.pack_canonical(rows), f"predictions-{name}.msgpack", "predictions")

    def change(b: dict[str, Any]) -> dict[str, Any]:
        preds = dict(b.get("predictions") or {})
        preds[name] = aid
        b["predictions"] = dict(sorted(preds.items()))
        return b

    runs.update(repo, run_id, change)
    return {"run": run_id, "image": name, "count": len(rows), "artefact": aid.hex(),
            "scored": sum(1 for r in rows if r[4] is not None)}


def load_predictions(repo: Repository, aid: bytes) -> list[list[Any]]:
    rows = codec.unpack(b"".join(artefacts.iter_bytes(repo, aid)))
    if not isinstance(rows, list):
        raise InvalidInput(f"artefact {aid.hex()[:12]} does not hold predictions")
    return rows


def _truth(repo: Repository, image: str, rev: str) -> list[tuple[str, str, Any, Any]]:
    _, root = repo.tree_of(image, rev)
    out = []
    for _k, rec in tree.items(repo.store, root):
        if "G" in rec:
            rec = tree.join_record(repo.store, rec)
        out.append((rec["l"], rec["k"], rec["g"], rec.get("z")))
    return out


def average_precision(scores: list[float | None], matched: list[bool], n_truth: int) -> float | None:
    """Area under the precision/recall curve of predictions ranked by score (unscored ones last)."""
    if n_truth == 0:
        return None
    ranked = [-math.inf if s is None else s for s in scores]
    order = sorted(range(len(ranked)), key=lambda i: (-ranked[i], i))
    tp = 0
    prec: list[float] = []
    rec: list[float] = []
    for n, i in enumerate(order, 1):
        tp += matched[i]
        prec.append(tp / n)
        rec.append(tp / n_truth)
    ap = 0.0
    best = 0.0
    prev_r = 0.0
    # interpolated precision: the best precision at any recall at least this high
    interp = [0.0] * len(prec)
    for j in range(len(prec) - 1, -1, -1):
        best = max(best, prec[j])
        interp[j] = best
    for j in range(len(prec)):
        ap += (rec[j] - prev_r) * interp[j]
        prev_r = rec[j]
    return round(ap, 6)


def _scores(tp: int, fp: int, fn: int) -> dict[str, float | None]:
    p = tp / (tp + fp) if tp + fp else None
    r = tp / (tp + fn) if tp + fn else None
    f1 = 2 * p * r / (p + r) if p and r else (0.0 if (tp + fp) and (tp + fn) else None)
    return {"precision": None if p is None else round(p, 6), "recall": None if r is None else round(r, 6),
            "f1": None if f1 is None else round(f1, 6)}


def evaluate(repo: Repository, ident: str, truth: str | None = None, spec_text: str = "iou=0.5",
             by: str = "label,image", score_threshold: float | None = None) -> dict[str, Any]:
    run_id, oid = runs.resolve(repo, ident)
    body = runs.load(repo, oid)
    preds = body.get("predictions") or {}
    if not preds:
        raise NotFound(f"run {run_id[:12]} has no predictions (exact predict import FILE --run RUN --image IMG)")
    keys = [k.strip() for k in by.split(",") if k.strip()]
    if not keys or any(k not in ("label", "image") for k in keys):
        raise UsageError(f"--by takes label, image or label,image, not {by!r}")
    if truth is None:
        if body.get("commit") is None:
            raise UsageError("the run records no commit: give --truth REV")
        truth_c = body["commit"]
    else:
        truth_c = repo.resolve(truth)
    spec = parse_spec(spec_text)
    radii = {lb.name: label_radius(lb.size) for lb in repo.labels(truth_c.hex()).labels}
    # per (label, image): tp, fp, fn, and the (score, matched) of each prediction for AP
    cells: dict[tuple[str, str], dict[str, Any]] = {}
    for image, aid in sorted(preds.items()):
        rows = load_predictions(repo, aid)
        if score_threshold is not None:
            rows = [r for r in rows if r[4] is not None and r[4] >= score_threshold]
        a = _truth(repo, image, truth_c.hex())
        b = [(r[0], r[1], r[2], r[3]) for r in rows]
        res = match_items(a, b, spec, radii)
        hit = [False] * len(b)
        for _x, y, _lb, _by, _s in res["pairs"]:
            hit[y] = True
        for label, c in res["labels"].items():
            cells[(label, image)] = {"tp": c["matched"], "fp": c["only_b"], "fn": c["only_a"],
                                     "scores": [], "hits": []}
        for i, r in enumerate(rows):
            cell = cells[(r[0], image)]
            cell["scores"].append(r[4])
            cell["hits"].append(hit[i])
    groups: dict[tuple[str, ...], dict[str, Any]] = {}
    for (label, image), c in cells.items():
        key = tuple(label if k == "label" else image for k in keys)
        g = groups.setdefault(key, {"tp": 0, "fp": 0, "fn": 0, "scores": [], "hits": []})
        for f in ("tp", "fp", "fn", "scores", "hits"):
            g[f] += c[f]
    out_groups = []
    for key, g in sorted(groups.items()):
        row: dict[str, Any] = dict(zip(keys, key, strict=True))
        row.update({"tp": g["tp"], "fp": g["fp"], "fn": g["fn"], **_scores(g["tp"], g["fp"], g["fn"]),
                    "ap": average_precision(g["scores"], g["hits"], g["tp"] + g["fn"])})
        out_groups.append(row)
    tot = {f: sum(c[f] for c in cells.values()) for f in ("tp", "fp", "fn")}
    per_label: dict[str, dict[str, Any]] = {}
    for (label, _image), c in cells.items():
        g = per_label.setdefault(label, {"tp": 0, "fp": 0, "fn": 0, "scores": [], "hits": []})
        for f in ("tp", "fp", "fn", "scores", "hits"):
            g[f] += c[f]
    aps = [average_precision(g["scores"], g["hits"], g["tp"] + g["fn"]) for g in per_label.values()]
    aps_known = [x for x in aps if x is not None]
    total = {**tot, **_scores(tot["tp"], tot["fp"], tot["fn"]),
             "map": round(sum(aps_known) / len(aps_known), 6) if aps_known else None}
    result = {"run": run_id, "truth": truth_c.hex(), "match": spec.to_json(), "by": keys,
              "score_threshold": score_threshold, "groups": out_groups, "total": total}
    metrics: dict[str, float | None] = {"eval/precision": total["precision"], "eval/recall": total["recall"],
                                        "eval/f1": total["f1"], "eval/map": total["map"]}
    for label, g in sorted(per_label.items()):
        s = _scores(g["tp"], g["fp"], g["fn"])
        metrics[f"eval/{label}/precision"] = s["precision"]
        metrics[f"eval/{label}/recall"] = s["recall"]
        metrics[f"eval/{label}/ap"] = average_precision(g["scores"], g["hits"], g["tp"] + g["fn"])

    def change(b: dict[str, Any]) -> dict[str, Any]:
        hist = dict(b.get("metrics") or {})
        for k, v in metrics.items():
            hist[k] = [[None, v]]
        b["metrics"] = hist
        b["evals"] = {"truth": truth_c.hex(), "match": spec.to_json(), "by": keys,
                      "score_threshold": score_threshold, "total": total}
        return b

    runs.update(repo, run_id, change)
    return result
