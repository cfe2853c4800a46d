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
_MAP = _path("mid", {"type": "string", "pattern": "^[0-9a-f]{32}$", "description": "an annotation map's id"})
_COMMIT = _path("commit", {"type": "string", "pattern": "^[0-9a-f]{64}$", "description": "a full commit id"})


def _screening_state() -> dict[str, Any]:
    """The body of a screening state PUT (an image's or a map's)."""
    return _obj({"field": {"type": "array", "items": {"type": "integer", "minimum": 1}, "minItems": 2, "maxItems": 2},
                 "current": {"type": "integer", "minimum": 0},
                 "screened": {"type": "array", "items": {"type": "integer", "minimum": 0}},
                 "zoom": {"type": "number"}}, ["field"])


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


_N = _path("n", {"type": "integer", "minimum": 1})
_BOX = {"type": "array", "items": {"type": "number"}, "minItems": 4, "maxItems": 4}
_PAGE = [_query("bbox", _STR, description="x0,y0,x1,y1: changes whose old or new bounds meet it"),
         _query("label", _STR), _query("kind", {"type": "string", "enum": ["added", "modified", "deleted"]}),
         _query("image", _STR), _query("limit", {"type": "integer", "minimum": 1, "maximum": 5000}),
         _query("cursor", _STR, description="next_cursor of the previous page (IMAGE:ID)")]
_SIDE = {"type": "string", "enum": ["ours", "theirs", "base"]}
_RES = {"type": "array", "items": _obj({"side": {"type": "string", "enum": ["ours", "theirs", "base", "delete", "edit"]},
                                         "ids": {"type": "array", "items": _STR}, "label": _STR, "bbox": _BOX,
                                         "image": _STR, "fields": {"type": "object", "additionalProperties": _SIDE},
                                         "value": _obj({"label": _STR, "geometry": {"type": "object"},
                                                        "properties": {"type": "object"}, "kind": _STR, "plane": {}},
                                                       ["label", "geometry"])}, ["side"])}
