"""Experiments porcelain: artefacts by run or commit, the metrics table across commits, metric deltas.

One function per verb, data in, data out (the CLI and the server format them).
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

from . import artefacts, runs
from .errors import InvalidInput, NotFound

if TYPE_CHECKING:
    from .repo import Repository


# --- targets and artefacts -------------------------------------------------------------------------


def target(repo: Repository, ident: str) -> tuple[str, str, bytes]:
    """``("run", run id, object)`` or ``("commit", hex, commit id)`` for REV|RUN (a run is tried first)."""
    try:
        run_id, oid = runs.resolve(repo, ident)
        return "run", run_id, oid
    except NotFound:
        pass
    c = repo.resolve(ident)
    return "commit", c.hex(), c


def artefact_add(repo: Repository, where: str, file: str, kind: str = "other",
                 name: str | None = None) -> dict[str, Any]:
    artefacts.check_kind(kind)
    what, ident, oid = target(repo, where)
    if what == "commit":
        return artefacts.attach_to_commit(repo, oid, file, name, kind) | {"attached_to": {"commit": ident}}
    aid, body = artefacts.store_file(repo, file, name, kind)

    def change(b: dict[str, Any]) -> dict[str, Any]:
        b["artefacts"] = list(dict.fromkeys([*b.get("artefacts", []), aid]))
        return b

    runs.update(repo, ident, change)
    return artefacts.describe(aid, body) | {"attached_to": {"run": ident}}


def artefact_ls(repo: Repository, where: str) -> list[dict[str, Any]]:
    what, ident, oid = target(repo, where)
    if what == "commit":
        return artefacts.of_commit(repo, oid)
    body = runs.load(repo, oid)
    return [artefacts.describe(a, artefacts.load(repo, a)) for a in body.get("artefacts", [])]


def known_artefacts(repo: Repository) -> list[tuple[bytes, dict[str, Any], str]]:
    """Every artefact a ref reaches: (id, body, where it is attached), newest runs last."""
    out: list[tuple[bytes, dict[str, Any], str]] = []
    seen: set[bytes] = set()
    for _ref, oid in sorted(artefacts.all_refs(repo).items()):
        if oid not in seen:
            seen.add(oid)
            out.append((oid, artefacts.load(repo, oid), "commit"))
    for d in runs.listing(repo):
        body = runs.load(repo, bytes.fromhex(d["object"]))
        for a in [*body.get("artefacts", []), *(body.get("predictions") or {}).values()]:
            if a not in seen:
                seen.add(a)
                out.append((a, artefacts.load(repo, a), f"run {d['id']}"))
    return out


def find_artefact(repo: Repository, ident: str) -> bytes:
    """An artefact by id, unique id prefix (4+ hex digits), ``RUN:NAME`` or a unique NAME."""
    ident = ident.strip()
    if ":" in ident:
        run_part, _, name = ident.partition(":")
        for a in artefact_ls(repo, run_part):
            if a["name"] == name:
                return bytes.fromhex(a["id"])
        raise NotFound(f"{run_part} has no artefact {name!r}")
    known = known_artefacts(repo)
    low = ident.lower()
    if len(low) >= 4 and all(c in "0123456789abcdef" for c in low):
        hits = [o for o, _b, _w in known if o.hex().startswith(low)]
        if len(hits) == 1:
            return hits[0]
        if len(low) == 64 and repo.store.has(bytes.fromhex(low)) and repo.readable(bytes.fromhex(low)):
            return bytes.fromhex(low)
        if len(hits) > 1:
            raise InvalidInput(f"artefact id prefix {ident!r} is ambiguous")
    named = [o for o, b, _w in known if b["name"] == ident]
    if len(set(named)) == 1:
        return named[0]
    if named:
        raise InvalidInput(f"{len(set(named))} artefacts are named {ident!r}: give an id or RUN:NAME")
    raise NotFound(f"no artefact {ident!r}")


def artefact_get(repo: Repository, ident: str, out: str | os.PathLike[str]) -> dict[str, Any]:
    return artefacts.write_file(repo, find_artefact(repo, ident), out)


# --- label diffs between the commits of runs ---------------------------------------------------------


def label_changes(repo: Repository, old: bytes | None, new: bytes | None) -> dict[str, dict[str, int]]:
    """Per label: annotations added, removed, relabelled to it and relabelled away from it, old -> new."""
    from .diff import diff_snapshots

    out: dict[str, dict[str, int]] = {}
    if old is None or new is None or old == new:
        return out

    def bump(label: str, what: str) -> None:
        d = out.setdefault(label, {"added": 0, "removed": 0, "relabelled_to": 0, "relabelled_from": 0})
        d[what] += 1

    a = repo.snapshot_object(repo.commit_object(old).root)
    b = repo.snapshot_object(repo.commit_object(new).root)
    for img in diff_snapshots(repo, a, b).images:
        for ch in img.changes:
            if ch.old is None and ch.new is not None:
                bump(ch.new["l"], "added")
            elif ch.new is None and ch.old is not None:
                bump(ch.old["l"], "removed")
            elif ch.old is not None and ch.new is not None and ch.old["l"] != ch.new["l"]:
                bump(ch.new["l"], "relabelled_to")
                bump(ch.old["l"], "relabelled_from")
    return dict(sorted(out.items()))


# --- the metrics table --------------------------------------------------------------------------------


def select_runs(repo: Repository, idents: list[str] | None = None, revs: str | None = None,
                branch: str | None = None) -> list[tuple[str, bytes, dict[str, Any]]]:
    from .graph import only_in

    chosen: list[tuple[str, bytes]] = []
    if idents:
        chosen = [runs.resolve(repo, i) for i in idents]
    else:
        every = runs.all_runs(repo)
        commits: set[bytes] | None = None
        if revs is not None:
            a, sep, b = revs.partition("..")
            if not sep:
                raise InvalidInput(f"--revs takes A..B, not {revs!r}")
            tip = repo.resolve(b or "HEAD")
            commits = set(only_in(repo, [tip], [repo.resolve(a)] if a else []))
        elif branch is not None:
            commits = set(only_in(repo, [repo.resolve(branch)], []))
        for run_id, oid in every.items():
            if commits is None or runs.load(repo, oid).get("commit") in commits:
                chosen.append((run_id, oid))
    out = [(r, o, runs.load(repo, o)) for r, o in dict(chosen).items()]
    gen: dict[bytes, int] = {}

    def order(item: tuple[str, bytes, dict[str, Any]]) -> tuple[int, int, str]:
        c = item[2].get("commit")
        if c is not None and c not in gen:
            gen[c] = repo.commit_object(c).generation if repo.store.has(c) else 0
        return (gen.get(c, 0) if c else 0, item[2].get("start") or 0, item[0])

    return sorted(out, key=order) if not idents else out


def metrics_table(repo: Repository, idents: list[str] | None = None, revs: str | None = None,
                  branch: str | None = None, only_changed: bool = False) -> dict[str, Any]:
    """One row per run: parameters, final metrics, and the label changes from the previous row's commit."""
    sel = select_runs(repo, idents, revs, branch)
    rows = []
    cache: dict[tuple[bytes, bytes], dict[str, dict[str, int]]] = {}
    prev: bytes | None = None
    for run_id, oid, body in sel:
        c = body.get("commit")
        changes: dict[str, dict[str, int]] = {}
        if prev is not None and c is not None and prev != c:
            key = (prev, c)
            if key not in cache:
                cache[key] = label_changes(repo, prev, c)
            changes = cache[key]
        rows.append({"run": run_id, "object": oid.hex(), "name": body.get("name", ""), "status": body["status"],
                     "commit": c.hex() if c else None, "base": prev.hex() if prev and prev != c else None,
                     "params": dict(body.get("params") or {}), "metrics": runs.final_metrics(body),
                     "labels": changes})
        if c is not None:
            prev = c
    params = sorted({k for r in rows for k in r["params"]})
    metrics = sorted({k for r in rows for k in r["metrics"]})
    if only_changed and rows:
        params = [p for p in params if len({r["params"].get(p) for r in rows}) > 1]
        metrics = [m for m in metrics if len({r["metrics"].get(m) for r in rows}) > 1]
    labels = sorted({k for r in rows for k in r["labels"]})
    return {"params": params, "metrics": metrics, "labels": labels, "rows": rows}


