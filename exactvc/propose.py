"""Algorithm-aided annotation: run a detector plugin over an image (or a region) and commit its
proposals on a new branch ``proposals/PLUGIN/N`` (docs/plugins.md). The server then opens a pull
request; in it, proposals nobody accepted are not merged (see ``exactvc.pulls.service.merge``).

A plugin that raises, runs past its time limit or returns invalid proposals changes nothing."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .errors import InvalidInput, NotFound, PluginFailed
from .history import commit_changes
from .plugins import runner

if TYPE_CHECKING:
    from .repo import Repository

PREFIX = "proposals/"


def next_branch(repo: Repository, plugin: str) -> str:
    taken = [r.rsplit("/", 1)[1] for r in repo.refs.list() if r.startswith(f"heads/{PREFIX}{plugin}/")]
    n = 1 + max((int(t) for t in taken if t.isdigit()), default=0)
    return f"{PREFIX}{plugin}/{n}"


def parse_region(text: str | None) -> tuple[int, int, int, int] | None:
    if text is None:
        return None
    parts = text.split(",")
    try:
        x, y, w, h = (int(float(p)) for p in parts)
    except ValueError:
        raise InvalidInput(f"region must be x,y,w,h (four numbers), not {text[:60]!r}") from None
    if w <= 0 or h <= 0 or x < 0 or y < 0:
        raise InvalidInput("region: x and y must be >= 0, w and h > 0")
    return x, y, w, h


def propose(repo: Repository, image: str, plugin: str, slide_path: str | Path, start: str, author: str,
            region: tuple[int, int, int, int] | None = None, params: dict[str, Any] | None = None,
            time_limit: float | None = None, progress: runner.Progress | None = None,
            cancel: threading.Event | None = None) -> dict[str, Any]:
    """Run ``plugin`` and commit its proposals on a new branch from ``start``; the branch, commit, count."""
    if not isinstance(plugin, str) or not plugin or "/" in plugin:
        raise InvalidInput("plugin must be a plugin name")
    start_commit = repo.resolve(start)
    rec = repo.image(image, start_commit.hex())
    if region is None:
        region = (0, 0, rec.width, rec.height)
    x, y, w, h = region
    if x + w > rec.width or y + h > rec.height:
        raise InvalidInput(f"region {x},{y},{w},{h} is outside the image ({rec.width}x{rec.height})")
    if params is not None and not isinstance(params, dict):
        raise InvalidInput("params must be an object")
    limit = runner.time_limit_of(plugin, time_limit)
    obj = runner.entry(plugin).load()
    result = runner.run(plugin, "detector", {
        "image": {"path": str(slide_path), "width": rec.width, "height": rec.height, "mpp": rec.mpp},
        "region": list(region), "params": params or {}}, limit, progress, cancel)
    label = (params or {}).get("label") or getattr(obj, "label", None)
    create = runner.check_proposals(plugin, result, label)
    if cancel is not None and cancel.is_set():
        raise PluginFailed(f"plugin {plugin!r} was cancelled")
    branch = next_branch(repo, plugin)
    if not create:
        return {"branch": None, "commit": None, "proposals": 0, "region": list(region)}
    msg = (f"Proposals of {plugin} on {rec.name} ({len(create)})\n\n"
           f"region {x},{y},{w},{h}; params {params or {}}")
    try:
        cid, ids = commit_changes(repo, branch, None, rec.name, msg, author, create=create, start=start_commit.hex())
    except (InvalidInput, NotFound) as exc:
        raise PluginFailed(f"plugin {plugin!r} returned proposals that cannot be committed: {exc.message}") from None
    return {"branch": branch, "commit": cid.hex(), "proposals": len(ids), "ids": ids, "region": list(region)}
