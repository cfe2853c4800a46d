"""What every format module shares: the record model, the importer behind all of them, and helpers.

A format's reader turns a file into :class:`SourceImage` s (one per image the file
names), each holding :class:`Record` s; :func:`import_sources` matches them to the
repository's images and imports them all or nothing through the same checked,
batched pipeline as the QuPath importer (``importer._Converter`` and ``_TreeBuilder``).

A record keeps what exactvc models natively (id, label, geometry, plane) and puts what
only its format models under one property named after the format (``"coco"``,
``"asap"``, ``"sliderunner"``, ``"cvat"``, ``"histomicsui"``, ``"exact"``), so that
exporting to the same format writes it back and other formats ignore it. Shared
meanings use shared property names: ``name`` (a human name), ``description``,
``image_label: true`` (a whole-image label, stored as a box over the whole image).
"""

from __future__ import annotations

import contextlib
import gc
import os
import re
from array import array
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .. import tree
from ..errors import Conflict, ExactError, InvalidGeometry, InvalidInput, NotFound, UsageError
from ..ids import format_id
from .importer import CHECK_BATCH, _Converter, _NewLabel, _TreeBuilder
from .model import Feature
from .qupath import iter_records, selected_images

if TYPE_CHECKING:
    from ..repo import Repository

Record = Feature  # one annotation read from a file: the record model every format shares

UNCLASSIFIED = "unclassified"
NAMESPACES = frozenset({"coco", "asap", "sliderunner", "cvat", "histomicsui", "exact"})  # per-format properties


@dataclass
class SourceImage:
    """The records a file holds for one of its images.

    A reader that holds the records gives them in ``records``; a streaming reader
    (``ReadResult.stream``) leaves ``records`` empty, sets ``streamed`` (the file has
    records for this image), and numbers its records with :meth:`take`."""

    name: str | None  # the image's name in the file (None: the file names no image)
    records: list[Record] = field(default_factory=list)
    where: list[str] = field(default_factory=list)  # per record: how an error names it
    width: int | None = None
    height: int | None = None
    streamed: bool = False  # records come from ReadResult.stream
    count: int = 0  # records numbered by take()
    positions: array = field(default_factory=lambda: array("q"))  # per streamed record: its place in the file
    batch_where: tuple[int, list[str]] = (0, [])  # the current streamed batch's first record and names
    noun: str = "annotation"  # what a position names: "annotation 12" (the 13th), "annotation uid 12"

    def add(self, rec: Record, where: str) -> None:
        rec.index = len(self.records)
        self.records.append(rec)
        self.where.append(where)

    def take(self, rec: Record, position: int) -> None:
        """Number a streamed record (``position``: the how-manieth record of the file, named in errors)."""
        rec.index = self.count
        self.count += 1
        self.positions.append(position)

    @property
    def has_records(self) -> bool:
        return bool(self.records) or self.streamed

    def where_of(self, k: int) -> str:
        noun = self.noun
        if 0 <= k < len(self.where):
            return self.where[k]
        first, names = self.batch_where
        if first <= k < first + len(names):
            return names[k - first]
        if 0 <= k < len(self.positions):
            return f"{noun} {self.positions[k]}"
        return f"{noun} {k}" if self.streamed else f"record {k}"  # a streamed image alone: k is the place in the file


Batch = tuple[SourceImage, list[Record], list[str]]  # records of one image and how errors name them


class PartsUnreadable(Exception):
    """A reader's parts cannot be made into records (a cut in the wrong place): read the stream instead."""


@dataclass
class ReadResult:
    images: list[SourceImage]
    skipped: dict[str, int] = field(default_factory=dict)  # reason -> count (soft-deleted rows, ...)
    # a streaming reader: the records, a batch at a time, read from the file as they are consumed (once)
    stream: Callable[[], Iterator[Batch]] | None = None
    # or (one image): parts of the file, cheap to cut, each made into records by part_records, which
    # the importer runs in forked worker processes for large files
    parts: Callable[[], Iterator[Any]] | None = None
    part_records: Callable[[Any], tuple[list[Record], list[str]]] | None = None
    # whether part_records names a bad record as the file does; if not, any problem in the parts (or
    # PartsUnreadable) makes the importer start again from ``stream``, which does
    parts_exact: bool = True

    def skip(self, reason: str, n: int = 1) -> None:
        self.skipped[reason] = self.skipped.get(reason, 0) + n

    def batches(self) -> Iterator[Batch]:
        """Every record, in batches of at most ``CHECK_BATCH`` of one image."""
        if self.stream is not None:
            yield from self.stream()
            return
        if self.parts is not None and self.part_records is not None:
            src = self.images[0]
            for part in self.parts():
                recs, wheres = self.part_records(part)
                yield src, recs, wheres
            return
        for src in self.images:
            for i in range(0, len(src.records), CHECK_BATCH):
                yield src, src.records[i:i + CHECK_BATCH], src.where[i:i + CHECK_BATCH]


