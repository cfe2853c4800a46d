"""Pull requests as the server runs them: one function per action, over a repository and a
:class:`~exactvc.pulls.store.Pulls`. The server's routes are thin adapters over these.

Revisions are recorded on read: every action first compares the source branch's tip with the pull
request's last revision (:func:`refresh`), records a new revision when it moved, and runs the checks
of that revision.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from .. import tree
from ..diff import Change
from ..errors import AlreadyExists, Conflict, InvalidInput, NotFound, PermissionDenied
from ..history import write_commit
from ..ids import format_id, parse_id
from ..merge import merge_bases
from ..objects import Snapshot
from ..refs import check_short_name
from . import review
from .review import NotMergeable
from .store import MAX_BODY, MAX_TITLE, Pulls, check_text

if TYPE_CHECKING:
    from ..repo import Repository

_MERGE_LOCKS: dict[str, threading.Lock] = {}
_LOCKS_LOCK = threading.Lock()


def _who(user: str) -> str:
    return f"{user} <{user}@exactvc>"


def _tip(repo: Repository, branch: str) -> bytes | None:
    return repo.refs.read("heads/" + branch)


def _base(repo: Repository, target: bytes, head: bytes) -> bytes:
    bases = merge_bases(repo, target, head)
    if not bases:
        raise InvalidInput("the source and target branches share no history")
    return bases[0]


def create(repo: Repository, store: Pulls, name: str, author: str, title: Any, body: Any, source: Any,
           target: Any, draft: Any = False, origin: str | None = None) -> dict[str, Any]:
    title = check_text(title, "title", MAX_TITLE, required=True)
    body = check_text(body if body is not None else "", "body", MAX_BODY)
    for v, what in ((source, "source"), (target, "target")):
        if not isinstance(v, str):
            raise InvalidInput(f"{what} must be a branch name")
        check_short_name(v, f"{what} branch")
    if not isinstance(draft, bool):
        raise InvalidInput("draft must be true or false")
    if source == target:
        raise InvalidInput("source and target are the same branch")
    head, tgt = _tip(repo, source), _tip(repo, target)
    if head is None:
        raise NotFound(f"no branch {source!r} on the server: push it first")
    if tgt is None:
        raise NotFound(f"no branch {target!r} on the server")
    base = _base(repo, tgt, head)
    if base == head:
        raise InvalidInput(f"{source} has no commits that {target} lacks: nothing to review")
    for pr in store.list_pulls(name):
        if pr["state"] in ("draft", "open") and pr["source"] == source and pr["target"] == target:
            raise AlreadyExists(f"pull request #{pr['number']} already proposes {source} into {target}")
    pr = store.create(name, title, body, author, "draft" if draft else "open", source, target, base.hex(),
                      head.hex(), origin)
    checks(repo, store, name, pr)
    return pr


def visible(repo: Repository, pr: dict[str, Any]) -> bool:
    """May the caller of this repository view see the pull request? In blind mode an annotator sees only
    those between branches they may see (exactvc/visibility.py); everyone else sees all."""
    from ..visibility import ref_visible_in

    return ref_visible_in(repo, "heads/" + pr["source"]) and ref_visible_in(repo, "heads/" + pr["target"])


def _stored(repo: Repository, store: Pulls, name: str, number: int) -> dict[str, Any]:
    pr = store.get(name, number)
    if not visible(repo, pr):
        raise NotFound(f"no pull request #{number} in {name}")  # the words of store.get for a missing one
    return pr


def get(repo: Repository, store: Pulls, name: str, number: int) -> dict[str, Any]:
    return refresh(repo, store, name, _stored(repo, store, name, number))


def listing(repo: Repository, store: Pulls, name: str) -> list[dict[str, Any]]:
    """The pull requests the caller may see, refreshed."""
    return [refresh(repo, store, name, pr) for pr in store.list_pulls(name) if visible(repo, pr)]


def refresh(repo: Repository, store: Pulls, name: str, pr: dict[str, Any]) -> dict[str, Any]:
    """Record a new revision if the source branch moved; keep the merge base current."""
    if pr["state"] not in ("draft", "open"):
        return pr
    head, tgt = _tip(repo, pr["source"]), _tip(repo, pr["target"])
    if head is None or tgt is None:
        return pr
    base = _base(repo, tgt, head).hex()
    if head.hex() != pr["head"]:
        store.add_revision(name, pr["number"], head.hex(), base)
        pr = store.get(name, pr["number"])
        checks(repo, store, name, pr)
    elif base != pr["base"]:
        pr = store.update(name, pr["number"], base=base)
    return pr


def changes(repo: Repository, pr: dict[str, Any]) -> review.PullChanges:
    return review.changes_between(repo, bytes.fromhex(pr["base"]), bytes.fromhex(pr["head"]))


def checks(repo: Repository, store: Pulls, name: str, pr: dict[str, Any]) -> dict[str, Any]:
    got = store.checks(name, pr["number"], pr["head"])
    if got is None:
        got = review.run_checks(repo, changes(repo, pr))
        store.set_checks(name, pr["number"], pr["head"], got)
    who = store.overridden(name, pr["number"], pr["head"])
    return {**got, "overridden_by": who}


def approvals(store: Pulls, name: str, pr: dict[str, Any]) -> dict[str, Any]:
    """Each reviewer's latest approve / request-changes; an approval counts only at the current head."""
    latest: dict[str, dict[str, Any]] = {}
    for r in store.reviews(name, pr["number"]):
        if r["kind"] != "comment":
            latest[r["author"]] = r
    valid = sorted(a for a, r in latest.items() if r["kind"] == "approve" and r["head"] == pr["head"])
    stale = sorted(a for a, r in latest.items() if r["kind"] == "approve" and r["head"] != pr["head"])
    changes_req = sorted(a for a, r in latest.items() if r["kind"] == "request_changes")
    return {"valid": valid, "stale": stale, "changes_requested": changes_req}


