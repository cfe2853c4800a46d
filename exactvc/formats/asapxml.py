"""Reading ASAP XML: a file's annotations as ``(position, attributes, coordinates)`` items, and its groups,
from a fast scan of the file's bytes or from expat (``asap`` makes records of them).

Pass 1 collects the groups (ASAP writes them after the annotations) and which annotation names are
unique (a unique name gives the id); pass 2 makes the records, a batch at a time, as the importer
consumes them. Each pass reads the file with the fast scan or, when the file is not laid out as ASAP
writes it, with expat.

The fast scan cuts the file into <Annotation>...</Annotation> blocks with bytes.find and reads each
block with regular expressions, taking a block only when expat would read the same from it: every "<"
in it is its tag, <Coordinates>, </Coordinates>, </Annotation> or a Coordinate element of the one form
ASAP writes, and it has no entity, no "]]>", no tab or newline inside an attribute; any other block is
parsed alone by expat. Blocks may hold no comment, CDATA or nested <Annotation>, only whitespace lies
between them, and what is around them (declaration, root, <Annotations>, the groups) is parsed by
expat as one document with the blocks left out; otherwise (another encoding, a DOCTYPE, comments
between annotations) the whole file goes through expat (slower, the same records).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any
from xml.parsers import expat

from ..errors import InvalidInput

Coord = tuple[Any, Any, Any]  # Order, X, Y of a Coordinate: text (str, or bytes from the fast scan), None if absent
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