def metrics_diff(repo: Repository, a: str, b: str) -> dict[str, Any]:
    ra, oa = runs.resolve(repo, a)
    rb, ob = runs.resolve(repo, b)
    ba, bb = runs.load(repo, oa), runs.load(repo, ob)
    ma, mb = runs.final_metrics(ba), runs.final_metrics(bb)
    deltas = {}
    for k in sorted(set(ma) | set(mb)):
        x, y = ma.get(k), mb.get(k)
        deltas[k] = {"a": x, "b": y, "delta": None if x is None or y is None else y - x}
    pa, pb = ba.get("params") or {}, bb.get("params") or {}
    params = {k: {"a": pa.get(k), "b": pb.get(k)} for k in sorted(set(pa) | set(pb)) if pa.get(k) != pb.get(k)}
    return {"a": {"run": ra, "commit": ba["commit"].hex() if ba.get("commit") else None},
            "b": {"run": rb, "commit": bb["commit"].hex() if bb.get("commit") else None},
            "metrics": deltas, "params": params,
            "labels": label_changes(repo, ba.get("commit"), bb.get("commit"))}


def table_lines(t: dict[str, Any], fmt: str = "text") -> list[str]:
    """The metrics table as Markdown, CSV or aligned text."""
    head = ["run", "name", "commit", "status", *[f"p:{p}" for p in t["params"]], *t["metrics"],
            *[f"{lb} +/-/~" for lb in t["labels"]]]
    body = []
    for r in t["rows"]:
        cells = [r["run"][:12], r["name"], (r["commit"] or "")[:12], r["status"],
                 *[str(r["params"].get(p, "")) for p in t["params"]],
                 *["" if r["metrics"].get(m) is None else f"{r['metrics'][m]:.6g}" for m in t["metrics"]]]
        for lb in t["labels"]:
            c = r["labels"].get(lb)
            cells.append("" if not c else f"+{c['added']}/-{c['removed']}/~{c['relabelled_to'] + c['relabelled_from']}")
        body.append(cells)
    if fmt == "csv":
        import csv
        import io

        buf = io.StringIO()
        w = csv.writer(buf, lineterminator="\n")
        w.writerow(head)
        w.writerows(body)
        return buf.getvalue().splitlines()
    if fmt == "md":
        return ["| " + " | ".join(head) + " |", "|" + "---|" * len(head),
                *["| " + " | ".join(c.replace("|", "\\|") for c in row) + " |" for row in body]]
    widths = [max(len(x) for x in col) for col in zip(head, *body, strict=False)] if body else [len(h) for h in head]
    return ["  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip() for row in [head, *body]]
