"""The web viewer's pages: the built bundle (viewer/dist, `make` builds it) and the page routes.

Routes (none collides with the sync protocol's ``/<name>/info/refs|negotiate|fetch|push``):

- ``/`` repository list, ``/-/signin`` sign-in, ``/-/assets/<file>`` the built JS/CSS
- ``/<repo>`` the image set page, ``/<repo>/slide/<image>`` the slide page, ``/<repo>/diff/<image>?old=&new=`` the diff
  view, ``/<repo>/pull/<n>?image=`` a pull request (its diff view with decisions, reviews, comments, conflicts),
  ``/<repo>/pulls?state=`` the pull request list, ``/<repo>/experiments`` the
  experiments page (runs, a metric across runs, TP/FP/FN of a run's predictions), ``/<repo>/agreement`` the
  raters' pairwise agreement table, ``/<repo>/map?label=&...`` an annotation map (server/maps.py: one patch
  per annotation, relabel / delete on the map)

Every page is the same small HTML shell naming its page kind; the bundle reads it and
renders through the REST API, so a page carries no data and no inline script. Pages
carry a strict Content-Security-Policy (scripts, styles, images and requests from this
origin only; no inline script, no framing, no plugins).

``/-/label-counts/<repo>/<image>?rev=`` gives annotation counts per label (the image set
page and the label panel), summed from the image's annotation tiles at that commit (exactvc/annotiles.py:
built once per annotation tree, ahead of time when a branch moves), not counted record by record.
"""

from __future__ import annotations

import html
import mimetypes
from pathlib import Path

from flask import Blueprint, Response, current_app, jsonify, request, send_from_directory

from exactvc.errors import ExactError, NotFound

from .annotiles import pyramid_of
from .context import repos, require

pages = Blueprint("pages", __name__)
DIST = Path(__file__).resolve().parents[1] / "viewer" / "dist"

# the one hash: an empty <style> (OpenSeadragon adds a rule of its own unless that marker exists)
CSP = ("default-src 'none'; script-src 'self'; style-src 'self' 'sha256-47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU='; img-src 'self' data: blob:; "
       "connect-src 'self'; media-src 'self'; font-src 'self'; worker-src 'self' blob:; base-uri 'none'; form-action 'self'; "
       "frame-ancestors 'none'; object-src 'none'")