def derived_id(fmt: str, image: str, source_id: Any) -> bytes:
    """A stable 16-byte id (UUID version 8 layout) for a record whose format has a non-UUID id:
    importing the same file into the same image twice replaces rather than duplicates."""
    import blake3

    h = bytearray(blake3.blake3(f"exactvc-format-id\0{fmt}\0{image}\0{source_id}".encode()).digest()[:16])
    h[6] = (h[6] & 0x0F) | 0x80
    h[8] = (h[8] & 0x3F) | 0x80
    return bytes(h)


def uuid_key(text: Any) -> bytes | None:
    """The 16 bytes of a UUID text, None when ``text`` is not one."""
    if not isinstance(text, str) or len(text) < 32 or len(text) > 45:  # cheap: most names are no UUID
        return None
    from .qupath import _uuid_bytes

    return _uuid_bytes(text)


_HEX = re.compile(r"#([0-9a-fA-F]{3,8})$")
_RGBF = re.compile(r"rgba?\(\s*([\d.]+)\s*,\s*([\d.]+)\s*,\s*([\d.]+)\s*(?:,\s*([\d.]+)\s*)?\)$")


def parse_color(v: Any) -> str | None:
    """'#rrggbb' from '#RGB', '#RGBA', '#RRGGBB', '#RRGGBBAA', 'rgb(r, g, b)' or 'rgba(r, g, b, a)'; None otherwise."""
    if not isinstance(v, str):
        return None
    s = v.strip()
    m = _HEX.match(s)
    if m:
        h = m.group(1)
        if len(h) in (3, 4):
            return "#" + "".join(c * 2 for c in h[:3]).lower()
        if len(h) in (6, 8):
            return "#" + h[:6].lower()
        return None
    m = _RGBF.match(s)
    if m:
        try:
            r, g, b = (max(0, min(255, round(float(x)))) for x in m.groups()[:3])
        except ValueError:
            return None
        return f"#{r:02x}{g:02x}{b:02x}"
    return None


def num(v: float) -> str:
    """A coordinate as text: an integer without a decimal point, else at most 3 decimals (exactvc's precision)."""
    r = round(v, 3)
    if r == int(r):
        return str(int(r))
    return f"{r:.3f}".rstrip("0")


def box_geom(x0: float, y0: float, x1: float, y1: float, kind: str | None = None) -> dict[str, Any]:
    """An axis-aligned rectangle; ``kind="box"`` (or "ellipse") makes it that kind whatever the label."""
    g: dict[str, Any] = {"type": "Polygon", "coordinates": [[[x0, y0], [x1, y0], [x1, y1], [x0, y1], [x0, y0]]]}
    if kind is not None:
        g["kind"] = kind
    return g


def rings_geom(rings: list[list[list[float]]], parts: bool) -> dict[str, Any]:
    """Several rings: each its own polygon (``parts``, COCO) or exterior then holes."""
    if parts and len(rings) > 1:
        return {"type": "MultiPolygon", "coordinates": [[r] for r in rings]}
    return {"type": "Polygon", "coordinates": rings}


# --- importing --------------------------------------------------------------------------------------


_FEATURE_N = re.compile(r"^features? (\d+)(?: and (\d+))?")


def _rename(exc: ExactError, file: str, src: SourceImage) -> ExactError:
    """The converter names records 'feature N'; say which record of which file instead."""
    msg = exc.message

    def where(i: str) -> str:
        return src.where_of(int(i))

    m = _FEATURE_N.match(msg)
    if m:
        head = where(m.group(1)) + (f" and {where(m.group(2))}" if m.group(2) else "")
        msg = head + msg[m.end():]
    img = f" (image {src.name!r})" if src.name else ""
    return type(exc)(f"{file}{img}: {msg}")


