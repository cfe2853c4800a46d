"""Geometric matching of two annotation sets that share no ids.

Model predictions against ground truth, two annotators who each clicked the
same cells, or the two sides of a merge: pairs are made one to one within a
label (and image plane), by a rule that depends on the shapes' kind
(docs/matching.md):

* areas (box, ellipse, polygon, multipolygon): IoU >= ``iou``; with only
  ``dist`` given, the distance between their centres (area centroids);
* points and multipoints: the distance between their centres <= ``dist``
  (with ``iou`` only: half the label's default size; without one, an error);
* lines: the Hausdorff distance <= ``dist`` (or half the label's size).

A kind is paired only with the same kind unless ``kinds=any`` is asked for.
Among the candidate pairs the most pairs possible are made (a maximum
bipartite matching), preferring the best pairs: best first, then augmenting
paths re-pair where that pairs one more. The first set is the reference
("truth"): recall = matched / |A|, precision = matched / |B|.

:func:`match_items` is the one function (data in, data out) every figure that
matches annotations uses: ``exact diff --match``, merge's duplicate detection,
and later evaluation or agreement figures.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from . import geometry, tree
from .errors import UsageError

if TYPE_CHECKING:
    from .repo import Repository

AREAS = frozenset({"box", "ellipse", "polygon", "multipolygon"})
POINTS = frozenset({"point", "multipoint"})
LINES = frozenset({"line"})

BY_NAME = {"iou": "iou", "centre": "centre_distance", "hausdorff": "hausdorff_distance"}  # as the JSON says

Item = tuple[str, str, Any, Any]
"""One annotation to match: ``(label, kind, encoded geometry, plane or None)`` (the stored form)."""


@dataclass(frozen=True)
class MatchSpec:
    """What ``--match`` asked for: an IoU threshold, a distance in pixels, or both; and whether kinds mix."""

    iou: float | None = None
    dist: float | None = None
    any_kind: bool = False

    def to_json(self) -> dict[str, Any]:
        return {"iou": self.iou, "dist": self.dist, "kinds": "any" if self.any_kind else "same"}


@dataclass(frozen=True)
class Rule:
    """How one pair of kinds is matched: by ``iou`` (score >= threshold), ``centre`` or ``hausdorff``
    distance (<= threshold px); ``source`` says where the threshold came from."""

    by: str
    threshold: float
    source: str

    def to_json(self) -> dict[str, Any]:
        key = "min" if self.by == "iou" else "max_px"
        return {"by": BY_NAME[self.by], key: self.threshold, "from": self.source}



def rule_text(rule: Mapping[str, Any]) -> str:
    """One line for a rule's JSON (``Rule.to_json``): "IoU >= 0.5", "centre distance <= 20 px (label size)"."""
    if rule["by"] == "iou":
        return f"IoU >= {rule['min']:g}"
    what = "Hausdorff distance" if rule["by"] == "hausdorff_distance" else "centre distance"
    src = " (label size)" if rule["from"] == "label size" else ""
    return f"{what} <= {rule['max_px']:g} px{src}"


_USAGE = "--match takes iou=X (0<X<=1), dist=PX (PX>=0) or both, comma-separated (iou=0.5,dist=10), " \
         "and optionally kinds=same|any"


def parse_spec(text: str) -> MatchSpec:
    """``iou=0.5``, ``dist=10``, ``iou=0.5,dist=10``, optionally ``,kinds=any``."""
    seen: dict[str, str] = {}
    for part in text.split(","):
        name, eq, value = part.strip().partition("=")
        name = name.strip().lower()
        if not eq or name not in ("iou", "dist", "kinds") or name in seen:
            raise UsageError(f"{_USAGE}, not {text!r}")
        seen[name] = value.strip()
    iou = dist = None
    if "iou" in seen:
        iou = _number(seen["iou"], text)
        if not 0 < iou <= 1:
            raise UsageError(f"{_USAGE}, not {text!r}: iou must be in (0, 1]")
    if "dist" in seen:
        dist = _number(seen["dist"], text)
        if dist < 0:
            raise UsageError(f"{_USAGE}, not {text!r}: dist must be >= 0")
    if iou is None and dist is None:
        raise UsageError(f"{_USAGE}, not {text!r}: give iou= or dist=")
    kinds = seen.get("kinds", "same").lower()
    if kinds not in ("same", "any"):
        raise UsageError(f"{_USAGE}, not {text!r}: kinds is same or any")
    return MatchSpec(iou, dist, kinds == "any")


