"""Per-repository settings of the EXACT-compatible API: which branch it reads (default main)."""

from __future__ import annotations

import orjson
from flask import Response, jsonify, request

from exactvc.errors import InvalidInput

from ..context import require
from .blueprint import exact_compat
from .resources import ids


@exact_compat.get("/api/v1/repos/<name>/exact-compat")
def get_settings(name: str) -> Response:
    require(name, "read")
    return jsonify({"read_branch": ids().read_branch(name)})


@exact_compat.put("/api/v1/repos/<name>/exact-compat")
def put_settings(name: str) -> Response:
    require(name, "admin")
    try:
        body = orjson.loads(request.get_data())
    except orjson.JSONDecodeError:
        raise InvalidInput("request body is not valid JSON") from None
    if not isinstance(body, dict) or set(body) - {"read_branch"}:
        raise InvalidInput('settings must be a JSON object {"read_branch": BRANCH}')
    if "read_branch" in body:
        ids().set_read_branch(name, body["read_branch"])
    return jsonify({"read_branch": ids().read_branch(name)})