def _match(repo: Repository, srcs: list[SourceImage], image: str | None, source_image: str | None,
           file: str) -> list[tuple[str, SourceImage]]:
    """Pair each of the file's images with a repository image (by name, or ``image``)."""
    names = {rec.name for rec in repo.images(None)}
    srcs = [s for s in srcs if s.has_records] or srcs[:1]
    if source_image is not None:
        picked = [s for s in srcs if s.name is not None and _same(s.name, source_image)]
        if not picked:
            raise NotFound(f"{file}: no image {source_image!r} in the file (it has "
                           f"{', '.join(repr(s.name) for s in srcs[:10])})")
        srcs = picked
    if image is not None:
        target = repo.image(image, None).name
        if len(srcs) > 1:
            picked = [s for s in srcs if s.name is not None and _same(s.name, target)]
            if len(picked) != 1:
                raise UsageError(f"{file} holds annotations of {len(srcs)} images; name the file's image "
                                 "with --source-image, or import without --image to match images by name")
            srcs = picked
        return [(target, srcs[0])] if srcs else []
    out: list[tuple[str, SourceImage]] = []
    missing: list[str] = []
    for s in srcs:
        if s.name is None:
            if len(names) == 1:
                out.append((next(iter(names)), s))
                continue
            raise UsageError(f"{file} does not name its image; say which with --image")
        target_name = next((n for n in sorted(names) if _same(s.name, n)), None)
        if target_name is None:
            with contextlib.suppress(NotFound):
                target_name = repo.image(s.name, None).name
        if target_name is None:
            missing.append(s.name)
        else:
            out.append((target_name, s))
    if missing:
        raise NotFound(f"{file}: {len(missing)} image(s) of the file match no image of the repository: "
                       f"{', '.join(repr(m) for m in missing[:5])}{' ...' if len(missing) > 5 else ''} "
                       "(add them with `exact image add`, or pick one with --image/--source-image)")
    return out


def _stem(name: str) -> str:
    base = os.path.basename(name.replace("\\", "/"))
    return base.rsplit(".", 1)[0] if "." in base else base


def _same(a: str, b: str) -> bool:
    return a == b or _stem(a) == _stem(b)


def import_sources(
    repo: Repository,
    file: str,
    read: ReadResult,
    image: str | None = None,
    source_image: str | None = None,
    create_labels: bool = False,
    batch: int = 50_000,
    workers: int | None = None,
) -> dict[str, Any]:
    """Import the records of a file's images into the working state; all or nothing.

    ``workers``: processes making and checking records of a reader that cuts its file into parts
    (None: as the QuPath importer decides, by file size and CPUs; 1: this process only).

    Each record is checked as the Editor checks it; an error names the file, the record
    and the problem, and leaves the working state (annotations and labels) as it was.
    """
    pairs = _match(repo, read.images, image, source_image, file)
    seen: dict[str, str] = {}
    for target, src in pairs:
        if target in seen:
            raise UsageError(f"{file}: images {seen[target]!r} and {src.name!r} of the file both match "
                             f"the repository image {target!r}")
        seen[target] = src.name or ""
    base0, snap0 = repo.working()
    gc_on = gc.isenabled()
    gc.disable()
    try:
        from .importer import _workers

        nworkers = _workers(Path(file), workers) if read.parts is not None and len(pairs) == 1 else 1
        return _import(repo, file, pairs, create_labels, batch, snap0, read, nworkers)
    except BaseException:
        with contextlib.suppress(Exception):
            if repo.working() != (base0, snap0):
                repo.set_working(base0, snap0)
        raise
    finally:
        if gc_on:
            gc.enable()


