"""ASAP XML in and out (see docs/formats.md for what maps to what).

In: ``Dot`` (a point), ``PointSet`` (a multipoint), ``Measurement`` (a 2-point line),
``Rectangle`` (a box when axis-aligned, else a polygon), ``Polygon`` and ``Spline``
(polygons; a spline keeps its control points, as ASAP stores them). Vertices are put in
``Order`` order (a gap or a repeat is an error, as ASAP would load (0, 0) points).
``PartOfGroup`` is the label (``"None"``: unclassified); a group that is not declared
is an error (ASAP itself loads nothing then). Groups nest; their colours and
attributes are kept. Comma decimal separators (``X="12711,2998"``) are read.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any, BinaryIO
from xml.parsers import expat
from xml.sax.saxutils import quoteattr

import numpy as np

from ..errors import InvalidInput
from .common import (
    UNCLASSIFIED,
    Batch,
    OutImage,
    ReadResult,
    Record,
    SourceImage,
    box_geom,
    derived_id,
    export_images,
    exterior_and_holes,
    num,
    parse_color,
    uuid_key,
    vertices,
)
from .importer import CHECK_BATCH

FMT = "asap"
TYPES = ("Dot", "PointSet", "Measurement", "Rectangle", "Polygon", "Spline")
DEFAULT_COLOR = "#F4FA58"


def _text(v: str | bytes) -> str:
    return v.decode("utf-8", "replace") if isinstance(v, bytes) else v


def _float(v: str | bytes | None, where: str, axis: str) -> float:
    if v is None:
        raise InvalidInput(f"{where}: a Coordinate without {axis}")
    try:
        return float(_text(v).replace(",", ".").strip())
    except ValueError:
        raise InvalidInput(f"{where}: {axis}={_text(v)!r} is not a number") from None


Coord = tuple[Any, Any, Any]  # Order, X, Y of a Coordinate: text (str, or bytes from the fast scan), None if absent
_ORDERS: list[str] = []
_BORDERS: list[bytes] = []


def _orders(n: int, raw: bool) -> list[Any]:
    """``["0", "1", ..., str(n - 1)]`` (bytes when ``raw``; grown once, sliced after)."""
    while len(_ORDERS) < n:
        _ORDERS.extend(str(i) for i in range(len(_ORDERS), max(n, 2 * len(_ORDERS), 64)))
        _BORDERS[:] = [o.encode() for o in _ORDERS]
    return _BORDERS[:n] if raw else _ORDERS[:n]


def _coords(cs: list[Coord], where: str) -> list[Any]:
    """Vertices from an annotation's ``Coordinate`` elements, in ``Order`` order."""
    try:  # the usual file: Order 0..n-1 in document order, dot decimals (list operations in C)
        pts = [(float(x), float(y)) for _o, x, y in cs]
        if cs and [c[0] for c in cs] == _orders(len(cs), isinstance(cs[0][0], bytes)):
            return pts
    except (TypeError, ValueError):
        pass
    slots: dict[int, list[float]] = {}
    for o, x, y in cs:
        try:
            order = int(o) if o is not None else len(slots)
        except ValueError:
            raise InvalidInput(f"{where}: Order={_text(o)!r} is not an integer") from None
        if order in slots:
            raise InvalidInput(f"{where}: Order {order} appears twice (ASAP would load a (0, 0) vertex)")
        slots[order] = [_float(x, where, "X"), _float(y, where, "Y")]
    if sorted(slots) != list(range(len(slots))):
        missing = sorted(set(range(max(slots, default=0) + 1)) - set(slots))
        raise InvalidInput(f"{where}: Order has gaps (missing {missing[:5]}; ASAP would load (0, 0) vertices)")
    return [slots[i] for i in range(len(slots))]


def _geometry(t: str, pts: list[Any], where: str) -> dict[str, Any]:
    if not pts:
        raise InvalidInput(f"{where}: no coordinates")
    if t == "Dot":
        if len(pts) != 1:
            raise InvalidInput(f"{where}: a Dot has {len(pts)} coordinates, not 1")
        return {"type": "Point", "coordinates": pts[0]}
    if t == "PointSet":
        return {"type": "MultiPoint", "coordinates": pts}
    if t == "Measurement":
        if len(pts) != 2:
            raise InvalidInput(f"{where}: a Measurement has {len(pts)} coordinates, not 2")
        return {"type": "LineString", "coordinates": pts}
    if t == "Rectangle" and len(pts) == 4:
        xs = {p[0] for p in pts}
        ys = {p[1] for p in pts}
        if len(xs) == 2 and len(ys) == 2:
            return box_geom(min(xs), min(ys), max(xs), max(ys), kind="box")
    return {"type": "Polygon", "coordinates": [pts]}  # not closed: the geometry code closes it


