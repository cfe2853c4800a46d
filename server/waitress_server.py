"""The waitress server of an app: its request-size limit and its own error replies in the JSON error shape.

Waitress reads a whole request body before it calls the app, so the body limit must be waitress's
own: a request whose Content-Length is over it is refused as soon as its headers are in, before a
byte of the body is read (and a chunked body as soon as it passes the limit). Waitress's own error
replies (413, malformed requests, a crash outside the app) are plain text; here they are the JSON
``{"error": {"type", "message"}}`` every other reply uses.
"""

from __future__ import annotations

import copy
import time
from collections.abc import Callable
from typing import Any

import orjson
from flask import Flask
from waitress.channel import HTTPChannel
from waitress.parser import HTTPRequestParser
from waitress.server import create_server
from waitress.task import ErrorTask
from waitress.utilities import build_http_date

from .app import HTTP_KINDS


class JsonErrorTask(ErrorTask):  # type: ignore[misc]
    def execute(self) -> None:
        e = self.request.error
        code = int(e.code)
        if code == 413:
            message = f"request body over the limit of {self.channel.server.adj.max_request_body_size - 1} bytes"
        else:
            message = f"{e.reason}: {e.body}" if e.body else str(e.reason)
        body = orjson.dumps({"error": {"type": HTTP_KINDS.get(code, "bad_request" if code < 500 else "internal"),
                                       "message": message}})
        self.status = f"{code} {e.reason}"
        self.response_headers.append(("Content-Type", "application/json"))
        self.set_close_on_finish()
        self.content_length = len(body)
        self.write(body)


CHUNKED_SLACK = 1 << 20


class LimitParser(HTTPRequestParser):  # type: ignore[misc]
    """A chunked body may run ``CHUNKED_SLACK`` bytes past the limit before waitress cuts the connection:
    up to there the app refuses it (with the JSON 413) after it is read, so a client sending a little too
    much still gets its answer rather than a reset connection."""

    def parse_header(self, header_plus: bytes) -> None:
        super().parse_header(header_plus)
        if self.chunked:
            adj: Any = copy.copy(self.__dict__["adj"])
            adj.max_request_body_size += CHUNKED_SLACK
            self.__dict__["adj"] = adj


class JsonErrorChannel(HTTPChannel):  # type: ignore[misc]
    error_task_class = JsonErrorTask
    parser_class = LimitParser


Answer = Callable[[dict[str, Any]], "tuple[str, list[tuple[str, str]], bytes] | None"]


class FastChannel(JsonErrorChannel):
    """Granted annotation tiles answered on waitress's I/O thread, as soon as the request is parsed.

    Waitress hands every request to a worker thread and the reply back to its I/O thread: two thread
    wake-ups per request, each a wait for a CPU (and the GIL) when the machine is busy, which is where a
    tile's latency tail came from (docs/viewer-tiles.md). A tile the caller was granted is a dict lookup
    and a slice of a mapped file (``AnnotileFastPath.answer``): cheaper than the hand-off itself, so it is
    answered right here. Only when nothing else of the connection is pending (replies stay in order), for
    a plain HTTP/1.1 GET without a body; everything else takes waitress's usual path."""

    fast_answer: Answer | None = None

    def received(self, data: bytes) -> bool:
        # waitress's HTTPChannel.received (3.0), with the inline answer where a request completes
        if not data:
            return False
        ch: Any = self  # waitress's attributes, untyped
        with ch.requests_lock:
            if ch.will_close or ch.close_when_flushed:
                return False
            while data:
                if ch.request is None:
                    ch.request = ch.parser_class(ch.adj)
                n = ch.request.received(data)
                if (ch.request.expect_continue and ch.request.headers_finished and not ch.requests
                        and not ch.sent_continue):
                    ch.send_continue()
                if ch.request.completed:
                    ch.sent_continue = False
                    req, ch.request = ch.request, None
                    if not req.empty and not (not ch.requests and self._answer_inline(req)):
                        ch.requests.append(req)
                        if len(ch.requests) == 1:
                            ch.server.add_task(ch)
                if n >= len(data):
                    break
                data = data[n:]
        return True

    def _answer_inline(self, req: Any) -> bool:
        answer = self.fast_answer
        if (answer is None or req.error is not None or req.command != "GET" or req.version != "1.1"
                or req.content_length or req.chunked or self.total_outbufs_len):
            return False
        h = req.headers
        if "close" in h.get("CONNECTION", "").lower():
            return False
        environ = {"REQUEST_METHOD": "GET", "PATH_INFO": req.path, "QUERY_STRING": req.query,
                   **{f"HTTP_{k}": v for k, v in h.items()}}
        got = answer(environ)
        if got is None:
            return False
        status, headers, body = got
        head = "".join(f"{k}: {v}\r\n" for k, v in headers)
        if not any(k.lower() == "content-length" for k, _v in headers):
            head += f"Content-Length: {len(body)}\r\n"
        out = f"HTTP/1.1 {status}\r\n{head}Date: {build_http_date(time.time())}\r\nServer: waitress\r\n\r\n"
        data = out.encode("latin-1") + body
        with self.outbuf_lock:
            self.outbufs[-1].append(data)
            self.current_outbuf_count += len(data)
            self.total_outbufs_len += len(data)
        self.last_activity = time.time()
        self._flush_exception(self._flush_some)  # no task runs on this channel: send now, from this thread
        return True


def make_server(app: Flask, **kw: Any) -> Any:
    """``waitress.create_server(app, **kw)`` with the app's body limit, JSON error replies and granted
    annotation tiles answered on the I/O thread (:class:`FastChannel`)."""
    limit = int(app.config["EXACT"]["max_request_bytes"])
    srv = create_server(app, max_request_body_size=limit + 1, **kw)  # waitress refuses at >= its limit
    servers = [srv] if hasattr(srv, "channel_class") else [s for s in srv.map.values() if hasattr(s, "channel_class")]
    fast = app.extensions.get("exact_annotile_fast_path")
    channel = type("ExactChannel", (FastChannel,), {"fast_answer": staticmethod(fast.answer) if fast else None})
    for s in servers:
        s.channel_class = channel
    return srv