_PR = "/api/v1/repos/{name}/pulls/{n}"
PULL_PATHS: dict[str, Any] = {
    "/api/v1/repos/{name}/pulls": {
        **_op("get", "Pull requests (state filter: draft, open, closed, merged, all)", [
            _REPO, _query("state", {"type": "string", "enum": ["draft", "open", "closed", "merged", "all"]})]),
        **_op("post", "Open a pull request from a branch of this repository (annotate)", [_REPO], _obj({
            "title": _STR, "body": _STR, "source": _STR, "target": _STR, "draft": {"type": "boolean"}},
            ["title", "source"]), ok="201"),
    },
    _PR: {
        **_op("get", "One pull request: revisions, change summary, approvals", [_REPO, _N]),
        **_op("patch", "Change title, body or state (draft, open, closed): the author or a maintainer", [_REPO, _N],
              _obj({"title": _STR, "body": _STR, "state": {"type": "string", "enum": ["draft", "open", "closed"]}})),
    },
    _PR + "/changes": _op("get", "The changes of the pull request, paged or spatially filtered, with decisions",
                          [_REPO, _N, *_PAGE]),
    _PR + "/reviews": {
        **_op("get", "Reviews and the approvals that count", [_REPO, _N]),
        **_op("post", "Review: comment (read), approve or request changes (maintain; not your own)", [_REPO, _N],
              _obj({"kind": {"type": "string", "enum": ["comment", "approve", "request_changes"]}, "body": _STR},
                   ["kind"]), ok="201"),
    },
    _PR + "/comments": {
        **_op("get", "Comments in threads (anchored ones say whether they are outdated)", [_REPO, _N]),
        **_op("post", "Comment, optionally anchored to an annotation (and a viewport), or a reply", [_REPO, _N],
              _obj({"body": _STR, "annotation": _STR, "image": _STR, "viewport": _BOX,
                    "reply_to": {"type": "integer"}}, ["body"]), ok="201"),
    },
    _PR + "/comments/{cid}": _op("patch", "Resolve or reopen a comment's thread", [
        _REPO, _N, _path("cid", {"type": "integer", "minimum": 1})], _obj({"resolved": {"type": "boolean"}},
                                                                          ["resolved"])),
    _PR + "/decisions": {
        **_op("get", "The decisions that still apply", [_REPO, _N]),
        **_op("post", "Accept, reject or clear changes: by ids, label, bbox or image (maintain)", [_REPO, _N], _obj({
            "decision": {"type": "string", "enum": ["accept", "reject", "clear"]},
            "ids": {"type": "array", "items": _STR}, "label": _STR, "bbox": _BOX, "image": _STR}, ["decision"])),
    },
    _PR + "/checks": _op("get", "Validation and duplicate checks of the current revision", [_REPO, _N]),
    _PR + "/merge": {
        **_op("get", "Merge preview: mergeable, blockers, conflicts with the target", [_REPO, _N]),
        **_op("post", "Merge (maintain): rejections as a commit on the source, then a merge commit", [_REPO, _N],
              _obj({"override_checks": {"type": "boolean"}, "resolutions": _RES, "message": _STR})),
    },
    _PR + "/conflicts": _op("get", "Conflicts of merging into the target now: base / ours / theirs per annotation, paged", [
        _REPO, _N, _query("bbox", _STR, description="x0,y0,x1,y1: conflicts one of whose values meets it"),
        _query("label", _STR), _query("image", _STR), _query("limit", {"type": "integer", "minimum": 1, "maximum": 5000}),
        _query("cursor", _STR, description="next_cursor of the previous page (an address)")]),
    _PR + "/agreement": _op("get", "Agreement figures: share accepted, relabel confusion, IoU of corrections",
                            [_REPO, _N]),
    "/api/v1/repos/{name}/images/{image}/changes": _op(
        "get", "Changes of one image between two revisions, paged or by bbox (never unchanged annotations)",
        [_REPO, _path("image"), _query("old", _STR, True), _query("new", _STR, True), *_PAGE]),
    "/api/v1/repos/{name}/images/{image}/compare": _op(
        "get", "Geometric comparison of two revisions sharing no ids: matched, only in a, only in b, P/R/F1", [
            _REPO, _path("image"), _query("a", _STR, True), _query("b", _STR, True),
            _query("match", _STR, description="e.g. iou=0.5,dist=10 (docs/matching.md)"),
            _query("limit", {"type": "integer", "minimum": 1, "maximum": 100000})]),
    "/api/v1/repos/{name}/agreement": _op(
        "get", "Rater agreement: detection F1 and Cohen's kappa of labels on matched pairs (two revisions: per "
        "label; more or a branch pattern: the pairwise table). Blind mode: maintainers only", [
            _REPO, _query("rev", _STR, description="repeatable: the raters' revisions"),
            _query("branches", _STR, description="raters are the branches matching this pattern, e.g. users/*/study"),
            _query("image", _STR), _query("match", _STR, description="e.g. iou=0.5 or dist=10 (docs/matching.md)")]),
    "/api/v1/repos/{name}/images/{image}/matches": _op(
        "get", "The geometric comparison paged for the viewer: figures per label, entries with both geometries", [
            _REPO, _path("image"), _query("a", _STR, True), _query("b", _STR, True),
            _query("match", _STR, description="e.g. iou=0.5,dist=10 (docs/matching.md)"),
            _query("bbox", _STR, description="x0,y0,x1,y1: entries one of whose shapes meets it"), _query("label", _STR),
            _query("status", {"type": "string", "enum": ["matched", "only_in_a", "only_in_b"]}),
            _query("limit", {"type": "integer", "minimum": 1, "maximum": 5000}),
            _query("cursor", _STR, description="next_cursor of the previous page")]),
    "/api/v1/repos/{name}/bundles": _op(
        "post", "Upload a bundle (maintain): verified like a push; its branch created; with title, a pull request",
        [_REPO, _query("ref", _STR), _query("branch", _STR), _query("title", _STR), _query("body", _STR),
         _query("target", _STR)], {"type": "string", "format": "binary"}, ok="201",
        body_type="application/x-exactvc-bundle"),
}


# --- the EXACT-compatible subset (docs/exact-compat.md, server/exact_compat/) ---
_ID = _path("id", {"type": "integer", "minimum": 0})
_LIMIT_OFFSET = [_query("limit", {"type": "integer", "minimum": 0, "maximum": 5000}),
         _query("offset", {"type": "integer", "minimum": 0})]
_SHAPE = [_query(n, _STR, description="comma list, dotted forms, or ['a', 'b']") for n in ("expand", "omit", "fields")]
_NAMED = [_query("id", _INT), _query("id__in", _STR), _query("name", _STR), _query("name__contains", _STR)]
_ANN_BODY = {"type": "object", "properties": {
    "image": _INT, "annotation_type": _INT, "vector": {"type": ["object", "null"]}, "unique_identifier": _STR,
    "description": _STR, "meta_data": {"type": ["object", "null"]}, "deleted": {"type": "boolean"}}}