class _Target:
    """One repository image being imported into: its converter and tree builder."""

    def __init__(self, repo: Repository, file: str, src: SourceImage, name: str, snap: Any,
                 shapes: dict[str, str], create_labels: bool, new_labels: dict[str, _NewLabel],
                 spill: Path | None, batch: int) -> None:
        rec_img = repo.image(name, None)
        self.file, self.src, self.name, self.batch = file, src, rec_img.name, batch
        self.width, self.height, self.shapes = rec_img.width, rec_img.height, shapes
        self.entry0 = snap.images[rec_img.name]
        self.conv = _Converter(rec_img.name, rec_img.width, rec_img.height, shapes, create_labels)
        self.conv.new_labels = new_labels
        self.builder = _TreeBuilder(repo.store, self.entry0.tree, spill)
        self.conv.blobs = self.builder.blobs
        self.n = 0

    def convert(self, part: list[Record], wheres: list[str]) -> list[tuple[bytes, bytes]]:
        """``(key, tree entry)`` of each record, checked; errors name the file and the record."""
        src = self.src
        if src.streamed and part:
            src.batch_where = (part[0].index, wheres)
        clip_boxes(part, self.width, self.height, self.shapes)
        try:
            return self.conv.convert_many(part)
        except InvalidGeometry as exc:
            if "invalid polygon" not in exc.message or not repair_polygons(part):
                raise _rename(exc, self.file, src) from None
            try:
                return self.conv.convert_many(part)
            except ExactError as exc2:
                raise _rename(exc2, self.file, src) from None
        except ExactError as exc:
            raise _rename(exc, self.file, src) from None

    def add(self, part: list[Record], wheres: list[str]) -> None:
        entries = self.convert(part, wheres)
        add = self.builder.add
        for f, (key, entry) in zip(part, entries, strict=True):
            add(key, f.index, entry)
        self.n += len(part)
        self.end_batch_if_full()

    def end_batch_if_full(self) -> None:
        if len(self.builder) >= self.batch:
            try:
                self.builder.end_batch()
            except ExactError as exc:
                raise _rename(exc, self.file, self.src) from None

    def finish(self) -> bytes | None:
        try:
            return self.builder.finish(self.batch)
        except ExactError as exc:
            raise _rename(exc, self.file, self.src) from None


_PART_STATE: dict[str, Any] = {}  # what forked workers inherit: the target and the reader's part_records


def _part_task(part: Any) -> tuple[list[tuple[bytes, int, bytes]], list[Any], dict[str, tuple[str | None, list[str]]]]:
    """Worker: one part of the file to checked tree entries (numbered records), blobs and labels met."""
    t: _Target = _PART_STATE["target"]
    recs, wheres = _PART_STATE["part_records"](part)
    t.conv.blobs, t.conv.new_labels = [], {}
    entries = t.convert(recs, wheres)
    out = [(key, rec.index, entry) for rec, (key, entry) in zip(recs, entries, strict=True)]
    return out, t.conv.blobs, {n: (nl.color, list(nl.kinds)) for n, nl in t.conv.new_labels.items()}


class _Rerun(Exception):
    """Parts that are not exact failed: import again from the reader's stream."""


def _convert_parts_parallel(t: _Target, parts: Callable[[], Iterator[Any]],
                            part_records: Callable[[Any], tuple[list[Record], list[str]]], workers: int,
                            new_labels: dict[str, _NewLabel], exact: bool) -> None:
    """The parts converted by forked worker processes, applied to the tree in file order by this one
    (so the first bad record in the file is the one named)."""
    import multiprocessing
    from collections import deque
    from concurrent.futures import Future, ProcessPoolExecutor

    from .importer import INFLIGHT, _merge_labels, _worker_init

    inflight: deque[Future[Any]] = deque()

    def collect(fut: Future[Any]) -> None:
        try:
            entries, blobs, labels = fut.result()
        except (ExactError, PartsUnreadable):
            if not exact:
                raise _Rerun from None
            raise
        _merge_labels(new_labels, labels)
        t.builder.blobs.extend(blobs)
        add = t.builder.add
        first = t.n  # one image: the records' numbers are their places in the file
        for j, (key, _i, entry) in enumerate(entries):
            add(key, first + j, entry)
        t.n += len(entries)
        t.end_batch_if_full()

    _PART_STATE.update(target=t, part_records=part_records)  # workers are forked as parts are submitted
    pool = ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("fork"), initializer=_worker_init)
    try:
        it = parts()
        while True:
            try:
                part = next(it)
            except StopIteration:
                break
            except PartsUnreadable:
                raise _Rerun from None
            except ExactError:  # found by this process: later in the file than every part in flight
                if not exact:
                    raise _Rerun from None
                while inflight:
                    collect(inflight.popleft())
                raise
            inflight.append(pool.submit(_part_task, part))
            while len(inflight) > INFLIGHT * workers:
                collect(inflight.popleft())
        while inflight:
            collect(inflight.popleft())
    finally:
        for fut in inflight:
            fut.cancel()
        pool.shutdown(wait=True)
        _PART_STATE.clear()


