"""A plain-WSGI fast path for stored DeepZoom tiles, in front of Flask.

Viewers ask for tiles by the hundred; most are stored JPEG tiles sent as they
are. Once the Flask route has served a caller a tile of a slide (after the full
token and access checks), the same caller's further requests for interior
stored tiles of that slide are answered here for ``GRANT_TTL`` seconds without
Flask, the database or the file system beyond one ``pread``. A caller is its Authorization header and
its session cookie (server/session.py) together. Anything else —
first requests, query strings, edge or built tiles, errors — goes to Flask.
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Callable, Iterable
from typing import Any

SESSION_COOKIE = re.compile(r"(?:^|;)\s*exact_session=([^;]*)")
TILE = re.compile(r"^/slides/([0-9a-f]{64})_files/(\d{1,3})/(\d{1,9})_(\d{1,9})\.jpeg$")
GRANT_TTL = 2.0


def grant_key(authorization: str, session_cookie: str) -> str:
    return f"{authorization}\n{session_cookie}"


def environ_key(environ: dict[str, Any]) -> str:
    m = SESSION_COOKIE.search(environ.get("HTTP_COOKIE", ""))
    return grant_key(environ.get("HTTP_AUTHORIZATION", ""), m.group(1).strip('" ') if m else "")


class Grants:
    """(Authorization header, fingerprint) -> expiry, filled by the checked route."""

    def __init__(self) -> None:
        self._d: dict[tuple[str, str], float] = {}
        self._lock = threading.Lock()

    def allow(self, auth: str, fp: str) -> None:
        with self._lock:
            if len(self._d) > 50000:
                self._d.clear()
            self._d[(auth, fp)] = time.monotonic() + GRANT_TTL

    def allowed(self, auth: str, fp: str) -> bool:
        exp = self._d.get((auth, fp))
        return exp is not None and exp > time.monotonic()

    def clear(self) -> None:
        with self._lock:
            self._d.clear()


class TileFastPath:
    def __init__(self, wsgi_app: Callable[..., Iterable[bytes]], grants: Grants, slides: Any,
                 cors_origins: Any = "*") -> None:
        self.next = wsgi_app
        self.grants = grants
        self.slides = slides  # exactvc.tiles.SlideCache
        self.cors = cors_origins

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        m = TILE.match(environ.get("PATH_INFO", ""))
        if m is None or environ.get("QUERY_STRING") or environ.get("REQUEST_METHOD") != "GET":
            return self.next(environ, start_response)
        fp = m.group(1)
        if not self.grants.allowed(environ_key(environ), fp):
            return self.next(environ, start_response)
        slide = self.slides.peek(f"{fp}:0")
        if slide is None:
            return self.next(environ, start_response)
        level, col, row = int(m.group(2)), int(m.group(3)), int(m.group(4))
        lv = slide.passthrough.get(level)
        if lv is None or lv.path != slide.path and lv.path not in slide._fds:
            return self.next(environ, start_response)
        t = slide.tile
        w, h = slide.level_size(level)
        if not ((col + 1) * t <= w and (row + 1) * t <= h):
            return self.next(environ, start_response)  # edge tiles, and addresses Flask will refuse
        etag = f'"{fp[:16]}-0-{level}-{col}-{row}"'
        headers = [("ETag", etag), ("Cache-Control", "private, max-age=31536000, immutable")]
        origin = environ.get("HTTP_ORIGIN")
        if origin and (self.cors == "*" or origin in self.cors):
            headers += [("Access-Control-Allow-Origin", "*" if self.cors == "*" else origin),
                        ("Access-Control-Allow-Headers", "Authorization"), ("Vary", "Origin")]
        if environ.get("HTTP_IF_NONE_MATCH") == etag:
            start_response("304 Not Modified", headers)
            return [b""]
        data = lv.raw(slide._fds[lv.path], col, row)
        start_response("200 OK", [("Content-Type", "image/jpeg"), ("Content-Length", str(len(data))), *headers])
        return [data]
