"""Agreement between raters: detection F1 and Cohen's kappa of labels on matched pairs.

Two revisions (two annotators' branches, an annotator and the consensus) are compared image by image:

* detection: the annotations are paired one to one by geometry alone, whatever their labels
  (``exactvc.match.match_items`` over the stored shapes, every label treated as one), A the reference;
  precision, recall and F1 of the pairs;
* labels: on those pairs, Cohen's kappa of the two label assignments (observed agreement against the
  agreement expected from each rater's label frequencies), overall and per label (that label against
  all others);
* per label also the detection F1 of a label-aware matching (pairs only within the label, as
  ``exact diff --match`` reports).

:func:`pairwise` does this for every pair of a set of raters (for example every ``users/*/study`` branch
of a blind study, :func:`rater_branches`), for the maintainers' table in the viewer.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from . import match as matching
from .errors import InvalidInput, NotFound

if TYPE_CHECKING:
    from .repo import Repository

MAX_RATERS = 32


def kappa(pairs: Sequence[tuple[str, str]]) -> dict[str, float | None]:
    """Cohen's kappa of ``pairs`` (label by rater A, label by rater B): ``kappa``, ``observed`` and
    ``expected`` agreement. None where undefined (no pairs; expected agreement 1, one label only)."""
    n = len(pairs)
    if not n:
        return {"kappa": None, "observed": None, "expected": None}
    rows: dict[str, int] = {}
    cols: dict[str, int] = {}
    same = 0
    for la, lb in pairs:
        rows[la] = rows.get(la, 0) + 1
        cols[lb] = cols.get(lb, 0) + 1
        same += la == lb
    po = same / n
    pe = sum(rows[k] * cols.get(k, 0) for k in rows) / (n * n)
    k = None if pe >= 1.0 else (po - pe) / (1.0 - pe)
    return {"kappa": _r(k), "observed": _r(po), "expected": _r(pe)}


def _r(v: float | None) -> float | None:
    return None if v is None else round(v, 4)


def _scores(m: int, na: int, nb: int) -> dict[str, Any]:
    prec = m / nb if nb else None
    rec = m / na if na else None
    f1 = 2 * prec * rec / (prec + rec) if prec and rec else (0.0 if na and nb else None)
    return {"a": na, "b": nb, "matched": m, "precision": _r(prec), "recall": _r(rec), "f1": _r(f1)}


class _Loader:
    """The annotations of (revision, image), loaded once however many pairs use them."""

    def __init__(self, repo: Repository) -> None:
        self.repo = repo
        self._items: dict[tuple[bytes, str], list[matching.Item]] = {}
        self._radii: dict[bytes, dict[str, float | None]] = {}
        self._images: dict[bytes, list[str]] = {}

    def images(self, commit: bytes) -> list[str]:
        if commit not in self._images:
            self._images[commit] = [r.name for r in self.repo.images(commit.hex())]
        return self._images[commit]

    def items(self, commit: bytes, image: str) -> list[matching.Item]:
        key = (commit, image)
        if key not in self._items:
            self._items[key] = matching._load(self.repo, image, commit.hex())[1] if image in self.images(commit) \
                else []
        return self._items[key]

    def radii(self, commit: bytes) -> dict[str, float | None]:
        if commit not in self._radii:
            self._radii[commit] = {lb.name: matching.label_radius(lb.size) for lb in self.repo.labels(commit.hex()).labels}
        return self._radii[commit]


def _image_name(repo: Repository, image: str, commits: Sequence[bytes]) -> str:
    for c in commits:
        try:
            return repo.image(image, c.hex()).name
        except NotFound:
            continue
    raise NotFound(f"no image {image!r} in any of the revisions compared")


def _compare(ld: _Loader, ca: bytes, cb: bytes, images: Sequence[str], spec: matching.MatchSpec) -> dict[str, Any]:
    radii = {**ld.radii(cb), **ld.radii(ca)}  # the reference's label sizes win
    # one radius for label-blind pairing: the largest (points of any label may pair)
    blind_radius = max((r for r in radii.values() if r is not None), default=None)
    pairs: list[tuple[str, str]] = []
    n_a = n_b = 0
    per_label: dict[str, list[int]] = {}  # label -> [a, b, matched within the label]
    for image in images:
        a, b = ld.items(ca, image), ld.items(cb, image)
        n_a += len(a)
        n_b += len(b)
        if a and b:
            res = matching.match_items([("", *it[1:]) for it in a], [("", *it[1:]) for it in b], spec,
                                       {"": blind_radius})
            pairs.extend((a[i][0], b[j][0]) for i, j, _lb, _by, _s in res["pairs"])
        aware = matching.match_items(a, b, spec, radii)
        for label, r in aware["labels"].items():
            got = per_label.setdefault(label, [0, 0, 0])
            got[0] += r["a"]
            got[1] += r["b"]
            got[2] += r["matched"]
    confusion: dict[str, dict[str, int]] = {}
    for la, lb in pairs:
        row = confusion.setdefault(la, {})
        row[lb] = row.get(lb, 0) + 1
    labels: dict[str, Any] = {}
    for label in sorted(per_label):
        na, nb, m = per_label[label]
        binary = [(str(la == label), str(lb == label)) for la, lb in pairs]
        labels[label] = {**_scores(m, na, nb), **{k: v for k, v in kappa(binary).items() if k == "kappa"}}
    return {"detection": _scores(len(pairs), n_a, n_b), "labels_agreement": kappa(pairs), "labels": labels,
            "confusion": confusion}


def _commits(repo: Repository, revs: Sequence[str]) -> list[bytes]:
    return [repo.resolve(r) for r in revs]


def _images(ld: _Loader, repo: Repository, commits: Sequence[bytes], image: str | None) -> list[str]:
    if image is not None:
        return [_image_name(repo, image, commits)]
    return sorted({n for c in commits for n in ld.images(c)})


def agreement(repo: Repository, rev_a: str, rev_b: str, spec_text: str = "iou=0.5",
              image: str | None = None) -> dict[str, Any]:
    """``exact agreement A B``: detection F1 and label kappa of B against A over one image or all of them."""
    spec = matching.parse_spec(spec_text)
    ca, cb = _commits(repo, [rev_a, rev_b])
    ld = _Loader(repo)
    images = _images(ld, repo, [ca, cb], image)
    out = _compare(ld, ca, cb, images, spec)
    return {"a": rev_a, "b": rev_b, "commits": {"a": ca.hex(), "b": cb.hex()}, "match": spec.to_json(),
            "images": images, **out}


def rater_branches(repo: Repository, pattern: str = "users/*") -> list[str]:
    """Branches matching ``pattern`` (shell-style; ``users/*`` is every user's branches), sorted; in a clone
    also remote-tracking ones (``origin/users/*/study``)."""
    if not isinstance(pattern, str) or not pattern:
        raise InvalidInput("a branch pattern is needed, e.g. users/*/study")
    names = [r[len("heads/"):] for r in repo.refs.list("heads/")]
    names += [r[len("remotes/"):] for r in repo.refs.list("remotes/")]
    return sorted(n for n in names if fnmatch.fnmatchcase(n, pattern))


def pairwise(repo: Repository, revs: Sequence[str], spec_text: str = "iou=0.5",
             image: str | None = None) -> dict[str, Any]:
    """Every pair of ``revs`` (A the earlier one in the list): detection F1 and label kappa, and the
    matrix of each for a table (diagonal None)."""
    revs = list(dict.fromkeys(revs))
    if len(revs) < 2:
        raise InvalidInput(f"agreement needs at least two raters (revisions), got {len(revs)}")
    if len(revs) > MAX_RATERS:
        raise InvalidInput(f"at most {MAX_RATERS} raters at once, got {len(revs)}")
    spec = matching.parse_spec(spec_text)
    commits = _commits(repo, revs)
    ld = _Loader(repo)
    images = _images(ld, repo, commits, image)
    n = len(revs)
    f1: list[list[float | None]] = [[None] * n for _ in range(n)]
    kap: list[list[float | None]] = [[None] * n for _ in range(n)]
    pairs = []
    for i in range(n):
        for j in range(i + 1, n):
            res = _compare(ld, commits[i], commits[j], images, spec)
            d, k = res["detection"], res["labels_agreement"]
            f1[i][j] = f1[j][i] = d["f1"]
            kap[i][j] = kap[j][i] = k["kappa"]
            pairs.append({"a": revs[i], "b": revs[j], "detection": d, "labels_agreement": k,
                          "labels": res["labels"]})
    counts = {r: sum(len(ld.items(c, im)) for im in images) for r, c in zip(revs, commits, strict=True)}
    return {"raters": revs, "commits": {r: c.hex() for r, c in zip(revs, commits, strict=True)},
            "annotations": counts, "match": spec.to_json(), "images": images, "pairs": pairs,
            "f1": f1, "kappa": kap}