def _group(g: dict[str, str], attrs: dict[str, str]) -> dict[str, Any]:
    info: dict[str, Any] = {}
    parent = g.get("PartOfGroup")
    if parent and parent != "None":
        info["parent"] = parent
    if g.get("Color"):
        info["color"] = g.get("Color")
    if attrs:
        info["attributes"] = attrs
    return info


# --- reading: two passes over the file, records streamed --------------------------------------------
#
# Pass 1 collects the groups (ASAP writes them after the annotations) and which annotation names are
# unique (a unique name gives the id); pass 2 makes the records, a batch at a time, as the importer
# consumes them. Each pass reads the file with the fast scan or, when the file is not laid out as ASAP
# writes it, with expat.
#
# The fast scan cuts the file into <Annotation>...</Annotation> blocks with bytes.find and reads each
# block with regular expressions, taking a block only when expat would read the same from it: every "<"
# in it is its tag, <Coordinates>, </Coordinates>, </Annotation> or a Coordinate element of the one form
# ASAP writes, and it has no entity, no "]]>", no tab or newline inside an attribute; any other block is
# parsed alone by expat. Blocks may hold no comment, CDATA or nested <Annotation>, only whitespace lies
# between them, and what is around them (declaration, root, <Annotations>, the groups) is parsed by
# expat as one document with the blocks left out; otherwise (another encoding, a DOCTYPE, comments
# between annotations) the whole file goes through expat (slower, the same records).

Item = tuple[int, dict[str, str], "list[Coord] | None"]  # position, attributes, coordinates (None: not asked)
GroupFn = Callable[[dict[str, str], dict[str, str]], None]
CHUNK = 8 << 20
_OPEN = re.compile(rb"<Annotation[\s>/]")
_CLOSE = b"</Annotation>"
_SPACE = re.compile(rb"\s*")
_TAG = re.compile(rb'<Annotation((?:\s+[A-Za-z_][-\w.]*\s*=\s*"[^"<&\t\n\r]*")*)\s*>\s*<Coordinates>')
_ATTR = re.compile(rb'([A-Za-z_][-\w.]*)\s*=\s*"([^"<&\t\n\r]*)"')  # expat would turn a tab or newline into " "
_COORD = re.compile(rb'<Coordinate\s+Order="([^"<&]*)"\s+X="([^"<&]*)"\s+Y="([^"<&]*)"\s*/>')
_TAIL = re.compile(rb"</Coordinates>\s*</Annotation>\Z")
_ENDS = re.compile(rb"</Coordinates>\s*</Annotation>")
_STD_TAG = re.compile(rb'<Annotation Name="([^"<&\t\n\r]*)" Type="([^"<&\t\n\r]*)" '
                      rb'PartOfGroup="([^"<&\t\n\r]*)" Color="([^"<&\t\n\r]*)"\s*>\s*<Coordinates>')  # as ASAP writes
_ENCODING = re.compile(rb"""^\s*<\?xml[^>]*encoding\s*=\s*["']([^"']+)["']""")
_UTF8 = (b"utf-8", b"utf8", b"us-ascii", b"ascii")


class _Irregular(Exception):
    """The file is not laid out as the fast scan reads it: read it with expat."""


