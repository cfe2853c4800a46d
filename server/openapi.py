"""The OpenAPI 3.1 description of every route of the server: REST API v1, slides and tiles, the sync protocol.

tests/test_server_fuzz.py checks that each route of the Flask url_map is described here (with its
methods and parameters) and fuzzes the server from this document.
"""

from typing import Any

_ERR = {"description": "error", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}}
_ERRORS = {code: _ERR for code in ("400", "401", "403", "404", "405", "409", "413", "422")}


def _path(name: str, schema: dict[str, Any] | None = None) -> dict[str, Any]:
    return {"name": name, "in": "path", "required": True, "schema": schema or {"type": "string"}}


def _query(name: str, schema: dict[str, Any], required: bool = False, description: str = "") -> dict[str, Any]:
    p: dict[str, Any] = {"name": name, "in": "query", "schema": schema}
    if required:
        p["required"] = True
    if description:
        p["description"] = description
    return p


_REPO = _path("name")
_FP = _path("fp", {"type": "string", "pattern": "^[0-9a-f]{64}$", "description": "blake3 of the file bytes"})
_REV = _query("rev", {"type": "string", "default": "HEAD"})
_FRAME = _query("frame", {"type": "integer", "minimum": 0, "default": 0})
_INT = {"type": "integer", "minimum": 0}
_COMMIT = _path("commit", {"type": "string", "pattern": "^[0-9a-f]{64}$", "description": "a full commit id"})


def _op(method: str, summary: str, params: list[dict[str, Any]] | None = None, body: dict[str, Any] | None = None,
        ok: str = "200", content: str = "application/json", body_type: str = "application/json") -> dict[str, Any]:
    op: dict[str, Any] = {"summary": summary, "parameters": params or [],
                          "responses": {ok: {"description": "ok", "content": {content: {"schema": {}}}}, **_ERRORS}}
    if body is not None:
        op["requestBody"] = {"required": True, "content": {body_type: {"schema": body}}}
    return {method: op}


def _obj(props: dict[str, Any], required: list[str] | None = None) -> dict[str, Any]:
    out: dict[str, Any] = {"type": "object", "properties": props, "additionalProperties": False}
    if required:
        out["required"] = required
    return out


_STR = {"type": "string"}
_IDS = {"type": "array", "items": {"type": "string", "pattern": "^[0-9a-f]{64}$"}, "maxItems": 4096}
_EDIT = _obj({
    "branch": _STR, "expected_parent": {"type": ["string", "null"]}, "from": _STR, "image": _STR, "message": _STR,
    "create": {"type": "array", "items": _obj({"label": _STR, "geometry": {"type": "object"},
                                                "properties": {"type": "object"}, "plane": {},
                                                "id": _STR}, ["label", "geometry"])},
    "update": {"type": "array", "items": {"type": "object", "required": ["id"]}},
    "delete": {"type": "array", "items": _STR}})

_ARTEFACT = _op("get", "An artefact's bytes, verified chunk by chunk; Range: bytes=A-B gives 206", [
    _REPO, _path("artefact", {"type": "string", "pattern": "^[0-9a-f]{4,64}$"})], content="application/octet-stream")
_ARTEFACT["get"]["responses"]["206"] = {"description": "a byte range",
                                        "content": {"application/octet-stream": {"schema": {}}}}
_ARTEFACT["get"]["responses"]["416"] = _ERR

