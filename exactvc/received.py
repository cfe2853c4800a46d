"""Checking received objects as ``exact fsck`` would, before they are stored and before any ref moves.

A push carries objects that hash to their ids and decode (``transfer.read_stream``) and whose
references resolve (``transfer.verify_closure``). That is not yet everything fsck checks: a commit's
generation must be one more than its parents', a snapshot's image entries must point at image records
and trees, tree nodes must sit at the level, count and key range their parent records, in canonical
form. :func:`check_received` walks from the pushed tips through the received objects with fsck's own
walker; objects that were already stored were checked when they arrived, so the walk stops at them
(reading only what a received parent needs of them: a commit's generation, a node's level, count and
keys).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from . import codec
from .errors import ExactError
from .maintenance import Problem, _NodeExp, _NodeInfo, _Walker
from .objects import Commit
from .store import Pending
from .transfer import BadStream
from .tree import MAX_NODE, decode_node, entry_size, is_boundary

if TYPE_CHECKING:
    from .repo import Repository


class InvalidObject(BadStream):
    """A received object is well formed on its own but inconsistent with what it references."""

    kind = "invalid_object"


class _Overlay:
    """The store as it will be once the received objects are written."""

    def __init__(self, items: Iterable[Pending], store: Any) -> None:
        self.items = {p.oid: p for p in items}
        self.store = store

    def get(self, oid: bytes) -> tuple[str, bytes]:
        p = self.items.get(oid)
        if p is not None:
            return p.type, p.data
        got: tuple[str, bytes] = self.store.get(oid)
        return got

    verify = get

    def has(self, oid: bytes) -> bool:
        return oid in self.items or bool(self.store.has_now(oid))


class _ReceivedWalker(_Walker):
    def __init__(self, repo: Repository, items: list[Pending], tips: list[tuple[bytes, str]]) -> None:
        super().__init__(repo, verify=False, lenient=True, structure=True)
        self.overlay = _Overlay(items, repo.store)
        self.store = self.overlay  # type: ignore[assignment]
        self.tips = tips
        self.old: set[bytes] = set()  # stored before: their own generations are not ours to check

    def roots(self) -> list[tuple[bytes, str | None, str, bool]]:
        return [(oid, "commit" if ref.startswith("heads/") else None, f"push of {ref}", False)
                for oid, ref in self.tips]

    def is_trusted(self, oid: bytes) -> bool:
        return oid not in self.overlay.items and bool(self.overlay.store.has(oid))

    def trusted_visit(self, oid: bytes, expected: str | None, ref: str | None) -> None:
        got = self.read(oid, expected, ref)
        if got is None:
            self.seen[oid] = "?"
            return
        t, data = got
        self.seen[oid] = t
        if t == "commit":
            try:
                c = Commit.from_body(codec.unpack(data))
            except (ExactError, KeyError, TypeError, ValueError) as exc:
                self.problem(oid, t, f"stored commit {oid.hex()} does not decode: {exc}", ref)
                return
            self.gens[oid] = (c.generation, c.parents)
            self.old.add(oid)

    def trusted_node(self, oid: bytes, exp: _NodeExp | None, ref: str | None) -> None:
        got = self.read(oid, "node", ref)
        if got is None or got[0] != "node":
            self.seen[oid] = "?" if got is None else got[0]
            self.nodes[oid] = None
            return
        self.seen[oid] = "node"
        try:
            node = decode_node(got[1], oid)
        except Exception as exc:  # noqa: BLE001 - a stored node that does not decode is reported, not raised
            self.nodes[oid] = None
            self.problem(oid, "node", f"stored tree node {oid.hex()} does not decode: {exc}", ref)
            return
        if not node.keys:
            self.nodes[oid] = None
            return
        size = 0
        for raw in node.raw:
            size += entry_size(raw)
        last = node.keys[-1]
        ends_clean = size >= MAX_NODE or (isinstance(last, bytes) and is_boundary(last, node.level))
        info: _NodeInfo = (node.level, node.count, node.keys[0], last, ends_clean)
        self.nodes[oid] = info
        if exp is not None:
            self.check_node(oid, info, exp, ref)

    def check_generations(self) -> None:
        for oid, (gen, parents) in self.gens.items():
            if oid in self.old:
                continue
            pg = [self.gens[p][0] for p in parents if p in self.gens]
            if len(pg) != len(parents):
                continue  # an unreadable parent: reported already
            want = 1 + max(pg, default=0)
            if gen != want:
                self.problems.append(Problem(oid.hex(), "commit",
                                             f"commit {oid.hex()} has generation {gen}, expected {want}", None))


def check_received(repo: Repository, items: list[Pending], tips: list[tuple[bytes, str]]) -> list[Problem]:
    """What fsck would find wrong once ``items`` are stored and each ref of ``tips`` (id, ref name) points
    at its id, looking only at received objects (and how they fit the stored ones they reference)."""
    w = _ReceivedWalker(repo, items, tips)
    for _ in w.run():
        pass
    return w.problems


def refuse_invalid(repo: Repository, items: list[Pending], tips: list[tuple[bytes, str]]) -> None:
    """Raise :class:`InvalidObject` naming the first problem :func:`check_received` finds
    (:class:`~exactvc.transfer.MissingReference` for a tip neither sent nor stored)."""
    from .transfer import MissingReference

    have = {p.oid for p in items}
    for oid, ref in tips:
        if oid not in have and not repo.store.has_now(oid):
            raise MissingReference(f"{ref}: {oid.hex()[:12]} is neither sent nor stored")
    problems = check_received(repo, items, tips)
    if problems:
        more = f" (and {len(problems) - 1} more problems)" if len(problems) > 1 else ""
        raise InvalidObject(problems[0].message + more)


def tip_fingerprints(repo: Repository, items: list[Pending], oid: bytes) -> set[str]:
    """The image fingerprints the snapshot of tip ``oid`` references (tags peeled), reading the received
    objects before they are stored."""
    from .objects import ImageRecord, Snapshot, Tag

    ov = _Overlay(items, repo.store)
    t, data = ov.get(oid)
    for _ in range(64):
        if t != "tag":
            break
        oid = Tag.from_body(codec.unpack(data)).target
        t, data = ov.get(oid)
    if t in ("run", "artefact"):  # a run's labels commit is checked like a pushed commit
        commit = codec.unpack(data).get("commit")
        if not isinstance(commit, bytes):
            return set()
        oid = commit
        t, data = ov.get(oid)
    if t != "commit":
        return set()
    root = Commit.from_body(codec.unpack(data)).root
    _st, sdata = ov.get(root)
    snap = Snapshot.from_body(codec.unpack(sdata))
    out = set()
    for e in snap.images.values():
        _rt, rdata = ov.get(e.record)
        out.add(ImageRecord.from_body(codec.unpack(rdata)).fingerprint)
    return out
