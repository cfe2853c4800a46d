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

import contextlib
import gc
import math
import threading
from collections import OrderedDict
from collections.abc import Iterator
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
    with _no_gc():
        feats = list(read_features(file))
        for f in feats:
            if f.label is None:
                raise InvalidInput(f"prediction {f.index} has no label (classification)")
        shapes = geometry.canonical_many([f.geometry for f in feats])
        rows = [[f.label, kind, enc, list(f.plane) if f.plane else None, runs.clean_value(_score(f.properties))]
                for f, (kind, enc, _bounds) in zip(feats, shapes, strict=True)]
        del feats
        # the rows are canonical already (labels, kinds, integer geometry, finite floats): plain msgpack
        keyed = sorted((codec.pack(r), i) for i, r in enumerate(rows))
        rows = [rows[i] for _k, i in keyed]
        data = codec.pack(rows)
    aid, _b = artefacts.store_bytes(repo, data, f"predictions-{name}.msgpack", "predictions")

    def change(b: dict[str, Any]) -> dict[str, Any]:
        preds = dict(b.get("predictions") or {})
        preds[name] = aid
        b["predictions"] = dict(sorted(preds.items()))
        return b

    runs.update(repo, run_id, change)
    return {"run": run_id, "image": name, "count": len(rows), "artefact": aid.hex(),
            "scored": sum(1 for r in rows if r[4] is not None)}


@contextlib.contextmanager
def _no_gc() -> Iterator[None]:
    """Hundreds of thousands of small lists, no cycles: the cyclic collector would only walk them."""
    on = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if on:
            gc.enable()


def load_predictions(repo: Repository, aid: bytes) -> list[list[Any]]:
    rows = codec.unpack(b"".join(artefacts.iter_bytes(repo, aid)))
    if not isinstance(rows, list):
        raise InvalidInput(f"artefact {aid.hex()[:12]} does not hold predictions")
    return rows


def _truth(repo: Repository, image: str, rev: str) -> list[tuple[str, str, Any, Any]]:
    """The image's annotations at ``rev`` as matcher items; each leaf's records decoded in one msgpack call."""
    import msgpack

    _, root = repo.tree_of(image, rev)
    out = []
    for _oid, node in tree.iter_nodes(repo.store, root):
        if node.level != 0:
            continue
        up = msgpack.Unpacker(raw=False, strict_map_key=True, use_list=True)
        up.feed(b"".join(node.raw))
        for rec in up:
            if "G" in rec:
                rec = tree.join_record(repo.store, rec)
            out.append((rec["l"], rec["k"], rec["g"], rec.get("z")))
    return out


def average_precision(scores: list[float | None], matched: list[bool], n_truth: int) -> float | None:
    """Area under the precision/recall curve of predictions ranked by score (unscored ones last; ties in
    input order), precision interpolated as the best at any higher recall (VOC, all points)."""
    if n_truth == 0:
        return None
    if not scores:
        return 0.0
    import numpy as np

    sc = np.array([-np.inf if s is None else s for s in scores], dtype=np.float64)
    order = np.argsort(-sc, kind="stable")
    hits = np.asarray(matched, dtype=np.float64)[order]
    tp = np.cumsum(hits)
    prec = tp / np.arange(1, len(hits) + 1)
    rec = tp / n_truth
    interp = np.maximum.accumulate(prec[::-1])[::-1]
    steps = np.diff(np.concatenate(([0.0], rec)))
    return round(float(np.sum(steps * interp)), 6)


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
    truth_c = _truth_commit(repo, body, truth)
    with _no_gc():
        return _evaluate(repo, run_id, body, preds, keys, truth_c, parse_spec(spec_text), score_threshold)


def _truth_commit(repo: Repository, body: dict[str, Any], truth: str | None) -> bytes:
    """The commit holding the truth: ``truth`` resolved, or else the commit the run used."""
    if truth is not None:
        return repo.resolve(truth)
    if body.get("commit") is None:
        raise UsageError("the run records no commit: give --truth REV")
    return bytes(body["commit"])


def _evaluate(repo: Repository, run_id: str, body: dict[str, Any], preds: dict[str, bytes], keys: list[str],
              truth_c: bytes, spec: Any, score_threshold: float | None) -> dict[str, Any]:
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
    label_ap = {lb: average_precision(g["scores"], g["hits"], g["tp"] + g["fn"]) for lb, g in per_label.items()}
    aps = list(label_ap.values())
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
        metrics[f"eval/{label}/ap"] = label_ap[label]

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