def _fast_items(path: Path, coords: bool, on_group: GroupFn, layout: list[int] | None = None) -> Iterator[Item]:
    """The annotations of a regular file (see above), else _Irregular; ``layout`` gets the file offsets
    of the first annotation and of what follows the last."""
    base = 0  # file offset of buf[0]
    with open(path, "rb") as f:
        buf = f.read(CHUNK)
        eof = len(buf) < CHUNK
        m = _ENCODING.match(buf[:512])
        if buf.startswith((b"\xef\xbb\xbf", b"\xff\xfe", b"\xfe\xff")) or (
                m is not None and m.group(1).lower() not in _UTF8):
            raise _Irregular
        first = _OPEN.search(buf)
        while first is None and not eof:  # a head (what precedes the first annotation) longer than a chunk
            more = f.read(CHUNK)
            eof = len(more) < CHUNK
            buf += more
            first = _OPEN.search(buf, max(0, len(buf) - len(more) - 16))
        if first is None:
            _around(buf, None, on_group)  # no annotation
            return
        head = buf[:first.start()]
        if b"<!" in head:
            raise _Irregular  # a DOCTYPE (entities) or a comment
        pos, n = first.start(), 0
        if layout is not None:
            layout.append(pos)
        while True:  # buf[pos:] starts with an annotation
            end = buf.find(_CLOSE, pos)
            while end < 0:
                if eof:
                    raise _Irregular  # unclosed: expat names the problem
                more = f.read(CHUNK)
                eof = len(more) < CHUNK
                base += pos
                buf, pos = buf[pos:] + more, 0
                end = buf.find(_CLOSE, max(0, len(buf) - len(more) - len(_CLOSE)))
            end += len(_CLOSE)
            attrs = None if coords else _survey_name(buf, pos, end)  # the survey: only the name
            if attrs is None:
                attrs, cs = _block(buf[pos:end], coords)
            else:
                cs = None
            yield n, attrs, cs
            n += 1
            j = _SPACE.match(buf, end).end()  # type: ignore[union-attr]
            while j >= len(buf) and not eof:
                more = f.read(CHUNK)
                eof = len(more) < CHUNK
                base += end
                buf, end = buf[end:] + more, 0
                j = _SPACE.match(buf, 0).end()  # type: ignore[union-attr]
            if _OPEN.match(buf, j) is None:
                break
            if len(buf) - j < 1 << 16 and not eof:  # keep the next block's start in the buffer
                more = f.read(CHUNK)
                eof = len(more) < CHUNK
                base += j
                buf, j = buf[j:] + more, 0
            pos = j
        if layout is not None:
            layout.append(base + end)
        tail = buf[j:] + (f.read() if not eof else b"")
    if _OPEN.search(tail):
        raise _Irregular  # annotations after something other than whitespace
    _around(head, tail, on_group)


def _survey_name(buf: bytes, pos: int, end: int) -> dict[str, str] | None:
    """The Name of the annotation block ``buf[pos:end]`` as ``_block`` reads it, when its tag is in ASAP's
    own form and the block has nothing ``_block`` would refuse; None otherwise."""
    m = _STD_TAG.match(buf, pos)
    if m is None or m.end() > end or buf.find(b"&", pos, end) >= 0 or buf.find(b"<!", pos, end) >= 0 or \
            buf.find(b"]]>", pos, end) >= 0 or buf.find(b"<Annotation", pos + 1, end) >= 0:
        return None
    try:
        return {"Name": m.group(1).decode()}
    except UnicodeDecodeError:
        return None


def _block(block: bytes, coords: bool) -> tuple[dict[str, str], list[Coord] | None]:
    """Attributes and coordinates of one <Annotation> element (see the comment above)."""
    if b"<!" in block or _OPEN.search(block, 1) is not None:
        raise _Irregular
    m = _TAG.match(block)
    if m is not None and b"&" not in block and b"]]>" not in block:
        try:
            pairs = [(k.decode(), v.decode()) for k, v in _ATTR.findall(m.group(1))]
        except UnicodeDecodeError:
            pairs = []
        attrs = dict(pairs)
        if attrs and len(attrs) == len(pairs) == m.group(1).count(b"="):
            if not coords:
                return attrs, None
            cs = _COORD.findall(block, m.end())
            if block.count(b"<") == len(cs) + 4 and _TAIL.search(block) is not None:
                return attrs, cs
    got: list[Item] = []
    try:
        _expat_parse([block], got, lambda _g, _a: None, coords, root=None)
    except expat.ExpatError:
        raise _Irregular from None
    if len(got) != 1:
        raise _Irregular
    return got[0][1], got[0][2]


