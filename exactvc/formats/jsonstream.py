"""The streaming GeoJSON reader: cuts a FeatureCollection (or a bare array) into features without
holding the file, and into runs of raw features for worker processes (see ``qupath``'s docstring)."""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO

import numpy as np
import orjson

from ..errors import InvalidInput, NotFound

if TYPE_CHECKING:
    pass
from .model import Progress

CHUNK = 8 << 20  # bytes read at a time
BLOCK_SPAN_MAX = 64 << 20  # bytes read without finding a cut point before falling back to feature by feature

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
        self, f: BinaryIO, total: int, progress: Progress | None, chunk: int, raw: bool = False, block: int = 0,
        key: re.Pattern[bytes] = _FEATURES_KEY, single: bool = True, cut: re.Pattern[bytes] = _NEXT_FEATURE,
    ) -> None:
        self.cut = cut  # where runs of elements are cut (group 1: the next element's "{")
        self.key = key  # the top-level member whose array is streamed
        self.single = single  # an object without that member is yielded as the one item
        self.header = b""  # the file up to the array's "["
        self.skeleton: Any = None  # the document with the array emptied (set at the end)
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
            self.header = buf[: i + 1]
            yield from features(buf, i + 1, base, header=buf[: i + 1])
            return
        if first != ord("{"):
            raise _Malformed(f"expected a GeoJSON object or array, found {chr(first)!r}", i)
        # an object: a FeatureCollection if it has a top-level "features" array, else one Feature
        search_from = 0
        while True:
            m = self.key.search(buf, search_from)
            if m is not None:
                p = m.end() - 1  # the "["
                _pos, depth = _structure(buf[i:p])
                top_closed = bool(np.any(depth == 0))
                if not top_closed and (depth.size == 0 or depth[-1] == 1) and not _in_string(buf, i, p):
                    self.header = buf[: p + 1]
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
        if not self.single:
            self.skeleton = obj
            return
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
                m = self.cut.search(buf, pos + size)
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
            self.skeleton = orjson.loads(header + rest)
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




_KEYS: dict[str, re.Pattern[bytes]] = {}


# between two objects of an array, where the second starts with a key: a cut that is wrong (inside a string
# or a nested array of objects) leaves runs that do not parse, and the caller reads element by element
_NEXT_ELEMENT = re.compile(rb'\}\s*,\s*(\{)\s*"')


class ArrayMember:
    """Streams the elements of one top-level array member of a JSON object (``"annotations"`` of a COCO
    file), or of a top-level array, without holding the file: ``header`` (the file up to the array,
    once iteration has begun) and ``skeleton`` (the document with the array emptied, once it has ended)
    give the rest. An object without the member is the ``skeleton`` and yields nothing."""

    def __init__(self, path: str | os.PathLike[str], key: str, chunk_size: int = CHUNK) -> None:
        self.path = Path(path)
        pat = _KEYS.get(key)
        if pat is None:
            pat = _KEYS[key] = re.compile(rb'"' + re.escape(key.encode()) + rb'"\s*:\s*\[')
        self.pattern = pat
        self.chunk = chunk_size
        self.reader: _Reader | None = None

    @property
    def header(self) -> bytes:
        return self.reader.header if self.reader is not None else b""

    @property
    def skeleton(self) -> Any:
        return self.reader.skeleton if self.reader is not None else None

    def __iter__(self) -> Iterator[Any]:
        p = self.path
        try:
            f = open(p, "rb")  # noqa: SIM115 - closed below, the generator may be abandoned
        except FileNotFoundError:
            raise NotFound(f"no such file: {p}") from None
        except IsADirectoryError:
            raise InvalidInput(f"{p} is a directory, not a JSON file") from None
        with f:
            self.reader = _Reader(f, os.fstat(f.fileno()).st_size, None, self.chunk, key=self.pattern, single=False)
            try:
                for _offset, obj in self.reader.items():
                    yield obj
            except _Malformed as exc:
                where = f" at byte {exc.offset}" if exc.offset is not None else ""
                raise InvalidInput(f"{p}: malformed JSON: {exc.message}{where}") from None

    def runs(self, size: int) -> Iterator[bytes]:
        """The array's elements as unchecked runs of about ``size`` bytes (``b'{...},{...}'``, cut where an
        element ends and the next starts with a key; the array taken to end at the file's last "]"): each
        parses as ``b"[" + run + b"]"`` unless the file is not so laid out, which raises ``NoRuns`` here or
        leaves a run that does not parse."""
        p = self.path
        with open(p, "rb") as f:
            reader = _Reader(f, os.fstat(f.fileno()).st_size, None, self.chunk, block=size, key=self.pattern,
                             single=False, cut=_NEXT_ELEMENT)
            try:
                for _offset, run in reader.items():
                    yield run
            except (_Malformed, _NoBlocks):
                raise NoRuns from None
            if reader.header == b"":
                raise NoRuns


class NoRuns(Exception):
    """The array cannot be cut into runs cheaply: read it element by element."""
