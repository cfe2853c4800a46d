"""What the blueprints share: the open repositories, the access store, the caller, role checks and the
one JSON error shape. Blueprints import this module, never ``server.app`` (the app imports them)."""

from __future__ import annotations

import re
import threading
from pathlib import Path
from typing import Any

from flask import Response, current_app, g, has_request_context, jsonify, request

from exactvc.access import RANK, Access, User, check_name, ref_visible
from exactvc.backends.config import Backends
from exactvc.errors import InvalidInput, NotFound
from exactvc.repo import Repository

from .errors import Forbidden, Unauthorized


class Repos:
    """Open repositories, shared by request threads."""

    def __init__(self, root: Path, backends: Backends | None = None) -> None:
        self.root = root
        self.backends = backends or Backends()
        self._open: dict[str, Repository] = {}
        self._lock = threading.Lock()

    def path(self, name: str) -> Path:
        try:
            check_name(name, "repository name")
        except InvalidInput:
            raise NotFound(f"no repository {name!r}") from None
        p = (self.root / name).resolve()
        if p.parent != self.root.resolve():
            raise NotFound(f"no repository {name!r}")
        # with a database, a repository another machine created gets its folder here on first use
        if not (p / ".exact" / "HEAD").is_file() and not self.backends.materialize(self.root, name):
            raise NotFound(f"no repository {name!r}")
        return p

    def get(self, name: str) -> Repository:
        p = self.path(name)
        with self._lock:
            repo = self._open.get(name)
            if repo is None:
                # objects on S3 and refs in PostgreSQL when so configured (exactvc/backends/config.py)
                repo = self.backends.open_repository(self.root, p.name)
                self._open[name] = repo
        repo.store.refresh()  # type: ignore[attr-defined]
        return _scope(name, repo)

    def names(self) -> list[str]:
        local = {p.name for p in self.root.iterdir() if (p / ".exact" / "HEAD").is_file()}
        for name in self.backends.registered():  # another machine's repositories, with a database
            if name not in local and _valid_name(name) and self.backends.materialize(self.root, name):
                local.add(name)
        return sorted(local)


def _scope(name: str, repo: Repository) -> Repository:
    """In a request on a blind-mode repository, the caller's view of it (exactvc/visibility.py)."""
    if not has_request_context():
        return repo
    st = access().settings(name)
    if st["mode"] != "blind":
        return repo
    user = current_user()
    role = access().role(name, user)
    if role is not None and RANK[role] >= RANK["maintain"]:
        return repo
    from exactvc.visibility import scoped

    prot = list(st["protected"])
    # where ref_visible can say yes: the caller's own branches, tags and the protected branches
    where = [*([f"heads/users/{user.name}/"] if user is not None else []), "tags/", *(f"heads/{p}" for p in prot)]
    return scoped(repo, lambda ref: ref_visible("blind", role, user, ref, prot), where)


def _valid_name(name: str) -> bool:
    try:
        check_name(name, "repository name")
    except InvalidInput:
        return False
    return True


_LOCAL_PATH = re.compile(r"(?<![\w:/.])/(?:[^\s/'\"]+/)+[^\s/'\",;:)]*")


def redact(message: str) -> str:
    """``message`` without local file paths (no response tells where the server keeps its files)."""
    return _LOCAL_PATH.sub("<path>", message)


def error_response(kind: str, message: str, status: int, **extra: Any) -> Response:
    resp = jsonify({"error": {"type": kind, "message": redact(message)}, **extra})
    resp.status_code = status
    return resp


def repos() -> Repos:
    r: Repos = current_app.extensions["exact_repos"]
    return r


def access() -> Access:
    a: Access = current_app.extensions["exact_access"]
    return a


def prebuilder() -> Any:
    """The app's annotation-tile prebuilder (exactvc/prebuild.py), or None when prebuilding is off."""
    return current_app.extensions.get("exact_annotile_prebuilder")


def prebuild(name: str, commit: bytes | None) -> None:
    """A ref of repository ``name`` moved to ``commit``: build its images' annotation tiles in the background."""
    pb = prebuilder()
    if pb is not None and commit is not None:
        pb.submit(repos().path(name), commit)


def current_user() -> User | None:
    u: User | None = g.get("user")
    return u


def require(repo_name: str, role: str) -> str:
    """The caller's role on ``repo_name`` if it is at least ``role``.

    A caller who may not read the repository learns nothing about whether it exists: anonymous callers
    get 401 and signed-in ones 404 for an existing private repository and a missing one alike. Callers
    who may read it get 404 only if it is gone, and 403 when their role is too weak.
    """
    if not _valid_name(repo_name):  # a name no repository can have: nothing to hide
        raise NotFound(f"no repository {repo_name[:80]!r}")
    have = access().role(repo_name, current_user())
    if have is None:
        if current_user() is None:
            raise Unauthorized("authentication required (Authorization: Bearer TOKEN)")
        raise NotFound(f"no repository {repo_name[:80]!r} that you can read")
    repos().path(repo_name)  # 404 for a repository that is gone
    if RANK[have] < RANK[role]:
        if current_user() is None:
            raise Unauthorized("authentication required (Authorization: Bearer TOKEN)")
        raise Forbidden(f"{role} access to {repo_name} required (you have {have or 'none'})")
    return have


def int_param(name: str, default: int | None, lo: int, hi: int) -> int:
    """An integer query parameter: ASCII digits only (no sign, spaces, underscores or other scripts'
    digits), within [lo, hi]; 422 ``invalid_input`` otherwise. ``default`` None: required."""
    v = request.args.get(name)
    if v is None:
        if default is None:
            raise InvalidInput(f"missing parameter {name}")
        return default
    if not (v.isascii() and v.isdigit()) or len(v) > 12:
        raise InvalidInput(f"{name} must be a whole number from {lo} to {hi}, not {v[:40]!r}")
    n = int(v)
    if not lo <= n <= hi:
        raise InvalidInput(f"{name} must be between {lo} and {hi}")
    return n


def json_body(allowed: set[str]) -> dict[str, Any]:
    """The request's JSON object (empty when there is no body), refusing unknown fields."""
    import orjson

    try:
        body = orjson.loads(request.get_data() or b"{}")
    except orjson.JSONDecodeError:
        raise InvalidInput("request body is not valid JSON") from None
    if not isinstance(body, dict):
        raise InvalidInput("the body must be a JSON object")
    extra = sorted(set(body) - allowed)
    if extra:
        raise InvalidInput(f"unknown field {extra[0]!r} (allowed: {', '.join(sorted(allowed))})")
    return body