def _run_items(run: bytes) -> list[tuple[dict[str, str], list[Coord]]] | None:
    """The annotations of a run of blocks (see ``ReadResult.parts``) when every block is in the form
    ``_block`` reads fast, checked for the whole run at once (every "<" an annotation's tag with
    <Coordinates>, a Coordinate, or </Coordinates></Annotation>); None otherwise (then block by block)."""
    if b"&" in run or b"]]>" in run or b"<!" in run:
        return None
    out: list[tuple[dict[str, str], list[Coord]]] = []
    every = _COORD.findall(run)  # one pass for the run's coordinates, handed out by each block's count
    pos, ncoords, size = 0, 0, len(run)
    find, count, std, tag, space = run.find, run.count, _STD_TAG.match, _TAG.match, _SPACE.match
    try:
        while pos < size:
            end = find(_CLOSE, pos)
            if end < 0:
                return None
            m = std(run, pos)
            if m is not None:
                name, typ, group, color = m.groups()
                attrs = {"Name": name.decode(), "Type": typ.decode(), "PartOfGroup": group.decode(),
                         "Color": color.decode()}
            else:
                m = tag(run, pos)
                if m is None:
                    return None
                pairs = [(k.decode(), v.decode()) for k, v in _ATTR.findall(m.group(1))]
                attrs = dict(pairs)
                if not attrs or len(attrs) != len(pairs) or len(pairs) != m.group(1).count(b"="):
                    return None
            c = count(b"<Coordinate", m.end(), end)
            out.append((attrs, every[ncoords:ncoords + c]))
            ncoords += c
            pos = space(run, end + len(_CLOSE)).end()  # type: ignore[union-attr]
    except UnicodeDecodeError:
        return None
    # every "<Coordinate" one of the coordinates found (so each block got its own), every "<" accounted for
    if ncoords != len(every):
        return None
    if run.count(b"<") != ncoords + 4 * len(out) or len(_ENDS.findall(run)) != len(out):
        return None
    return out


def _around(head: bytes, tail: bytes | None, on_group: GroupFn) -> None:
    """Parse what surrounds the annotation blocks as one document; the blocks were inside <Annotations>."""
    got: list[Item] = []
    try:
        if tail is None:
            _expat_parse([head], got, on_group, False)
        else:
            _expat_parse([head, tail], got, on_group, False, junction=["ASAP_Annotations", "Annotations"])
    except expat.ExpatError:
        raise _Irregular from None
    if got:
        raise _Irregular  # an Annotation element outside the blocks


def _expat_parse(pieces: Iterable[bytes], out: list[Item], on_group: GroupFn, coords: bool,
                 junction: list[str] | None = None, root: str | None = "ASAP_Annotations") -> None:
    """Parse ``pieces`` of one document with expat's callbacks (no element objects), annotations appended
    to ``out``; with ``junction``, the element stack between the pieces must be that (else _Irregular)."""
    for _ in _expat_gen(pieces, out, on_group, coords, junction, root):
        pass


def _expat_gen(pieces: Iterable[bytes], out: list[Item], on_group: GroupFn, coords: bool,
               junction: list[str] | None = None, root: str | None = "ASAP_Annotations") -> Iterator[None]:
    """The parse of ``_expat_parse`` as a generator: yields after each piece (``out`` then holds what it read)."""
    stack: list[str] = []
    ann: dict[str, str] | None = None
    cs: list[Coord] = []
    grp: dict[str, str] | None = None
    gattrs: dict[str, str] = {}
    root_tag: list[str] = []
    n = 0

    def start(tag: str, attrs: dict[str, str]) -> None:
        nonlocal ann, grp, gattrs
        parent = stack[-1] if stack else None
        if parent is None:
            root_tag.append(tag)
        stack.append(tag)
        if tag == "Coordinate":
            if ann is not None and parent == "Coordinates" and len(stack) >= 3 and stack[-3] == "Annotation":
                cs.append((attrs.get("Order"), attrs.get("X"), attrs.get("Y")))
        elif tag == "Annotation":
            ann = attrs
            cs.clear()
        elif tag == "Group":
            grp, gattrs = attrs, {}
        elif tag == "Attribute" and grp is not None and parent == "Attributes":
            gattrs.update(attrs)

    def end(tag: str) -> None:
        nonlocal ann, grp, n
        stack.pop()
        if tag == "Annotation" and ann is not None:
            out.append((n, ann, list(cs) if coords else None))
            n += 1
            ann = None
        elif tag == "Group" and grp is not None:
            on_group(grp, gattrs)
            grp = None

    parser = expat.ParserCreate()
    parser.StartElementHandler = start
    parser.EndElementHandler = end
    it = iter(pieces)
    piece = next(it, b"")
    while True:
        nxt = next(it, None)
        parser.Parse(piece, nxt is None)
        if nxt is not None and junction is not None and stack != junction:
            raise _Irregular
        yield None
        if nxt is None:
            break
        piece = nxt
    if root is not None and (not root_tag or root_tag[0] != root):
        raise _NotAsap(root_tag[0] if root_tag else None)


