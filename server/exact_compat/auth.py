"""HTTP Basic authentication (what the EXACT-Sync client sends by default): user name + password, or user
name + one of the user's tokens. Failures count against the same sign-in limits as ``POST /api/v1/session``
(429 with ``Retry-After`` beyond them); a verified password is remembered per thread until the access
store changes, so paging through 2,500 annotations does not verify an argon2 hash per page."""

from __future__ import annotations

import base64
import binascii
import threading

import blake3
from flask import Response, current_app, request

from exactvc.access import User

from ..context import access, error_response

_local = threading.local()
BAD = "wrong user name or password"


def _cfg(key: str, default: int) -> int:
    return int(current_app.config["EXACT"].get(key, default))


def basic_authenticate(credentials: str) -> User | Response:
    """The user of ``Authorization: Basic CREDENTIALS``, or the JSON error reply (401, 429)."""
    try:
        raw = base64.b64decode(credentials.strip(), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError, ValueError):
        return error_response("unauthorized", "Authorization: Basic needs base64 of NAME:PASSWORD", 401)
    name, sep, secret = raw.partition(":")
    if not sep or not name or not secret:
        return error_response("unauthorized", "Authorization: Basic needs NAME:PASSWORD (or NAME:TOKEN)", 401)
    acc = access()
    cache: dict[str, tuple[int, User]] = _local.__dict__.setdefault("cache", {})
    key = blake3.blake3(b"exactvc:basic\0" + raw.encode()).hexdigest()
    ver = acc.version()
    hit = cache.get(key)
    if hit is not None and hit[0] == ver:
        return hit[1]
    client = request.remote_addr or "unknown"
    window = _cfg("login_window_s", 15 * 60)
    limit_key = f"user\0{name.lower()}\0{client}"
    limits = {limit_key: _cfg("login_limit", 5), f"client\0{client}": _cfg("login_client_limit", 50)}
    wait = acc.login_blocked(limits, window)
    if wait:
        resp = error_response("rate_limited", f"too many failed sign-ins: try again in {wait} s", 429)
        resp.headers["Retry-After"] = str(wait)
        return resp
    user: User | None
    if secret.startswith("exv_"):  # a token in the password field
        user = acc.authenticate(secret)
        if user is not None and user.name != name:
            user = None
    else:
        user = acc.check_password(name, secret)
    if user is None:
        acc.login_failed(list(limits), window)
        return error_response("unauthorized", BAD, 401)
    acc.login_succeeded(limit_key)
    if len(cache) > 1000:
        cache.clear()
    cache[key] = (acc.version(), user)
    return user
