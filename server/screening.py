"""REST routes of screening mode (docs/viewer.md, "Screening"): the caller's position and progress on one
image, kept per user and image (exactvc.screening). Thin adapters."""

from __future__ import annotations

from typing import Any

import orjson
from flask import Blueprint, Response, current_app, jsonify, request

from exactvc.errors import InvalidInput
from exactvc.screening import ScreeningStore, checked_state, fields

from .context import current_user, repos, require
from .errors import Unauthorized

screening_api = Blueprint("screening_api", __name__, url_prefix="/api/v1/repos/<name>/images/<image>")


def store() -> ScreeningStore:
    ext: dict[str, Any] = current_app.extensions
    if "exact_screening" not in ext:
        ext["exact_screening"] = repos().backends.screening_store(repos().root)
    s: ScreeningStore = ext["exact_screening"]
    return s


def screening_user() -> str:
    """The signed-in user whose screening progress a request reads or writes (401 for anonymous callers)."""
    u = current_user()
    if u is None:
        raise Unauthorized("authentication required: screening progress is kept per user")
    return u.name


@screening_api.get("/screening")
def get_state(name: str, image: str) -> Response:
    """The caller's screening state on the image (null before they start), with the grid's fields."""
    require(name, "read")
    user = screening_user()
    rec = repos().get(name).image(image)
    st = store().get(name, rec.name, user)
    grid = fields(rec.width, rec.height, *st["field"]) if st else None
    return jsonify({"image": rec.name, "state": st, "fields": grid})


@screening_api.put("/screening")
def put_state(name: str, image: str) -> Response:
    require(name, "read")
    user = screening_user()
    rec = repos().get(name).image(image)
    try:
        body = orjson.loads(request.get_data() or b"{}")
    except orjson.JSONDecodeError:
        raise InvalidInput("request body is not valid JSON") from None
    st = checked_state(body, rec.width, rec.height)
    store().put(name, rec.name, user, st)
    return jsonify({"image": rec.name, "state": st})


@screening_api.delete("/screening")
def reset(name: str, image: str) -> Response:
    require(name, "read")
    rec = repos().get(name).image(image)
    store().reset(name, rec.name, screening_user())
    return jsonify({"image": rec.name, "state": None})