class _NotAsap(Exception):
    def __init__(self, root: str | None) -> None:
        super().__init__(root)
        self.root = root


def _file_pieces(path: Path) -> Iterator[bytes]:
    with open(path, "rb") as f:
        while True:
            data = f.read(1 << 20)
            if not data:
                return
            yield data


def _expat_items(path: Path, coords: bool, on_group: GroupFn) -> Iterator[Item]:
    out: list[Item] = []
    try:
        for _ in _expat_gen(_file_pieces(path), out, on_group, coords):
            yield from out
            out.clear()
    except expat.ExpatError as exc:
        raise InvalidInput(f"{path}: malformed XML: {exc}") from None


def _items(path: Path, fast: bool, coords: bool, on_group: GroupFn, layout: list[int] | None = None
           ) -> Iterator[Item]:
    try:
        if fast:
            yield from _fast_items(path, coords, on_group, layout)
        else:
            yield from _expat_items(path, coords, on_group)
    except _NotAsap as exc:
        raise InvalidInput(f"{path}: not an ASAP file (root <{exc.root}>, not <ASAP_Annotations>)") from None


RUN = 1 << 20  # bytes of annotation blocks a part (of the fast scan's files)


def read(path: Path, batch: int = CHECK_BATCH) -> ReadResult:
    """The groups and which names are unique first (pass 1), then the records streamed (pass 2):
    runs of about ``RUN`` bytes of annotations cut from the file (``ReadResult.parts``, made into records
    by ``part_records``, in worker processes for large files) or, for files the fast scan does not read,
    batches from expat (``ReadResult.stream``). Memory: the records in flight, the groups, 9 bytes an
    annotation; not the file."""
    groups: dict[str, dict[str, Any]] = {}
    hashes = bytearray()  # 8 bytes of each annotation's name
    layout: list[int] = []

    def group(g: dict[str, str], attrs: dict[str, str]) -> None:
        name = g.get("Name")
        if name is not None:
            if name in groups:
                raise InvalidInput(f"{path}: group {name!r} is declared twice (ASAP maps groups by name)")
            groups[name] = _group(g, attrs)

    fast = True
    try:
        for _n, a, _cs in _items(path, True, False, group, layout):
            nm = a.get("Name")
            hashes += hashlib.blake2b(nm.encode(), digest_size=8).digest() if nm else b"\0" * 8
    except _Irregular:
        fast = False
        groups.clear()
        hashes.clear()
        for _n, a, _cs in _items(path, False, False, group):
            nm = a.get("Name")
            hashes += hashlib.blake2b(nm.encode(), digest_size=8).digest() if nm else b"\0" * 8
    for name, info in groups.items():
        if "parent" in info and info["parent"] not in groups:
            raise InvalidInput(f"{path}: group {name!r} is part of group {info['parent']!r}, which is not declared "
                               "in <AnnotationGroups> (ASAP would load nothing)")
    h = np.frombuffer(bytes(hashes), dtype=np.uint64)
    del hashes
    _u, inverse, counts = np.unique(h, return_inverse=True, return_counts=True)
    unique_name = counts[inverse.reshape(-1)] == 1  # a byte an annotation (a hash collision: an id from "#n")
    del h, inverse, counts
    colors = {g: parse_color(info.get("color")) for g, info in groups.items()}
    chains: dict[str, dict[str, Any]] = {}
    for g in groups:
        chain: dict[str, Any] = {}
        gname = g
        while gname != "None" and gname in groups and gname not in chain:
            chain[gname] = groups[gname]
            gname = groups[gname].get("parent", "None")
        chains[g] = chain
    total = len(unique_name)
    src = SourceImage(None, streamed=total > 0)

    def record(n: int, a: dict[str, str], cs: list[Coord]) -> tuple[Record, str]:
        rec, grp, where = _annotation(path, a, cs, n)
        if grp != "None":
            if grp not in groups:
                raise InvalidInput(f"{path}: {where}: group {grp!r} is not declared in <AnnotationGroups> "
                                   "(ASAP would load nothing)")
            rec.properties[FMT]["groups"] = chains[grp]
            rec.color = colors.get(grp)
        if rec.id is None:
            nm = rec.properties.get("name")
            rec.id = derived_id(FMT, "", nm if nm and unique_name[n] else f"#{n}")
        rec.index = n  # one image: the record number is the annotation's place in the file
        return rec, where

    def stream() -> Iterator[Batch]:  # files the fast scan does not read
        recs: list[Record] = []
        wheres: list[str] = []
        seen = 0
        for n, a, cs in _items(path, False, True, lambda _g, _a: None):
            if n >= total:
                break
            rec, where = record(n, a, cs or [])
            recs.append(rec)
            wheres.append(where)
            seen = n + 1
            if len(recs) >= batch:
                yield src, recs, wheres
                recs, wheres = [], []
        if recs:
            yield src, recs, wheres
        if seen != total:
            raise InvalidInput(f"{path}: the file changed while it was read")

    def parts() -> Iterator[tuple[bytes, int]]:  # (run of whole annotation blocks, number of its first)
        first, stop = layout
        n = 0
        with open(path, "rb") as f:
            f.seek(first)
            left = stop - first
            buf = b""
            want = 2 * RUN
            while True:
                while left > 0 and len(buf) < want:
                    more = f.read(min(RUN, left))
                    if not more:
                        raise InvalidInput(f"{path}: the file changed while it was read")
                    left -= len(more)
                    buf += more
                if not buf:
                    break
                cut = _OPEN.search(buf, RUN) if len(buf) > RUN else None
                if cut is None and left > 0:
                    want = len(buf) + RUN  # one annotation longer than a run
                    continue
                want = 2 * RUN
                run, buf = (buf[:cut.start()], buf[cut.start():]) if cut is not None else (buf, b"")
                yield run, n
                n += run.count(_CLOSE)
        if n != total:
            raise InvalidInput(f"{path}: the file changed while it was read")

    def part_records(part: tuple[bytes, int]) -> tuple[list[Record], list[str]]:
        run, n = part
        recs: list[Record] = []
        wheres: list[str] = []
        fast = _run_items(run)
        if fast is not None:
            if n + len(fast) > total:
                raise InvalidInput(f"{path}: the file changed while it was read")
            for k, (a, cs) in enumerate(fast):
                rec, where = record(n + k, a, cs)
                recs.append(rec)
                wheres.append(where)
            return recs, wheres
        pos = 0
        try:
            while pos < len(run):
                end = run.find(_CLOSE, pos)
                if end < 0 or n >= total:
                    raise _Irregular
                end += len(_CLOSE)
                a, got = _block(run[pos:end], True)
                rec, where = record(n, a, got or [])
                recs.append(rec)
                wheres.append(where)
                n += 1
                pos = _SPACE.match(run, end).end()  # type: ignore[union-attr]
                if pos < len(run) and _OPEN.match(run, pos) is None:
                    raise _Irregular
        except _Irregular:
            raise InvalidInput(f"{path}: the file changed while it was read") from None
        return recs, wheres

    if fast and total:
        return ReadResult([src], parts=parts, part_records=part_records)
    return ReadResult([src], stream=stream)


