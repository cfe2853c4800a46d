"""COCO instances JSON in and out (see docs/formats.md for what maps to what).

In: ``images`` (one a slide, matched by ``file_name``), ``categories`` (ids with gaps;
the name is the label), ``annotations``: ``segmentation`` polygons (several rings are
several parts: COCO has no holes), RLE masks (``{"size": [h, w], "counts": [...] | "..."}``,
column-major, converted to their exact pixel outline with holes), else ``keypoints``
(points), else ``bbox`` (a box; ``[x, y, w, h]``, or ``[x1, y1, x2, y2]`` as MIDOG writes,
detected or forced with ``bbox="xyxy"``). Kept under the ``coco`` property: the
annotation ``id``, ``category_id``, ``iscrowd``, ``area`` and every non-standard key
(``attributes``, ``score``, ...). ``exact_id`` (written by our export) restores the id.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any, BinaryIO

import orjson

from ..errors import InvalidInput
from .common import (
    NAMESPACES,
    UNCLASSIFIED,
    Batch,
    PartsUnreadable,
    ReadResult,
    Record,
    SourceImage,
    derived_id,
    export_images,
    exterior_and_holes,
    rings_geom,
    unclipped,
    uuid_key,
    vertices,
)
from .importer import CHECK_BATCH, PARALLEL_BLOCK
from .jsonstream import ArrayMember, NoRuns

FMT = "coco"
_STANDARD = frozenset({"id", "image_id", "category_id", "segmentation", "bbox", "area", "iscrowd",
                       "keypoints", "num_keypoints", "exact_id", "exact_properties"})


def detect(head: bytes) -> bool:
    return head[:1] == b"{" and (b'"annotations"' in head or b'"categories"' in head or b'"images"' in head) \
        and b'"elements"' not in head


class _BboxVote:
    """Which box layout a file uses (``auto``: xyxy when every box could be corners and nothing says
    xywh: an ``area``, a segmentation, a box whose "x2" is not right of x1), fed one annotation at a time."""

    def __init__(self, mode: str) -> None:
        if mode not in ("auto", "xywh", "xyxy"):
            raise InvalidInput(f"unknown bbox layout {mode!r} (auto, xywh or xyxy)")
        self.mode = None if mode == "auto" else mode
        self.boxes = 0

    def see(self, a: Any) -> None:
        if self.mode is not None or not isinstance(a, dict):
            return
        if "area" in a or a.get("segmentation"):
            self.mode = "xywh"
            return
        b = a.get("bbox")
        if isinstance(b, list) and len(b) == 4:
            self.boxes += 1
            try:
                if not (b[2] > b[0] and b[3] > b[1]):
                    self.mode = "xywh"
            except TypeError:
                self.mode = "xywh"

    def result(self) -> str:
        return self.mode or ("xyxy" if self.boxes else "xywh")


def _ring(flat: Any, where: str) -> list[Any]:
    if not isinstance(flat, list) or len(flat) % 2 or len(flat) < 6:
        raise InvalidInput(f"{where}: a segmentation polygon must list x, y pairs, at least 3 vertices")
    return list(zip(flat[0::2], flat[1::2], strict=True))  # (x, y) tuples: what the geometry code reads


def _geometry(a: dict[str, Any], mode: str, where: str) -> dict[str, Any]:
    seg = a.get("segmentation")
    if isinstance(seg, dict):
        from .masks import coco_counts, mask_to_geojson, runs_to_mask

        size = seg.get("size")
        if not (isinstance(size, list) and len(size) == 2 and all(isinstance(v, int) for v in size)):
            raise InvalidInput(f"{where}: RLE size must be [height, width]")
        try:
            counts = coco_counts(seg.get("counts"))
            return mask_to_geojson(runs_to_mask(counts, size[0], size[1], column_major=True))
        except InvalidInput as exc:
            raise InvalidInput(f"{where}: {exc.message}") from None
    if isinstance(seg, list) and seg:
        return rings_geom([_ring(r, where) for r in seg], parts=True)
    kp = a.get("keypoints")
    if isinstance(kp, list) and kp:
        if len(kp) % 3:
            raise InvalidInput(f"{where}: keypoints must be x, y, visibility triples")
        pts = [[kp[i], kp[i + 1]] for i in range(0, len(kp), 3) if kp[i + 2]]
        if pts:
            return {"type": "Point", "coordinates": pts[0]} if len(pts) == 1 else \
                {"type": "MultiPoint", "coordinates": pts}
    b = a.get("bbox")
    if not (isinstance(b, list) and len(b) == 4):
        raise InvalidInput(f"{where}: no segmentation, keypoints or bbox")
    x, y, c, d = b
    x1, y1 = (c, d) if mode == "xyxy" else (x + c, y + d)
    return {"type": "Polygon", "coordinates": [[[x, y], [x1, y], [x1, y1], [x, y1], [x, y]]], "clip": FMT}


def _layout(doc: Any, path: Path) -> tuple[dict[Any, dict[str, Any]], dict[Any, SourceImage]]:
    """Categories by id and images by id of a document (its annotations not needed)."""
    if isinstance(doc, list):  # a results file: a bare list of annotations
        doc = {}
    if not isinstance(doc, dict):
        raise InvalidInput(f"{path}: not a COCO instances file (no annotations list)")
    if "annotations" in doc and not isinstance(doc["annotations"], list):
        raise InvalidInput(f"{path}: not a COCO instances file (no annotations list)")
    cats: dict[Any, dict[str, Any]] = {}
    for c in doc.get("categories") or []:
        if isinstance(c, dict) and "id" in c:
            cats[c["id"]] = c
    images: dict[Any, SourceImage] = {}
    for im in doc.get("images") or []:
        if not isinstance(im, dict) or "id" not in im:
            raise InvalidInput(f"{path}: an image without an id")
        if im["id"] in images:
            raise InvalidInput(f"{path}: image id {im['id']} appears twice")
        name = im.get("file_name")
        images[im["id"]] = SourceImage(str(name) if name is not None else str(im["id"]),
                                       width=im.get("width"), height=im.get("height"), streamed=False)
    return cats, images


def read(path: Path, bbox: str = "auto") -> ReadResult:
    """Streamed: the ``annotations`` array is read an element at a time (``jsonstream.ArrayMember``) and
    handed on as records in batches; ``images`` and ``categories`` come from what precedes the array or,
    when they follow it (or the file has several images, or the box layout is not settled by the first
    annotations), from a first pass over the file. Memory: the images, the categories and a batch."""
    vote = _BboxVote(bbox)
    first = ArrayMember(path, "annotations")
    it = iter(first)
    try:
        head = next(it)
        has_any = True
    except StopIteration:
        head, has_any = None, False
    if first.skeleton is not None and first.header == b"":  # no annotations member: the whole document
        cats, images = _layout(first.skeleton, path)
        return ReadResult(list(images.values()) or [SourceImage(None)])
    hdr = first.header
    try:
        doc0 = orjson.loads(hdr + (b"]" if hdr.lstrip()[:1] == b"[" else b"]}"))
    except orjson.JSONDecodeError:
        doc0 = None
    known = isinstance(doc0, list) or (isinstance(doc0, dict) and "images" in doc0 and "categories" in doc0)
    with_records: set[Any] = set()
    if known:
        cats, images = _layout(doc0, path)
    if not known or len(images) > 1:
        # a first pass: the images and categories after the annotations, which images have annotations
        for a in _chain(head, has_any, it):
            vote.see(a)
            with_records.add(a.get("image_id") if isinstance(a, dict) else None)
        cats, images = _layout(first.skeleton, path)
        pass2: Iterator[Any] = iter(ArrayMember(path, "annotations"))
    else:
        vote.see(head)
        if vote.mode is None and has_any:  # settled by the first annotations, as a rule
            for a in ArrayMember(path, "annotations"):
                vote.see(a)
                if vote.mode is not None:
                    break
        pass2 = _chain(head, has_any, it)
        with_records = set(images) if has_any else set()
    mode = vote.result()
    none_src = SourceImage(None, streamed=has_any)
    for iid, src in images.items():
        src.streamed = iid in with_records
    if not has_any:
        return ReadResult(list(images.values()) or [none_src])
    srcs = list(images.values())
    if not images:
        srcs = [none_src]

    def stream() -> Iterator[Batch]:
        pending: dict[int, tuple[SourceImage, list[Record], list[str]]] = {}
        colors: dict[Any, str | None] = {}
        for n, a in enumerate(pass2):
            aid = a.get("id") if isinstance(a, dict) else None
            where = f"annotation {n}" + (f" (id {aid})" if aid is not None else "")
            if not isinstance(a, dict):
                raise InvalidInput(f"{path}: {where}: not a JSON object")
            src = images.get(a.get("image_id"))
            if src is None:
                if images or "image_id" in a:
                    raise InvalidInput(f"{path}: {where}: image_id {a.get('image_id')!r} is not in images")
                src = none_src
            rec = _record(path, a, n, aid, where, src, cats, colors, mode)
            src.take(rec, n)
            got = pending.get(id(src))
            if got is None:
                got = pending[id(src)] = (src, [], [])
            got[1].append(rec)
            got[2].append(where)
            if len(got[1]) >= CHECK_BATCH:
                yield got
                del pending[id(src)]
        yield from pending.values()

    if len(srcs) != 1:
        return ReadResult(srcs, stream=stream)
    only = srcs[0]

    def parts() -> Iterator[bytes]:  # runs of raw annotations, for worker processes
        try:
            yield from ArrayMember(path, "annotations").runs(PARALLEL_BLOCK)
        except NoRuns:
            raise PartsUnreadable from None

    def part_records(run: bytes) -> tuple[list[Record], list[str]]:
        try:
            objs = orjson.loads(b"[" + run + b"]")
        except orjson.JSONDecodeError:
            raise PartsUnreadable from None
        colors: dict[Any, str | None] = {}
        recs: list[Record] = []
        wheres: list[str] = []
        for j, a in enumerate(objs):
            if not isinstance(a, dict) or (images.get(a.get("image_id")) is not only
                                           and (images or "image_id" in a)):
                raise PartsUnreadable  # the stream names the problem
            aid = a.get("id")
            where = "annotation" + (f" (id {aid})" if aid is not None else "")
            rec = _record(path, a, j, aid, where, only, cats, colors, mode)
            rec.index = j
            recs.append(rec)
            wheres.append(where)
        return recs, wheres

    # workers' errors do not know the annotation's place in the file: the stream then reads it again
    return ReadResult(srcs, stream=stream, parts=parts, part_records=part_records, parts_exact=False)


def _chain(head: Any, has_any: bool, rest: Iterator[Any]) -> Iterator[Any]:
    if has_any:
        yield head
        yield from rest


def _record(path: Path, a: dict[str, Any], n: int, aid: Any, where: str, src: SourceImage,
            cats: dict[Any, dict[str, Any]], colors: dict[Any, str | None], mode: str) -> Record:
    cid = a.get("category_id")
    cat = cats.get(cid)
    if cat is None and cid is not None and cats:
        raise InvalidInput(f"{path}: {where}: category_id {cid!r} is not in categories")
    label = str(cat["name"]) if cat is not None and cat.get("name") else (
        UNCLASSIFIED if cid is None else str(cid))
    try:
        geom = _geometry(a, mode, where)
    except InvalidInput as exc:
        raise InvalidInput(f"{path}: {exc.message}") from None
    own: dict[str, Any] = {}
    if aid is not None:
        own["id"] = aid
    if cid is not None:
        own["category_id"] = cid
    if a.get("iscrowd"):
        own["iscrowd"] = a["iscrowd"]
    if isinstance(a.get("segmentation"), dict):
        seg = a["segmentation"]
        own["rle"] = {"size": seg["size"], "compressed": isinstance(seg.get("counts"), str)}
    if "area" in a:
        own["area"] = a["area"]
    for k, v in a.items():
        if k not in _STANDARD and k not in ("rle", "unclipped"):
            own[k] = v
    props: dict[str, Any] = {}
    extra = a.get("exact_properties")
    if isinstance(extra, dict):
        props.update(extra)
    props[FMT] = own
    key = uuid_key(a.get("exact_id")) or (derived_id(FMT, src.name or "", aid) if aid is not None else None)
    color = colors[cid] if cid in colors else colors.setdefault(cid, _cat_color(cat))
    return Record(0, key, label, color, geom, props, None)


def _cat_color(cat: dict[str, Any] | None) -> str | None:
    from .common import parse_color

    return parse_color(cat.get("color")) if cat else None


# --- export -----------------------------------------------------------------------------------------


def _seg(o: Any, width: int, height: int) -> tuple[Any, list[float], float, dict[str, Any]]:
    """segmentation, bbox [x, y, w, h], area and extra keys of one annotation."""
    import shapely

    from .. import geometry

    x0, y0, x1, y1 = geometry.bounds(o.kind, o.geom)
    if o.kind == "box":
        x0, y0, x1, y1 = unclipped(o.own(FMT), (x0, y0, x1, y1), width, height)
    bbox = [x0, y0, x1 - x0, y1 - y0]
    extra: dict[str, Any] = {}
    if o.kind in ("point", "multipoint"):
        pts = vertices(o.kind, o.geom)
        extra["keypoints"] = [v for p in pts for v in (p[0], p[1], 2)]
        extra["num_keypoints"] = len(pts)
        return [], bbox, 0, extra
    own = o.own(FMT)
    area = float(shapely.area(geometry.to_shapely(o.kind, o.geom))) if o.kind != "box" else float(bbox[2] * bbox[3])
    rle = own.get("rle")
    if o.kind in ("polygon", "multipolygon") and isinstance(rle, dict):
        from .masks import coco_counts_string, geojson_to_mask, mask_runs

        h, w = rle.get("size", [height, width])
        mask = geojson_to_mask(geometry.to_geojson(o.kind, o.geom), 0, 0, w, h)
        counts: Any = mask_runs(mask, column_major=True)
        if rle.get("compressed"):
            counts = coco_counts_string(counts)
        return {"size": [h, w], "counts": counts}, bbox, int(mask.sum()), extra
    if o.kind == "box":
        return [], bbox, area, extra  # a box is its bbox (a 4-vertex segmentation would read back as a polygon)
    rings = [poly[0] for poly in exterior_and_holes(o.kind, o.geom)]  # COCO polygons have no holes
    return [[v for p in r[:-1] for v in p] for r in rings], bbox, area, extra


def _area(v: Any) -> Any:
    """Areas as floats (the store keeps 2500.0 as 2500: one form so exports stay byte-identical)."""
    return float(v) if isinstance(v, (int, float)) and not isinstance(v, bool) else v


FLUSH = 4096  # annotations per write of the streamed export


def export(repo: Any, rev: str | None, image: str | None, out: BinaryIO) -> int:
    """One COCO instances file for the selected images; lines are dropped (COCO has no lines).

    Streamed: a first pass over the store collects categories and the ids in use, a second writes the
    annotations one by one (the ``annotations`` array comes last in the document), so memory does not
    grow with the annotation count; the bytes are those of ``orjson.dumps`` of the whole document."""
    imgs, colors = export_images(repo, rev, image, lazy=True)
    cat_ids: dict[str, int] = {}
    wanted: dict[str, set[int]] = {}
    used_ids: set[Any] = set()
    for im in imgs:
        for o in im.annotations:
            own = o.own(FMT)
            cid = own.get("category_id")
            wanted.setdefault(o.label, set())
            if isinstance(cid, int) and not isinstance(cid, bool):
                wanted[o.label].add(cid)
            i = own.get("id")
            if isinstance(i, int) and not isinstance(i, bool):
                used_ids.add(i)
    taken: set[int] = set()
    for name in sorted(wanted):
        ids = wanted[name]
        if len(ids) == 1 and next(iter(ids)) not in taken:
            cat_ids[name] = next(iter(ids))
            taken.add(cat_ids[name])
    nxt = max(taken, default=0) + 1
    for name in sorted(wanted):
        if name not in cat_ids:
            cat_ids[name] = nxt
            taken.add(nxt)
            nxt += 1
    next_id = max(used_ids, default=0) + 1
    del used_ids
    seen: set[Any] = set()
    images = [{"id": n, "file_name": im.name, "width": im.width, "height": im.height}
              for n, im in enumerate(imgs, 1)]
    cats = [{"id": cid, "name": name, "supercategory": "", **({"color": colors[name]} if name in colors else {})}
            for name, cid in sorted(cat_ids.items(), key=lambda kv: kv[1])]
    head = orjson.dumps({"info": {"description": "exported by exactvc"}, "licenses": [], "images": images,
                         "categories": cats, "annotations": []})
    assert head.endswith(b"[]}")
    out.write(head[:-2])
    count = 0
    buf: list[bytes] = []
    lazy, _ = export_images(repo, rev, image, lazy=True)  # the second pass
    for n, im in enumerate(lazy, 1):
        for o in im.annotations:
            if o.kind == "line":
                continue
            own = o.own(FMT)
            aid = own.get("id")
            if not isinstance(aid, int) or isinstance(aid, bool) or aid in seen:
                aid = next_id
                next_id += 1
            seen.add(aid)
            seg, bbox, area, extra = _seg(o, im.width, im.height)
            a: dict[str, Any] = {"id": aid, "image_id": n, "category_id": cat_ids[o.label],
                                 "segmentation": seg, "area": _area(own.get("area", area)), "bbox": bbox,
                                 "iscrowd": own.get("iscrowd", 1 if isinstance(seg, dict) else 0)}
            a.update(extra)
            for k, v in sorted(own.items()):
                if k not in _STANDARD and k not in ("rle", "unclipped"):
                    a[k] = v
            a["exact_id"] = o.id
            generic = {k: v for k, v in o.properties.items() if k not in NAMESPACES}
            if generic:
                a["exact_properties"] = generic
            buf.append(orjson.dumps(a))
            count += 1
            if len(buf) >= FLUSH:
                out.write((b"," if count > len(buf) else b"") + b",".join(buf))
                buf.clear()
    if buf:
        out.write((b"," if count > len(buf) else b"") + b",".join(buf))
    out.write(b"]}\n")
    return count

