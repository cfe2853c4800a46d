"""The geometric comparison of one image at two revisions that share no ids (``exact diff --match``: a
model against the truth, two annotators), paged and spatially filtered for the browser's diff view.

The matching is computed once per (tree A, tree B, rule) and kept (trees are content-addressed, so an
entry never goes stale); pages and windows are then read from memory, as the diff's pages are.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from .. import geometry
from ..match import BY_NAME, Item, MatchSpec, match_loaded

if TYPE_CHECKING:
    from ..repo import Repository

Box = tuple[float, float, float, float]
STATUSES = ("matched", "only_in_a", "only_in_b")


@dataclass(frozen=True)
class Entry:
    status: str
    label: str
    a: int | None  # index into the comparison's side A
    b: int | None
    by: str | None = None
    score: float | None = None


@dataclass(frozen=True)
class Comparison:
    image: str
    spec: dict[str, Any]
    labels: dict[str, Any]  # per label: a, b, matched, only_a, only_b, precision, recall, f1, rules
    total: dict[str, Any]
    ids_a: list[str]
    items_a: list[Item]
    ids_b: list[str]
    items_b: list[Item]
    entries: list[Entry]  # ordered by the id of side A (matched, only in A), then only in B by id
    memo: dict[str, Any] = field(default_factory=dict)

    def counts(self) -> dict[str, int]:
        return {"matched": self.total["matched"], "only_in_a": self.total["only_a"],
                "only_in_b": self.total["only_b"]}

    def boxes(self) -> Any:
        """(n, 4) float array: the union of each entry's bounds on both sides."""
        if "boxes" not in self.memo:
            import numpy as np

            arr = np.empty((len(self.entries), 4))
            for i, e in enumerate(self.entries):
                bs = [geometry.bounds(it[1], it[2]) for it in (self.items_a[e.a] if e.a is not None else None,
                                                              self.items_b[e.b] if e.b is not None else None)
                      if it is not None]
                arr[i] = (min(b[0] for b in bs), min(b[1] for b in bs), max(b[2] for b in bs), max(b[3] for b in bs))
            self.memo["boxes"] = arr
        return self.memo["boxes"]


_CACHE: OrderedDict[tuple[Any, ...], Comparison] = OrderedDict()
_LOCK = threading.Lock()


def compare(repo: Repository, image: str, rev_a: str, rev_b: str, spec: MatchSpec) -> Comparison:
    """Match ``image`` at ``rev_a`` (the reference) against ``rev_b`` (cached by the two trees and the rule)."""
    import orjson

    ta, tb = repo.tree_of(image, rev_a)[1], repo.tree_of(image, rev_b)[1]
    sj = spec.to_json()
    la, lb = repo.labels(rev_a).to_body(), repo.labels(rev_b).to_body()  # label sizes are part of the rule
    key = (ta, tb, orjson.dumps(sj, option=orjson.OPT_SORT_KEYS), orjson.dumps([la, lb], option=orjson.OPT_SORT_KEYS))
    with _LOCK:
        hit = _CACHE.get(key)
        if hit is not None:
            _CACHE.move_to_end(key)
            return hit
    ids_a, a, ids_b, b, res = match_loaded(repo, image, rev_a, rev_b, spec)
    paired_a: dict[int, Entry] = {}
    paired_b: set[int] = set()
    for x, y, label, by, score in res["pairs"]:
        paired_a[x] = Entry("matched", label, x, y, BY_NAME[by], round(score, 4))
        paired_b.add(y)
    entries = [paired_a.get(i) or Entry("only_in_a", a[i][0], i, None) for i in range(len(a))]
    entries.sort(key=lambda e: ids_a[e.a] if e.a is not None else "")
    rest = sorted((i for i in range(len(b)) if i not in paired_b), key=lambda i: ids_b[i])
    entries.extend(Entry("only_in_b", b[i][0], None, i) for i in rest)
    cmp = Comparison(image, sj, res["labels"], res["total"], ids_a, a, ids_b, b, entries)
    with _LOCK:
        _CACHE[key] = cmp
        while len(_CACHE) > 8:
            _CACHE.popitem(last=False)
    return cmp


def _side(ids: list[str], items: list[Item], i: int | None) -> dict[str, Any] | None:
    if i is None:
        return None
    label, kind, enc, plane = items[i]
    out: dict[str, Any] = {"id": ids[i], "label": label, "kind": kind, "geometry": geometry.to_geojson(kind, enc)}
    if plane:
        out["plane"] = {"z": plane[0], "t": plane[1]}
    return out


def entry_json(cmp: Comparison, e: Entry) -> dict[str, Any]:
    out: dict[str, Any] = {"status": e.status, "label": e.label, "a": _side(cmp.ids_a, cmp.items_a, e.a),
                           "b": _side(cmp.ids_b, cmp.items_b, e.b)}
    if e.status == "matched":
        out["by"], out["score"] = e.by, e.score
    return out


def page(cmp: Comparison, limit: int, cursor: int = 0, bbox: Box | None = None, label: str | None = None,
         status: str | None = None) -> tuple[list[Entry], int | None]:
    """One page of entries from position ``cursor`` (the ``next_cursor`` of the previous page), filtered
    by window, label and status; the next cursor, or None on the last page."""
    import numpy as np

    n = len(cmp.entries)
    cand: Any = range(cursor, n)
    if bbox is not None:
        bx = cmp.boxes()[cursor:]
        x0, y0, x1, y1 = bbox
        hit = (bx[:, 0] <= x1) & (x0 <= bx[:, 2]) & (bx[:, 1] <= y1) & (y0 <= bx[:, 3])
        cand = (np.nonzero(hit)[0] + cursor).tolist()
    out: list[Entry] = []
    for i in cand:
        e = cmp.entries[i]
        if (label is not None and e.label != label) or (status is not None and e.status != status):
            continue
        if len(out) == limit:
            return out, i
        out.append(e)
    return out, None


__all__ = ["STATUSES", "Comparison", "Entry", "compare", "entry_json", "page"]