def _annotation(path: Path, a: dict[str, str], cs: list[Coord], n: int) -> tuple[Record, str, str]:
    nm = a.get("Name")
    where = f"annotation {n}" + (f" ({nm!r})" if nm else "")
    t = a.get("Type", "")
    if t not in TYPES:
        raise InvalidInput(f"{path}: {where}: unknown Type {t!r} (one of {', '.join(TYPES)})")
    group = a.get("PartOfGroup") or "None"
    try:
        geom = _geometry(t, _coords(cs, where), where)
    except InvalidInput as exc:
        raise InvalidInput(f"{path}: {exc.message}") from None
    own: dict[str, Any] = {"type": t}
    if a.get("Color") and a.get("Color") != DEFAULT_COLOR:
        own["color"] = a.get("Color")
    props: dict[str, Any] = {FMT: own}
    if nm:
        props["name"] = nm
    label = UNCLASSIFIED if group == "None" else group
    return Record(0, uuid_key(nm), label, None, geom, props, None), group, where


# --- export -----------------------------------------------------------------------------------------


def _coords_xml(pts: list[list[float]]) -> str:
    return "".join(f'\t\t\t\t<Coordinate Order="{i}" X="{num(x)}" Y="{num(y)}" />\n'
                   for i, (x, y) in enumerate(pts))