def _import(repo: Repository, file: str, pairs: list[tuple[str, SourceImage]], create_labels: bool,
            batch: int, snap0: bytes, read: ReadResult, workers: int = 1) -> dict[str, Any]:
    snap = repo.snapshot_object(snap0)
    shapes = {lb.name: lb.shape for lb in repo.labels(None).labels}
    spill = repo.exact_dir / "cache" if repo.exact_dir is not None else None
    new_labels: dict[str, _NewLabel] = {}
    targets = {id(src): _Target(repo, file, src, name, snap, shapes, create_labels, new_labels, spill, batch)
               for name, src in pairs}
    roots: list[tuple[str, bytes | None, bytes | None, int]] = []
    try:
        serial = True
        if len(targets) == 1 and read.parts is not None and read.part_records is not None and workers > 1:
            (key, t), = targets.items()
            try:
                _convert_parts_parallel(t, read.parts, read.part_records, workers, new_labels, read.parts_exact)
                serial = False
            except _Rerun:  # what was written so far is unreferenced and goes at the next gc
                t.builder.close()
                new_labels.clear()
                targets[key] = _Target(repo, file, t.src, t.name, snap, shapes, create_labels, new_labels, spill,
                                       batch)
        if serial:
            for src, part, wheres in read.batches():
                to = targets.get(id(src))
                if to is not None:  # records of the file's other images are not imported
                    to.add(part, wheres)
        for t in targets.values():
            roots.append((t.name, t.entry0.tree, t.finish(), t.entry0.count))
    finally:
        for t in targets.values():
            t.builder.close()
    n = sum(t.n for t in targets.values())
    created: list[str] = []
    for lname in sorted(new_labels):
        nl = new_labels[lname]
        repo.add_label(lname, nl.shape(), nl.color or "#ffcc00")
        created.append(lname)
    added = 0
    with repo.lock():  # one new working snapshot for every image
        base, snap_id = repo.working()
        snap = repo.snapshot_object(snap_id)
        for name, old, root, count0 in roots:
            now = snap.images.get(name)
            if now is None:
                raise NotFound(f"image {name!r} was removed meanwhile")
            if now.tree != old:
                raise Conflict(f"the annotations of {name!r} changed meanwhile; nothing was changed")
            count = tree.count(repo.store, root)
            snap = snap.with_tree(name, root, count)
            added += count - count0
        repo.set_working(base, repo.put("snapshot", snap.to_body()))
    return {"images": [name for name, *_ in roots], "features": n, "added": added, "replaced": n - added,
            "labels_created": created, "skipped": dict(sorted(read.skipped.items()))}


def repair_polygons(recs: list[Record]) -> bool:
    """Make invalid polygons valid (shapely's make_valid, keeping the polygonal parts), as other tools
    draw them (self-touching rings, bow-ties); each repaired record gets ``geometry_repaired: true``.
    True when something was repaired."""
    import shapely

    done = False
    for rec in recs:
        g = rec.geometry
        if type(g) is not dict or g.get("type") not in ("Polygon", "MultiPolygon") or g.get("kind"):
            continue
        try:
            shp = shapely.geometry.shape(g)
        except Exception:  # noqa: BLE001 - malformed: the converter names the problem
            continue
        if shp.is_valid:
            continue
        fixed = shapely.make_valid(shp)
        polys = [p for p in getattr(fixed, "geoms", [fixed]) if p.geom_type in ("Polygon", "MultiPolygon")]
        if not polys:
            continue
        u = shapely.union_all(polys)
        if u.is_empty or u.area == 0:
            continue
        m = shapely.geometry.mapping(u)
        rec.geometry = {"type": m["type"], "coordinates": _as_lists(m["coordinates"])}
        rec.properties = {**rec.properties, "geometry_repaired": True}
        done = True
    return done


def _as_lists(c: Any) -> Any:
    if isinstance(c, (list, tuple)) and c and isinstance(c[0], (int, float)):
        return [round(float(v), 3) for v in c]
    return [_as_lists(x) for x in c]