def list_entry(repo: Repository, store: Pulls, name: str, pr: dict[str, Any],
               settings: dict[str, Any]) -> dict[str, Any]:
    """A pull request as the list shows it: with its approvals (valid at the head, stale), the number
    required, and the state of its checks at the head (None where they never ran)."""
    if pr["state"] in ("draft", "open"):
        ck: dict[str, Any] | None = checks(repo, store, name, pr)
    else:
        ck = store.checks(name, pr["number"], pr["head"])
    status = None if ck is None else ("overridden" if ck.get("overridden_by") and ck["status"] == "failed"
                                      else ck["status"])
    return {**pr, "approvals": approvals(store, name, pr), "required_approvals": required_approvals(settings, pr),
            "checks": status}


def required_approvals(settings: dict[str, Any], pr: dict[str, Any]) -> int:
    if pr["target"] in settings.get("protected", []):
        return int(settings.get("required_approvals", 0))
    return 0


def add_review(repo: Repository, store: Pulls, name: str, number: int, user: str, kind: Any, body: Any,
               may_decide: bool) -> dict[str, Any]:
    pr = get(repo, store, name, number)
    if not isinstance(kind, str) or kind not in ("comment", "approve", "request_changes"):
        raise InvalidInput("kind must be comment, approve or request_changes")
    body = check_text(body if body is not None else "", "body", MAX_BODY)
    if kind != "comment":
        if not may_decide:
            raise PermissionDenied("approving or requesting changes needs the maintain role")
        if user == pr["author"]:
            raise PermissionDenied("you cannot approve or request changes on your own pull request")
        if pr["state"] not in ("draft", "open"):
            raise Conflict(f"pull request #{number} is {pr['state']}")
    elif not body.strip():
        raise InvalidInput("a comment review needs a body")
    return store.add_review(name, number, user, kind, body, pr["head"])


def _record_at(repo: Repository, commit_hex: str, image: str, key: bytes) -> dict[str, Any] | None:
    snap = repo.snapshot_object(repo.commit_object(bytes.fromhex(commit_hex)).root)
    e = snap.images.get(image)
    return tree.get(repo.store, e.tree, key) if e is not None else None


