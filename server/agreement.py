"""REST route of rater agreement (docs/collaboration.md, "Agreement"): a thin adapter over exactvc.agreement.

``GET /api/v1/repos/NAME/agreement?rev=A&rev=B[&rev=...]`` or ``?branches=users/*/study``, with ``image`` and
``match``. Two revisions give the detailed comparison, more (or a branch pattern) the pairwise table. In blind
mode only maintainers may ask: the table compares raters who must not see each other.
"""

from __future__ import annotations

from flask import Blueprint, Response, jsonify, request

from exactvc import agreement as ag
from exactvc.errors import InvalidInput

from .context import access, repos, require

agreement_api = Blueprint("agreement_api", __name__, url_prefix="/api/v1")


@agreement_api.get("/repos/<name>/agreement")
def agreement(name: str) -> Response:
    require(name, "maintain" if access().settings(name)["mode"] == "blind" else "read")
    repo = repos().get(name)
    revs = request.args.getlist("rev")
    pattern = request.args.get("branches")
    if pattern:
        revs = revs + ag.rater_branches(repo, pattern)
    spec = request.args.get("match", "iou=0.5")
    image = request.args.get("image") or None
    if len(revs) < 2:
        raise InvalidInput("agreement needs two revisions (rev=A&rev=B), more, or branches=PATTERN matching two"
                           + (f" ({pattern!r} matches {len(revs)})" if pattern else ""))
    if len(revs) == 2 and not pattern:
        return jsonify(ag.agreement(repo, revs[0], revs[1], spec, image))
    return jsonify(ag.pairwise(repo, revs, spec, image))
