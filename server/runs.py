"""REST v1 for experiments: runs, their metrics table, commit artefacts, artefact downloads (Range)."""

from __future__ import annotations

import re
from collections.abc import Iterator

from flask import Blueprint, Response, jsonify, request

from exactvc import artefacts, evaluate, experiments, runs
from exactvc.errors import InvalidInput, NotFound

from .context import error_response, repos, require

runs_api = Blueprint("runs_api", __name__, url_prefix="/api/v1")
_HEX = re.compile(r"^[0-9a-f]{4,64}$")
_RANGE = re.compile(r"^bytes=(\d*)-(\d*)$")


@runs_api.get("/repos/<name>/runs")
def list_runs(name: str) -> Response:
    """Runs, oldest first; ``commit`` (a revision) and ``name`` filter them."""
    require(name, "read")
    repo = repos().get(name)
    rev = request.args.get("commit")
    return jsonify({"runs": runs.listing(repo, repo.resolve(rev) if rev else None, request.args.get("name"))})


@runs_api.get("/repos/<name>/runs/<ident>")
def show_run(name: str, ident: str) -> Response:
    """One run: parameters, metrics (final and history), code state, artefacts, predictions, evaluations."""
    require(name, "read")
    repo = repos().get(name)
    run_id, oid = runs.resolve(repo, ident)
    return jsonify(runs.describe(repo, run_id, oid))


@runs_api.get("/repos/<name>/runs/<ident>/outcomes")
def outcomes(name: str, ident: str) -> Response:
    """Where the run's predictions on ``image`` hit and missed (tp, fp, fn with geometry), for drawing:
    ``truth`` (a revision; default the run's commit), ``match`` (iou=0.5, dist=PX), ``bbox`` (x0,y0,x1,y1),
    ``limit`` (default 5000, at most 50000)."""
    require(name, "read")
    repo = repos().get(name)
    image = request.args.get("image")
    if not image:
        raise InvalidInput("outcomes need an image (?image=NAME)")
    bbox = None
    if request.args.get("bbox"):
        try:
            x0, y0, x1, y1 = (float(v) for v in request.args["bbox"].split(","))
        except ValueError:
            raise InvalidInput("bbox takes four numbers x0,y0,x1,y1") from None
        bbox = (x0, y0, x1, y1)
    try:
        limit = int(request.args.get("limit", "5000"))
    except ValueError:
        raise InvalidInput("limit takes a whole number") from None
    if not 0 <= limit <= 50000:
        raise InvalidInput("limit must be between 0 and 50000")
    return jsonify(evaluate.outcomes(repo, ident, image, request.args.get("truth"),
                                     request.args.get("match", "iou=0.5"), bbox, limit))


@runs_api.get("/repos/<name>/metrics")
def metrics(name: str) -> Response:
    """The metrics table (``exact metrics --json``): ``run`` (repeatable), ``revs`` (A..B) or ``branch``."""
    require(name, "read")
    repo = repos().get(name)
    idents = request.args.getlist("run") or None
    only = request.args.get("only_changed", "0") in ("1", "true")
    return jsonify(experiments.metrics_table(repo, idents, request.args.get("revs"), request.args.get("branch"),
                                             only))


@runs_api.get("/repos/<name>/artefacts")
def commit_artefacts(name: str) -> Response:
    """Artefacts attached to a commit (``rev``, default HEAD)."""
    require(name, "read")
    repo = repos().get(name)
    return jsonify({"artefacts": artefacts.of_commit(repo, repo.resolve(request.args.get("rev", "HEAD")))})


@runs_api.get("/repos/<name>/artefacts/<artefact>")
def download(name: str, artefact: str) -> Response:
    """An artefact's bytes (``Range: bytes=A-B`` for a part; ETag = its blake3 hash)."""
    require(name, "read")
    repo = repos().get(name)
    aid = artefact
    if not _HEX.match(aid):
        raise InvalidInput(f"not an artefact id: {aid[:80]!r}")
    oid = experiments.find_artefact(repo, aid)
    if not oid.hex().startswith(aid):
        raise NotFound(f"no artefact {aid!r}")
    body = artefacts.load(repo, oid)
    size = body["size"]
    etag = f'"{body["hash"]}"'
    headers = {"ETag": etag, "Accept-Ranges": "bytes",
               "Content-Disposition": f'attachment; filename="{_safe(body["name"])}"'}
    if request.headers.get("If-None-Match") == etag:
        return Response(status=304, headers=headers)
    start, end, status = 0, size, 200
    rng = request.headers.get("Range")
    if rng:
        m = _RANGE.match(rng.strip())
        if m is None or (not m.group(1) and not m.group(2)):
            return _unsatisfiable(size, "malformed Range header (one range: bytes=A-B)")
        if m.group(1):
            start = int(m.group(1))
            end = min(int(m.group(2)) + 1, size) if m.group(2) else size
        else:  # the last N bytes
            start = max(size - int(m.group(2)), 0)
        if start >= size or end <= start:
            return _unsatisfiable(size, f"range {rng!r} is outside the artefact ({size} bytes)")
        status = 206
        headers["Content-Range"] = f"bytes {start}-{end - 1}/{size}"
    headers["Content-Length"] = str(end - start)

    def stream() -> Iterator[bytes]:
        yield from artefacts.iter_bytes(repo, oid, start, end)

    return Response(stream(), status=status, mimetype="application/octet-stream", headers=headers)


def _safe(name: str) -> str:
    return re.sub(r'[^A-Za-z0-9._-]', "_", name)[:200] or "artefact"


def _unsatisfiable(size: int, message: str) -> Response:
    resp = error_response("range_not_satisfiable", message, 416)
    resp.headers["Content-Range"] = f"bytes */{size}"
    return resp