def add_comment(repo: Repository, store: Pulls, name: str, number: int, user: str, body: Any,
                annotation: Any = None, image: Any = None, viewport: Any = None,
                reply_to: Any = None) -> dict[str, Any]:
    pr = get(repo, store, name, number)
    body = check_text(body, "body", MAX_BODY, required=True)
    anchor = None
    if reply_to is not None and (not isinstance(reply_to, int) or isinstance(reply_to, bool)):
        raise InvalidInput("reply_to must be a comment id")
    if annotation is not None:
        if not isinstance(annotation, str):
            raise InvalidInput("annotation must be an annotation id")
        key = _parse(annotation)
        pc = changes(repo, pr)
        imgs = [i for (i, a) in pc.index if a == format_id(key)]
        if image is None:
            snap = repo.snapshot_object(repo.commit_object(bytes.fromhex(pr["head"])).root)
            imgs = imgs or [i for i, e in snap.images.items() if tree.get(repo.store, e.tree, key) is not None]
            if not imgs:
                raise NotFound(f"no annotation {annotation[:80]} in this pull request")
            image = imgs[0]
        if not isinstance(image, str):
            raise InvalidInput("image must be an image name")
        rec = _record_at(repo, pr["head"], image, key) or _record_at(repo, pr["base"], image, key)
        if rec is None:
            raise NotFound(f"no annotation {annotation[:80]} on image {image[:80]!r} in this pull request")
        if viewport is not None:
            viewport = list(review.check_box(viewport))
        ann = review._ann(repo, key, rec)
        anchor = {"image": image, "annotation": format_id(key), "revision": pr["head"],
                  "geometry": ann["geometry"] if ann else None, "label": rec["l"], "viewport": viewport}
    elif viewport is not None or image is not None:
        raise InvalidInput("viewport and image anchor a comment to an annotation: give annotation too")
    return store.add_comment(name, number, user, body, pr["head"], anchor, reply_to)


def comments(repo: Repository, store: Pulls, name: str, number: int) -> list[dict[str, Any]]:
    """Comments in threads; an anchored comment whose annotation changed since is ``outdated``."""
    pr = get(repo, store, name, number)
    out = []
    for c in store.comments(name, number):
        a = c["anchor"]
        if a is not None:
            key = parse_id(a["annotation"])
            then = _record_at(repo, a["revision"], a["image"], key)
            now = _record_at(repo, pr["head"], a["image"], key)
            c["outdated"] = then != now
        else:
            c["outdated"] = False
        out.append(c)
    return out


def resolve_thread(repo: Repository, store: Pulls, name: str, number: int, thread: int, resolved: Any) -> None:
    if not isinstance(resolved, bool):
        raise InvalidInput("resolved must be true or false")
    _stored(repo, store, name, number)
    store.resolve_thread(name, number, thread, resolved)


def _parse(aid: str) -> bytes:
    try:
        return parse_id(aid)
    except Exception:  # noqa: BLE001
        raise InvalidInput(f"not an annotation id: {aid[:80]!r}") from None


def decide(repo: Repository, store: Pulls, name: str, number: int, user: str, decision: Any,
           ids: Any = None, label: Any = None, bbox: Any = None, image: Any = None) -> dict[str, Any]:
    """Accept or reject (or ``clear``) changes of the pull request: by id, or all of a label / in a box."""
    pr = get(repo, store, name, number)
    if pr["state"] not in ("draft", "open"):
        raise Conflict(f"pull request #{number} is {pr['state']}")
    if decision not in ("accept", "reject", "clear"):
        raise InvalidInput("decision must be accept, reject or clear")
    if ids is not None and (not isinstance(ids, list) or len(ids) > 100000):
        raise InvalidInput("ids must be a list of annotation ids")
    if label is not None and not isinstance(label, str):
        raise InvalidInput("label must be a string")
    if image is not None and not isinstance(image, str):
        raise InvalidInput("image must be a string")
    box = review.check_box(bbox) if bbox is not None else None
    pc = changes(repo, pr)
    chosen = review.select(pc, ids, label, box, image)
    store.set_decisions(name, number, [(ch.image, ch.id, review.version(ch)) for ch in chosen],
                        None if decision == "clear" else decision, user)
    return {"decided": len(chosen), "decision": decision, **decisions_summary(repo, store, name, pr)}


def decisions_summary(repo: Repository, store: Pulls, name: str, pr: dict[str, Any]) -> dict[str, Any]:
    pc = changes(repo, pr)
    live = review.live_decisions(pc, store.decisions(name, pr["number"]))
    c = {"accept": 0, "reject": 0}
    for d in live.values():
        c[d] += 1
    return {"accepted": c["accept"], "rejected": c["reject"], "undecided": len(pc.changes) - len(live),
            "decisions": [{"image": i, "id": a, "decision": d} for (i, a), d in sorted(live.items())]}


