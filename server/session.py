"""Browser sign-in: password (or token) → a server-side session in an HttpOnly cookie, with CSRF protection.

* ``POST /api/v1/session`` ``{"user", "password"}`` or ``{"token"}`` → 200 ``{"user", "csrf_token",
  "expires"}`` and the cookie ``exact_session`` (HttpOnly, SameSite=Strict, Path=/, Secure over https).
* ``GET /api/v1/session`` → the same for the current session; 401 when there is none.
* ``DELETE /api/v1/session`` → 204; the session is deleted on the server and the cookie cleared.

Sessions are stored as the hash of their secret, end after ``session_idle_s`` without use or
``session_max_s`` after sign-in, and end with the user (removal, new password). Failed sign-ins are
limited per user name and client (``login_limit`` per ``login_window_s``) and per client
(``login_client_limit``): 429 with ``Retry-After``.

Requests authenticated by the cookie that change anything (methods other than GET, HEAD, OPTIONS) must
come from the server's own origin (``Origin``, else ``Referer``; ``trusted_origins`` adds more) and carry
the session's CSRF token in ``X-CSRF-Token``; otherwise 403 ``csrf``. Bearer tokens need neither.
"""

from __future__ import annotations

import hmac
import time
from typing import Any
from urllib.parse import urlsplit

from flask import Blueprint, Response, current_app, g, jsonify, request

from exactvc.access import Session
from exactvc.errors import InvalidInput

from .context import access, error_response

COOKIE = "exact_session"
CSRF_HEADER = "X-CSRF-Token"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
SESSION_PATH = "/api/v1/session"
DEFAULTS: dict[str, Any] = {
    "session_idle_s": 12 * 3600,
    "session_max_s": 7 * 24 * 3600,
    "login_limit": 5,
    "login_client_limit": 50,
    "login_window_s": 15 * 60,
    "session_cookie_secure": None,  # None: Secure when the request came over https
    "trusted_origins": [],
}
WRONG_PASSWORD = "wrong user name or password"

session = Blueprint("session", __name__, url_prefix="/api/v1")


def _cfg(key: str) -> Any:
    return current_app.config["EXACT"].get(key, DEFAULTS[key])


def _lifetimes() -> tuple[int, int]:
    return int(_cfg("session_idle_s")), int(_cfg("session_max_s"))


def _iso(t: int) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(t))


def _body(s: Session) -> dict[str, Any]:
    return {"user": s.user.name, "csrf_token": s.csrf, "expires": _iso(s.expires)}


def _origin_of(url: str) -> str | None:
    u = urlsplit(url)
    if not u.scheme or not u.netloc:
        return None
    return f"{u.scheme}://{u.netloc}".lower()


def _request_origin() -> str | None:
    """Where the browser says the request comes from: Origin, else the origin of Referer, else None."""
    origin = request.headers.get("Origin")
    if origin is not None:
        return origin.lower() if origin != "null" else "null"
    referer = request.headers.get("Referer")
    return _origin_of(referer) if referer else None


def _own_origins() -> set[str]:
    own = {f"{request.scheme}://{request.host}".lower()}
    return own | {o.rstrip("/").lower() for o in _cfg("trusted_origins")}


def csrf_refusal(s: Session) -> str | None:
    """None if this cookie-authenticated write is allowed, else why it is refused."""
    origin = _request_origin()
    if origin is None:
        return "cross-site request refused: Origin or Referer header required with the session cookie"
    if origin not in _own_origins():
        return f"cross-site request refused: origin {origin} is not this server's"
    sent = request.headers.get(CSRF_HEADER, "")
    if not sent or not hmac.compare_digest(sent.encode(), s.csrf.encode()):
        return f"missing or wrong {CSRF_HEADER} header (GET {SESSION_PATH} gives the session's csrf_token)"
    return None