def _number(value: str, text: str) -> float:
    try:
        v = float(value)
    except ValueError:
        raise UsageError(f"{_USAGE}, not {text!r}") from None
    if not math.isfinite(v):
        raise UsageError(f"{_USAGE}, not {text!r}")
    return v


def family(kind: str) -> str:
    return "area" if kind in AREAS else "point" if kind in POINTS else "line"


def rule_for(label: str, kind_a: str, kind_b: str, spec: MatchSpec, radius: float | None) -> Rule | None:
    """The rule pairing ``kind_a`` with ``kind_b`` in ``label`` (None: never paired).

    ``radius`` is half the label's default size, used for points and lines when
    ``spec`` has no distance. Raises UsageError when a distance is needed and
    neither gives one.
    """
    if kind_a != kind_b and not spec.any_kind:
        return None
    fa, fb = family(kind_a), family(kind_b)
    if fa == fb == "area" and spec.iou is not None:
        return Rule("iou", spec.iou, "--match")
    by = "hausdorff" if fa == fb == "line" else "centre"
    if spec.dist is not None:
        return Rule(by, spec.dist, "--match")
    if radius is not None:
        return Rule(by, radius, "label size")
    what = "lines" if by == "hausdorff" else "points"
    kind = kind_a if kind_a not in AREAS else kind_b
    example = f"iou={spec.iou:g},dist=10" if spec.iou is not None else "dist=10"
    raise UsageError(f"label {label!r} has {what} ({kind}), which have no area to compare by IoU, and no "
                     f"default size: pass a distance too, e.g. --match {example}")


def label_radius(size: Sequence[int] | None) -> float | None:
    """Half the larger side of a label's default size (the radius points are matched within)."""
    return max(size) / 2.0 if size else None


def match_items(a: Sequence[Item], b: Sequence[Item], spec: MatchSpec,
                radii: Mapping[str, float | None] | None = None) -> dict[str, Any]:
    """Match annotation set ``a`` (the reference) against ``b``: the library entry point.

    ``radii`` maps a label to the distance its points and lines are matched
    within when ``spec`` has none (see :func:`label_radius`). Returns
    ``{"labels": {label: counts, precision, recall, f1, rules}, "total": ...,
    "pairs": [(index in a, index in b, label, rule, score), ...]}`` where score is
    the IoU or the distance in px.
    """
    radii = radii or {}
    ga: dict[str, list[int]] = {}
    gb: dict[str, list[int]] = {}
    for items, groups in ((a, ga), (b, gb)):
        for i, it in enumerate(items):
            groups.setdefault(it[0], []).append(i)
    labels: dict[str, Any] = {}
    pairs_out: list[tuple[int, int, str, str, float]] = []
    tot = {"matched": 0, "only_a": 0, "only_b": 0}
    for label in sorted(set(ga) | set(gb)):
        ia, ib = ga.get(label, []), gb.get(label, [])
        pairs: list[tuple[int, int, str, float]] = []
        rules: dict[str, Rule] = {}
        if ia and ib:
            pairs, rules = pair_label(label, [a[i] for i in ia], [b[i] for i in ib], spec, radii.get(label))
        m, na, nb = len(pairs), len(ia), len(ib)
        labels[label] = {"a": na, "b": nb, "matched": m, "only_a": na - m, "only_b": nb - m,
                         **_scores(m, na, nb), "rules": {k: r.to_json() for k, r in sorted(rules.items())}}
        tot["matched"] += m
        tot["only_a"] += na - m
        tot["only_b"] += nb - m
        pairs_out.extend((ia[x], ib[y], label, by, s) for x, y, by, s in pairs)
    na = tot["matched"] + tot["only_a"]
    nb = tot["matched"] + tot["only_b"]
    return {"labels": labels, "total": {**tot, **_scores(tot["matched"], na, nb)}, "pairs": pairs_out}


