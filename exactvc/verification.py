"""Verifications of annotations (second-opinion mode): who said yes or no to an annotation, when, and why.

They are versioned with the annotations: a record's reserved field ``v`` (docs/format.md §4.2) holds a
list of entries ``{"u": user, "y": yes, "t": unix seconds, "c": comment}`` (``c`` omitted when empty),
one per user, sorted by user. The same verifications therefore give the same record, node and commit
ids; they travel with push, pull, clone and bundles, show in diff/log/show as a change of the field
``verifications`` and in ``exact blame``. A user verifying again replaces their earlier entry; the
annotation's id never changes. A later change of geometry or label keeps the verifications (as EXACT
does); ``exact blame`` shows which commit made each, so one can tell a verification that predates the
last change.

Merging (``merge3``): per user, a three-way choice, never a conflict: an entry changed on one side is
taken; changed on both sides, the later one (then the greater, canonically) wins. Two users verifying
the same annotation on two branches therefore union.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import TYPE_CHECKING, Any

from . import codec
from .errors import InvalidInput, NotFound

if TYPE_CHECKING:
    from .repo import Repository

FIELD = "v"
MAX_COMMENT = 2000


def user_name(author: str) -> str:
    """The verifier's name in an author string ``Name <email>`` (the whole string without one)."""
    name = author.split(" <", 1)[0].strip() if "<" in author else author.strip()
    if not name:
        raise InvalidInput("a verification needs a user name (set one with `exact config user NAME`)")
    return name


def entry(user: str, yes: bool, when: int | None = None, comment: str | None = None) -> dict[str, Any]:
    if not isinstance(yes, bool):
        raise InvalidInput(f"a verification is yes or no (true/false), not {yes!r}")
    if comment is not None and not isinstance(comment, str):
        raise InvalidInput("a verification's comment must be a string")
    if comment and len(comment) > MAX_COMMENT:
        raise InvalidInput(f"a verification's comment is at most {MAX_COMMENT} characters")
    out: dict[str, Any] = {"t": int(time.time() if when is None else when), "u": user, "y": yes}
    if comment:
        out["c"] = comment
    return dict(sorted(out.items()))


def entries(rec: dict[str, Any] | None) -> list[dict[str, Any]]:
    """The verifications of a record (sorted by user)."""
    if rec is None:
        return []
    v = rec.get(FIELD)
    return list(v) if isinstance(v, list) else []


def with_entry(rec: dict[str, Any], e: dict[str, Any]) -> dict[str, Any]:
    """``rec`` with ``e`` replacing the entry of the same user (a new record; canonical key order)."""
    rest = [x for x in entries(rec) if x.get("u") != e["u"]]
    return with_entries(rec, [*rest, e])


def with_entries(rec: dict[str, Any], es: list[dict[str, Any]]) -> dict[str, Any]:
    out = {k: v for k, v in rec.items() if k != FIELD}
    if es:
        out[FIELD] = codec.canonicalize(sorted(es, key=lambda x: str(x.get("u"))))
    return dict(sorted(out.items()))


def yes_users(rec: dict[str, Any]) -> set[str]:
    return {str(e["u"]) for e in entries(rec) if e.get("y") is True}


def verifiers(rec: dict[str, Any]) -> set[str]:
    return {str(e["u"]) for e in entries(rec)}


