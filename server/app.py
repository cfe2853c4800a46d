"""Flask app factory: one server for every repository under ROOT."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

from flask import Flask, Response, g, jsonify, request
from werkzeug.exceptions import HTTPException

from exactvc.access import AccessStore, User, check_name
from exactvc.errors import ExactError, InvalidInput, NotFound
from exactvc.repo import Repository

DEFAULTS: dict[str, Any] = {
    "max_request_bytes": 512 * 1024 * 1024,
    "page_limit": 1000,
}


class Repos:
    """Open repositories, shared by request threads."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self._open: dict[str, Repository] = {}
        self._lock = threading.Lock()

    def path(self, name: str) -> Path:
        try:
            check_name(name, "repository name")
        except InvalidInput:
            raise NotFound(f"no repository {name!r}") from None
        p = (self.root / name).resolve()
        if p.parent != self.root.resolve() or not (p / ".exact" / "HEAD").is_file():
            raise NotFound(f"no repository {name!r}")
        return p

    def get(self, name: str) -> Repository:
        p = self.path(name)
        with self._lock:
            repo = self._open.get(name)
            if repo is None:
                repo = Repository.open(p, search_parents=False)
                self._open[name] = repo
        repo.store.refresh()  # type: ignore[attr-defined]
        return repo

    def names(self) -> list[str]:
        return sorted(p.name for p in self.root.iterdir() if (p / ".exact" / "HEAD").is_file())


def error_response(kind: str, message: str, status: int, **extra: Any) -> Response:
    resp = jsonify({"error": {"type": kind, "message": message}, **extra})
    resp.status_code = status
    return resp


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

    from .api import api
    from .sync import sync
    from .tiles import tiles

    app.register_blueprint(api)
    app.register_blueprint(tiles)  # before sync: /slides/... must not be taken for a repository
    app.register_blueprint(sync)
    for folder in cfg.get("slide_folders", []):
        from exactvc.slidestore import SlideStore

        SlideStore(root).index_folder(folder)
    from .tiles import install_fast_path

    install_fast_path(app)
    return app


def repos() -> Repos:
    from flask import current_app

    r: Repos = current_app.extensions["exact_repos"]
    return r


def access() -> AccessStore:
    from flask import current_app

    a: AccessStore = current_app.extensions["exact_access"]
    return a


def current_user() -> User | None:
    u: User | None = g.get("user")
    return u


def require(repo_name: str, role: str) -> str:
    """The caller's role on ``repo_name`` if it is at least ``role``; else 401 (anonymous) or 403."""
    from exactvc.access import RANK

    from .errors import Forbidden, Unauthorized

    repos().path(repo_name)  # 404 for unknown repositories first
    have = access().role(repo_name, current_user())
    if have is None or RANK[have] < RANK[role]:
        if current_user() is None:
            raise Unauthorized("authentication required (Authorization: Bearer TOKEN)")
        raise Forbidden(f"{role} access to {repo_name} required (you have {have or 'none'})")
    return have