def _scores(m: int, na: int, nb: int) -> dict[str, float | None]:
    prec = m / nb if nb else None
    rec = m / na if na else None
    f1 = 2 * prec * rec / (prec + rec) if prec and rec else (0.0 if na and nb else None)
    return {"precision": _r(prec), "recall": _r(rec), "f1": _r(f1)}


def pair_label(label: str, a: Sequence[Item], b: Sequence[Item], spec: MatchSpec,
               radius: float | None) -> tuple[list[tuple[int, int, str, float]], dict[str, Rule]]:
    """One-to-one pairs ``(i, j, rule, score)`` between two sets of one label, and the rules used (by kind)."""
    import numpy as np

    groups_a = _groups(a)
    groups_b = _groups(b)
    shapes_a = geometry.to_shapely_many([(it[1], it[2]) for it in a])
    shapes_b = geometry.to_shapely_many([(it[1], it[2]) for it in b])
    centres: dict[int, Any] = {}

    def centres_of(side: int) -> Any:
        if side not in centres:
            import shapely

            centres[side] = shapely.centroid(shapes_a if side == 0 else shapes_b)
        return centres[side]

    rules: dict[str, Rule] = {}
    parts: list[tuple[Any, Any, Any, Any, Any, str]] = []
    for (ka, pa), xa in groups_a.items():
        for (kb, pb), xb in groups_b.items():
            if pa != pb:
                continue
            rule = rule_for(label, ka, kb, spec, radius)
            if rule is None:
                continue
            rules[ka if ka == kb else "+".join(sorted((ka, kb)))] = rule
            xa_arr, xb_arr = np.asarray(xa), np.asarray(xb)
            if rule.by == "iou":
                i, j, cost, tie, score = _iou_edges(shapes_a[xa_arr], shapes_b[xb_arr], rule.threshold)
            elif rule.by == "centre":
                # equal centres (concentric areas, point sets around one centre) are told apart by IoU or
                # by the Hausdorff distance
                tie_by = "iou" if ka in AREAS and kb in AREAS else "hausdorff" if "multipoint" in (ka, kb) else None
                i, j, cost, tie, score = _centre_edges(centres_of(0)[xa_arr], centres_of(1)[xb_arr], rule.threshold,
                                                       shapes_a[xa_arr], shapes_b[xb_arr], tie_by)
            else:
                i, j, cost, tie, score = _hausdorff_edges(shapes_a[xa_arr], shapes_b[xb_arr], rule.threshold)
            parts.append((xa_arr[i], xb_arr[j], cost, tie, score, rule.by))
    if not parts:
        return [], rules
    ia = np.concatenate([p[0] for p in parts])
    ib = np.concatenate([p[1] for p in parts])
    cost = np.concatenate([p[2] for p in parts])
    tie = np.concatenate([p[3] for p in parts])
    score = np.concatenate([p[4] for p in parts])
    by = [p[5] for p in parts for _ in range(len(p[0]))] if len(parts) > 1 else None
    chosen = assign(len(a), len(b), ia, ib, cost, tie)
    only = parts[0][5]
    return [(int(ia[e]), int(ib[e]), only if by is None else by[e], float(score[e])) for e in chosen], rules


def _groups(items: Sequence[Item]) -> dict[tuple[str, Any], list[int]]:
    out: dict[tuple[str, Any], list[int]] = {}
    for i, it in enumerate(items):
        plane = it[3]
        out.setdefault((it[1], tuple(plane) if plane else None), []).append(i)
    return out


# --- candidate pairs: (i, j, cost in [0, 1], tie-break, score) ---------------------------------------


def _iou_edges(ga: Any, gb: Any, threshold: float) -> tuple[Any, Any, Any, Any, Any]:
    import numpy as np
    import shapely

    st = shapely.STRtree(gb)
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
    iou = _iou(ga[ia], gb[ib], aa, ab)
    keep = iou >= threshold
    ia, ib, iou = ia[keep], ib[keep], iou[keep]
    return ia, ib, 1.0 - iou, np.zeros(len(ia)), iou


def _iou(ga: Any, gb: Any, aa: Any, ab: Any) -> Any:
    import numpy as np
    import shapely

    inter = shapely.area(shapely.intersection(ga, gb))
    union = aa + ab - inter
    return np.divide(inter, union, out=np.zeros_like(inter), where=union > 0)