OPENAPI: dict[str, Any] = {
    "openapi": "3.1.0",
    "info": {"title": "exactvc server", "version": "1",
             "description": "REST API v1 (docs/api.md), slides and tiles, and the sync protocol (docs/protocol.md). "
                            "Every error is {\"error\": {\"type\", \"message\"}}; the types are listed in docs/api.md."},
    "components": {
        "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"},
                            "session": {"type": "apiKey", "in": "cookie", "name": "exact_session",
                                        "description": "writes also need the X-CSRF-Token header"}},
        "schemas": {"Error": {"type": "object", "required": ["error"], "properties": {"error": {
            "type": "object", "required": ["type", "message"],
            "properties": {"type": {"type": "string"}, "message": {"type": "string"}}}}},
            "Session": {"type": "object", "required": ["user", "csrf_token", "expires"], "properties": {
                "user": {"type": "string"}, "csrf_token": {"type": "string"},
                "expires": {"type": "string", "format": "date-time"}}}},
    },
    "security": [{"bearer": []}, {"session": []}, {}],
    "paths": {
        "/api/v1/session": {
            "post": {"summary": "Sign in (password or token): sets the exact_session cookie",
                     "requestBody": {"content": {"application/json": {"schema": {"type": "object", "properties": {
                         "user": {"type": "string"}, "password": {"type": "string"}, "token": {"type": "string"}}}}}},
                     "responses": {"200": {"description": "signed in", "content": {"application/json": {
                         "schema": {"$ref": "#/components/schemas/Session"}}}},
                         "401": _ERR, "403": _ERR, "422": _ERR, "429": _ERR}},
            "get": {"summary": "The current session", "responses": {
                "200": {"description": "signed in", "content": {"application/json": {
                    "schema": {"$ref": "#/components/schemas/Session"}}}}, "401": _ERR}},
            "delete": {"summary": "Sign out (needs X-CSRF-Token)", "responses": {
                "204": {"description": "signed out"}, "403": _ERR}},
        },
        "/api/v1/openapi.json": _op("get", "This document"),
        "/api/v1/repos": _op("get", "Repositories the caller can read"),
        "/api/v1/repos/{name}": _op("get", "One repository", [_REPO]),
        "/api/v1/repos/{name}/refs": _op("get", "Branches and tags", [_REPO]),
        "/api/v1/repos/{name}/commits/{rev}": _op("get", "One commit", [_REPO, _path("rev")]),
        "/api/v1/repos/{name}/log": _op("get", "History", [
            _REPO, _REV, _query("n", {"type": "integer", "minimum": 1, "maximum": 10000}), _query("image", _STR)]),
        "/api/v1/repos/{name}/diff": _op("get", "Diff between two revisions (exactvc.diff/v1)", [
            _REPO, _query("old", _STR, True), _query("new", _STR, True), _query("image", _STR),
            _query("stat", {"type": "string", "enum": ["0", "1", "true", "false"]})]),
        "/api/v1/repos/{name}/images": _op("get", "Images at a revision", [_REPO, _REV]),
        "/api/v1/repos/{name}/labels": _op("get", "Label set at a revision", [_REPO, _REV]),
        "/api/v1/repos/{name}/images/{image}/annotations": _op(
            "get", "Annotations at a revision, by page (cursor = next_cursor of the previous page)", [
                _REPO, _path("image"), _REV,
                _query("bbox", _STR, description="x0,y0,x1,y1: finite, x0 <= x1, y0 <= y1"),
                _query("label", _STR), _query("limit", {"type": "integer", "minimum": 1, "maximum": 5000}),
                _query("cursor", _STR)]),
        "/api/v1/repos/{name}/resolve": _op("get", "A revision (branch, tag, HEAD, main~2, id prefix) as a full "
                                                   "commit id", [_REPO, _query("rev", _STR)]),
        "/api/v1/repos/{name}/images/{image}/annotiles/{commit}/manifest.json": _op(
            "get", "Annotation tiles of an image at a commit: the manifest (docs/viewer-tiles.md)",
            [_REPO, _path("image"), _COMMIT]),
        "/api/v1/repos/{name}/images/{image}/annotiles/{commit}/{kind}/{z}/{x}/{y}.bin": _op(
            "get", "One annotation tile: g geometry, d density, i ids (immutable; gzip when accepted)",
            [_REPO, _path("image"), _COMMIT, _path("kind", {"type": "string", "enum": ["g", "d", "i"]}),
             _path("z", _INT), _path("x", _INT), _path("y", _INT)], content="application/octet-stream"),
        "/api/v1/repos/{name}/images/{image}/annotiles/{commit}/records/{aid}": _op(
            "get", "The full annotation (id, label, kind, geometry, properties, plane) at a commit",
            [_REPO, _path("image"), _COMMIT, _path("aid")]),
        "/api/v1/repos/{name}/edits": _op(
            "post", "Create/update/delete annotations on a branch and commit them (expected_parent check)",
            [_REPO], _EDIT, ok="201"),
        "/api/v1/repos/{name}/roles": {
            **_op("get", "Roles granted on a repository (admin)", [_REPO]),
            **_op("post", "Grant a role to a user or team (admin)", [_REPO], _obj({
                "who": _STR, "role": {"type": "string", "enum": ["read", "annotate", "maintain", "admin", "none"]},
                "team": {"type": "boolean"}}, ["who", "role"])),
        },
        "/api/v1/repos/{name}/settings": _op("put", "Anonymous read and protected branches (admin)", [_REPO], _obj({
            "anonymous_read": {"type": "boolean"}, "protected": {"type": "array", "items": _STR}})),
        "/api/v1/repos/{name}/runs": _op("get", "Runs, oldest first (docs/experiments.md)", [
            _REPO, _query("commit", _STR, description="only runs on this revision"), _query("name", _STR)]),
        "/api/v1/repos/{name}/runs/{ident}": _op(
            "get", "One run (id, unique prefix, alias or name): metrics, parameters, code state, artefacts",
            [_REPO, _path("ident")]),
        "/api/v1/repos/{name}/metrics": _op("get", "The metrics table with label changes between run commits", [
            _REPO, _query("run", _STR), _query("revs", _STR, description="A..B"), _query("branch", _STR),
            _query("only_changed", {"type": "string", "enum": ["0", "1", "true", "false"]})]),
        "/api/v1/repos/{name}/artefacts": _op("get", "Artefacts attached to a commit", [_REPO, _REV]),
        "/api/v1/repos/{name}/artefacts/{artefact}": _ARTEFACT,
        "/slides/{fp}.dzi": _op("get", "DeepZoom descriptor", [_FP, _FRAME], content="application/xml"),
        "/slides/{fp}_files/{level}/{col}_{row}.jpeg": _op("get", "A DeepZoom tile", [
            _FP, _path("level", {"type": "integer"}), _path("col", {"type": "integer"}),
            _path("row", {"type": "integer"}), _FRAME], content="image/jpeg"),
        "/slides/{fp}/info.json": _op("get", "Dimensions, levels, mpp, frames", [_FP, _FRAME]),
        "/slides/{fp}/thumbnail.jpeg": _op("get", "A thumbnail", [
            _FP, _FRAME, _query("size", {"type": "integer", "minimum": 16, "maximum": 2048})], content="image/jpeg"),
        "/slides/{fp}/region": _op("get", "A region of a level (at most 4096x4096 px)", [
            _FP, _FRAME, _query("x", _INT, True), _query("y", _INT, True),
            _query("w", {"type": "integer", "minimum": 1, "maximum": 8192}, True),
            _query("h", {"type": "integer", "minimum": 1, "maximum": 8192}, True), _query("level", _INT)],
            content="image/jpeg"),
        "/slides/{fp}/upload": {
            **_op("get", "Upload status (annotate)", [_FP]),
            **_op("put", "Append a chunk at byte offset", [_FP, _query("offset", _INT, True)],
                  {"type": "string", "format": "binary"}, body_type="application/octet-stream"),
        },
        "/slides/{fp}/upload/complete": _op("post", "Verify the uploaded bytes against the fingerprint, index", [
            _FP, _query("suffix", {"type": "string", "default": ".svs"})]),
        "/": _op("get", "Web viewer: the repository list page (docs/viewer.md)", content="text/html"),
        "/-/signin": _op("get", "Web viewer: the sign-in page", [_query("next", {"type": "string"})],
                         content="text/html"),
        "/-/assets/{filename}": _op("get", "Web viewer: the built bundle (JS, CSS, source maps)", [_path("filename")],
                                    content="text/javascript"),
        "/-/label-counts/{name}/{image}": _op("get", "Annotation counts per label of one image (read)",
                                              [_REPO, _path("image"), _REV]),
        "/{name}": _op("get", "Web viewer: the image set page (JSON errors unless the client accepts HTML)",
                       [_REPO, _REV], content="text/html"),
        "/{name}/slide/{image}": _op("get", "Web viewer: the slide page; the query is the deep link", [
            _REPO, _path("image"), _REV, _query("x", {"type": "number"}), _query("y", {"type": "number"}),
            _query("zoom", {"type": "number"}), _FRAME], content="text/html"),
        "/{name}/info/refs": _op("get", "Ref advertisement (docs/protocol.md section 1)", [_REPO]),
        "/{name}/negotiate": _op("post", "Which of these commits the server has (section 2)", [_REPO],
                                 _obj({"ids": _IDS}, ["ids"])),
        "/{name}/fetch": _op("post", "Objects reachable from wants, not from haves (section 3)", [_REPO],
                             _obj({"wants": _IDS, "haves": _IDS, "known": _IDS}, ["wants"]),
                             content="application/x-exactvc-stream"),
        "/{name}/push": _op("post", "u32 LE header length, header JSON, object stream (section 4)", [_REPO],
                            {"type": "string", "format": "binary"}, body_type="application/x-exactvc-push"),
    },
}
