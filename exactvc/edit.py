"""Editing the annotations of one image in the working state.

    with repo.edit("slide-1") as ed:
        aid = ed.add("mitosis", {"type": "Point", "coordinates": [100, 200]})
        ed.update(aid, label="tumor")
        ed.delete(aid)

Edits are checked as they are made (label exists, geometry well-formed and
inside the image; polygon validity per shapely for all of the block's polygons
at once when it ends) and applied to the working tree when the block ends:
O(k log n) new nodes for k edits, written together, then the working state
moves. An exception inside the block, or an invalid polygon, discards the
block's edits.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from types import TracebackType
from typing import TYPE_CHECKING, Any

from . import geometry, tree
from .annotation import Annotation, make_record, normalize_plane
from .errors import InvalidGeometry, InvalidInput, NotFound, UnknownLabel
from .ids import format_id, new_annotation_id, parse_id
from .objects import LabelSet, Snapshot
from .store import Pending, pending

if TYPE_CHECKING:
    from .repo import Repository

COMPATIBLE = {  # label shape -> the annotation kinds it takes
    "point": {"point", "multipoint"},
    "multipoint": {"point", "multipoint"},
    "box": {"box"},
    "ellipse": {"ellipse"},
    "line": {"line"},
    "polygon": {"polygon", "multipolygon"},
    "multipolygon": {"polygon", "multipolygon"},
}


class Editor:
    def __init__(self, repo: Repository, image: str, validate: bool = True, snapshot: Snapshot | None = None) -> None:
        """Edits of the working state, or (with ``snapshot``) of that snapshot, for :meth:`apply_to`."""
        self.repo = repo
        snap = snapshot if snapshot is not None else repo.snapshot_at(None)
        entry = repo._entry(snap, image)
        self.record = repo.image_record(entry)
        self.image = self.record.name
        self.labels: LabelSet = (LabelSet.from_body(repo.read_body(snap.labels, "labels")) if snap.labels
                                 else LabelSet())
        self._root = entry.tree
        self._changes: dict[bytes, dict[str, Any] | None] = {}
        self._unchecked: set[bytes] = set()  # keys whose polygons await the shapely check (see _validate)
        self.validate = validate
        self.result_tree: bytes | None = None
        self.create_labels = False

    # --- context manager ---
    def __enter__(self) -> Editor:
        return self

    def __exit__(
        self, et: type[BaseException] | None, ev: BaseException | None, tb: TracebackType | None
    ) -> None:
        if et is None:
            self.flush()

    # --- checks ---
    def _kind_for(self, label: str, geom: Any, kind: str | None) -> tuple[str, list[Any]]:
        lb = self.labels.get(label)
        if lb is None:
            raise UnknownLabel(f"unknown label {label!r} (add it with `exact label add`)")
        if kind is None and lb.shape in ("box", "ellipse"):
            kind = lb.shape
        k, enc = geometry.canonical(geom, kind)
        if lb.shape != "any" and k not in COMPATIBLE.get(lb.shape, {k}):
            raise InvalidGeometry(f"label {label!r} takes {lb.shape} shapes, got a {k}")
        return k, enc

    def _check(self, kind: str, enc: list[Any], key: bytes | None = None) -> None:
        """Bounds now; polygon validity now, or (given the key) for the whole block at flush time."""
        x0, y0, x1, y1 = geometry.bounds(kind, enc)
        w, h = self.record.width, self.record.height
        if x0 < 0 or y0 < 0 or x1 > w or y1 > h:
            raise InvalidGeometry(
                f"coordinates outside the image {self.image!r} ({w}x{h}): bounds {x0:g},{y0:g},{x1:g},{y1:g}"
            )
        if self.validate and kind in ("polygon", "multipolygon"):
            if key is None:
                geometry.validate(kind, enc)
            else:
                self._unchecked.add(key)

    def _validate(self) -> None:
        """The shapely validity check of the block's new or redrawn polygons, in one vectorised call."""
        keys = [k for k in self._unchecked if self._changes.get(k) is not None]
        self._unchecked.clear()
        if not keys:
            return
        keys.sort()
        bad = geometry.first_invalid([(rec["k"], rec["g"]) for k in keys if (rec := self._changes[k]) is not None])
        if bad is not None:
            i, why = bad
            raise InvalidGeometry(f"annotation {format_id(keys[i])}: {why}")

    def _current(self, key: bytes) -> dict[str, Any] | None:
        if key in self._changes:
            return self._changes[key]
        rec = tree.get(self.repo.store, self._root, key)
        return tree.join_record(self.repo.store, rec) if rec is not None else None

    def has(self, key: bytes) -> bool:
        """Whether an annotation with id ``key`` exists (counting this editor's pending edits)."""
        return self._current(key) is not None

    def _plane(self, plane: Any) -> tuple[int, int] | None:
        """The plane normalised, refused if the image has no such plane (z and t below its frame count)."""
        pl = normalize_plane(plane)
        if pl is not None:
            frames = max(1, int(self.record.frames or 1))
            if pl[0] >= frames or pl[1] >= frames:
                raise InvalidInput(f"image {self.image!r} has {frames} plane{'s' if frames != 1 else ''} "
                                   f"(0..{frames - 1}): no plane {plane!r}")
        return pl

    # --- edits ---
    def add(
        self,
        label: str,
        geom: Any,
        properties: dict[str, Any] | None = None,
        plane: Any = None,
        id: str | bytes | None = None,  # noqa: A002 - the annotation's id
        kind: str | None = None,
    ) -> str:
        """Add an annotation (GeoJSON mapping or shapely geometry); returns its id.

        Giving an existing ``id`` replaces that annotation (used by imports).
        """
        k, enc = self._kind_for(label, geom, kind)
        if id is None:
            key = new_annotation_id()
        elif isinstance(id, bytes):
            key = id
        else:
            key = parse_id(id)
        self._check(k, enc, key)
        self._changes[key] = make_record(k, enc, label, properties, self._plane(plane))
        return format_id(key)

    def add_many(
        self, items: Sequence[tuple[str, Any, dict[str, Any] | None, Any, str | bytes | None]]
    ) -> list[str]:
        """Add many ``(label, geometry, properties, plane, id)`` at once: the fast path for imports.

        Checks exactly what ``add`` checks (vectorised where it can); the first
        bad item raises, naming its position, and nothing of the batch is kept.
        """
        by_hint: dict[str | None, list[int]] = {}
        for i, (label, *_rest) in enumerate(items):
            lb = self.labels.get(label)
            if lb is None:
                raise UnknownLabel(f"item {i}: unknown label {label!r} (add it with `exact label add`)")
            by_hint.setdefault(lb.shape if lb.shape in ("box", "ellipse") else None, []).append(i)
        canon: list[tuple[str, list[Any], geometry.Bounds] | None] = [None] * len(items)
        for hint, idxs in by_hint.items():
            try:
                res = geometry.canonical_many([items[i][1] for i in idxs], hint, check_valid=self.validate)
            except InvalidGeometry:
                for i in idxs:  # find the culprit to name it
                    try:
                        k, enc = geometry.canonical(items[i][1], hint)
                        if self.validate:
                            geometry.validate(k, enc)
                    except InvalidGeometry as exc:
                        raise InvalidGeometry(f"item {i}: {exc}") from None
                raise
            for i, r in zip(idxs, res, strict=True):
                canon[i] = r
        w, h = self.record.width, self.record.height
        staged: dict[bytes, dict[str, Any]] = {}
        out: list[str] = []
        for i, (label, _g, props, plane, aid) in enumerate(items):
            c = canon[i]
            assert c is not None
            k, enc, (x0, y0, x1, y1) = c
            lb = self.labels.get(label)
            assert lb is not None
            if lb.shape != "any" and k not in COMPATIBLE.get(lb.shape, {k}):
                raise InvalidGeometry(f"item {i}: label {label!r} takes {lb.shape} shapes, got a {k}")
            if x0 < 0 or y0 < 0 or x1 > w or y1 > h:
                raise InvalidGeometry(
                    f"item {i}: coordinates outside the image {self.image!r} ({w}x{h}): "
                    f"bounds {x0:g},{y0:g},{x1:g},{y1:g}"
                )
            key = new_annotation_id() if aid is None else aid if isinstance(aid, bytes) else parse_id(aid)
            staged[key] = make_record(k, enc, label, props, normalize_plane(plane))
            out.append(format_id(key))
        self._changes.update(staged)
        return out

    def put(self, ann: Annotation) -> None:
        """Store an annotation value as it is (already canonical)."""
        self._check(ann.kind, ann.geom, ann.key)
        if self.labels.get(ann.label) is None:
            raise UnknownLabel(f"unknown label {ann.label!r}")
        self._changes[ann.key] = ann.to_record()

    def update(
        self,
        aid: str,
        label: str | None = None,
        geometry: Any = None,
        properties: dict[str, Any] | None = None,
        plane: Any = None,
        kind: str | None = None,
    ) -> None:
        key = parse_id(aid)
        cur = self._current(key)
        if cur is None:
            raise NotFound(f"no annotation {aid} on image {self.image!r}")
        new_label = label if label is not None else cur["l"]
        if geometry is not None:
            k, enc = self._kind_for(new_label, geometry, kind)
        else:
            k, enc = cur["k"], cur["g"]
            if label is not None:
                lb = self.labels.get(new_label)
                if lb is None:
                    raise UnknownLabel(f"unknown label {new_label!r}")
                if lb.shape != "any" and k not in COMPATIBLE.get(lb.shape, {k}):
                    raise InvalidGeometry(f"label {new_label!r} takes {lb.shape} shapes, got a {k}")
        if geometry is not None or label is not None:
            self._check(k, enc, key)  # an unchanged shape was checked when it was stored
        props = properties if properties is not None else cur.get("p")
        z = cur.get("z")
        pl = self._plane(plane) if plane is not None else ((z[0], z[1]) if z else None)
        self._changes[key] = make_record(k, enc, new_label, props, pl, cur.get("v"))

    def verify(self, aid: str, entry: dict[str, Any]) -> tuple[bytes, list[dict[str, Any]]]:
        """Set one user's verification (``verification.entry``) of an annotation, replacing their earlier
        one; nothing else of the record changes. Returns the key and the record's verifications."""
        from . import verification

        key = parse_id(aid)
        cur = self._current(key)
        if cur is None:
            raise NotFound(f"no annotation {aid[:80]} on image {self.image!r}")
        rec = verification.with_entry(cur, entry)
        self._changes[key] = rec
        return key, verification.entries(rec)

    def delete(self, aid: str) -> None:
        key = parse_id(aid)
        if self._current(key) is None:
            raise NotFound(f"no annotation {aid} on image {self.image!r}")
        self._changes[key] = None

    def delete_keys(self, keys: Iterable[bytes]) -> None:
        for k in keys:
            self._changes[k] = None

    def __len__(self) -> int:
        return len(self._changes)

    # --- applying ---
    def _encoded(self, out: list[Pending]) -> dict[bytes, bytes | None]:
        self._validate()
        encoded: dict[bytes, bytes | None] = {}
        for key, rec in self._changes.items():
            encoded[key] = None if rec is None else tree.encode_record(tree.split_record(rec, out))
        return encoded

    def apply_to(self, snap: Snapshot) -> bytes:
        """Apply the edits to ``snap`` (not the working state); returns the new snapshot id."""
        out: list[Pending] = []
        encoded = self._encoded(out)
        _root, snap_p = self._applied(snap, encoded, out)
        self.repo.store.write(out)
        self._changes.clear()
        return snap_p.oid

    def _applied(
        self, snap: Snapshot, encoded: dict[bytes, bytes | None], out: list[Pending]
    ) -> tuple[bytes | None, Pending]:
        """The edits applied to this image's tree in ``snap``: the new root; the new nodes, then the new
        snapshot (returned), go into ``out``, to be written together in one pack."""
        store = self.repo.store
        root = tree.apply(store, snap.images[self.image].tree, encoded, out)
        snap_p = pending("snapshot", snap.with_tree(self.image, root, tree.count_from(store, root, out)).to_body())
        out.append(snap_p)
        return root, snap_p

    def flush(self) -> bytes | None:
        """Apply the edits to the working state (atomically); returns the new tree id."""
        repo = self.repo
        if not self._changes:
            return self._root
        out: list[Pending] = []
        encoded = self._encoded(out)
        with repo.lock():
            base, snap_id = repo.working()
            snap = repo.snapshot_object(snap_id)
            if self.image not in snap.images:
                raise NotFound(f"image {self.image!r} was removed meanwhile")
            root, snap_p = self._applied(snap, encoded, out)
            repo.store.write(out)
            tree.remember(repo.store, out)
            repo.set_working(base, snap_p.oid)
        self._root = self.result_tree = root
        self._changes.clear()
        return root


def set_working_tree(repo: Repository, image: str, root: bytes | None, expected: bytes | None | bool = False) -> None:
    """Point ``image`` of the working state at tree ``root``; call with ``repo.lock()`` held.

    With ``expected`` (a tree id or None), refuse if the image's tree is no longer that
    (someone edited it meanwhile); ``False`` means no check.
    """
    from .errors import Conflict

    base, snap_id = repo.working()
    snap = repo.snapshot_object(snap_id)
    entry = snap.images.get(image)
    if entry is None:
        raise NotFound(f"image {image!r} was removed meanwhile")
    if expected is not False and entry.tree != expected:
        raise Conflict(f"the annotations of {image!r} changed meanwhile; nothing was changed")
    repo.set_working(base, repo.put("snapshot", snap.with_tree(image, root, tree.count(repo.store, root)).to_body()))