def _centre_edges(ca: Any, cb: Any, threshold: float, ga: Any, gb: Any,
                  tie_by: str | None) -> tuple[Any, Any, Any, Any, Any]:
    """Pairs whose centres are within ``threshold``; ties (equal centre distance, e.g. concentric shapes)
    are broken by ``tie_by``: "iou" (higher first) or "hausdorff" (nearer first)."""
    import numpy as np
    import shapely

    st = shapely.STRtree(cb)
    ia, ib = st.query(ca, predicate="dwithin", distance=threshold)
    xa, xb = shapely.get_coordinates(ca), shapely.get_coordinates(cb)
    d = np.hypot(xa[ia, 0] - xb[ib, 0], xa[ia, 1] - xb[ib, 1])
    keep = d <= threshold
    ia, ib, d = ia[keep], ib[keep], d[keep]
    tie = np.zeros(len(ia))
    if tie_by == "iou" and len(ia):
        tie = 1.0 - _iou(ga[ia], gb[ib], shapely.area(ga)[ia], shapely.area(gb)[ib])
    elif tie_by == "hausdorff" and len(ia):
        tie = shapely.hausdorff_distance(ga[ia], gb[ib])
    cost = d / threshold if threshold > 0 else np.zeros(len(ia))
    return ia, ib, cost, tie, d


def _hausdorff_edges(ga: Any, gb: Any, threshold: float) -> tuple[Any, Any, Any, Any, Any]:
    import numpy as np
    import shapely

    st = shapely.STRtree(gb)
    ia, ib = st.query(ga, predicate="dwithin", distance=threshold)
    # Hausdorff <= t moves no side of the bounding box by more than t
    ba, bb = shapely.bounds(ga)[ia], shapely.bounds(gb)[ib]
    near = np.all(np.abs(ba - bb) <= threshold + 1e-9, axis=1)
    ia, ib = ia[near], ib[near]
    d = shapely.hausdorff_distance(ga[ia], gb[ib])
    keep = d <= threshold
    ia, ib, d = ia[keep], ib[keep], d[keep]
    cost = d / threshold if threshold > 0 else np.zeros(len(ia))
    return ia, ib, cost, np.zeros(len(ia)), d


# --- assignment ----------------------------------------------------------------------------------------


def assign(na: int, nb: int, ia: Any, ib: Any, cost: Any, tie: Any) -> list[int]:
    """A maximum one-to-one matching over candidate edges ``(ia[e], ib[e])``, preferring low ``cost``.

    Edges are taken best first (cost, then ``tie``, then indices: deterministic);
    then, while an unpaired annotation of A can be paired by re-pairing along an
    alternating path to an unpaired one of B, it is (Kuhn's augmenting paths,
    searched cheapest edge first), so the number of pairs is the largest
    possible. Returns the chosen edge indices.
    """
    import numpy as np

    if len(ia) == 0:
        return []
    order = np.lexsort((ib, ia, tie, cost))
    mate_a = [-1] * na  # edge index pairing each annotation of A
    mate_b = [-1] * nb  # annotation of A paired with each of B
    ia_l, ib_l = ia.tolist(), ib.tolist()
    for e in order.tolist():
        x, y = ia_l[e], ib_l[e]
        if mate_a[x] < 0 and mate_b[y] < 0:
            mate_a[x] = e
            mate_b[y] = x
    has_b = np.zeros(nb, dtype=bool)
    has_b[ib] = True
    free_a = sorted({x for x in ia_l if mate_a[x] < 0})
    if free_a and any(mate_b[y] < 0 for y in np.flatnonzero(has_b).tolist()):
        _augment(na, nb, ia, order, mate_a, mate_b, free_a, ib_l)
    return sorted(e for e in mate_a if e >= 0)