def preview(repo: Repository, store: Pulls, name: str, pr: dict[str, Any],
            settings: dict[str, Any]) -> dict[str, Any]:
    """Can it be merged now, and if not, why: state, approvals, checks, and the conflicts with the target
    of what merging produces (the rejected changes undone first, as :func:`merge` does)."""
    return _preview(repo, store, name, pr, settings)[0]


def _preview(repo: Repository, store: Pulls, name: str, pr: dict[str, Any],
             settings: dict[str, Any]) -> tuple[dict[str, Any], MergePlan | None]:
    blockers = []
    if pr["state"] != "open":
        blockers.append(f"the pull request is {pr['state']}")
    need = required_approvals(settings, pr)
    ap = approvals(store, name, pr)
    if len(ap["valid"]) < need:
        blockers.append(f"{need} approval{'s' if need != 1 else ''} required, {len(ap['valid'])} at the current head")
    ck = checks(repo, store, name, pr) if pr["state"] in ("draft", "open") else None
    if ck is not None and ck["status"] == "failed" and not ck["overridden_by"]:
        blockers.append("a check failed: " + ", ".join(c["name"] for c in ck["checks"] if c["status"] == "failed"))
    conflicts: list[dict[str, Any]] = []
    plan = None
    if pr["state"] in ("draft", "open"):
        plan = merge_plan(repo, store, name, pr)
        if plan.merged is not None:
            conflicts = [review.conflict_json(c) for c in plan.merged.conflicts]
    return {"mergeable": not blockers, "blockers": blockers, "conflicts": conflicts,
            "approvals": {"required": need, **ap}, "checks": ck["status"] if ck else None,
            "checks_overridden_by": ck["overridden_by"] if ck else None,
            "rejected": len(plan.rejected) if plan else 0,
            "applied": len(plan.changes.changes) - len(plan.rejected) if plan else 0}, plan


@dataclass
class MergePlan:
    """What merging the pull request now produces: its changes, the rejected ones, the head's snapshot with
    the rejections undone (None without rejections) and the three-way merge of that into the target."""

    changes: review.PullChanges
    rejected: list[Change]
    snapshot: Snapshot | None
    target: bytes | None
    merged: review.Merged | None


def merge_plan(repo: Repository, store: Pulls, name: str, pr: dict[str, Any], reuse: bool = False) -> MergePlan:
    """The merge as :func:`merge` will do it, rejections applied (nothing is committed; the trees it
    needs are stored, content-addressed, so the merge reuses them). ``reuse``: a plan computed for the
    same target tip, head and rejections may be answered again (read-only callers paging conflicts;
    the merge itself always computes afresh)."""
    pc = changes(repo, pr)
    live = review.live_decisions(pc, store.decisions(name, pr["number"]))
    # a detector's proposals (docs/plugins.md) merge only where accepted: undecided ones count as rejected
    strict = pr["source"].startswith("proposals/")
    rejected = [ch for key, ch in pc.index.items() if live.get(key) == "reject" or (strict and key not in live)]
    tgt = _tip(repo, pr["target"])
    key = (name, str(repo.path), tgt, pc.base, pc.head, tuple(sorted((ch.image, ch.id) for ch in rejected)))
    if reuse:
        with _PLANS_LOCK:
            hit = _PLANS.get(key)
        if hit is not None:
            return hit
    snap = review.rejection_snapshot(repo, pc, rejected) if rejected else None
    merged = review.three_way(repo, tgt, pc.head, theirs_snap=snap) if tgt is not None else None
    plan = MergePlan(pc, rejected, snap, tgt, merged)
    with _PLANS_LOCK:
        _PLANS[key] = plan
        while len(_PLANS) > 16:
            _PLANS.pop(next(iter(_PLANS)))
    return plan


_PLANS: dict[tuple[Any, ...], MergePlan] = {}  # the last plans, oldest first (the conflicts route pages them)
_PLANS_LOCK = threading.Lock()


