"""Flask app factory: one server for every repository under ROOT."""

from __future__ import annotations

from pathlib import Path
from typing import Any
from urllib.parse import unquote

from flask import Flask, Response, g, request
from werkzeug.exceptions import HTTPException

from exactvc.errors import ExactError, InvalidInput, UsageError

from .agreement import agreement_api
from .annotiles import annotiles, install_prebuild
from .annotiles import install_fast_path as install_annotile_fast_path
from .api import api
from .context import Repos, access, error_response
from .exact_compat import basic_authenticate, exact_compat
from .maps import maps_api
from .media import media_api
from .pages import pages
from .plugins import plugins_api
from .pulls import pulls
from .runs import runs_api
from .screening import screening_api
from .session import DEFAULTS as SESSION_DEFAULTS
from .session import cookie_authenticate, session
from .sync import sync
from .tiles import install_fast_path, tiles
from .verifications import verifications_api

HTTP_KINDS = {400: "bad_request", 404: "not_found", 405: "method_not_allowed", 413: "too_large",
              431: "too_large", 501: "not_implemented"}
DEFAULTS: dict[str, Any] = {
    "max_request_bytes": 512 * 1024 * 1024,
    "page_limit": 1000,
    **SESSION_DEFAULTS,
}


def check_origin(url: str) -> str:
    """A tile origin as ``scheme://host[:port]`` (virtual image sets; the pages' CSP names it)."""
    import re

    u = str(url).rstrip("/")
    if not re.fullmatch(r"https?://[A-Za-z0-9.\-]+(:\d{1,5})?|https?://\[[0-9A-Fa-f:.]+\](:\d{1,5})?", u):
        raise InvalidInput(f"tile origin must be scheme://host[:port] (http or https, no path): {url!r}")
    return u.lower()


def create_app(config: dict[str, Any]) -> Flask:
    """``config``: ``root`` (folder of repositories), optional ``max_request_bytes``, ``page_limit``,
    ``tile_origins`` (servers whose tiles the pages may show: virtual image sets), ``annotile_prebuild``
    (default true: exactvc/prebuild.py), and the sign-in settings of server/session.py (``session_idle_s``, ``session_max_s``, ``login_limit``, ...)."""
    app = Flask("exactvc-server", static_folder=None)  # no /static route: every route is in server/openapi.py
    app.url_map.merge_slashes = False  # "//" must not redirect: such names simply do not exist
    cfg = {**DEFAULTS, **config}
    cfg["tile_origins"] = [check_origin(o) for o in cfg.get("tile_origins") or []]
    root = Path(cfg["root"]).resolve()
    root.mkdir(parents=True, exist_ok=True)
    app.config["EXACT"] = cfg
    app.config["MAX_CONTENT_LENGTH"] = cfg["max_request_bytes"]
    from exactvc.backends.config import Backends

    backends = Backends.load(root, config.get("objects"), config.get("db"))
    backends.check_schema()
    app.extensions["exact_repos"] = Repos(root, backends)
    app.extensions["exact_access"] = backends.access_store(root)  # SQLite under ROOT or the shared database
    app.extensions["exact_pulls"] = backends.pull_store(root)
    from exactvc.jobs import stale_after

    stale_after()  # a bad EXACT_JOB_HEARTBEAT_TIMEOUT stops the start, with its one-line message
    app.extensions["exact_jobs"] = backends.job_store(root)  # detector runs, seen by every server process

    @app.before_request
    def refuse_empty_segments() -> Response | None:
        # e.g. "/%2Fetc/info/refs" (waitress strips the leading slashes): no route has an empty segment
        raw = unquote(request.environ.get("REQUEST_URI", "").split("?", 1)[0])
        if "//" in request.environ.get("PATH_INFO", "") or "//" in raw:
            return error_response("not_found", "no such resource", 404)
        return None

    @app.before_request
    def authenticate() -> Response | None:
        """A Bearer token (scripts; no CSRF token needed) or else the session cookie (browsers)."""
        g.user = None
        g.session = None
        auth = request.headers.get("Authorization", "")
        if not auth:
            return cookie_authenticate()
        scheme, _, token = auth.partition(" ")
        if scheme.lower() == "basic" and token:  # EXACT-Sync's default: NAME:PASSWORD or NAME:TOKEN
            got = basic_authenticate(token)
            if isinstance(got, Response):
                return got
            g.user = got
            return None
        if scheme.lower() not in ("bearer", "token") or not token:
            return error_response("unauthorized", "Authorization must be 'Bearer TOKEN' or 'Basic ...'", 401)
        user = access().authenticate(token.strip())
        if user is None:
            return error_response("unauthorized", "invalid or revoked token", 401)
        g.user = user
        return None

    @app.errorhandler(ExactError)
    def exact_error(exc: ExactError) -> Response:
        if isinstance(exc, UsageError):  # a malformed request parameter, as every other: 422 invalid_input
            return error_response("invalid_input", exc.message, 422)
        return error_response(exc.kind, exc.message, exc.http_status)

    @app.errorhandler(HTTPException)
    def http_error(exc: HTTPException) -> Response:
        code = exc.code or 500
        if code == 413:
            limit = app.config["MAX_CONTENT_LENGTH"]
            resp = error_response("too_large", f"request body over the limit of {limit} bytes", 413)
        else:
            resp = error_response(HTTP_KINDS.get(code, "bad_request" if code < 500 else "internal"),
                                  exc.description or str(exc), code)
        allow = dict(exc.get_headers()).get("Allow")
        if allow:
            resp.headers["Allow"] = allow
        return resp

    @app.errorhandler(Exception)
    def internal(exc: Exception) -> Response:
        app.logger.exception("internal error")
        return error_response("internal", f"internal error: {type(exc).__name__}", 500)

    app.register_blueprint(session)  # before api: /api/v1/session
    app.register_blueprint(api)
    app.register_blueprint(pulls)
    app.register_blueprint(exact_compat)  # EXACT's paths (docs/exact-compat.md); none collides with ours
    app.register_blueprint(verifications_api)  # /api/v1/repos/NAME/images/IMAGE/...verifications
    app.register_blueprint(runs_api)  # /api/v1/repos/NAME/runs, artefacts, metrics
    app.register_blueprint(plugins_api)  # /api/v1/plugins, /api/v1/repos/NAME/proposals, analyses
    app.register_blueprint(agreement_api)  # /api/v1/repos/NAME/agreement
    app.register_blueprint(screening_api)  # /api/v1/repos/NAME/images/IMAGE/screening
    app.register_blueprint(maps_api)  # /api/v1/repos/NAME/maps, /maps/MAP.dzi and tiles
    app.register_blueprint(media_api)  # /api/v1/repos/NAME/images/IMAGE/annotations/ID/media
    app.register_blueprint(annotiles)
    app.register_blueprint(tiles)  # before sync: /slides/... must not be taken for a repository
    app.register_blueprint(pages)  # /, /-/..., /<repo>, /<repo>/slide/<image>: none is a sync route
    app.register_blueprint(sync)
    for folder in cfg.get("slide_folders", []):
        from exactvc.slidestore import SlideStore

        SlideStore(root).index_folder(folder)
    install_fast_path(app)
    install_annotile_fast_path(app)
    install_prebuild(app)
    return app