_SHELL = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{title} · exactvc</title>
<link rel="stylesheet" href="/-/assets/viewer.css">
<script type="module" src="/-/assets/{entry}.js"></script>
</head>
<body data-page="{page}" data-repo="{repo}" data-image="{image}" data-number="{number}">
<noscript>The exactvc viewer needs JavaScript.</noscript>
<main id="app" aria-live="polite">Loading …</main>
</body>
</html>
"""

_NOT_BUILT = """<!doctype html><html lang="en"><head><meta charset="utf-8"><title>viewer not built</title></head>
<body><p>The web viewer is not built: run <code>make demo</code> or
<code>cd viewer &amp;&amp; npm ci &amp;&amp; npm run build</code>.</p></body></html>
"""


def _dist() -> Path:
    return Path(current_app.config["EXACT"].get("viewer_dist") or DIST)


def csp(tile_origins: list[str]) -> str:
    """The pages' policy; ``tile_origins`` (virtual image sets: servers holding the pixels of images whose
    record names them as ``origin``) may serve images (tiles, thumbnails) and be asked (the .dzi)."""
    if not tile_origins:
        return CSP
    more = " ".join(tile_origins)
    return (CSP.replace("img-src 'self' data: blob:;", f"img-src 'self' data: blob: {more};")
            .replace("connect-src 'self';", f"connect-src 'self' {more};"))


def _secure(resp: Response) -> Response:
    resp.headers["Content-Security-Policy"] = csp(current_app.config["EXACT"].get("tile_origins") or [])
    resp.headers["X-Content-Type-Options"] = "nosniff"
    resp.headers["Referrer-Policy"] = "same-origin"
    resp.headers["X-Frame-Options"] = "DENY"
    resp.headers["Cache-Control"] = "no-cache"
    return resp


def _page(page: str, title: str, entry: str, repo: str = "", image: str = "", status: int = 200,
          number: int = 0) -> Response:
    if not (_dist() / f"{entry}.js").is_file():
        return _secure(Response(_NOT_BUILT, status=503, mimetype="text/html"))
    body = _SHELL.format(title=html.escape(title), entry=entry, page=page, repo=html.escape(repo),
                         image=html.escape(image), number=number or "")
    return _secure(Response(body, status=status, mimetype="text/html"))


def _gate(name: str) -> int:
    """The status of a repository page: 200 for a reader; else what the API answers (401 anonymous, 404
    for private and missing repositories alike). Browsers (Accept: text/html) get the page with that status
    (it shows the error and a sign-in link); other clients get the JSON error."""
    try:
        require(name, "read")
    except ExactError as exc:
        if "text/html" in request.headers.get("Accept", ""):
            return exc.http_status
        raise
    return 200


@pages.get("/")
def repo_list() -> Response:
    return _page("repos", "Repositories", "app")


@pages.get("/-/signin")
def signin() -> Response:
    return _page("signin", "Sign in", "app")


@pages.get("/<name>")
def image_set(name: str) -> Response:
    status = _gate(name)
    return _page("imageset", name if status == 200 else "exactvc", "app", repo=name, status=status)


@pages.get("/<name>/slide/<image>")
def slide(name: str, image: str) -> Response:
    status = _gate(name)
    return _page("slide", f"{image} · {name}" if status == 200 else "exactvc", "slide", repo=name, image=image,
                 status=status)


@pages.get("/<name>/diff/<image>")
def diff_view(name: str, image: str) -> Response:
    status = _gate(name)
    return _page("diff", f"diff of {image} · {name}" if status == 200 else "exactvc", "diff", repo=name,
                 image=image, status=status)


@pages.get("/<name>/pull/<number>")
def pull_page(name: str, number: str) -> Response:
    status = _gate(name)
    if status == 200 and not (number.isascii() and number.isdigit() and len(number) <= 9):
        raise NotFound(f"no pull request {number[:20]!r}")
    n = int(number) if status == 200 else 0
    return _page("pull", f"#{n} · {name}" if status == 200 else "exactvc", "diff", repo=name,
                 image=request.args.get("image", ""), status=status, number=n)


@pages.get("/<name>/pulls")
def pull_list(name: str) -> Response:
    status = _gate(name)
    return _page("pulls", f"Pull requests · {name}" if status == 200 else "exactvc", "app", repo=name, status=status)


@pages.get("/<name>/experiments")
def experiments(name: str) -> Response:
    status = _gate(name)
    return _page("experiments", f"Experiments · {name}" if status == 200 else "exactvc", "experiments", repo=name,
                 status=status)


@pages.get("/<name>/agreement")
def agreement(name: str) -> Response:
    status = _gate(name)
    return _page("agreement", f"Agreement · {name}" if status == 200 else "exactvc", "app", repo=name, status=status)


@pages.get("/<name>/map")
def annotation_map(name: str) -> Response:
    status = _gate(name)
    label = request.args.get("label", "")
    return _page("map", f"map of {label} · {name}" if status == 200 else "exactvc", "map", repo=name,
                 status=status)


@pages.get("/-/assets/<path:filename>")
def assets(filename: str) -> Response:
    dist = _dist()
    if not (dist / filename).resolve().is_relative_to(dist.resolve()) or not (dist / filename).is_file():
        raise NotFound(f"no asset {filename!r}")
    resp = send_from_directory(dist, filename, max_age=0, mimetype=mimetypes.guess_type(filename)[0])
    resp.headers["X-Content-Type-Options"] = "nosniff"
    return resp


@pages.get("/-/label-counts/<name>/<image>")
def label_counts(name: str, image: str) -> Response:
    require(name, "read")
    repo = repos().get(name)
    commit = repo.resolve(request.args.get("rev", "HEAD"))
    entry, root = repo.tree_of(image, commit.hex())
    # summed from the image's annotation tiles at this commit (built once, on a push in the background)
    counts = pyramid_of(repo, image, commit, None)[0].label_counts() if root is not None else {}
    return jsonify({"image": image, "count": entry.count, "labels": counts})
