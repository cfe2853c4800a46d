"""The OpenAPI 3.1 description of REST API v1."""

from typing import Any

_ERR = {"description": "error", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}}
_REPO = {"name": "name", "in": "path", "required": True, "schema": {"type": "string"}}
_REV = {"name": "rev", "in": "query", "schema": {"type": "string", "default": "HEAD"}}


def _get(summary: str, params: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    return {"get": {"summary": summary, "parameters": params or [], "responses": {
        "200": {"description": "ok", "content": {"application/json": {"schema": {"type": "object"}}}},
        "401": _ERR, "403": _ERR, "404": _ERR}}}


OPENAPI: dict[str, Any] = {
    "openapi": "3.1.0",
    "info": {"title": "exactvc REST API", "version": "1"},
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
        "/api/v1/repos": _get("Repositories the caller can read"),
        "/api/v1/repos/{name}": _get("One repository", [_REPO]),
        "/api/v1/repos/{name}/refs": _get("Branches and tags", [_REPO]),
        "/api/v1/repos/{name}/commits/{rev}": _get("One commit", [
            _REPO, {"name": "rev", "in": "path", "required": True, "schema": {"type": "string"}}]),
        "/api/v1/repos/{name}/log": _get("History", [_REPO, _REV, {"name": "n", "in": "query",
                                                                   "schema": {"type": "integer"}}]),
        "/api/v1/repos/{name}/diff": _get("Diff between two revisions (exactvc.diff/v1)", [
            _REPO, {"name": "old", "in": "query", "required": True, "schema": {"type": "string"}},
            {"name": "new", "in": "query", "required": True, "schema": {"type": "string"}},
            {"name": "image", "in": "query", "schema": {"type": "string"}}]),
        "/api/v1/repos/{name}/images": _get("Images at a revision", [_REPO, _REV]),
        "/api/v1/repos/{name}/labels": _get("Label set at a revision", [_REPO, _REV]),
        "/api/v1/repos/{name}/images/{image}/annotations": _get(
            "Annotations at a revision, by page (cursor = last id of the previous page)", [
                _REPO, {"name": "image", "in": "path", "required": True, "schema": {"type": "string"}}, _REV,
                {"name": "bbox", "in": "query", "schema": {"type": "string"}, "description": "x0,y0,x1,y1"},
                {"name": "label", "in": "query", "schema": {"type": "string"}},
                {"name": "limit", "in": "query", "schema": {"type": "integer", "minimum": 1, "maximum": 5000}},
                {"name": "cursor", "in": "query", "schema": {"type": "string"}}]),
        "/api/v1/repos/{name}/edits": {"post": {
            "summary": "Create/update/delete annotations on a branch and commit them (expected_parent check)",
            "parameters": [_REPO],
            "requestBody": {"content": {"application/json": {"schema": {"type": "object", "properties": {
                "branch": {"type": "string"}, "expected_parent": {"type": ["string", "null"]},
                "image": {"type": "string"}, "message": {"type": "string"},
                "create": {"type": "array"}, "update": {"type": "array"},
                "delete": {"type": "array", "items": {"type": "string"}}}}}}},
            "responses": {"201": {"description": "committed"}, "401": _ERR, "403": _ERR, "409": _ERR,
                          "422": _ERR}}},
        "/api/v1/repos/{name}/roles": {
            "get": {"summary": "Roles granted on a repository (admin)", "parameters": [_REPO],
                    "responses": {"200": {"description": "ok"}, "401": _ERR, "403": _ERR, "404": _ERR}},
            "post": {"summary": "Grant a role to a user or team (admin)", "parameters": [_REPO],
                     "requestBody": {"content": {"application/json": {"schema": {"type": "object", "properties": {
                         "who": {"type": "string"}, "role": {"type": "string"}, "team": {"type": "boolean"}}}}}},
                     "responses": {"200": {"description": "ok"}, "401": _ERR, "403": _ERR, "404": _ERR,
                                   "422": _ERR}},
        },
        "/api/v1/repos/{name}/settings": {"put": {
            "summary": "Anonymous read and protected branches (admin)", "parameters": [_REPO],
            "requestBody": {"content": {"application/json": {"schema": {"type": "object", "properties": {
                "anonymous_read": {"type": "boolean"}, "protected": {"type": "array", "items": {"type": "string"}}}}}}},
            "responses": {"200": {"description": "ok"}, "401": _ERR, "403": _ERR, "422": _ERR}}},
    },
}