def to_json(es: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [{"user": e.get("u"), "yes": bool(e.get("y")), "time": e.get("t"), "comment": e.get("c", "")}
            for e in es]


def _later(a: dict[str, Any], b: dict[str, Any]) -> dict[str, Any]:
    ka, kb = (int(a.get("t", 0)), codec.pack(a)), (int(b.get("t", 0)), codec.pack(b))
    return a if ka >= kb else b


def merge3(base: dict[str, Any] | None, ours: dict[str, Any] | None, theirs: dict[str, Any] | None
           ) -> list[dict[str, Any]]:
    """The verifications of a merge of one annotation: per user three-way, the later on a clash."""
    b = {e["u"]: e for e in entries(base)}
    o = {e["u"]: e for e in entries(ours)}
    t = {e["u"]: e for e in entries(theirs)}
    out = []
    for u in sorted(set(b) | set(o) | set(t)):
        eb, eo, et = b.get(u), o.get(u), t.get(u)
        if eo == et or et == eb:
            pick = eo
        elif eo == eb:
            pick = et
        elif eo is None or et is None:  # one side dropped it, the other changed it: keep the change
            pick = eo if et is None else et
        else:
            pick = _later(eo, et)
        if pick is not None:
            out.append(pick)
    return out


# --- the export filter (`exact export --min-verifications N`) ---------------------------------------

_MIN_YES: ContextVar[int] = ContextVar("exactvc_min_verifications", default=0)


@contextmanager
def export_filter(min_yes: int) -> Iterator[None]:
    """Within the block, every exporter (they all read records through ``formats.qupath.iter_records``)
    writes only annotations verified "yes" by at least ``min_yes`` distinct users."""
    if min_yes < 0:
        raise InvalidInput(f"--min-verifications must be 0 or more, not {min_yes}")
    token = _MIN_YES.set(min_yes)
    try:
        yield
    finally:
        _MIN_YES.reset(token)


def min_yes() -> int:
    return _MIN_YES.get()


def enough(rec: dict[str, Any], n: int) -> bool:
    return n <= 0 or len(yes_users(rec)) >= n


# --- verifying -------------------------------------------------------------------------------------


def verify(repo: Repository, image: str, aid: str, yes: bool, comment: str | None = None,
           author: str | None = None, when: int | None = None) -> dict[str, Any]:
    """Record the configured user's verification of one annotation as a commit on the current branch.

    The commit holds only the verification: uncommitted edits stay in the working state (which gets
    the verification too). Returns the commit id and the annotation's verifications.
    """
    from .edit import Editor
    from .history import advance_head, write_commit
    from .repo import default_author

    who = author or str(repo.config().get("user") or default_author())
    e = entry(user_name(who), yes, when, comment)
    with repo.lock():
        base, work = repo.working()
        if base is None:
            raise NotFound("nothing to verify: the repository has no commit yet")
        head_root = repo.commit_object(base).root
        ed = Editor(repo, image, snapshot=repo.snapshot_object(head_root))
        rec = ed.verify(aid, e)
        sid = ed.apply_to(repo.snapshot_object(head_root))
        what = "yes" if yes else "no"
        cid = write_commit(repo, sid, [base], f"Verify {aid} on {ed.image}: {what}"
                           + (f"\n\n{comment}" if comment else ""), who)
        advance_head(repo, base, cid, who, f"verify: {aid} {what}")
        if work == head_root:
            repo.set_working(cid, sid)
        else:  # keep the uncommitted edits, with the verification
            wed = Editor(repo, image, snapshot=repo.snapshot_object(work))
            if wed.has(rec[0]):
                wed.verify(aid, e)
                repo.set_working(cid, wed.apply_to(repo.snapshot_object(work)))
            else:
                repo.set_working(cid, work)
    return {"commit": cid.hex(), "image": ed.image, "id": aid, "verification": to_json([e])[0],
            "verifications": to_json(rec[1])}


def verify_on_branch(repo: Repository, branch: str, image: str, aid: str, yes: bool, comment: str | None,
                     author: str, expected_parent: bytes | None | bool = False, start: str | None = None
                     ) -> dict[str, Any]:
    """Commit one verification straight onto ``branch`` (no working state): the server's path, as
    ``history.commit_changes`` for the viewer's edits. A missing branch starts at ``start`` (default HEAD).
    ``expected_parent`` (a commit id, or None for "the branch must not exist") refuses a branch that moved;
    ``False`` takes the branch as it is now (the swap still fails on a concurrent writer)."""
    from .edit import Editor
    from .errors import RefConflict
    from .history import write_commit
    from .refs import check_new_branch, check_short_name

    ref = "heads/" + check_short_name(branch, "branch")
    cur = repo.refs.read(ref)
    if cur is None:
        check_new_branch(repo.refs, branch)
    if not isinstance(expected_parent, bool) and cur != expected_parent:
        raise RefConflict(f"branch {branch} is at {cur.hex()[:12] if cur else 'nothing'}, not "
                          f"{expected_parent.hex()[:12] if expected_parent else 'nothing'}: reload and retry")
    parent = cur if cur is not None else (repo.resolve(start) if start else repo.head_commit())
    if parent is None:
        raise NotFound("nothing to verify: the repository has no commit yet")
    e = entry(user_name(author), yes, None, comment)
    snap = repo.snapshot_object(repo.commit_object(parent).root)
    ed = Editor(repo, image, snapshot=snap)
    key, es = ed.verify(aid, e)
    sid = ed.apply_to(snap)
    what = "yes" if yes else "no"
    from .ids import format_id

    msg = f"Verify {format_id(key)} on {ed.image}: {what}" + (f"\n\n{comment}" if comment else "")
    cid = write_commit(repo, sid, [parent], msg, author)
    repo.refs.cas(ref, cur, cid, author, f"verify: {format_id(key)} {what}")
    return {"commit": cid.hex(), "branch": branch, "image": ed.image, "id": format_id(key),
            "verification": to_json([e])[0], "verifications": to_json(es)}


def creators(repo: Repository, image: str, commit: bytes, keys: set[bytes]) -> dict[bytes, str]:
    """Who added each of ``keys`` (the author of the commit that first added it), walking the history of
    ``commit``; an annotation a merge brought in is credited to its branch's commit."""
    from . import tree
    from .blame import _tree, _walk

    out: dict[bytes, str] = {}
    for _oid, c in _walk(repo, commit):
        mine = _tree(repo, c, image)
        parent = _tree(repo, repo.commit_object(c.parents[0]), image) if c.parents else None
        second = [_tree(repo, repo.commit_object(p), image) for p in c.parents[1:]]
        for k, old, new in tree.diff(repo.store, parent, mine):
            if old is None and new is not None and k in keys:
                if not any(tree.get(repo.store, t, k) is not None for t in second):
                    out[k] = c.author  # older commits come later in the walk: the first addition wins
    return out


def pending(repo: Repository, image: str, rev: str, user: str, opinions: int, limit: int = 1000
            ) -> dict[str, Any]:
    """The annotations of ``image`` at ``rev`` that still need verifications: fewer than ``opinions``
    distinct verifiers, not added by ``user`` and not verified by them yet (id order, at most ``limit``)."""
    from . import tree
    from .annotation import Annotation

    start = repo.resolve(rev)
    entry_, root = repo.tree_of(image, start.hex())
    name = repo.image(image, start.hex()).name
    short: dict[bytes, dict[str, Any]] = {}
    total = done = 0
    for k, rec in tree.items(repo.store, root):
        total += 1
        who = verifiers(rec)
        if len(who) >= opinions:
            done += 1
        elif user not in who:
            short[k] = rec
    made = creators(repo, name, start, set(short)) if short else {}
    out: list[dict[str, Any]] = []
    more = False
    for k, rec in short.items():
        if k in made and user_name(made[k]) == user:
            continue
        if len(out) == limit:
            more = True
            break
        a = Annotation.from_record(k, tree.join_record(repo.store, rec))
        out.append({"id": a.id, "label": a.label, "bounds": list(a.bounds), "verifications": len(a.verifications),
                    "yes": sum(1 for e in a.verifications if e.get("y") is True)})
    return {"image": name, "rev": rev, "commit": start.hex(), "opinions": opinions, "total": total,
            "verified": done, "pending": out, "more": more}
