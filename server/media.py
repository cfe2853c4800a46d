"""Media upload from the viewer (exactvc/media.py): the request body, streamed into content-addressed
artefact chunks, attached to an annotation in one commit on the caller's branch. Thin adapter.

``POST /api/v1/repos/NAME/images/IMAGE/annotations/ID/media?filename=F&expected_parent=C&from=REV&branch=B``
(annotate; body: the file's bytes; at most ``media_max_bytes``, default 256 MB, refused from
``Content-Length`` before a byte is read). 201 with the commit, branch and media item.
"""

from __future__ import annotations

from flask import Blueprint, Response, current_app, jsonify, request

from exactvc import media
from exactvc.access import may_push
from exactvc.errors import InvalidInput, TooLarge
from exactvc.refs import check_short_name

from .context import access, current_user, repos, require
from .errors import Forbidden, Unauthorized

media_api = Blueprint("media_api", __name__, url_prefix="/api/v1/repos/<name>/images/<image>")


@media_api.post("/annotations/<aid>/media")
def upload(name: str, image: str, aid: str) -> Response:
    role = require(name, "annotate")
    user = current_user()
    if user is None:
        raise Unauthorized("authentication required to upload media")
    limit = int(current_app.config["EXACT"].get("media_max_bytes", media.MAX_BYTES))
    if request.content_length is not None and request.content_length > limit:
        raise TooLarge(f"media file over the limit of {limit} bytes")
    filename = request.args.get("filename", "")
    if not filename:
        raise InvalidInput("filename is required (the file's name: its type comes from it)")
    branch = request.args.get("branch") or f"users/{user.name}/edits"
    check_short_name(branch, "branch")
    why = may_push(role, user, "heads/" + branch, list(access().settings(name)["protected"]),  # type: ignore[arg-type]
                   False, False)
    if why is not None:
        raise Forbidden(why)
    exp = request.args.get("expected_parent") or None
    if exp is not None and not (len(exp) == 64 and all(c in "0123456789abcdef" for c in exp)):
        raise InvalidInput("expected_parent must be a commit id in hex (64 digits)")
    repo = repos().get(name)
    cid, item = media.attach_stream(repo, image, aid, request.stream, filename, branch,
                                    bytes.fromhex(exp) if exp else None, f"{user.name} <{user.name}@exactvc>",
                                    start=request.args.get("from") or None, max_bytes=limit)
    resp = jsonify({"commit": cid.hex(), "branch": branch, "media": item})
    resp.status_code = 201
    return resp
