"""REST routes of plugins (docs/plugins.md): the installed plugins, detector runs that commit proposals on
``proposals/PLUGIN/N`` and open a pull request (as jobs with progress and cancel, kept in the job store of
exactvc/jobs.py so that any server process answers for them), analyses of a region.

Plugins run in child processes with a time limit; a failing one answers 422 ``plugin_failed`` and changes
nothing. Thin adapters over exactvc.propose and exactvc.plugins."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

from flask import Blueprint, Response, current_app, jsonify

from exactvc import plugins as registry
from exactvc import propose as proposing
from exactvc.errors import ExactError, InvalidInput, NotFound
from exactvc.jobs import JobPulse, public
from exactvc.plugins import runner
from exactvc.pulls import service

from .context import current_user, repos, require
from .context import json_body as _body
from .errors import Forbidden, Unauthorized

plugins_api = Blueprint("plugins_api", __name__, url_prefix="/api/v1")


def _slide_path(repo: Any, fp: str) -> Path:
    from exactvc.slidestore import SlideStore

    try:
        return Path(SlideStore(repos().root).get(fp)["path"])
    except NotFound:
        p = repo.image_path(fp)
        if p is None or not Path(p).exists():
            raise NotFound(f"no pixels on this server for slide {fp[:12]}") from None
        return Path(p)


def _region(v: Any) -> tuple[int, int, int, int] | None:
    if v is None:
        return None
    if not isinstance(v, list) or len(v) != 4 or not all(isinstance(x, (int, float)) and not isinstance(x, bool)
                                                         for x in v):
        raise InvalidInput("region must be [x, y, w, h]")
    return proposing.parse_region(",".join(str(x) for x in v))


@plugins_api.get("/plugins")
def list_plugins() -> Response:
    return jsonify({"plugins": registry.listing()})


PROPOSE_FIELDS = {"image", "plugin", "region", "params", "target", "wait", "title"}


@plugins_api.post("/repos/<name>/proposals")
def propose(name: str) -> Response:
    """Run a detector; with ``wait`` (default true) answer when done (201), else at once (202) with a job."""
    require(name, "annotate")
    user = current_user()
    if user is None:
        raise Unauthorized("authentication required (Authorization: Bearer TOKEN)")
    body = _body(PROPOSE_FIELDS)
    for k in ("image", "plugin"):
        if not isinstance(body.get(k), str):
            raise InvalidInput(f"{k} must be a string")
    target = body.get("target", "main")
    if not isinstance(target, str):
        raise InvalidInput("target must be a branch name")
    repo = repos().get(name)
    from exactvc.visibility import is_scoped

    if is_scoped(repo):  # a proposals/ branch is hidden from annotators in blind mode
        raise Forbidden("in blind mode detector proposals are run by maintainers")
    if repo.refs.read("heads/" + target) is None:
        raise NotFound(f"no branch {target!r}")
    rec = repo.image(body["image"], target)
    region = _region(body.get("region"))
    registry.entry(body["plugin"])  # 404 before any job starts
    path = _slide_path(repo, rec.fingerprint)
    limit = float(current_app.config["EXACT"].get("plugin_time_limit", 0)) or None
    store = current_app.extensions["exact_pulls"]
    jobs = current_app.extensions["exact_jobs"]
    ident = jobs.create(name, user.name, body["plugin"], rec.name)["id"]

    def work() -> dict[str, Any] | None:
        """Run the job to its end, its progress, heartbeat and outcome in the job store; the error, if any."""
        pulse = JobPulse(jobs, ident)
        try:
            got = proposing.propose(repo, rec.name, body["plugin"], path, target, f"{user.name} <{user.name}@exactvc>",
                                    region, body.get("params"), limit, pulse.progress, pulse.cancel)
            pr = None
            if got["branch"]:
                title = body.get("title") or f"{got['proposals']} proposals of {body['plugin']} on {rec.name}"
                pr = service.create(repo, store, name, user.name, title,
                                    "Accept the proposals to merge (unaccepted ones are not merged).",
                                    got["branch"], target)
            pulse.finish({**got, "pull": pr["number"] if pr else None})
            return None
        except ExactError as exc:
            err = {"type": exc.kind, "message": exc.message, "status": exc.http_status}
            pulse.fail(err)
            return err
        except BaseException:
            pulse.fail({"type": "internal", "message": "internal error", "status": 500})
            raise

    if body.get("wait", True) is not True:
        threading.Thread(target=work, daemon=True, name=f"plugin-job-{ident[:8]}").start()
        resp = jsonify(_job(name, ident))
        resp.status_code = 202
        return resp
    err = work()
    if err:
        raise _rebuild(err)
    resp = jsonify(_job(name, ident))
    resp.status_code = 201
    return resp


def _rebuild(e: dict[str, Any]) -> ExactError:
    exc = ExactError(e["message"])
    exc.kind, exc.http_status = e["type"], e["status"]
    return exc


def _may_see_job(name: str, job: dict[str, Any]) -> bool:
    """In blind mode an annotator sees only their own jobs (another's names its branch and counts)."""
    from exactvc.visibility import is_scoped

    u = current_user()
    return not is_scoped(repos().get(name)) or (u is not None and job["user"] == u.name)


def _job(name: str, ident: str) -> dict[str, Any]:
    require(name, "annotate")
    j = current_app.extensions["exact_jobs"].get(ident) if len(ident) <= 64 else None
    if j is None or j["repo"] != name or not _may_see_job(name, j):
        raise NotFound(f"no plugin job {ident[:20]!r}")
    return public(j)


@plugins_api.get("/repos/<name>/proposals/jobs")
def job_list(name: str) -> Response:
    """The newest detector runs of the repository (at most 50), newest first."""
    require(name, "annotate")
    return jsonify({"jobs": [public(j) for j in current_app.extensions["exact_jobs"].recent(name)
                             if _may_see_job(name, j)]})


@plugins_api.get("/repos/<name>/proposals/jobs/<ident>")
def job_status(name: str, ident: str) -> Response:
    return jsonify(_job(name, ident))


@plugins_api.delete("/repos/<name>/proposals/jobs/<ident>")
def job_cancel(name: str, ident: str) -> Response:
    """Ask the run to stop: the process running it (this one or another) sees the flag within a pulse."""
    _job(name, ident)
    current_app.extensions["exact_jobs"].cancel(ident)
    return jsonify(_job(name, ident))


ANALYSE_FIELDS = {"image", "plugin", "region", "params", "rev"}


@plugins_api.post("/repos/<name>/analyses")
def analyse(name: str) -> Response:
    """Run an analysis over the annotations of a region (or the image) at ``rev``: its figures."""
    require(name, "read")
    body = _body(ANALYSE_FIELDS)
    for k in ("image", "plugin"):
        if not isinstance(body.get(k), str):
            raise InvalidInput(f"{k} must be a string")
    rev = body.get("rev") or "HEAD"
    if not isinstance(rev, str):
        raise InvalidInput("rev must be a string")
    repo = repos().get(name)
    region = _region(body.get("region"))
    anns = []
    for a in repo.annotations(body["image"], rev):
        d = a.to_dict()
        if region is not None:
            x0, y0, x1, y1 = a.bounds
            if x1 < region[0] or y1 < region[1] or x0 > region[0] + region[2] or y0 > region[1] + region[3]:
                continue
        anns.append({"id": d["id"], "label": d["label"], "geometry": d["geometry"]})
    limit = runner.time_limit_of(body["plugin"], float(current_app.config["EXACT"].get("plugin_time_limit", 0)) or None)
    out = runner.run(body["plugin"], "analysis", {"annotations": anns, "region": list(region) if region else None,
                                                  "params": body.get("params") or {}}, limit)
    if not isinstance(out, dict) or not isinstance(out.get("figures"), list):
        raise InvalidInput(f"plugin {body['plugin']!r} returned no figures")
    return jsonify({"plugin": body["plugin"], "annotations": len(anns), **out})