def cookie_authenticate() -> Response | None:
    """Before every request without an Authorization header: the user of a live session cookie.

    A cookie that names no live session is ignored (the caller is anonymous) and cleared in the reply.
    """
    g.session = None
    secret = request.cookies.get(COOKIE)
    if not secret:
        return None
    if request.method == "POST" and request.path == SESSION_PATH:
        return None  # signing in (again): the old session ends there; the CSRF token is not needed
    s = access().session(secret, *_lifetimes())
    if s is None:
        g.clear_cookie = True
        return None
    if request.method not in SAFE_METHODS:
        why = csrf_refusal(s)
        if why is not None:
            return error_response("csrf", why, 403)
    g.user = s.user
    g.session = s
    return None


@session.after_app_request
def clear_stale_cookie(resp: Response) -> Response:
    if g.get("clear_cookie"):
        _delete_cookie(resp)
    return resp


def _delete_cookie(resp: Response) -> None:
    resp.delete_cookie(COOKIE, path="/", httponly=True, samesite="Strict", secure=_secure())


def _secure() -> bool:
    forced = _cfg("session_cookie_secure")
    return bool(request.is_secure if forced is None else forced)


def _client() -> str:
    return request.remote_addr or "unknown"


def _json_object() -> dict[str, Any]:
    body = request.get_json(force=True, silent=True)
    if not isinstance(body, dict):
        raise InvalidInput('sign-in body must be a JSON object: {"user", "password"} or {"token"}')
    return body


@session.post("/session")
def sign_in() -> Response:
    origin = _request_origin()
    if origin is not None and origin not in _own_origins():
        return error_response("csrf", f"cross-site sign-in refused: origin {origin} is not this server's", 403)
    body = _json_object()
    acc = access()
    window = int(_cfg("login_window_s"))
    client = _client()
    token, name, password = body.get("token"), body.get("user"), body.get("password")
    if "token" in body:
        if not isinstance(token, str) or not token.strip():
            raise InvalidInput("token must be a non-empty string")
        key = f"token\0{client}"
    else:
        if not isinstance(name, str) or not name or not isinstance(password, str):
            raise InvalidInput('sign-in needs "user" and "password" (strings), or "token"')
        key = f"user\0{name.lower()}\0{client}"
    limits = {key: int(_cfg("login_limit")), f"client\0{client}": int(_cfg("login_client_limit"))}
    wait = acc.login_blocked(limits, window)
    if wait:
        resp = error_response("rate_limited", f"too many failed sign-ins: try again in {wait} s", 429)
        resp.headers["Retry-After"] = str(wait)
        return resp
    if isinstance(token, str) and "token" in body:
        user = acc.authenticate(token.strip())
        message = "invalid or revoked token"
    else:
        user = acc.check_password(str(name), str(password))
        message = WRONG_PASSWORD
    if user is None:
        acc.login_failed(list(limits), window)
        return error_response("unauthorized", message, 401)
    acc.login_succeeded(key)
    old = request.cookies.get(COOKIE)
    if old:
        acc.end_session(old)
    idle, absolute = _lifetimes()
    secret, s = acc.create_session(user, idle, absolute)
    g.clear_cookie = False
    resp = jsonify(_body(s))
    resp.headers["Cache-Control"] = "no-store"
    resp.set_cookie(COOKIE, secret, max_age=absolute, path="/", httponly=True, samesite="Strict",
                    secure=_secure())
    return resp


@session.get("/session")
def current() -> Response:
    s: Session | None = g.get("session")
    if s is None:
        return error_response("unauthorized", "not signed in", 401)
    resp = jsonify(_body(s))
    resp.headers["Cache-Control"] = "no-store"
    return resp


@session.delete("/session")
def sign_out() -> Response:
    secret = request.cookies.get(COOKIE)
    if secret and g.get("session") is not None:
        access().end_session(secret)
        # the tile fast paths (server/fastpath.py, server/annotiles.py) of this process forget what this cookie
        # was shown; another process's grants are at most GRANT_TTL (2 s) old, then its checks see the end
        for key in ("exact_grants", "exact_annotile_grants"):
            grants = current_app.extensions.get(key)
            if grants is not None:
                grants.clear()
    resp = Response(status=204)
    _delete_cookie(resp)
    return resp