def _augment(na: int, nb: int, ia: Any, order: Any, mate_a: list[int], mate_b: list[int], free_a: list[int],
             ib_l: list[int]) -> None:
    """Pair more along augmenting paths: a breadth-first search from each unpaired annotation of A (shortest
    paths, cheapest edges first). What a failed search reached cannot lead anywhere until the pairing
    changes: it is skipped for the rest of the phase; phases repeat until one pairs nobody more."""
    import numpy as np

    # adjacency of each annotation of A, cheapest edge first: edges adj_e[st[x]:st[x + 1]] to adj_b[...]
    by_a = order[np.argsort(ia[order], kind="stable")]
    start = np.zeros(na + 1, dtype=np.int64)
    np.cumsum(np.bincount(ia, minlength=na), out=start[1:])
    st = start.tolist()
    adj_e = by_a.tolist()
    adj_b = np.asarray(ib_l)[by_a].tolist()
    ia_l = ia.tolist()
    stamp = [0] * nb  # the search that last reached each annotation of B
    via = [0] * nb  # the edge it was reached along
    search = 0
    for _phase in range(na + 1):  # each phase pairs one more or ends the search
        dead = bytearray(nb)
        grown = False
        for a0 in free_a:
            if mate_a[a0] >= 0:
                continue
            search += 1
            queue = [a0]
            reached: list[int] = []
            found = -1
            for x in queue:  # grows while it is walked: breadth first
                lo, hi = st[x], st[x + 1]
                for y, e in zip(adj_b[lo:hi], adj_e[lo:hi], strict=True):
                    if stamp[y] == search or dead[y]:
                        continue
                    stamp[y] = search
                    via[y] = e
                    nxt = mate_b[y]
                    if nxt < 0:
                        found = y
                        break
                    reached.append(y)
                    queue.append(nxt)
                if found >= 0:
                    break
            if found < 0:
                for y in reached:
                    dead[y] = 1
                continue
            y = found  # an augmenting path: walk it back, every A on it takes the edge it was reached by
            while True:
                e = via[y]
                x = ia_l[e]
                before = mate_a[x]
                mate_a[x] = e
                mate_b[y] = x
                if x == a0:
                    break
                y = ib_l[before]
            grown = True
        free_a = [x for x in free_a if mate_a[x] < 0]
        if not grown or not free_a:
            return


# --- repositories ------------------------------------------------------------------------------------


def _load(repo: Repository, image: str, rev: str | None) -> tuple[list[str], list[Item]]:
    from .ids import format_id

    _, root = repo.tree_of(image, rev)
    ids: list[str] = []
    items: list[Item] = []
    for k, rec in tree.items(repo.store, root):
        if "G" in rec:
            rec = tree.join_record(repo.store, rec)
        ids.append(format_id(k))
        items.append((rec["l"], rec["k"], rec["g"], rec.get("z")))
    return ids, items


def match_loaded(repo: Repository, image: str, rev_a: str | None, rev_b: str | None,
                 spec: MatchSpec) -> tuple[list[str], list[Item], list[str], list[Item], dict[str, Any]]:
    """The ids and items of both sides and :func:`match_items`' result (what :func:`match` reports)."""
    import gc

    gc_on = gc.isenabled()
    gc.disable()  # hundreds of thousands of records and geometries, no cycles: collections would only walk them
    try:
        ids_a, a = _load(repo, image, rev_a)
        ids_b, b = _load(repo, image, rev_b)
        radii: dict[str, float | None] = {}
        for rev in (rev_b, rev_a):  # the reference's label sizes win
            radii.update({lb.name: label_radius(lb.size) for lb in repo.labels(rev).labels})
        res = match_items(a, b, spec, radii)
    finally:
        if gc_on:
            gc.enable()
    return ids_a, a, ids_b, b, res


def match(repo: Repository, image: str, rev_a: str | None, rev_b: str | None, spec: MatchSpec,
          details: bool = False) -> dict[str, Any]:
    """``exact diff A B --match``: :func:`match_items` over one image at two revisions, with ids."""
    ids_a, _a, ids_b, _b, res = match_loaded(repo, image, rev_a, rev_b, spec)
    out: dict[str, Any] = {"image": image, "match": spec.to_json(), "labels": res["labels"], "total": res["total"]}
    if details:
        out["pairs"] = [{"label": lb, "a": ids_a[x], "b": ids_b[y], "by": BY_NAME[by], "score": round(s, 4)}
                        for x, y, lb, by, s in res["pairs"]]
    return out


def _r(v: float | None) -> float | None:
    return None if v is None else round(v, 4)
