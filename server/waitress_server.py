"""The waitress server of an app: its request-size limit and its own error replies in the JSON error shape.

Waitress reads a whole request body before it calls the app, so the body limit must be waitress's
own: a request whose Content-Length is over it is refused as soon as its headers are in, before a
byte of the body is read (and a chunked body as soon as it passes the limit). Waitress's own error
replies (413, malformed requests, a crash outside the app) are plain text; here they are the JSON
``{"error": {"type", "message"}}`` every other reply uses.
"""

from __future__ import annotations

import copy
from typing import Any

import orjson
from flask import Flask
from waitress.channel import HTTPChannel
from waitress.parser import HTTPRequestParser
from waitress.server import create_server
from waitress.task import ErrorTask

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


def make_server(app: Flask, **kw: Any) -> Any:
    """``waitress.create_server(app, **kw)`` with the app's body limit and JSON error replies."""
    limit = int(app.config["EXACT"]["max_request_bytes"])
    srv = create_server(app, max_request_body_size=limit + 1, **kw)  # waitress refuses at >= its limit
    servers = [srv] if hasattr(srv, "channel_class") else [s for s in srv.map.values() if hasattr(s, "channel_class")]
    for s in servers:
        s.channel_class = JsonErrorChannel
    return srv