FLUSH = 4096  # annotations per write of the streamed export


def export(repo: Any, rev: str | None, image: str | None, out: BinaryIO) -> int:
    """One ASAP file (ASAP files name no image: give one image, or a repository with one). Streamed:
    annotations are read from the store and written as they come (the groups, which ASAP lists after
    the annotations, are collected on the way), so memory does not grow with the annotation count."""
    imgs, colors = export_images(repo, rev, image, lazy=True)
    if len(imgs) != 1:
        from ..errors import UsageError

        raise UsageError("an ASAP file holds one image's annotations: name the image with --image")
    return write(imgs[0], colors, out)


def write(img: OutImage, colors: dict[str, str], out: BinaryIO) -> int:
    """The ASAP file of one image's annotations (any iterable, consumed once) to ``out``."""
    groups: dict[str, dict[str, Any]] = {}
    parts: list[str] = []
    n = 0
    out.write(b'<?xml version="1.0"?>\n<ASAP_Annotations>\n\t<Annotations>\n')
    for o in img.annotations:
        own = o.own(FMT)
        for g, info in (own.get("groups") or {}).items():
            groups.setdefault(g, info)
        group = "None" if o.label == UNCLASSIFIED else o.label
        if group != "None":
            groups.setdefault(group, {"color": colors.get(group, DEFAULT_COLOR).upper()})
        name = o.properties.get("name") if isinstance(o.properties.get("name"), str) else o.id
        color = str(own.get("color", DEFAULT_COLOR))
        shapes: list[tuple[str, list[list[float]]]] = []
        if o.kind == "point":
            shapes = [("Dot", vertices(o.kind, o.geom))]
        elif o.kind == "multipoint":
            shapes = [("PointSet", vertices(o.kind, o.geom))]
        elif o.kind == "line":
            pts = vertices(o.kind, o.geom)
            if len(pts) != 2:
                continue  # ASAP has no polyline: dropped (docs/formats.md)
            shapes = [("Measurement", pts)]
        elif o.kind == "box":
            from .common import box_of

            x0, y0, x1, y1 = box_of(o.kind, o.geom)
            shapes = [("Rectangle", [[x0, y0], [x1, y0], [x1, y1], [x0, y1]])]
        else:
            t = "Spline" if own.get("type") == "Spline" else "Polygon"
            polys = exterior_and_holes(o.kind, o.geom)  # holes are dropped: ASAP has none
            shapes = [(t, poly[0][:-1]) for poly in polys]
        for k, (t, pts) in enumerate(shapes):
            nm = str(name) if len(shapes) == 1 else f"{name} (part {k + 1})"
            parts.append(f"\t\t<Annotation Name={quoteattr(nm)} Type=\"{t}\" PartOfGroup={quoteattr(group)} "
                         f"Color={quoteattr(color)}>\n\t\t\t<Coordinates>\n{_coords_xml(pts)}"
                         "\t\t\t</Coordinates>\n\t\t</Annotation>\n")
        n += 1
        if len(parts) >= FLUSH:
            out.write("".join(parts).encode())
            parts.clear()
    out.write("".join(parts).encode())
    out.write(b"\t</Annotations>\n\t<AnnotationGroups>\n")
    for g in sorted(groups):
        info = groups[g]
        attrs = info.get("attributes") or {}
        a = "".join(f" {k}={quoteattr(str(v))}" for k, v in sorted(attrs.items()))
        body = f"\t\t\t<Attributes>\n\t\t\t\t<Attribute{a} />\n\t\t\t</Attributes>\n" if attrs else "\t\t\t<Attributes />\n"
        out.write((f"\t\t<Group Name={quoteattr(g)} PartOfGroup={quoteattr(info.get('parent', 'None'))} "
                   f"Color={quoteattr(info.get('color', DEFAULT_COLOR))}>\n{body}\t\t</Group>\n").encode())
    out.write(b"\t</AnnotationGroups>\n</ASAP_Annotations>\n")
    return n
