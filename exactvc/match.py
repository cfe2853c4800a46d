"""Geometric matching of two annotation sets that share no ids.

Model predictions against ground truth, or two annotators who each clicked the
same cells: pairs are made per label, one to one, greedily by overlap (IoU for
areas, distance for points), using an STRtree. The first set is the
reference ("truth"): recall = matched / |A|, precision = matched / |B|.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from . import geometry, tree
from .errors import UsageError

if TYPE_CHECKING:
    from .repo import Repository


def parse_match(spec: str) -> tuple[str, float]:
    name, _, value = spec.partition("=")
    try:
        v = float(value)
    except ValueError:
        raise UsageError(f"--match takes iou=0.5 or dist=PX, not {spec!r}") from None
    if name == "iou" and 0 < v <= 1:
        return "iou", v
    if name == "dist" and v >= 0:
        return "dist", v
    raise UsageError(f"--match takes iou=X (0<X<=1) or dist=PX (PX>=0), not {spec!r}")


def pair(ga: Any, gb: Any, how: str, threshold: float) -> list[tuple[int, int, float]]:
    """One-to-one pairs ``(i, j, score)`` between shapely arrays ``ga`` and ``gb``, best first.

    ``how`` = "iou": pairs overlapping with IoU >= threshold; "dist": pairs within
    ``threshold`` pixels (score = -distance). Greedy by score, which is what
    detection benchmarks do.
    """
    import numpy as np
    import shapely

    if len(ga) == 0 or len(gb) == 0:
        return []
    st = shapely.STRtree(gb)
    if how == "dist":
        ia, ib = st.query(ga, predicate="dwithin", distance=threshold)
        score = -shapely.distance(ga[ia], gb[ib])
    else:
        ia, ib = st.query(ga)  # boxes that meet
        # IoU <= min(area a, area b, area of the boxes' overlap) / max(area a, area b): pairs that cannot
        # reach the threshold are dropped before the (costly) exact intersections
        area_a, area_b = shapely.area(ga), shapely.area(gb)
        ba, bb = shapely.bounds(ga)[ia], shapely.bounds(gb)[ib]
        ow = np.minimum(ba[:, 2], bb[:, 2]) - np.maximum(ba[:, 0], bb[:, 0])
        oh = np.minimum(ba[:, 3], bb[:, 3]) - np.maximum(ba[:, 1], bb[:, 1])
        aa, ab = area_a[ia], area_b[ib]
        big = np.maximum(aa, ab)
        bound = np.minimum(np.minimum(aa, ab), np.clip(ow, 0, None) * np.clip(oh, 0, None))
        maybe = bound >= threshold * big * (1 - 1e-9)
        ia, ib, aa, ab = ia[maybe], ib[maybe], aa[maybe], ab[maybe]
        inter = shapely.area(shapely.intersection(ga[ia], gb[ib]))
        union = aa + ab - inter
        score = np.divide(inter, union, out=np.zeros_like(inter), where=union > 0)
        keep = score >= threshold
        ia, ib, score = ia[keep], ib[keep], score[keep]
    used_a = np.zeros(len(ga), dtype=bool)
    used_b = np.zeros(len(gb), dtype=bool)
    out = []
    for j in np.argsort(-score, kind="stable").tolist():
        x, y = int(ia[j]), int(ib[j])
        if used_a[x] or used_b[y]:
            continue
        used_a[x] = used_b[y] = True
        out.append((x, y, float(score[j])))
    return out


def _load(repo: Repository, image: str, rev: str | None) -> dict[str, tuple[list[str], list[tuple[str, Any]]]]:
    from .ids import format_id

    _, root = repo.tree_of(image, rev)
    by_label: dict[str, tuple[list[str], list[tuple[str, Any]]]] = {}
    for k, rec in tree.items(repo.store, root):
        if "G" in rec:
            rec = tree.join_record(repo.store, rec)
        ids, geoms = by_label.setdefault(rec["l"], ([], []))
        ids.append(format_id(k))
        geoms.append((rec["k"], rec["g"]))
    return by_label


def match(repo: Repository, image: str, rev_a: str | None, rev_b: str | None, how: str, threshold: float,
          details: bool = False) -> dict[str, Any]:
    import gc

    gc_on = gc.isenabled()
    gc.disable()  # hundreds of thousands of records and geometries, no cycles: collections would only walk them
    try:
        return _match(repo, image, rev_a, rev_b, how, threshold, details)
    finally:
        if gc_on:
            gc.enable()


def _match(repo: Repository, image: str, rev_a: str | None, rev_b: str | None, how: str, threshold: float,
           details: bool) -> dict[str, Any]:
    a = _load(repo, image, rev_a)
    b = _load(repo, image, rev_b)
    labels: dict[str, Any] = {}
    tot = {"matched": 0, "only_a": 0, "only_b": 0}
    pairs_out: list[Any] = []
    for label in sorted(set(a) | set(b)):
        ids_a, ga_items = a.get(label, ([], []))
        ids_b, gb_items = b.get(label, ([], []))
        pairs: list[tuple[int, int, float]] = []
        if ids_a and ids_b:
            pairs = pair(geometry.to_shapely_many(ga_items), geometry.to_shapely_many(gb_items), how, threshold)
        m = len(pairs)
        na, nb = len(ids_a), len(ids_b)
        prec = m / nb if nb else None
        rec = m / na if na else None
        f1 = 2 * prec * rec / (prec + rec) if prec and rec else (0.0 if na and nb else None)
        labels[label] = {"a": na, "b": nb, "matched": m, "only_a": na - m, "only_b": nb - m,
                         "precision": _r(prec), "recall": _r(rec), "f1": _r(f1)}
        tot["matched"] += m
        tot["only_a"] += na - m
        tot["only_b"] += nb - m
        if details:
            pairs_out.extend({"label": label, "a": ids_a[x], "b": ids_b[y], "score": round(abs(s), 4)}
                             for x, y, s in pairs)
    na = tot["matched"] + tot["only_a"]
    nb = tot["matched"] + tot["only_b"]
    p = tot["matched"] / nb if nb else None
    r = tot["matched"] / na if na else None
    f = 2 * p * r / (p + r) if p and r else None
    res: dict[str, Any] = {"image": image, "method": how, "threshold": threshold, "labels": labels,
                           "total": {**tot, "precision": _r(p), "recall": _r(r), "f1": _r(f)}}
    if details:
        res["pairs"] = pairs_out
    return res


def _r(v: float | None) -> float | None:
    return None if v is None else round(v, 4)
