"""Experiment runs pinned to commit ids: run objects, their refs, aliases, and ``log_metric``.

A run is a ``run`` object (docs/format.md §10) named by the ref ``runs/<run id>``; updating a run
(it ends, it is evaluated, predictions are imported) writes a new object and moves the ref by
compare-and-swap. Aliases (``champion``) are refs ``runtags/<alias>`` naming a run object.
Executing a command as a run lives in :mod:`exactvc.runexec`; a script inside a run logs metrics
with :func:`log_metric` (no repository needed: it appends to ``$EXACT_RUN_DIR/metrics.jsonl``).
"""

from __future__ import annotations

import json
import math
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from . import codec
from .errors import InvalidInput, NotFound, RefConflict
from .objects import run_references

if TYPE_CHECKING:
    from .repo import Repository

STATUSES = ("running", "succeeded", "failed")


def log_metric(name: str, value: float, step: int | None = None) -> bool:
    """Record a metric of the current run (inside ``exact run``); False (and nothing written) outside one."""
    d = os.environ.get("EXACT_RUN_DIR")
    if not d:
        return False
    if not isinstance(name, str) or not name:
        raise InvalidInput("a metric needs a name")
    line = json.dumps({"name": name, "value": float(value), "step": None if step is None else int(step)})
    with open(Path(d) / "metrics.jsonl", "a", encoding="utf-8") as f:
        f.write(line + "\n")
        f.flush()
    return True


def clean_value(v: Any) -> float | None:
    try:
        f = float(v)
    except (TypeError, ValueError):
        return None
    return f if math.isfinite(f) else None


# --- run objects and refs -----------------------------------------------------------------------------


def load(repo: Repository, oid: bytes) -> dict[str, Any]:
    body = codec.unpack(repo.store.get_typed(oid, "run"))
    run_references(body)
    return dict(body)


def ref_of(run_id: str) -> str:
    return f"runs/{run_id}"


def save(repo: Repository, body: dict[str, Any], old: bytes | None) -> bytes:
    oid = repo.put("run", body)
    if oid != old:
        repo.refs.cas(ref_of(body["id"]), old, oid, "exact", f"run {body.get('name') or body['id'][:12]}")
    return oid


def update(repo: Repository, run_id: str, change: Callable[[dict[str, Any]], dict[str, Any]]) -> bytes:
    """Apply ``change`` to the newest object of the run and move its ref (retried if a writer raced us)."""
    for _ in range(20):
        old = repo.refs.read(ref_of(run_id))
        if old is None:
            raise NotFound(f"no run {run_id}")
        body = change(load(repo, old))
        try:
            return save(repo, body, old)
        except RefConflict:
            time.sleep(0.01)
    raise RefConflict(f"run {run_id} keeps changing under us")


def all_runs(repo: Repository) -> dict[str, bytes]:
    """run id -> newest run object id."""
    return {ref[5:]: oid for ref, oid in repo.refs.list("runs/").items()}


def aliases(repo: Repository) -> dict[str, bytes]:
    return {ref[8:]: oid for ref, oid in repo.refs.list("runtags/").items()}


def resolve(repo: Repository, ident: str) -> tuple[str, bytes]:
    """(run id, newest object) of an alias, a run id or a unique prefix of one (4+ hex digits)."""
    ident = ident.strip()
    al = aliases(repo)
    if ident in al:
        body = load(repo, al[ident])
        cur = repo.refs.read(ref_of(body["id"]))
        return body["id"], cur if cur is not None else al[ident]
    runs = all_runs(repo)
    if ident in runs:
        return ident, runs[ident]
    low = ident.lower()
    if len(low) >= 4 and all(c in "0123456789abcdef" for c in low):
        hits = [r for r in runs if r.startswith(low)]
        if len(hits) == 1:
            return hits[0], runs[hits[0]]
        if len(hits) > 1:
            raise InvalidInput(f"run id prefix {ident!r} is ambiguous ({len(hits)} runs)")
        by_obj = [(r, o) for r, o in runs.items() if o.hex().startswith(low)]
        if len(by_obj) == 1:
            return by_obj[0]
    named = [r for r, o in runs.items() if load(repo, o).get("name") == ident]
    if len(named) == 1:
        return named[0], runs[named[0]]
    if len(named) > 1:
        raise InvalidInput(f"{len(named)} runs are named {ident!r}: give a run id")
    raise NotFound(f"no run {ident!r} (a run id, a unique prefix, an alias or a run name)")


def tag(repo: Repository, ident: str, alias: str) -> dict[str, Any]:
    from .refs import check_ref_name

    check_ref_name(alias)
    run_id, oid = resolve(repo, ident)
    ref = f"runtags/{alias}"
    cur = repo.refs.read(ref)
    repo.refs.cas(ref, cur, oid, "exact", f"run tag {alias}")
    return {"alias": alias, "run": run_id, "object": oid.hex(),
            "previous": load(repo, cur)["id"] if cur is not None and repo.store.has(cur) else None}


def final_metrics(body: dict[str, Any]) -> dict[str, float | None]:
    """The last value logged of each metric."""
    out: dict[str, float | None] = {}
    for name, hist in sorted((body.get("metrics") or {}).items()):
        if hist:
            out[name] = hist[-1][1]
    return out


def describe(repo: Repository, run_id: str, oid: bytes, body: dict[str, Any] | None = None,
             full: bool = True) -> dict[str, Any]:
    from . import artefacts

    body = body if body is not None else load(repo, oid)
    tags = sorted(a for a, o in aliases(repo).items() if o == oid or _run_id_of(repo, o) == run_id)
    out: dict[str, Any] = {
        "id": run_id, "object": oid.hex(), "name": body.get("name", ""), "status": body["status"],
        "commit": body["commit"].hex() if body.get("commit") else None,
        "params": dict(body.get("params") or {}), "metrics": final_metrics(body),
        "start": body.get("start"), "end": body.get("end"), "exit": body.get("exit"),
        "command": list(body.get("command") or []), "aliases": tags,
    }
    if full:
        code = dict(body.get("code") or {}) or None
        if code is not None and code.get("diff") is not None:
            code["diff"] = code["diff"].hex()
        out.update({
            "python": body.get("python"), "packages": body.get("packages"), "code": code,
            "history": {k: [list(x) for x in v] for k, v in (body.get("metrics") or {}).items()},
            "artefacts": [artefacts.describe(a, artefacts.load(repo, a)) for a in body.get("artefacts", [])],
            "predictions": {k: v.hex() for k, v in (body.get("predictions") or {}).items()},
            "datasets": list(body.get("datasets") or []), "evals": body.get("evals") or {},
            "note": body.get("note"),
        })
    return out


def _run_id_of(repo: Repository, oid: bytes) -> str | None:
    try:
        return str(load(repo, oid)["id"])
    except Exception:  # noqa: BLE001 - an alias naming a missing object matches nothing
        return None


def listing(repo: Repository, commit: bytes | None = None, name: str | None = None) -> list[dict[str, Any]]:
    out = []
    for run_id, oid in all_runs(repo).items():
        body = load(repo, oid)
        if commit is not None and body.get("commit") != commit:
            continue
        if name is not None and body.get("name") != name:
            continue
        out.append(describe(repo, run_id, oid, body, full=False))
    return sorted(out, key=lambda d: (d["start"] or 0, d["id"]))
