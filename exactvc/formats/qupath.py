"""QuPath GeoJSON: a streaming reader, the importer and the GeoJSON exporter.

Reading accepts what QuPath (v0.2 to v0.5) writes, compact or pretty-printed:

* a ``FeatureCollection``, a top-level array of Features, or one ``Feature``;
* ``id`` as a UUID (kept as the annotation id) or v0.2's object type
  (``"id": "PathAnnotationObject"``; the annotation then gets a new id);
* ``properties.objectType`` (or v0.3's ``object_type``);
* ``classification`` with ``name``, or ``names`` for a derived class, joined
  with ``": "`` the way QuPath displays it (``["Tumor", "Positive"]`` becomes
  the label ``"Tumor: Positive"``), its colour as ``color: [r, g, b]`` or
  v0.2's packed ``colorRGB``; a feature without a classification gets the
  label ``"unclassified"`` on import;
* ``isLocked``; ``measurements`` as a map or as v0.2's list of
  ``{"name", "value"}`` (always stored as a map; ``NaN``, which QuPath writes
  as a bare ``NaN`` token, and other non-finite values are dropped: QuPath
  reads a missing measurement as NaN);
* ``isEllipse`` and ``plane`` on the geometry (where QuPath writes them) or in
  the properties; ``nucleusGeometry`` of cell objects is kept.

What is kept in an annotation's properties so that export writes it back:
``measurements`` (a map), ``isLocked: true`` (only when locked),
``objectType`` (only when not ``"annotation"``), ``name``,
``nucleusGeometry`` and every other property key as it is. The
classification's colour only colours labels created by an import.

Streaming: the file is read in chunks; each feature is cut out by a regular
expression that proposes where an object ends and parsed by orjson, which
proves the proposal right (a proper prefix of a JSON object never parses).
When it does not parse (a "}" inside the feature, ``NaN``), the next feature's
``{"type": "Feature"`` start, then proposals whose brackets balance, then an
exact string-aware scan find the end, and Python's ``json`` (which accepts
``NaN``) parses it. Memory stays at a chunk plus one feature, whatever the
file size. (ijson was measured at 13-23 us a feature against 5 us here, and
it rejects the ``NaN`` QuPath writes.)

Importing checks every feature as the Editor would, in batches (bounds and
shapely validity of polygons vectorised), and builds the image's tree in key
order: ids that arrive in order (exactvc's own) go straight in, others (QuPath's
random UUIDs) are sorted through run files on disk and merged, so each batch
only extends the tree. Large files are converted by forked worker processes.

Export writes a FeatureCollection in one fixed byte form: features sorted by
image then id, one feature per line, keys in a fixed order (``type``, ``id``,
``geometry`` with ``plane`` and ``isEllipse`` where QuPath puts them,
``nucleusGeometry``, ``properties``: ``objectType``, ``classification`` (not for
"unclassified"), ``image`` (multi-image exports only), then the kept
properties sorted), numbers as orjson writes them (shortest round-trip form),
so one commit always exports to the same bytes.
"""

from __future__ import annotations

import contextlib
import gc
import heapq
import json
import math
import os
import re
import tempfile
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO

import msgpack
import numpy as np
import orjson

from .. import geometry, tree
from ..annotation import make_record, normalize_plane
from ..edit import COMPATIBLE as _COMPATIBLE
from ..edit import set_working_tree
from ..errors import ExactError, InvalidGeometry, InvalidInput, NotFound, UnknownLabel, UsageError
from ..ids import format_id, new_annotation_id
from ..objects import ImageEntry, LabelSet
from ..store import Pending

if TYPE_CHECKING:
    from ..repo import Repository

Progress = Callable[[int, int], None]

UNCLASSIFIED = "unclassified"
CHUNK = 8 << 20  # bytes read at a time
CHECK_BATCH = 8192  # polygons validated together
PARALLEL_MIN_BYTES = 16 << 20  # files this large are converted by worker processes
PARALLEL_CHUNK = 2048  # features a worker task (when this process cuts features)
PARALLEL_BLOCK = 2 << 20  # bytes of raw features a worker task (when the workers parse)
BLOCK_SPAN_MAX = 64 << 20  # bytes read without finding a cut point before falling back to feature by feature
MAX_WORKERS = 4
INFLIGHT = 8  # tasks queued a worker: enough to keep workers busy while this process writes a batch
_LEGACY_TYPES = {
    "PathAnnotationObject": "annotation",
    "PathDetectionObject": "detection",
    "PathCellObject": "cell",
    "PathTileObject": "tile",
    "TMACoreObject": "tmaCore",
    "PathRootObject": "root",
}
_LABEL_SHAPE = {
    "point": "point",
    "multipoint": "point",
    "polygon": "polygon",
    "multipolygon": "polygon",
    "line": "line",
    "ellipse": "ellipse",
    "box": "box",
}


@dataclass(slots=True)
class Feature:
    """One QuPath object, read from GeoJSON (see the module docstring for the mapping)."""

    index: int  # position in the file, from 0
    id: bytes | None  # 16-byte UUID, None when the file has none (v0.2)
    label: str | None  # classification, None when unclassified
    color: str | None  # classification colour, '#rrggbb'
    geometry: dict[str, Any]  # GeoJSON geometry; "isEllipse": True when QuPath marked an ellipse
    properties: dict[str, Any]  # what the annotation keeps
    plane: tuple[int, int] | None  # (z, t); None for the default plane
    locked: bool = False
    object_type: str = "annotation"


@dataclass
class ImportResult:
    features: int  # features read
    added: int  # annotations that did not exist before
    replaced: int  # features that replaced an annotation with the same id
    labels_created: list[str] = field(default_factory=list)


# --- reading ----------------------------------------------------------------------------------------

# where a feature object may end: "}" then "," and the next object, or "]" closing the array
_END = re.compile(rb"\}(?:\s*,\s*(\{)|\s*(\]))")
# the start of a feature that begins with "type": "Feature" (QuPath's way), after the "}," ending the one
# before: where blocks of features are cut too (this can't occur inside a JSON string; a wrong cut anywhere
# else leaves a block that does not parse)
_NEXT_FEATURE = re.compile(rb'\}\s*,\s*(\{)\s*"type"\s*:\s*"Feature"')
_FEATURES_KEY = re.compile(rb'"features"\s*:\s*\[')
_WS = b" \t\r\n"
_BOM = b"\xef\xbb\xbf"
_SCAN_LUT = np.zeros(256, dtype=np.bool_)
for _c in b'{}[]"':
    _SCAN_LUT[_c] = True