OUTCOMES = ("tp", "fp", "fn")


_Tagged = tuple[str, str, str, Any, "float | None", tuple[float, float, float, float]]
# (predictions artefact, image, truth commit, match spec) -> the tagged items and their counts: every key
# is content-addressed, so an entry never goes stale; the viewer asks again on every pan
_OUTCOMES: OrderedDict[tuple[bytes, str, bytes, str], tuple[list[_Tagged], dict[str, int]]] = OrderedDict()
_OUTCOMES_LOCK = threading.Lock()


def _outcomes_of(repo: Repository, aid: bytes, image: str, truth_c: bytes, spec: Any
                 ) -> tuple[list[_Tagged], dict[str, int]]:
    key = (aid, image, truth_c, repr(spec.to_json()))
    with _OUTCOMES_LOCK:
        hit = _OUTCOMES.get(key)
        if hit is not None:
            _OUTCOMES.move_to_end(key)
            return hit
    radii = {lb.name: label_radius(lb.size) for lb in repo.labels(truth_c.hex()).labels}
    with _no_gc():
        rows = load_predictions(repo, aid)
        a = _truth(repo, image, truth_c.hex())
        b = [(r[0], r[1], r[2], r[3]) for r in rows]
        res = match_items(a, b, spec, radii)
        hit_a = {x for x, _y, _lb, _r, _s in res["pairs"]}
        hit_b = {y for _x, y, _lb, _r, _s in res["pairs"]}
        tagged: list[_Tagged] = []
        for i, r in enumerate(rows):
            tagged.append(("tp" if i in hit_b else "fp", r[0], r[1], r[2], r[4], geometry.bounds(r[1], r[2])))
        for i, (label, kind, g, _z) in enumerate(a):
            if i not in hit_a:
                tagged.append(("fn", label, kind, g, None, geometry.bounds(kind, g)))
    tagged.sort(key=lambda t: OUTCOMES.index(t[0]))  # stable: input order kept within each outcome
    counts = {o: 0 for o in OUTCOMES}
    for t in tagged:
        counts[t[0]] += 1
    with _OUTCOMES_LOCK:
        _OUTCOMES[key] = (tagged, counts)
        while len(_OUTCOMES) > 8:
            _OUTCOMES.popitem(last=False)
    return tagged, counts


def outcomes(repo: Repository, ident: str, image: str, truth: str | None = None, spec_text: str = "iou=0.5",
             bbox: tuple[float, float, float, float] | None = None, limit: int = 5000) -> dict[str, Any]:
    """Where a run's predictions on ``image`` hit and missed, for drawing: each matched prediction (tp),
    unmatched prediction (fp) and unmatched truth annotation (fn) with its label, GeoJSON geometry and
    score, by the same matcher as :func:`evaluate`. ``counts`` cover the whole image; ``items`` only those
    whose bounds meet ``bbox`` (x0, y0, x1, y1), in a stable order (tp, fp, fn; input order within),
    at most ``limit`` of them (``truncated`` says when some were left out)."""
    if limit < 0:
        raise InvalidInput("limit must be zero or more")
    run_id, oid = runs.resolve(repo, ident)
    body = runs.load(repo, oid)
    preds = body.get("predictions") or {}
    if image not in preds:
        raise NotFound(f"run {run_id[:12]} has no predictions for image {image!r}")
    truth_c = _truth_commit(repo, body, truth)
    spec = parse_spec(spec_text)
    tagged, counts = _outcomes_of(repo, preds[image], image, truth_c, spec)
    items: list[dict[str, Any]] = []
    truncated = False
    for o, label, kind, g, score, (x0, y0, x1, y1) in tagged:
        if bbox is not None:
            if x1 < bbox[0] or y1 < bbox[1] or x0 > bbox[2] or y0 > bbox[3]:
                continue
        if len(items) >= limit:
            truncated = True
            break
        items.append({"outcome": o, "label": label, "kind": kind, "geometry": geometry.to_geojson(kind, g),
                      "score": score})
    return {"run": run_id, "image": image, "truth": truth_c.hex(), "match": spec.to_json(), "counts": dict(counts),
            "items": items, "truncated": truncated}
