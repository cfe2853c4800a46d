"""REST routes of second-opinion mode (docs/api.md, "Verifications"): verify one annotation (a commit on the
caller's branch, as the viewer's edits) and the annotations still needing the caller's verification.
Thin adapters over exactvc.verification."""

from __future__ import annotations

from flask import Blueprint, Response, jsonify, request

from exactvc import verification
from exactvc.access import may_push
from exactvc.errors import InvalidInput
from exactvc.refs import check_short_name

from .context import access, current_user, int_param, json_body, repos, require
from .errors import Forbidden, Unauthorized

verifications_api = Blueprint("verifications_api", __name__, url_prefix="/api/v1/repos/<name>/images/<image>")


def _user_branch(user: str) -> str:
    return f"users/{user}/edits"


@verifications_api.post("/annotations/<aid>/verifications")
def verify(name: str, image: str, aid: str) -> Response:
    """The caller's yes/no (and comment) on one annotation, committed on ``branch`` (default the caller's
    ``users/NAME/edits``, started from ``from`` or HEAD); 409 if ``expected_parent`` is given and stale."""
    role = require(name, "read")
    user = current_user()
    if user is None:
        raise Unauthorized("authentication required to verify")
    body = json_body({"yes", "comment", "branch", "expected_parent", "from"})
    yes, comment = body.get("yes"), body.get("comment")
    if not isinstance(yes, bool):
        raise InvalidInput("yes must be true or false")
    if comment is not None and not isinstance(comment, str):
        raise InvalidInput("comment must be a string")
    branch = body.get("branch") or _user_branch(user.name)
    if not isinstance(branch, str):
        raise InvalidInput("branch must be a string")
    check_short_name(branch, "branch")
    start = body.get("from")
    if start is not None and not isinstance(start, str):
        raise InvalidInput("from must be a revision (a string)")
    why = may_push(role, user, "heads/" + branch, list(access().settings(name)["protected"]),  # type: ignore[arg-type]
                   False, False)
    if why is not None:
        raise Forbidden(why)
    expected: bytes | None | bool = False
    if "expected_parent" in body:
        exp = body["expected_parent"]
        if exp is not None and not (isinstance(exp, str) and len(exp) == 64
                                    and all(c in "0123456789abcdef" for c in exp)):
            raise InvalidInput("expected_parent must be a commit id in hex (64 digits) or null")
        expected = bytes.fromhex(exp) if exp else None
    res = verification.verify_on_branch(repos().get(name), branch, image, aid, yes, comment,
                                        f"{user.name} <{user.name}@exactvc>", expected, start)
    resp = jsonify(res)
    resp.status_code = 201
    return resp


@verifications_api.get("/verifications/pending")
def pending(name: str, image: str) -> Response:
    """The annotations at ``rev`` (default: the caller's branch if it exists, else HEAD) with fewer than the
    repository's ``opinions`` distinct verifiers, neither added nor verified by the caller."""
    require(name, "read")
    user = current_user()
    if user is None:
        raise Unauthorized("authentication required: what still needs verifying depends on who asks")
    repo = repos().get(name)
    rev = request.args.get("rev")
    if not rev:
        own = _user_branch(user.name)
        rev = own if repo.refs.read("heads/" + own) is not None else "HEAD"
    st = access().settings(name)
    limit = int_param("limit", 1000, 1, 10000)
    out = verification.pending(repo, image, rev, user.name, int(st["opinions"]), limit)
    return jsonify({**out, "mode": st["mode"]})
