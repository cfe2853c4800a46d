"""Flask app factory: one server for every repository under ROOT."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from flask import Flask, Response, g, request
from werkzeug.exceptions import HTTPException

from exactvc.access import AccessStore
from exactvc.errors import ExactError

from .annotiles import annotiles
from .api import api
from .context import Repos, access, error_response
from .sync import sync
from .tiles import install_fast_path, tiles

DEFAULTS: dict[str, Any] = {
    "max_request_bytes": 512 * 1024 * 1024,
    "page_limit": 1000,
}


def create_app(config: dict[str, Any]) -> Flask:
    """``config``: ``root`` (folder of repositories), optional ``max_request_bytes``, ``page_limit``."""
    app = Flask("exactvc-server")
    app.url_map.merge_slashes = False  # "//" must not redirect: such names simply do not exist
    cfg = {**DEFAULTS, **config}
    root = Path(cfg["root"]).resolve()
    root.mkdir(parents=True, exist_ok=True)
    app.config["EXACT"] = cfg
    app.config["MAX_CONTENT_LENGTH"] = cfg["max_request_bytes"]
    app.extensions["exact_repos"] = Repos(root)
    app.extensions["exact_access"] = AccessStore(root)

    @app.before_request
    def authenticate() -> Response | None:
        g.user = None
        auth = request.headers.get("Authorization", "")
        if auth:
            scheme, _, token = auth.partition(" ")
            if scheme.lower() != "bearer" or not token:
                return error_response("unauthorized", "Authorization must be 'Bearer TOKEN'", 401)
            user = access().authenticate(token.strip())
            if user is None:
                return error_response("unauthorized", "invalid or revoked token", 401)
            g.user = user
        return None

    @app.errorhandler(ExactError)
    def exact_error(exc: ExactError) -> Response:
        return error_response(exc.kind, exc.message, exc.http_status)

    @app.errorhandler(HTTPException)
    def http_error(exc: HTTPException) -> Response:
        kinds = {413: "too_large", 404: "not_found", 405: "method_not_allowed", 400: "bad_request"}
        return error_response(kinds.get(exc.code or 500, "http_error"), exc.description or str(exc), exc.code or 500)

    @app.errorhandler(Exception)
    def internal(exc: Exception) -> Response:
        app.logger.exception("internal error")
        return error_response("internal", f"internal error: {type(exc).__name__}", 500)

    app.register_blueprint(api)
    app.register_blueprint(annotiles)
    app.register_blueprint(tiles)  # before sync: /slides/... must not be taken for a repository
    app.register_blueprint(sync)
    for folder in cfg.get("slide_folders", []):
        from exactvc.slidestore import SlideStore

        SlideStore(root).index_folder(folder)
    install_fast_path(app)
    return app