def merge(repo: Repository, store: Pulls, name: str, number: int, user: str, settings: dict[str, Any],
          override_checks: Any = False, resolutions: Any = None, message: Any = None) -> dict[str, Any]:
    """Apply everything but what was rejected: the rejections become a commit on top of the source
    (the reviewer's decision, in history), which is then merged into the target (always a merge commit).
    Refused (nothing changes) unless the pull request is open, approved as required and its checks pass
    (or a maintainer overrides them), and every conflict with the target is resolved."""
    if not isinstance(override_checks, bool):
        raise InvalidInput("override_checks must be true or false")
    if message is not None:
        check_text(message, "message", MAX_BODY, required=True)
    res = review.check_resolutions(resolutions)
    with _LOCKS_LOCK:
        lock = _MERGE_LOCKS.setdefault(name, threading.Lock())
    with lock:
        pr = get(repo, store, name, number)
        pv, plan = _preview(repo, store, name, pr, {**settings})
        blockers = list(pv["blockers"])
        if override_checks and any(b.startswith("a check failed") for b in blockers):
            blockers = [b for b in blockers if not b.startswith("a check failed")]
            store.override(name, number, pr["head"], user)
        if blockers:
            raise NotMergeable(f"pull request #{number} cannot be merged: " + "; ".join(blockers))
        assert plan is not None  # an open pull request has one
        head = bytes.fromhex(pr["head"])
        pc, rejected = plan.changes, plan.rejected
        theirs, review_commit = head, None
        if plan.snapshot is not None:
            sid = repo.put("snapshot", plan.snapshot.to_body())
            lines = "\n".join(f"  {ch.image}:{ch.id} ({ch.kind}, {ch.label})" for ch in sorted(
                rejected, key=lambda c: (c.image, c.key))[:200])
            more = f"\n  ... and {len(rejected) - 200} more" if len(rejected) > 200 else ""
            msg = (f"Review of pull request #{number}: {len(rejected)} change{'s' if len(rejected) != 1 else ''} "
                   f"rejected by {user}\n\n{lines}{more}")
            review_commit = write_commit(repo, sid, [head], msg, _who(user))
            theirs = review_commit
        tgt, m = plan.target, plan.merged
        if tgt is None or m is None:
            raise NotFound(f"no branch {pr['target']!r}")
        snap = review.resolve_all(repo, m, res) if m.conflicts else m.snapshot
        sid = repo.put("snapshot", snap.to_body())
        text = message or f"Merge pull request #{number} from {pr['source']}\n\n{pr['title']}"
        mc = write_commit(repo, sid, [tgt, theirs], text, _who(user))
        repo.refs.cas("heads/" + pr["target"], tgt, mc, user, f"merge pull request #{number}")
        pr = store.update(name, number, state="merged", merge_commit=mc.hex(),
                          review_commit=review_commit.hex() if review_commit else None)
    return {"pull": pr, "merge_commit": mc.hex(), "review_commit": review_commit.hex() if review_commit else None,
            "rejected": len(rejected), "applied": len(pc.changes) - len(rejected),
            "conflicts_resolved": len(m.conflicts)}


def update(repo: Repository, store: Pulls, name: str, number: int, user: str, may_maintain: bool,
           fields: dict[str, Any]) -> dict[str, Any]:
    pr = get(repo, store, name, number)
    if user != pr["author"] and not may_maintain:
        raise PermissionDenied("only the author or a maintainer may change this pull request")
    out: dict[str, Any] = {}
    if "title" in fields:
        out["title"] = check_text(fields["title"], "title", MAX_TITLE, required=True)
    if "body" in fields:
        out["body"] = check_text(fields["body"], "body", MAX_BODY)
    if "state" in fields:
        st = fields["state"]
        if st not in ("draft", "open", "closed"):
            raise InvalidInput("state must be draft, open or closed (merging goes through /merge)")
        if pr["state"] == "merged":
            raise Conflict(f"pull request #{number} is merged")
        out["state"] = st
    pr = store.update(name, number, **out)
    return refresh(repo, store, name, pr)


def agreement(repo: Repository, store: Pulls, name: str, pr: dict[str, Any]) -> dict[str, Any]:
    revs = store.revisions(name, pr["number"])
    first = review.changes_between(repo, bytes.fromhex(revs[0]["base"]), bytes.fromhex(revs[0]["head"]))
    if pr["state"] == "merged" and pr["review_commit"]:
        head = bytes.fromhex(pr["review_commit"])
        parent = repo.commit_object(head).parents[0]
        pc = review.changes_between(repo, bytes.fromhex(pr["base"]), parent)
    else:
        pc = changes(repo, pr)
    live = review.live_decisions(pc, store.decisions(name, pr["number"]))
    final = None
    if pr["state"] == "merged" and pr["merge_commit"]:
        final = repo.snapshot_object(repo.commit_object(bytes.fromhex(pr["merge_commit"])).root)
    return review.agreement(repo, first, pc, live, final)