def _exact(summary: str, list_params: list[dict[str, Any]]) -> dict[str, Any]:
    return _op("get", summary, [*_LIMIT_OFFSET, *_SHAPE, *_NAMED, *list_params])


EXACT_PATHS: dict[str, Any] = {
    "/api/v1/images/image_sets/": _exact("EXACT: image sets (repositories)", [
        _query("team", _INT), _query("product", _INT)]),
    "/api/v1/images/image_sets/{id}/": _op("get", "EXACT: one image set", [_ID, *_SHAPE]),
    "/api/v1/images/images/": {
        **_exact("EXACT: images", [_query("image_set", _INT)]),
        **_op("post", "EXACT: upload an image (multipart: file_path, image_set, image_type)", [],
              {"type": "object", "properties": {"file_path": {"type": "string", "format": "binary"},
                                                "image_set": _INT, "image_type": _INT}},
              ok="201", body_type="multipart/form-data")},
    "/api/v1/images/images/{id}/": _op("get", "EXACT: one image", [_ID, *_SHAPE]),
    "/images/api/image/download/{id}/": _op("get", "EXACT: the image file (legacy download URL)", [_ID],
                                            content="application/octet-stream"),
    "/api/v1/annotations/annotation_types/": {
        **_exact("EXACT: annotation types (labels)", [_query("product", _INT), _query("vector_type", _INT)]),
        **_op("post", "EXACT: add an annotation type (a commit on your working branch)", [], {
            "type": "object", "required": ["name", "product"], "properties": {
                "name": _STR, "product": _INT, "vector_type": {"type": "integer", "minimum": 1, "maximum": 6},
                "color_code": _STR, "default_width": _INT, "default_height": _INT, "sort_order": _INT}},
              ok="201")},
    "/api/v1/annotations/annotation_types/{id}/": _op("get", "EXACT: one annotation type", [_ID, *_SHAPE]),
    "/api/v1/annotations/annotations/": {
        **_op("get", "EXACT: annotations (LimitOffset pages)", [
            *_LIMIT_OFFSET, *_SHAPE, _query("id", _INT), _query("id__in", _STR), _query("image", _INT),
            _query("image__in", _STR), _query("annotation_type", _INT), _query("annotation_type__in", _STR),
            _query("unique_identifier", _STR), _query("unique_identifier__in", _STR),
            _query("unique_identifier__contains", _STR), _query("description", _STR),
            _query("description__contains", _STR), _query("vector_type", _INT),
            _query("deleted", {"type": "string", "enum": ["true", "false"]})]),
        **_op("post", "EXACT: create (or upsert on image + unique_identifier) one annotation or a list",
              [], {"oneOf": [_ANN_BODY, {"type": "array", "items": _ANN_BODY}]}, ok="201")},
    "/api/v1/annotations/annotations/{id}/": {
        **_op("get", "EXACT: one annotation", [_ID, *_SHAPE]),
        **_op("patch", "EXACT: change fields of an annotation (a commit)", [_ID], _ANN_BODY),
        **_op("put", "EXACT: replace an annotation (annotation_type and image required)", [_ID], _ANN_BODY),
        **_op("delete", "EXACT: delete an annotation (a commit)", [_ID], ok="204")},
    "/api/v1/annotations/annotations/multiple_delete/": _op(
        "delete", "EXACT: delete annotations id__in=1,2,3 (one commit)", [_query("id__in", _STR, True)]),
    "/api/v1/administration/products/": _exact("EXACT: products (a repository's label set)", [
        _query("team", _INT), _query("imagesets", _INT)]),
    "/api/v1/administration/products/{id}/": _op("get", "EXACT: one product", [_ID, *_SHAPE]),
    "/api/v1/users/teams/": _exact("EXACT: teams (the people with a role on a repository)", []),
    "/api/v1/users/teams/{id}/": _op("get", "EXACT: one team", [_ID, *_SHAPE]),
    "/api/v1/users/users/": _op("get", "EXACT: users", [*_LIMIT_OFFSET, *_SHAPE, _query("id", _INT),
                                                        _query("username", _STR), _query("username__contains", _STR)]),
    "/api/v1/users/users/{id}/": _op("get", "EXACT: one user", [_ID, *_SHAPE]),
    "/api/v1/repos/{name}/exact-compat": {
        **_op("get", "Which branch the EXACT-compatible API reads (read)", [_REPO]),
        **_op("put", "Set the branch the EXACT-compatible API reads (admin)", [_REPO],
              _obj({"read_branch": _STR}))},
}
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
        "/api/v1/repos/{name}/images/{image}/annotiles/{commit}/f{frame}/manifest.json": _op(
            "get", "The manifest of the annotation tiles of one frame (z plane) of a multi-frame image",
            [_REPO, _path("image"), _COMMIT, _path("frame", _INT)]),
        "/api/v1/repos/{name}/images/{image}/annotiles/{commit}/f{frame}/{kind}/{z}/{x}/{y}.bin": _op(
            "get", "One annotation tile of one frame (z plane) of a multi-frame image",
            [_REPO, _path("image"), _COMMIT, _path("frame", _INT),
             _path("kind", {"type": "string", "enum": ["g", "d", "i"]}), _path("z", _INT), _path("x", _INT),
             _path("y", _INT)], content="application/octet-stream"),
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
        "/api/v1/repos/{name}/settings": _op("put", "Anonymous read, protected branches, approvals (admin)", [_REPO],
                                             _obj({"anonymous_read": {"type": "boolean"},
                                                   "protected": {"type": "array", "items": _STR},
                                                   "required_approvals": {"type": "integer", "minimum": 0,
                                                                          "maximum": 100},
                                                   "mode": {"type": "string",
                                                            "enum": ["cooperative", "blind", "second-opinion"]},
                                                   "opinions": {"type": "integer", "minimum": 1,
                                                                "maximum": 20}})),
        **PULL_PATHS,
        **EXACT_PATHS,
        "/api/v1/repos/{name}/runs": _op("get", "Runs, oldest first (docs/experiments.md)", [
            _REPO, _query("commit", _STR, description="only runs on this revision"), _query("name", _STR)]),
        "/api/v1/repos/{name}/runs/{ident}": _op(
            "get", "One run (id, unique prefix, alias or name): metrics, parameters, code state, artefacts",
            [_REPO, _path("ident")]),
        "/api/v1/repos/{name}/runs/{ident}/outcomes": _op(
            "get", "Where a run's predictions on an image hit and missed: tp, fp, fn with geometry and score", [
                _REPO, _path("ident"), _query("image", _STR, required=True), _query("truth", _STR),
                _query("match", _STR, description="iou=0.5 or dist=PX"),
                _query("bbox", _STR, description="x0,y0,x1,y1"), _query("limit", {"type": "integer"})]),
        "/api/v1/repos/{name}/metrics": _op("get", "The metrics table with label changes between run commits", [
            _REPO, _query("run", _STR), _query("revs", _STR, description="A..B"), _query("branch", _STR),
            _query("only_changed", {"type": "string", "enum": ["0", "1", "true", "false"]})]),
        "/api/v1/repos/{name}/artefacts": _op("get", "Artefacts attached to a commit", [_REPO, _REV]),
        "/api/v1/plugins": _op("get", "Installed plugins: detectors and analyses (docs/plugins.md)"),
        "/api/v1/repos/{name}/proposals": _op(
            "post", "Run a detector; its proposals on proposals/PLUGIN/N and a pull request (annotate)", [_REPO],
            _obj({"image": _STR, "plugin": _STR, "region": _BOX, "params": {"type": "object"}, "target": _STR,
                  "wait": {"type": "boolean"}, "title": _STR}, ["image", "plugin"]), ok="201"),
        "/api/v1/repos/{name}/proposals/jobs": _op("get", "The newest detector runs of the repository (annotate)",
                                                   [_REPO]),
        "/api/v1/repos/{name}/proposals/jobs/{ident}": {
            **_op("get", "A detector run: state, progress, result or error", [_REPO, _path("ident")]),
            **_op("delete", "Cancel a detector run", [_REPO, _path("ident")]),
        },
        "/api/v1/repos/{name}/images/{image}/screening": {
            **_op("get", "The caller's screening position and progress on the image, with its fields of view",
                  [_REPO, _path("image")]),
            **_op("put", "Store the caller's screening state (read)", [_REPO, _path("image")], _screening_state()),
            **_op("delete", "Forget the caller's screening state on the image", [_REPO, _path("image")]),
        },
        "/api/v1/repos/{name}/maps/{mid}/screening": {
            **_op("get", "The caller's screening position and progress on an annotation map, with its fields "
                  "of view", [_REPO, _MAP]),
            **_op("put", "Store the caller's screening state on the map (read)", [_REPO, _MAP], _screening_state()),
        },
        "/api/v1/repos/{name}/images/{image}/annotations/{aid}/verifications": _op(
            "post", "Verify an annotation yes/no: a commit on the caller's branch (annotate)",
            [_REPO, _path("image"), _path("aid")],
            _obj({"yes": {"type": "boolean"}, "comment": _STR, "branch": _STR,
                  "expected_parent": {"type": ["string", "null"]}, "from": _STR}, ["yes"]), ok="201"),
        "/api/v1/repos/{name}/images/{image}/verifications/pending": _op(
            "get", "Annotations still needing the caller's verification (second opinion)",
            [_REPO, _path("image"), _query("rev", _STR),
             _query("limit", {"type": "integer", "minimum": 1, "maximum": 10000, "default": 1000})]),
        "/api/v1/repos/{name}/analyses": _op(
            "post", "Run an analysis over the annotations of a region: its figures", [_REPO],
            _obj({"image": _STR, "plugin": _STR, "region": _BOX, "params": {"type": "object"}, "rev": _STR},
                 ["image", "plugin"])),
        "/api/v1/repos/{name}/artefacts/{artefact}": _ARTEFACT,
        "/api/v1/repos/{name}/maps": _op(
            "get", "Open an annotation map of a label (read): its id, DZI url, size and the first patches "
            "(docs/collaboration.md)", [
                _REPO, _REV, _query("label", _STR, required=True),
                _query("image", _STR, description="only these images (repeatable); default: every image"),
                _query("patch", {"type": "integer", "minimum": 8, "maximum": 1024, "default": 128}),
                _query("per_row", {"type": "integer", "minimum": 1, "maximum": 1000, "default": 20}),
                _query("scale", {"type": "integer", "enum": [1, 2, 4, 8, 16, 32, 64], "default": 1}),
                _query("order", {"type": "string", "enum": ["id", "position"], "default": "id"}),
                _query("prop", _STR, description="KEY=VALUE: only annotations with that property value"),
                _query("limit", {"type": "integer", "minimum": 0, "maximum": 1000, "default": 200})]),
        "/api/v1/repos/{name}/maps/{mid}/patches": _op("get", "A page of an open map's layout (read)", [
            _REPO, _MAP, _query("offset", _INT), _query("limit", {"type": "integer", "minimum": 1, "maximum": 1000})]),
        "/api/v1/repos/{name}/images/{image}/annotations/{aid}/media": _op(
            "post", "Attach a media file (the body, streamed) to an annotation: one commit on the caller's branch "
            "(annotate)", [_REPO, _path("image"), _path("aid"), _query("filename", _STR, required=True),
                           _query("branch", _STR), _query("expected_parent", _STR), _query("from", _STR)],
            {"type": "string", "format": "binary"}, ok="201", body_type="application/octet-stream"),
        "/maps/{mid}.dzi": _op("get", "An annotation map's DeepZoom descriptor (read on its repository)", [_MAP],
                               content="application/xml"),
        "/maps/{mid}_files/{level}/{col}_{row}.jpeg": _op("get", "An annotation map's tile, built on first request", [
            _MAP, _path("level", {"type": "integer"}), _path("col", {"type": "integer"}),
            _path("row", {"type": "integer"})], content="image/jpeg"),
        "/{name}/map": _op("get", "Web viewer: an annotation map (the query is the map's spec)", [
            _REPO, _REV, _query("label", _STR), _query("patch", _INT), _query("per_row", _INT), _query("scale", _INT),
            _query("order", _STR), _query("prop", _STR), _query("image", _STR)], content="text/html"),
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
        "/{name}/diff/{image}": _op("get", "Web viewer: the diff view of one image between two revisions", [
            _REPO, _path("image"), _query("old", _STR), _query("new", _STR)], content="text/html"),
        "/{name}/pull/{number}": _op("get", "Web viewer: a pull request on its diff view (decisions, reviews, comments)", [
            _REPO, _path("number"), _query("image", _STR)], content="text/html"),
        "/{name}/experiments": _op("get", "Web viewer: the experiments page (runs, a metric, TP/FP/FN overlay)", [
            _REPO, _query("run", _STR), _query("image", _STR), _query("metric", _STR), _query("branch", _STR)],
            content="text/html"),
        "/{name}/pulls": _op("get", "Web viewer: the pull request list, filtered by state", [
            _REPO, _query("state", {"type": "string", "enum": ["open", "draft", "merged", "closed", "all"]})],
            content="text/html"),
        "/{name}/agreement": _op("get", "Web viewer: the raters' pairwise agreement table (detection F1, Cohen's kappa)", [
            _REPO, _query("branches", _STR), _query("rev", _STR), _query("image", _STR), _query("match", _STR)],
            content="text/html"),
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