_DEPTH = np.zeros(256, dtype=np.int64)
_DEPTH[ord("{")] = _DEPTH[ord("[")] = 1
_DEPTH[ord("}")] = _DEPTH[ord("]")] = -1


class _NoBlocks(Exception):
    """The file cannot be cut into blocks of features cheaply: read it feature by feature."""


class _Malformed(Exception):
    def __init__(self, message: str, offset: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.offset = offset


def _structure(buf: bytes) -> tuple[np.ndarray, np.ndarray]:
    """Positions and nesting depth after each bracket of ``buf`` outside strings (``buf`` starts outside one)."""
    a = np.frombuffer(buf, dtype=np.uint8)
    idx = np.flatnonzero(_SCAN_LUT[a])
    ch = a[idx]
    isq = ch == 34
    if b"\\" in buf:
        q = idx[isq]
        cand = q[(q > 0) & (a[np.maximum(q - 1, 0)] == 92)]
        escaped = [p for p in cand.tolist() if _odd_backslashes(buf, p)]
        if escaped:
            keep = ~np.isin(idx, escaped)
            idx, ch = idx[keep], ch[keep]
            isq = ch == 34
    outside = ((np.cumsum(isq) & 1) == 0) & ~isq
    idx, ch = idx[outside], ch[outside]
    return idx, np.cumsum(_DEPTH[ch])


def _odd_backslashes(buf: bytes, p: int) -> bool:
    n = 0
    while p - n - 1 >= 0 and buf[p - n - 1] == 92:
        n += 1
    return n % 2 == 1


def _object_end(buf: bytes, start: int) -> int | None:
    """Index just past the object starting at ``buf[start]`` (exact scan), None when it is cut off."""
    window = 1 << 12
    while True:
        part = buf[start : start + window]
        pos, depth = _structure(part)
        closed = np.flatnonzero(depth == 0)
        if closed.size:
            return start + int(pos[closed[0]]) + 1
        if start + window >= len(buf):
            return None
        window *= 4


def _skip_ws(buf: bytes, i: int) -> int:
    n = len(buf)
    while i < n and buf[i] in _WS:
        i += 1
    return i


def _parse_piece(piece: bytes) -> Any:
    """The value of ``piece``, or None when it does not parse (NaN and Infinity allowed)."""
    try:
        return orjson.loads(piece)
    except orjson.JSONDecodeError:
        pass
    if b"NaN" in piece or b"Infinity" in piece:
        try:
            return json.loads(piece)
        except (json.JSONDecodeError, UnicodeDecodeError, RecursionError):
            return None
    return None


def _loads(raw: bytes) -> Any:
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError:
        pass
    try:  # QuPath writes NaN and Infinity as bare tokens; the standard library accepts them
        return json.loads(raw)
    except (json.JSONDecodeError, UnicodeDecodeError, RecursionError) as exc:
        pos = getattr(exc, "pos", None)
        raise _Malformed(getattr(exc, "msg", str(exc)), pos) from None


class _Reader:
    """Cuts a GeoJSON file into raw features: ``(byte offset, bytes or parsed object)``."""

    def __init__(
        self, f: BinaryIO, total: int, progress: Progress | None, chunk: int, raw: bool = False, block: int = 0
    ) -> None:
        self.f = f
        self.total = total
        self.progress = progress
        self.chunk = max(chunk, 1)
        self.raw = raw  # yield checked feature bytes rather than parsed objects
        self.block = block  # > 0: yield unchecked runs of about this many bytes of features (see _blocks)
        self.done = 0
        self.eof = False

    def read(self, n: int | None = None) -> bytes:
        data = self.f.read(n if n is not None else self.chunk)
        if not data:
            self.eof = True
        self.done += len(data)
        if self.progress is not None:
            self.progress(self.done, self.total)
        return data

    def read_rest(self) -> bytes:
        parts = []
        while not self.eof:
            parts.append(self.read())
        return b"".join(parts)

    def items(self) -> Iterator[tuple[int, Any]]:
        buf = self.read()
        if buf.startswith(_BOM):
            buf = buf[3:]
        base = 0
        while True:
            i = _skip_ws(buf, 0)
            if i < len(buf) or self.eof:
                break
            buf += self.read()
        if i >= len(buf):
            raise _Malformed("the file is empty", 0)
        first = buf[i]
        features = self._blocks if self.block else self._array
        if first == ord("["):
            yield from features(buf, i + 1, base, header=buf[: i + 1])
            return
        if first != ord("{"):
            raise _Malformed(f"expected a GeoJSON object or array, found {chr(first)!r}", i)
        # an object: a FeatureCollection if it has a top-level "features" array, else one Feature
        search_from = 0
        while True:
            m = _FEATURES_KEY.search(buf, search_from)
            if m is not None:
                p = m.end() - 1  # the "["
                _pos, depth = _structure(buf[i:p])
                top_closed = bool(np.any(depth == 0))
                if not top_closed and (depth.size == 0 or depth[-1] == 1) and not _in_string(buf, i, p):
                    yield from features(buf, p + 1, base, header=buf[: p + 1])
                    return
                if top_closed:
                    break
                search_from = m.end()
                continue
            if self.eof:
                break
            more = self.read(max(self.chunk, len(buf)))
            buf += more
        # no "features" array: the whole file is one object
        if self.block:
            raise _NoBlocks
        buf += self.read_rest()
        try:
            obj = _loads(buf)
        except _Malformed as exc:
            raise _Malformed(exc.message, exc.offset) from None
        if isinstance(obj, dict) and obj.get("type") == "FeatureCollection":
            feats = obj.get("features")
            if not isinstance(feats, list):
                raise _Malformed("the FeatureCollection has no features array", None)
            for f in feats:
                yield 0, f
            return
        yield i, obj

    def _array(self, buf: bytes, pos: int, base: int, header: bytes) -> Iterator[tuple[int, Any]]:
        """Features of the array whose "[" ends just before ``buf[pos]``."""
        expect_first = True
        while True:
            # at pos: whitespace, then a feature "{" or (first only) the closing "]"
            j = _skip_ws(buf, pos)
            if j >= len(buf):
                if self.eof:
                    raise _Malformed("unexpected end of file inside the features array", base + j)
                buf, base, pos = buf[pos:] + self.read(), base + pos, 0
                continue
            c = buf[j]
            if c == ord("]") and expect_first:
                self._finish(header, buf[j:], base + j)
                return
            if c != ord("{"):
                raise _Malformed(f"expected a feature object, found {chr(c)!r}", base + j)
            pos = j
            expect_first = False
            try:
                found = self._find_end(buf, pos)
            except _Malformed as exc:
                raise _Malformed(exc.message, base + (exc.offset or 0)) from None
            if found is None:  # the feature goes on past the buffer
                buf, base, pos = buf[pos:] + self.read(max(self.chunk, len(buf) - pos)), base + pos, 0
                continue
            end, obj, m = found
            yield base + pos, (buf[pos:end] if self.raw else obj)
            if m is not None:  # the regular expression saw what follows
                nxt = m.start(1)
                if nxt >= 0:
                    pos = nxt
                    continue
                k = m.start(2)
                self._finish(header, buf[k:], base + k)
                return
            # what follows the feature: "," and the next one, or "]"
            k = _skip_ws(buf, end)
            while k >= len(buf) and not self.eof:
                buf, base, end = buf[end:] + self.read(), base + end, 0
                k = _skip_ws(buf, end)
            if k >= len(buf):
                raise _Malformed("unexpected end of file after a feature", base + k)
            if buf[k] == ord(","):
                pos = k + 1
                continue
            if buf[k] == ord("]"):
                self._finish(header, buf[k:], base + k)
                return
            raise _Malformed("expected ',' or ']' after a feature", base + k)

    def _blocks(self, buf: bytes, pos: int, base: int, header: bytes) -> Iterator[tuple[int, Any]]:
        """Runs of whole features (``b"{...},{...}"``) of about ``self.block`` bytes, unchecked.

        Cuts are made only where the next feature starts with "type": "Feature" (QuPath's
        way); the array's end is taken to be the file's last "]". Nothing is parsed here:
        a wrong cut or malformed text leaves a run that does not parse as JSON (the
        caller then reads the file again feature by feature, which names the problem).
        """
        size = self.block
        while True:
            while len(buf) - pos > size:
                m = _NEXT_FEATURE.search(buf, pos + size)
                if m is None:
                    break
                yield base + pos, buf[pos : m.start() + 1]
                pos = m.start(1)
            if self.eof:
                k = buf.rfind(b"]")
                if k < pos:
                    raise _Malformed("unexpected end of file inside the features array", base + len(buf))
                body = buf[pos:k].strip(_WS)
                if body:
                    yield base + pos, body
                self._finish(header, buf[k:], base + k)
                return
            if len(buf) - pos > BLOCK_SPAN_MAX:
                raise _NoBlocks  # no cut point in sight (features not starting with "type"?): keep memory bounded
            buf, base, pos = buf[pos:] + self.read(), base + pos, 0

    def _find_end(self, buf: bytes, pos: int) -> tuple[int, Any, re.Match[bytes] | None] | None:
        """End, parsed value and (when known) the match of what follows, of the object at ``buf[pos]``.

        None when more data is needed; _Malformed (offset into ``buf``) when it is not JSON.
        """
        m = _END.search(buf, pos)
        if m is not None:  # the common case: the first proposal is the end
            e = m.start() + 1
            try:
                return e, orjson.loads(buf[pos:e]), m
            except orjson.JSONDecodeError:
                pass
        # QuPath starts every feature with "type": the next feature's start marks this one's end
        m = _NEXT_FEATURE.search(buf, pos)
        if m is not None:
            obj = _parse_piece(buf[pos : m.start() + 1])
            if obj is not None:
                return m.start() + 1, obj, m
        # proposals where brackets balance (a "}" followed by ",{" inside lists of objects does not), NaN allowed
        m = _END.search(buf, pos)
        opens = closes = sq_opens = sq_closes = tries = 0
        seg = pos
        while m is not None:
            e = m.start() + 1
            opens += buf.count(b"{", seg, e)
            closes += buf.count(b"}", seg, e)
            sq_opens += buf.count(b"[", seg, e)
            sq_closes += buf.count(b"]", seg, e)
            seg = e
            if opens == closes and sq_opens == sq_closes:
                obj = _parse_piece(buf[pos:e])
                if obj is not None:
                    return e, obj, m
                tries += 1
                if tries >= 4:
                    break
            if e - pos > 1 << 24:
                break
            m = _END.search(buf, e)
        else:
            if not self.eof:
                return None
        # brackets inside strings, or not JSON: scan exactly
        end = _object_end(buf, pos)
        if end is None:
            if not self.eof:
                return None
            raise _Malformed("unexpected end of file inside a feature", len(buf))
        try:
            return end, _loads(buf[pos:end]), None
        except _Malformed as exc:
            raise _Malformed(exc.message, pos + (exc.offset or 0)) from None

    def _finish(self, header: bytes, rest: bytes, offset: int) -> None:
        """Check what surrounds the features array: the skeleton with an empty array must be valid JSON."""
        rest += self.read_rest()
        try:
            orjson.loads(header + rest)
        except orjson.JSONDecodeError as exc:
            raise _Malformed(f"around the features array: {exc}", offset) from None


def _in_string(buf: bytes, start: int, p: int) -> bool:
    """Whether ``buf[p]`` lies inside a string, scanning from ``start`` (outside one)."""
    seg = buf[start:p]
    a = np.frombuffer(seg, dtype=np.uint8)
    q = np.flatnonzero(a == 34)
    n = int(q.size)
    if n and b"\\" in seg:
        n -= sum(1 for x in q.tolist() if _odd_backslashes(seg, x))
    return n % 2 == 1


def _raw_features(
    path: str | os.PathLike[str], progress: Progress | None, chunk_size: int, raw: bool, block: int = 0
) -> Iterator[Any]:
    """The file's features, parsed (or as checked bytes when ``raw``, or as unchecked runs of
    features of about ``block`` bytes, see ``_Reader._blocks``); malformed JSON raises InvalidInput."""
    p = Path(path)
    try:
        f = open(p, "rb")  # noqa: SIM115 - closed below, the generator may be abandoned
    except FileNotFoundError:
        raise NotFound(f"no such file: {p}") from None
    except IsADirectoryError:
        raise InvalidInput(f"{p} is a directory, not a GeoJSON file") from None
    with f:
        reader = _Reader(f, os.fstat(f.fileno()).st_size, progress, chunk_size, raw, block)
        try:
            for _offset, obj in reader.items():
                yield obj
        except _Malformed as exc:
            where = f" at byte {exc.offset}" if exc.offset is not None else ""
            raise InvalidInput(f"malformed JSON in {p}: {exc.message}{where}") from None


def read_features(
    path: str | os.PathLike[str], progress: Progress | None = None, chunk_size: int = CHUNK
) -> Iterator[Feature]:
    """Stream the features of a QuPath GeoJSON file; ``progress(bytes_read, file_size)`` after each chunk.

    Raises InvalidInput("malformed JSON in FILE: ...") for text that is not JSON,
    InvalidInput / InvalidGeometry naming the feature for features QuPath could not have written.
    """
    for index, obj in enumerate(_raw_features(path, progress, chunk_size, False)):
        yield feature_from_json(index, obj)


def _uuid_bytes(s: str) -> bytes | None:
    if len(s) == 36 and s[8] == "-" and s[13] == "-" and s[18] == "-" and s[23] == "-":
        try:
            b = bytes.fromhex(s[:8] + s[9:13] + s[14:18] + s[19:23] + s[24:])
        except ValueError:
            b = b""
        if len(b) == 16:
            return b
    try:
        return uuid.UUID(s.strip()).bytes
    except ValueError:
        return None


_RGB: dict[tuple[Any, ...], str | None] = {}


def _color(v: Any) -> str | None:
    if type(v) is list and len(v) >= 3:
        key = (v[0], v[1], v[2])
        got = _RGB.get(key, "")
        if got != "":
            return got
        ok = all(type(c) is int and 0 <= c <= 255 for c in key)
        got = "#{:02x}{:02x}{:02x}".format(*key) if ok else None
        if len(_RGB) < 4096:
            _RGB[key] = got
        return got
    if type(v) is int:  # packed (A)RGB, as Java's signed int
        return f"#{(v >> 16) & 255:02x}{(v >> 8) & 255:02x}{v & 255:02x}"
    return None


def _classification(v: Any) -> tuple[str | None, str | None]:
    if isinstance(v, str):
        return (v or None), None
    if not isinstance(v, dict):
        return None, None
    names = v.get("names")
    name = v.get("name")
    label: str | None = None
    if isinstance(names, list) and names and all(isinstance(n, str) for n in names):
        label = ": ".join(names)
    elif isinstance(name, str) and name:
        label = name
    color = v.get("color")
    if color is None:
        color = v.get("colorRGB")
    return label, _color(color)


def _measurements(index: int, v: Any) -> dict[str, Any]:
    """A measurement map; non-finite values and nulls dropped (QuPath reads a missing measurement as NaN)."""
    inf = math.inf
    if type(v) is dict:
        return {k: x for k, x in v.items() if x is not None and (type(x) is not float or -inf < x < inf)}
    if type(v) is list:
        out: dict[str, Any] = {}
        for item in v:
            name = item.get("name") if type(item) is dict else None
            if type(name) is not str:
                raise InvalidInput(f"feature {index}: measurements must be a map or a list of {{name, value}}")
            x = item.get("value")
            if x is not None and (type(x) is not float or -inf < x < inf):
                out[name] = x
            else:
                out.pop(name, None)
        return out
    if v is None:
        return {}
    raise InvalidInput(f"feature {index}: measurements must be a map or a list of {{name, value}}")


_PLAIN_PROPS = frozenset({"objectType", "classification"})
_PLAIN_CLASS = frozenset({"name", "color"})


def _plain_feature(index: int, obj: dict[str, Any]) -> Feature | None:
    """The usual QuPath object (a UUID, an object type, a class name and colour, nothing else), read
    without the general walk; None for anything else. Gives exactly what ``_feature`` gives."""
    props = obj.get("properties")
    geom = obj.get("geometry")
    if (type(props) is not dict or type(geom) is not dict or not props.keys() <= _PLAIN_PROPS
            or obj.get("type") != "Feature" or "plane" in geom or "isEllipse" in geom or "nucleusGeometry" in obj):
        return None
    ot = props.get("objectType", "annotation")
    cls = props.get("classification")
    if type(ot) is not str or not ot or type(cls) is not dict or not cls.keys() <= _PLAIN_CLASS:
        return None
    name = cls.get("name")
    raw_id = obj.get("id")
    if type(name) is not str or not name or (raw_id is not None and (type(raw_id) is not str
                                                                      or raw_id in _LEGACY_TYPES)):
        return None
    fid = _uuid_bytes(raw_id) if raw_id is not None else None
    kept = {"objectType": ot} if ot != "annotation" else {}
    return Feature(index, fid, name, _color(cls.get("color")), geom, kept, None, False, ot)


def feature_from_json(index: int, obj: Any) -> Feature:
    """A Feature from one parsed GeoJSON feature (QuPath's fields mapped as in the module docstring)."""
    if type(obj) is dict:
        f = _plain_feature(index, obj)
        if f is not None:
            return f
    return _feature(index, obj)


def _feature(index: int, obj: Any) -> Feature:
    if not isinstance(obj, dict):
        raise InvalidInput(f"feature {index}: not a JSON object")
    t = obj.get("type")
    if t is not None and t != "Feature":
        raise InvalidInput(f"feature {index}: not a GeoJSON Feature (type {t!r})")
    geom = obj.get("geometry")
    if not isinstance(geom, dict):
        raise InvalidGeometry(f"feature {index}: no geometry")
    props = obj.get("properties")
    if props is None:
        props = {}
    elif not isinstance(props, dict):
        raise InvalidInput(f"feature {index}: properties must be a JSON object")

    fid: bytes | None = None
    object_type: str | None = None
    raw_id = obj.get("id")
    if isinstance(raw_id, str):
        legacy = _LEGACY_TYPES.get(raw_id)
        if legacy is not None:
            object_type = legacy
        else:
            fid = _uuid_bytes(raw_id)  # like QuPath: an id that is no UUID is ignored

    label: str | None = None
    color: str | None = None
    locked = False
    plane_raw = geom.get("plane")
    ellipse = geom.get("isEllipse") is True
    kept: dict[str, Any] = {}
    snake_type: str | None = None
    for k, v in props.items():
        if k == "classification":
            label, color = _classification(v)
        elif k == "objectType":
            if isinstance(v, str) and v:
                object_type = v
        elif k == "object_type":
            if isinstance(v, str) and v:
                snake_type = v
        elif k == "isLocked":
            locked = v is True
        elif k == "measurements":
            m = _measurements(index, v)
            if m:
                kept["measurements"] = m
        elif k == "plane":
            if plane_raw is None:
                plane_raw = v
        elif k == "isEllipse":
            ellipse = ellipse or v is True
        else:
            kept[k] = v
    if object_type is None:
        object_type = snake_type or "annotation"
    if object_type != "annotation":
        kept["objectType"] = object_type
    if locked:
        kept["isLocked"] = True
    nucleus = obj.get("nucleusGeometry")
    if nucleus is not None:
        kept["nucleusGeometry"] = nucleus
    if ellipse and geom.get("isEllipse") is not True:
        geom = {**geom, "isEllipse": True}
    plane = None
    if plane_raw is not None:
        try:
            plane = normalize_plane(plane_raw)
        except InvalidInput as exc:
            raise InvalidInput(f"feature {index}: {exc.message}") from None
    return Feature(index, fid, label, color, geom, kept, plane, locked, object_type)


# --- importing ----------------------------------------------------------------------------------------


def _prefixed(index: int, exc: ExactError) -> ExactError:
    return type(exc)(f"feature {index}: {exc.message}")


class _NewLabel:
    __slots__ = ("color", "kinds")

    def __init__(self, color: str | None) -> None:
        self.color = color
        self.kinds: dict[str, None] = {}  # kinds in order of appearance

    def shape(self) -> str:
        kinds = list(self.kinds)
        if not kinds:
            return "polygon"
        shape = _LABEL_SHAPE[kinds[0]]
        if all(k in _COMPATIBLE[shape] for k in kinds):
            return shape
        return "any"


class _TreeBuilder:
    """Applies encoded entries to an image tree in key order, in batches, spilling unsorted input to disk.

    Input that arrives in increasing key order (ids made by exactvc, time-ordered)
    goes straight into the tree; otherwise each batch is sorted and written to a
    run file, and the runs are merged at the end, so every batch touches only
    the right edge of the tree: O(n) work and bounded memory for random UUIDs.
    """

    def __init__(self, store: Any, root: bytes | None, spill_dir: Path | None) -> None:
        self.store = store
        self.root = root
        self.spill_dir = spill_dir
        self.tmp: tempfile.TemporaryDirectory[str] | None = None
        self.runs: list[Path] = []
        self.last: bytes | None = None  # largest key applied straight
        self.keys: list[bytes] = []
        self.index: list[int] = []
        self.raws: list[bytes] = []
        self.sorted = True  # the current batch is in increasing key order
        self.blobs: list[Pending] = []
        # keys applied straight (increasing) and their feature numbers, compactly: a later run that
        # repeats one of them is a duplicate id in the file
        self.direct_keys: list[np.ndarray] = []
        self.direct_index: list[np.ndarray] = []

    def add(self, key: bytes, index: int, raw: bytes) -> None:
        keys = self.keys
        if self.sorted and keys and key <= keys[-1]:
            self.sorted = False
        keys.append(key)
        self.index.append(index)
        self.raws.append(raw)

    def __len__(self) -> int:
        return len(self.keys)

    def end_batch(self) -> None:
        if self.blobs:
            self.store.write(self.blobs)
            self.blobs = []
        if not self.keys:
            return
        if not self.runs and self.sorted and (self.last is None or self.keys[0] > self.last):
            self._apply(dict(zip(self.keys, self.raws, strict=True)))
            self.last = self.keys[-1]
            self.direct_keys.append(np.array(self.keys, dtype="S16"))
            self.direct_index.append(np.array(self.index, dtype=np.int64))
        else:
            self._spill()
        self.keys, self.index, self.raws = [], [], []
        self.sorted = True

    def _apply(self, edits: dict[bytes, bytes | None]) -> None:
        out: list[Pending] = []
        self.root = tree.apply(self.store, self.root, edits, out)
        self.store.write(out)

    def _spill(self) -> None:
        if self.tmp is None:
            self.tmp = tempfile.TemporaryDirectory(prefix="import-", dir=self.spill_dir)
        # sorted by key, then by position in the file (the later of two equal ids wins)
        run = sorted(zip(self.keys, self.index, self.raws, strict=True))
        path = Path(self.tmp.name) / f"run-{len(self.runs):05d}"
        path.write_bytes(msgpack.packb(run, use_bin_type=True))
        self.runs.append(path)

    @staticmethod
    def _read_run(f: BinaryIO) -> Iterator[tuple[bytes, int, bytes]]:
        unpacker = msgpack.Unpacker(f, use_list=False, raw=False, max_buffer_size=1 << 30)
        for _ in range(unpacker.read_array_header()):
            yield unpacker.unpack()

    def finish(self, batch: int) -> bytes | None:
        self.end_batch()
        if not self.runs:
            return self.root
        files = [open(p, "rb") for p in self.runs]  # noqa: SIM115 - closed below
        try:
            streams = [self._read_run(f) for f in files]
            edits: dict[bytes, bytes | None] = {}
            direct = np.concatenate(self.direct_keys) if self.direct_keys else None
            direct_index = np.concatenate(self.direct_index) if self.direct_index else None
            prev: tuple[bytes, int] | None = None
            for key, index, raw in heapq.merge(*streams):
                if prev is not None and prev[0] == key:  # equal keys come in file order
                    raise _duplicate(key, prev[1], index)
                prev = (key, index)
                if direct is not None and direct_index is not None:
                    at = int(np.searchsorted(direct, key))
                    if at < len(direct) and direct[at] == key:
                        raise _duplicate(key, min(int(direct_index[at]), index), max(int(direct_index[at]), index))
                if len(edits) >= batch and key not in edits:
                    self._apply(edits)
                    edits = {}
                edits[key] = raw
            if edits:
                self._apply(edits)
        finally:
            for f in files:
                f.close()
            self.close()
        return self.root

    def close(self) -> None:
        if self.tmp is not None:
            self.tmp.cleanup()
            self.tmp = None


def _duplicate(key: bytes, first: int, second: int) -> InvalidInput:
    return InvalidInput(f"features {first} and {second} have the same id {format_id(key)}: "
                        "ids must be unique in one file")


class _Converter:
    """Turns Features into tree entries, checking them exactly as the Editor does, a batch at a time
    (labels, shapes, canonical geometry and polygon validity via ``geometry.canonical_many``, bounds)."""

    def __init__(self, image: str, width: int, height: int, shapes: dict[str, str], create_labels: bool) -> None:
        self.image = image
        self.width = width
        self.height = height
        self.shapes = shapes  # label name -> shape kind, for the labels that exist
        self.create_labels = create_labels
        self.new_labels: dict[str, _NewLabel] = {}
        self.blobs: list[Pending] = []  # large geometries split out of their records

    def _label(self, feat: Feature) -> tuple[str, str | None]:
        label = feat.label or UNCLASSIFIED
        shape = self.shapes.get(label)
        forced = feat.geometry.get("kind") if type(feat.geometry) is dict else None  # other formats' boxes
        if forced is not None:
            if shape is None:
                self._label_new(feat, label)
            return label, forced
        if shape is None:
            nl = self.new_labels.get(label)
            if nl is None:
                if not self.create_labels:
                    raise UnknownLabel(
                        f"feature {feat.index}: unknown label {label!r} (import with --create-labels to create it)"
                    )
                nl = self.new_labels[label] = _NewLabel(feat.color)
            elif nl.color is None:
                nl.color = feat.color
            return label, None
        return label, shape if shape in ("box", "ellipse") else None

    def _label_new(self, feat: Feature, label: str) -> None:
        nl = self.new_labels.get(label)
        if nl is None:
            if not self.create_labels:
                raise UnknownLabel(
                    f"feature {feat.index}: unknown label {label!r} (import with --create-labels to create it)"
                )
            self.new_labels[label] = _NewLabel(feat.color)
        elif nl.color is None:
            nl.color = feat.color

    def convert_many(self, feats: list[Feature]) -> list[tuple[bytes, bytes]]:
        """``(key, encoded tree entry)`` of each feature; the first bad feature raises, named."""
        try:
            return self._convert_many(feats)
        except ExactError:
            # the vectorised pass found a problem: redo the batch in file order to name the first one
            new_labels = dict(self.new_labels)
            for f in feats:
                self._convert_many([f])
            self.new_labels = new_labels
            raise

    def _convert_many(self, feats: list[Feature]) -> list[tuple[bytes, bytes]]:
        labels = [self._label(f) for f in feats]
        by_hint: dict[str | None, list[int]] = {}
        for j, (_label, hint) in enumerate(labels):
            by_hint.setdefault(hint, []).append(j)
        canon: list[Any] = [None] * len(feats)
        for hint, idxs in by_hint.items():
            geoms = [feats[j].geometry for j in idxs]
            try:
                res = geometry.canonical_many(geoms, hint, check_valid=True)
            except InvalidInput:
                for j in idxs:  # find the first culprit to name it
                    try:
                        k, enc = geometry.canonical(feats[j].geometry, hint)
                    except InvalidGeometry as exc:
                        raise InvalidGeometry(f"feature {feats[j].index}: invalid geometry: {exc.message}") from None
                    except InvalidInput as exc:
                        raise _prefixed(feats[j].index, exc) from None
                    try:
                        geometry.validate(k, enc)
                    except InvalidInput as exc:
                        raise _prefixed(feats[j].index, exc) from None
                raise
            for j, r in zip(idxs, res, strict=True):
                canon[j] = r
        out: list[tuple[bytes, bytes]] = []
        w, h = self.width, self.height
        for j, feat in enumerate(feats):
            i = feat.index
            label = labels[j][0]
            kind, enc, (x0, y0, x1, y1) = canon[j]
            shape = self.shapes.get(label)
            if shape is None:
                self.new_labels[label].kinds[kind] = None
            elif shape != "any" and kind not in _COMPATIBLE.get(shape, (kind,)):
                raise InvalidGeometry(f"feature {i}: label {label!r} takes {shape} shapes, got a {kind}")
            if x0 < 0 or y0 < 0 or x1 > w or y1 > h:
                raise InvalidGeometry(
                    f"feature {i}: coordinates outside the image {self.image!r} ({w}x{h}): "
                    f"bounds {x0:g},{y0:g},{x1:g},{y1:g}"
                )
            props = feat.properties
            if "image" in props and props["image"] == self.image:
                props = {k: v for k, v in props.items() if k != "image"}  # written by a multi-image export
            try:
                record = make_record(kind, enc, label, props, feat.plane)
            except InvalidInput as exc:
                raise _prefixed(i, exc) from None
            key = feat.id if feat.id is not None else new_annotation_id()
            try:
                out.append((key, tree.encode_record(tree.split_record(record, self.blobs))))
            except (OverflowError, ValueError):
                raise InvalidGeometry(f"feature {i}: coordinates too large to store") from None
        return out


def _merge_labels(into: dict[str, _NewLabel], found: dict[str, tuple[str | None, list[str]]]) -> None:
    for name, (color, kinds) in found.items():
        nl = into.get(name)
        if nl is None:
            nl = into[name] = _NewLabel(color)
        elif nl.color is None:
            nl.color = color
        for k in kinds:
            nl.kinds[k] = None


_WORKER_STATE: dict[str, Any] = {}


def _worker_init() -> None:
    gc.disable()  # short-lived worker, no cycles made


def _convert_chunk(
    setup: tuple[str, int, int, tuple[tuple[str, str], ...], bool], first: int, raws: list[Any]
) -> tuple[list[tuple[bytes, int, bytes]], list[Pending], dict[str, tuple[str | None, list[str]]]]:
    """Worker: convert a chunk of raw features (numbered from ``first``)."""
    conv = _WORKER_STATE.get("conv")
    if conv is None or _WORKER_STATE.get("setup") != setup:
        image, width, height, shapes, create = setup
        conv = _Converter(image, width, height, dict(shapes), create)
        _WORKER_STATE["conv"], _WORKER_STATE["setup"] = conv, setup
    try:
        feats = [feature_from_json(first + j, _loads(raw) if isinstance(raw, bytes) else raw)
                 for j, raw in enumerate(raws)]
        out = [(key, f.index, entry) for f, (key, entry) in zip(feats, conv.convert_many(feats), strict=True)]
        return out, conv.blobs, {n: (nl.color, list(nl.kinds)) for n, nl in conv.new_labels.items()}
    finally:
        conv.blobs, conv.new_labels = [], {}


def _workers(path: Path, asked: int | None) -> int:
    """Worker processes to use: forked, so only from a single-threaded process on Linux."""
    import multiprocessing
    import sys
    import threading

    if asked is not None and asked <= 1:
        return 1
    if not sys.platform.startswith("linux") or "fork" not in multiprocessing.get_all_start_methods():
        return 1
    if threading.active_count() > 1:  # forking a threaded process (a server) is not safe
        return 1
    if asked is not None:
        return asked
    try:
        size = path.stat().st_size
    except OSError:
        return 1
    cpus = os.cpu_count() or 1
    return min(cpus, MAX_WORKERS) if size >= PARALLEL_MIN_BYTES and cpus > 1 else 1


def import_file(
    repo: Repository,
    image: str,
    path: str | os.PathLike[str],
    create_labels: bool = False,
    progress: Progress | None = None,
    batch: int = 50_000,
    workers: int | None = None,
) -> ImportResult:
    """Import a QuPath GeoJSON file into the working state of ``image``; all or nothing.

    Features with a UUID id replace the annotation with that id (re-importing an
    export changes nothing); others get new ids. Two features with the same id are
    refused, naming the id and both features. Every feature is checked as the
    Editor checks it (label known and of a matching shape, canonical geometry
    inside the image, polygons valid); an error names the first bad feature and
    leaves the working state (annotations and labels) exactly as it was.
    ``create_labels`` creates missing labels, in name order, coloured by the first
    feature's classification colour, shaped by the first feature's kind ("any"
    when later features have incompatible kinds). ``progress(bytes_read, file_size)``.
    Memory is bounded by ``batch`` features, whatever the file size.
    ``workers``: processes converting features (None: one a CPU, at most 4, for
    files of 16 MB or more; 1: this process only). Workers are forked, so they are
    used only on Linux and when the calling process has a single thread.
    """
    if batch < 1:
        raise UsageError("batch must be at least 1")
    p = Path(path)
    nworkers = _workers(p, workers)
    base0, snap0 = repo.working()
    gc_on = gc.isenabled()
    gc.disable()  # millions of short-lived containers and no cycles: collections would cost ~30% of the time
    try:
        return _import(repo, image, p, create_labels, progress, batch, snap0, nworkers)
    except BaseException:
        with contextlib.suppress(Exception):
            if repo.working() != (base0, snap0):
                repo.set_working(base0, snap0)
        raise
    finally:
        if gc_on:
            gc.enable()


def _import(
    repo: Repository,
    image: str,
    path: Path,
    create_labels: bool,
    progress: Progress | None,
    batch: int,
    snap0: bytes,
    nworkers: int,
) -> ImportResult:
    rec_img = repo.image(image, None)
    name = rec_img.name
    entry0 = repo.snapshot_object(snap0).images[name]
    shapes = {lb.name: lb.shape for lb in repo.labels(None).labels}
    spill = repo.exact_dir / "cache" if repo.exact_dir is not None else None
    builder = _TreeBuilder(repo.store, entry0.tree, spill)
    try:
        if nworkers > 1:
            setup = (name, rec_img.width, rec_img.height, tuple(sorted(shapes.items())), create_labels)
            try:
                n, new_labels = _convert_parallel(path, progress, batch, builder, setup, nworkers, True)
            except _NoBlocks:
                # not cut into blocks, or something in a block is wrong: again, feature by feature
                # (what was written so far is unreferenced and goes at the next gc)
                builder.close()
                builder = _TreeBuilder(repo.store, entry0.tree, spill)
                n, new_labels = _convert_parallel(path, progress, batch, builder, setup, nworkers, False)
        else:
            conv = _Converter(name, rec_img.width, rec_img.height, shapes, create_labels)
            conv.blobs = builder.blobs
            n = _convert_serial(path, progress, batch, builder, conv)
            new_labels = conv.new_labels
        root = builder.finish(batch)
    finally:
        builder.close()

    created: list[str] = []
    for lname in sorted(new_labels):
        nl = new_labels[lname]
        repo.add_label(lname, nl.shape(), nl.color or "#ffcc00")
        created.append(lname)

    with repo.lock():
        set_working_tree(repo, name, root, expected=entry0.tree)
    count = tree.count(repo.store, root)
    added = count - entry0.count
    return ImportResult(features=n, added=added, replaced=n - added, labels_created=created)


def _convert_serial(
    path: Path, progress: Progress | None, batch: int, builder: _TreeBuilder, conv: _Converter
) -> int:
    n = 0
    pending: list[Feature] = []

    def flush() -> None:
        for f, (key, entry) in zip(pending, conv.convert_many(pending), strict=True):
            builder.add(key, f.index, entry)
        pending.clear()
        if len(builder) >= batch:
            builder.end_batch()

    for feat in read_features(path, progress):
        pending.append(feat)
        n += 1
        if len(pending) >= CHECK_BATCH:
            flush()
    if pending:
        flush()
    return n


def _convert_block(
    setup: tuple[str, int, int, tuple[tuple[str, str], ...], bool], block: bytes
) -> tuple[list[tuple[bytes, int, bytes]], list[Pending], dict[str, tuple[str | None, list[str]]]]:
    """Worker: parse and convert one run of features (see ``_Reader._blocks``), numbered from 0."""
    objs = _loads(b"[" + block + b"]")  # one parse for the whole run; _Malformed when it is not one
    return _convert_chunk(setup, 0, objs)


def _convert_parallel(
    path: Path,
    progress: Progress | None,
    batch: int,
    builder: _TreeBuilder,
    setup: tuple[str, int, int, tuple[tuple[str, str], ...], bool],
    nworkers: int,
    blocks: bool,
) -> tuple[int, dict[str, _NewLabel]]:
    """Features converted by worker processes, applied to the tree in file order by this one.

    ``blocks``: the workers get runs of about ``PARALLEL_BLOCK`` bytes of raw features
    and parse them (this process only reads); any problem raises _NoBlocks, and the
    caller starts again feature by feature. Otherwise this process cuts the file into
    features, checking each, and errors name the feature.
    """
    import multiprocessing
    from collections import deque
    from concurrent.futures import Future, ProcessPoolExecutor

    new_labels: dict[str, _NewLabel] = {}
    inflight: deque[Future[Any]] = deque()
    n = 0  # features collected

    def collect(fut: Future[Any]) -> None:
        nonlocal n
        try:
            entries, blobs, labels = fut.result()
        except (ExactError, _Malformed):
            if blocks:
                raise _NoBlocks from None
            raise
        _merge_labels(new_labels, labels)
        builder.blobs.extend(blobs)
        add = builder.add
        offset = n if blocks else 0  # block entries are numbered from 0 in their block
        for key, i, entry in entries:
            add(key, i + offset, entry)
            if len(builder) >= batch:
                builder.end_batch()
        n += len(entries)

    def submit(fn: Callable[..., Any], *args: Any) -> None:
        inflight.append(pool.submit(fn, setup, *args))
        while len(inflight) > INFLIGHT * nworkers:
            collect(inflight.popleft())

    ctx = multiprocessing.get_context("fork")  # no re-import of __main__, no start-up cost
    pool = ProcessPoolExecutor(nworkers, mp_context=ctx, initializer=_worker_init)
    try:
        if blocks:
            try:
                for block in _raw_features(path, progress, CHUNK, True, PARALLEL_BLOCK):
                    submit(_convert_block, block)
            except InvalidInput:
                raise _NoBlocks from None
        else:
            chunk: list[Any] = []
            first = 0
            try:
                for raw in _raw_features(path, progress, CHUNK, True):
                    chunk.append(raw)
                    if len(chunk) >= PARALLEL_CHUNK:
                        submit(_convert_chunk, first, chunk)
                        first += len(chunk)
                        chunk = []
            except ExactError:
                if chunk:
                    inflight.append(pool.submit(_convert_chunk, setup, first, chunk))
                while inflight:  # an earlier feature's error comes first
                    collect(inflight.popleft())
                raise
            if chunk:
                inflight.append(pool.submit(_convert_chunk, setup, first, chunk))
        while inflight:
            collect(inflight.popleft())
    finally:
        for fut in inflight:
            fut.cancel()
        pool.shutdown(wait=True)
    return n, new_labels


# --- exporting ----------------------------------------------------------------------------------------


format_uuid = format_id


def selected_images(repo: Repository, rev: str | None, image: str | None) -> tuple[list[tuple[str, ImageEntry]], LabelSet]:
    """The (name, entry) pairs to export, in name order, and the label set of ``rev``."""
    r = None if rev in (None, "WORKING") else rev
    snap = repo.snapshot_at(r)
    if image is not None:
        name = repo.image(image, r).name
        chosen = [(name, snap.images[name])]
    else:
        chosen = sorted(snap.images.items())
    labels = (
        LabelSet.from_body(repo.read_body(snap.labels, "labels")) if snap.labels is not None else LabelSet()
    )
    return chosen, labels


def iter_records(repo: Repository, entry: ImageEntry) -> Iterator[tuple[bytes, dict[str, Any]]]:
    """``(key, record with its geometry inline)`` in id order."""
    store = repo.store
    join = tree.join_record
    for key, rec in tree.items(store, entry.tree):
        yield key, join(store, rec) if "G" in rec else rec


def _rgb(color: str) -> list[int] | None:
    try:
        return [int(color[1:3], 16), int(color[3:5], 16), int(color[5:7], 16)]
    except (ValueError, IndexError):
        return None


def feature_json(key: bytes, rec: dict[str, Any], colors: dict[str, list[int] | None], image: str | None) -> bytes:
    """One annotation as a QuPath GeoJSON feature, keys in a fixed order, compact."""
    kind = rec["k"]
    g = geometry.to_geojson(kind, rec["g"])
    geom: dict[str, Any] = {"type": g["type"], "coordinates": g["coordinates"]}
    z = rec.get("z")
    if z:
        geom["plane"] = {"c": -1, "z": z[0], "t": z[1]}
    if kind == "ellipse":
        geom["isEllipse"] = True
    p: dict[str, Any] = rec.get("p") or {}
    props: dict[str, Any] = {"objectType": p.get("objectType", "annotation")}
    label = rec["l"]
    if label != UNCLASSIFIED:
        cls: dict[str, Any] = {"name": label}
        rgb = colors.get(label)
        if rgb is not None:
            cls["color"] = rgb
        props["classification"] = cls
    if image is not None:
        props["image"] = image
    nucleus = None
    for k, v in p.items():
        if k == "objectType":
            continue
        if k == "nucleusGeometry":
            nucleus = v
            continue
        props[k] = v
    feat: dict[str, Any] = {"type": "Feature", "id": format_uuid(key), "geometry": geom}
    if nucleus is not None:
        feat["nucleusGeometry"] = nucleus
    feat["properties"] = props
    return orjson.dumps(feat)


def export_geojson(repo: Repository, rev: str | None, image: str | None, out: BinaryIO) -> int:
    """Write one FeatureCollection (byte-identical for the same commit); returns the number of features.

    With ``image`` None and several images, every feature carries
    ``properties.image`` (the image's name); features are ordered by image, then id.
    """
    chosen, labels = selected_images(repo, rev, image)
    colors = {lb.name: _rgb(lb.color) for lb in labels.labels}
    tag = len(chosen) > 1
    out.write(b'{"type":"FeatureCollection","features":[')
    sep = b"\n"
    n = 0
    buf: list[bytes] = []
    for name, entry in chosen:
        img = name if tag else None
        for key, rec in iter_records(repo, entry):
            buf.append(sep)
            buf.append(feature_json(key, rec, colors, img))
            sep = b",\n"
            n += 1
            if len(buf) >= 4096:
                out.write(b"".join(buf))
                buf.clear()
    buf.append(b"\n]}\n")
    out.write(b"".join(buf))
    return n


FORMATS = ("geojson", "csv")


def export(repo: Repository, rev: str, image: str | None, fmt: str, out: BinaryIO) -> int:
    """Write the annotations of ``rev`` (a revision, or "WORKING") to ``out``; returns the number of features.

    ``fmt``: "geojson" (a QuPath-compatible FeatureCollection; "qupath" is an alias) or "csv"
    (see ``csvfmt``). Both are byte-identical for the same commit on every machine.
    ``image`` None exports every image: GeoJSON features then carry ``properties.image``
    when there is more than one; CSV rows always name their image.
    """
    f = fmt.lower()
    if f in ("geojson", "qupath"):
        return export_geojson(repo, rev, image, out)
    if f == "csv":
        from .csvfmt import export_csv

        return export_csv(repo, rev, image, out)
    raise UsageError(f"unknown export format {fmt!r} (one of {', '.join(FORMATS)})")