def clip_boxes(recs: list[Record], w: int, h: int, shapes: dict[str, str] | None = None) -> None:
    """Settle what a reader could not: a whole-image label's box; a vertex list that is a line when
    its label takes lines (``"vector"``: EXACT's vectors have no type); boxes a format lets overhang
    the image (MIDOG's spots at the border) clipped to it, the box as written kept as
    ``unclipped`` [x0, y0, x1, y1] under the format's property, for export."""
    for rec in recs:
        g = rec.geometry
        if type(g) is not dict:
            continue
        if "vector" in g:
            pts = g["vector"]
            if shapes is not None and shapes.get(rec.label or UNCLASSIFIED) == "line" and len(pts) >= 2:
                rec.geometry = {"type": "LineString", "coordinates": pts}
                continue
            g = rec.geometry = {k: v for k, v in g.items() if k != "vector"}
        if g.get("whole"):  # a whole-image label
            rec.geometry = box_geom(0, 0, w, h, kind="box")
            continue
        fmt = g.get("clip")
        if fmt is None:
            continue
        (x0, y0), _, (x1, y1), *_ = g["coordinates"][0]
        x0, x1 = min(x0, x1), max(x0, x1)
        y0, y1 = min(y0, y1), max(y0, y1)
        c = [max(x0, 0), max(y0, 0), min(x1, w), min(y1, h)]
        if c != [x0, y0, x1, y1]:
            rec.properties = {**rec.properties, fmt: {**rec.properties.get(fmt, {}), "unclipped": [x0, y0, x1, y1]}}
            g = box_geom(*c)
        else:
            g = {"type": "Polygon", "coordinates": g["coordinates"]}
        g["kind"] = "box"
        rec.geometry = g


def unclipped(own: dict[str, Any], bounds: tuple[float, float, float, float], w: int, h: int) -> list[float]:
    """The box a file had before the import clipped it (when the shape is still that clipped box)."""
    u = own.get("unclipped")
    if isinstance(u, list) and len(u) == 4:
        x0, y0, x1, y1 = u
        if (max(x0, 0), max(y0, 0), min(x1, w), min(y1, h)) == tuple(bounds):
            return [x0, y0, x1, y1]
    return list(bounds)


# --- exporting --------------------------------------------------------------------------------------


@dataclass
class Out:
    """One annotation on its way out: what every writer reads."""

    key: bytes
    label: str
    kind: str
    geom: list[Any]
    properties: dict[str, Any]
    plane: tuple[int, int] | None

    @property
    def id(self) -> str:
        return format_id(self.key)

    def own(self, fmt: str) -> dict[str, Any]:
        v = self.properties.get(fmt)
        return v if isinstance(v, dict) else {}


@dataclass
class OutImage:
    name: str
    width: int
    height: int
    annotations: Iterable[Out]  # a list, or (export_images(..., lazy=True)) one pass read from the store


def export_images(repo: Repository, rev: str | None, image: str | None, lazy: bool = False
                  ) -> tuple[list[OutImage], dict[str, str]]:
    """The images to export (name order) with their annotations (id order), and label name -> colour.
    ``lazy``: each image's annotations are a generator read from the store as it is consumed (once), so
    a writer that streams holds one annotation at a time, not all of them."""
    chosen, labels = selected_images(repo, rev, image)
    out: list[OutImage] = []
    for name, entry in chosen:
        rec = repo.image_record(entry)
        anns = (Out(key, r["l"], r["k"], r["g"], r.get("p") or {}, (r["z"][0], r["z"][1]) if r.get("z") else None)
                for key, r in iter_records(repo, entry))
        out.append(OutImage(name, rec.width, rec.height, anns if lazy else list(anns)))
    return out, {lb.name: lb.color for lb in labels.labels}


def exterior_and_holes(kind: str, geom: list[Any]) -> list[list[list[list[float]]]]:
    """A shape's polygons as [[exterior, hole, ...], ...], rings closed (the GeoJSON form)."""
    from .. import geometry

    g = geometry.to_geojson(kind, geom)
    if g["type"] == "Polygon":
        return [g["coordinates"]]
    if g["type"] == "MultiPolygon":
        return list(g["coordinates"])
    raise InvalidInput(f"a {kind} has no rings")


def vertices(kind: str, geom: list[Any]) -> list[list[float]]:
    """The vertices of a point, multipoint or line."""
    from .. import geometry

    g = geometry.to_geojson(kind, geom)
    if g["type"] == "Point":
        return [g["coordinates"]]
    return list(g["coordinates"])


def box_of(kind: str, geom: list[Any]) -> tuple[float, float, float, float]:
    from .. import geometry

    return geometry.bounds(kind, geom)


def iter_lines(path: Path) -> Iterator[tuple[int, str]]:
    with open(path, encoding="utf-8-sig", errors="strict") as f:
        for i, line in enumerate(f, 1):
            yield i, line.rstrip("\r\n")
