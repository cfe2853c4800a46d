"""Talking to an exactvc server: credentials, clone, fetch, pull, push (client side of docs/protocol.md)."""

from __future__ import annotations

import io
import json
import os
import struct
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from . import transfer
from .errors import (
    Conflict,
    ExactError,
    InvalidInput,
    NetworkError,
    NotFound,
    PermissionDenied,
    UsageError,
)
from .repo import Repository

Progress = Callable[[int, int], None] | None
NEGOTIATE_ROUND = 128


def config_dir() -> Path:
    d = os.environ.get("EXACT_CONFIG_DIR")
    return Path(d) if d else Path.home() / ".config" / "exactvc"


def _creds_path() -> Path:
    return config_dir() / "credentials.json"


def save_token(url: str, token: str) -> Path:
    from .fsutil import atomic_write

    p = _creds_path()
    p.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    data: dict[str, Any] = {"servers": {}}
    if p.exists():
        data = json.loads(p.read_text())
    data.setdefault("servers", {})[url.rstrip("/")] = token
    atomic_write(p, json.dumps(data, indent=2, sort_keys=True).encode(), 0o600)
    os.chmod(p, 0o600)
    return p


def token_for(url: str) -> str | None:
    env = os.environ.get("EXACT_TOKEN")
    if env:
        return env
    p = _creds_path()
    if not p.exists():
        return None
    servers: dict[str, str] = json.loads(p.read_text()).get("servers", {})
    best = None
    for base, tok in servers.items():
        if url.rstrip("/") == base or url.startswith(base.rstrip("/") + "/"):
            if best is None or len(base) > len(best[0]):
                best = (base, tok)
    return best[1] if best else None


class Client:
    def __init__(self, url: str, token: str | None = None, timeout: float = 300.0) -> None:
        if not url.startswith(("http://", "https://")):
            raise InvalidInput(f"not a server URL (http://HOST:PORT/NAME): {url!r}")
        self.url = url.rstrip("/")
        self.token = token if token is not None else token_for(self.url)
        self.timeout = timeout
        self.bytes_sent = 0
        self.bytes_received = 0

    def _req(self, method: str, path: str, body: bytes | None = None, ctype: str = "application/json") -> bytes:
        req = urllib.request.Request(self.url + path, data=body, method=method)
        if body is not None:
            req.add_header("Content-Type", ctype)
        if self.token:
            req.add_header("Authorization", f"Bearer {self.token}")
        try:
            with urllib.request.urlopen(req, timeout=self.timeout) as resp:
                data: bytes = resp.read()
        except urllib.error.HTTPError as exc:
            raise _http_error(exc) from None
        except (urllib.error.URLError, OSError) as exc:
            reason = getattr(exc, "reason", exc)
            raise NetworkError(f"cannot reach {self.url}: {reason}") from None
        self.bytes_sent += len(body or b"")
        self.bytes_received += len(data)
        return data

    def get_json(self, path: str) -> Any:
        return json.loads(self._req("GET", path))

    def post_json(self, path: str, obj: Any) -> Any:
        return json.loads(self._req("POST", path, json.dumps(obj).encode()))

    def refs(self) -> dict[str, Any]:
        data: dict[str, Any] = self.get_json("/info/refs")
        return data

    def negotiate(self, repo: Repository, tips: list[bytes]) -> list[bytes]:
        """Commits of ours the server has: send our history newest first, in rounds, until covered."""
        import heapq

        common: list[bytes] = []
        seen: set[bytes] = set()
        heap: list[tuple[int, bytes]] = []
        for t in tips:
            if t not in seen and repo.store.has(t):
                seen.add(t)
                heapq.heappush(heap, (-repo.commit_object(t).generation, t))
        rounds = 0
        while heap and rounds < 1000:
            rounds += 1
            batch = [heapq.heappop(heap)[1] for _ in range(min(NEGOTIATE_ROUND, len(heap)))]
            have = {bytes.fromhex(h) for h in self.post_json("/negotiate", {"ids": [b.hex() for b in batch]})["have"]}
            common.extend(b for b in batch if b in have)
            for b in batch:
                if b in have:
                    continue  # everything below it the server has too
                for p in repo.commit_object(b).parents:
                    if p not in seen:
                        seen.add(p)
                        heapq.heappush(heap, (-repo.commit_object(p).generation, p))
            if common and not heap:
                break
        return common


    def negotiate_ids(self, ids: list[bytes]) -> list[bytes]:
        """Which of these object ids (any type, at most 4096) the server has."""
        if not ids:
            return []
        got = self.post_json("/negotiate", {"ids": [b.hex() for b in ids]})["have"]
        return [bytes.fromhex(h) for h in got]


def _http_error(exc: urllib.error.HTTPError) -> ExactError:
    try:
        body = json.loads(exc.read())
        msg = body["error"]["message"]
        kind = body["error"]["type"]
    except Exception:
        msg, kind = f"HTTP {exc.code}", "http"
    if exc.code in (401, 403):
        return PermissionDenied(f"server refused ({exc.code}): {msg}")
    if exc.code == 404:
        return NotFound(f"server: {msg}")
    if exc.code == 409:
        return Conflict(f"server rejected the update: {msg}" if kind == "non_fast_forward" else f"server: {msg}")
    if exc.code == 413:
        return InvalidInput("server: request too large")
    if 400 <= exc.code < 500:
        return InvalidInput(f"server: {msg}")
    return NetworkError(f"server error ({exc.code}): {msg}")


# --- remotes in the repository config ------------------------------------------------------------


def remotes(repo: Repository) -> dict[str, str]:
    r: dict[str, str] = dict(repo.config().get("remotes", {}))
    return r


def remote_add(repo: Repository, name: str, url: str) -> None:
    from .refs import check_ref_name

    check_ref_name(name)
    if "/" in name:
        raise InvalidInput(f"invalid remote name {name!r}")
    if not url.startswith(("http://", "https://")):
        raise InvalidInput(f"remote URL must start with http:// or https://: {url!r}")
    r = remotes(repo)
    if name in r:
        raise Conflict(f"remote {name!r} already exists")
    r[name] = url.rstrip("/")
    repo.set_config("remotes", r)


def remote_rm(repo: Repository, name: str) -> None:
    r = remotes(repo)
    if name not in r:
        raise NotFound(f"no remote named {name!r}")
    del r[name]
    repo.set_config("remotes", r)
    for ref, oid in repo.refs.list(f"remotes/{name}/").items():
        repo.refs.cas(ref, oid, None, "exact", "remote removed")


def _client(repo: Repository, remote: str) -> Client:
    url = remotes(repo).get(remote)
    if url is None:
        raise NotFound(f"no remote named {remote!r} (exact remote add {remote} URL)")
    return Client(url)


# --- fetch / push / clone / pull -------------------------------------------------------------------


EXPERIMENT_PREFIXES = ("runs/", "runtags/", "artefacts/")


def fetch(repo: Repository, remote: str = "origin", progress: Progress = None, runs: bool = True) -> dict[str, Any]:
    """Fetch branches (as remotes/REMOTE/...), tags and, unless ``runs`` is off, runs, run aliases and
    commit artefacts (created locally when absent; a local one with another value is kept)."""
    cl = _client(repo, remote)
    adv = cl.refs()
    kinds = ("heads/", "tags/", *(EXPERIMENT_PREFIXES if runs else ()))
    theirs = {k: bytes.fromhex(v) for k, v in adv["refs"].items() if k.startswith(kinds)}
    wants = sorted({v for v in theirs.values() if not repo.store.has(v)})
    received = 0
    if wants:
        local_tips = list(repo.refs.list().values())
        head = repo.head_commit()
        if head:
            local_tips.append(head)
        haves = cl.negotiate(repo, [t for t in local_tips if _is_commit(repo, t)])
        req: dict[str, Any] = {"wants": [w.hex() for w in wants], "haves": [h.hex() for h in haves]}
        if runs and any(k.startswith(EXPERIMENT_PREFIXES) for k in theirs):
            req["known"] = [a.hex() for a in _local_artefacts(repo)][:4096]
        data = cl._req("POST", "/fetch", json.dumps(req).encode())
        res = transfer.receive(repo, io.BytesIO(data))
        received = res.objects
        if progress:
            progress(len(data), len(data))
    updated = {}
    kept = {}
    for ref, oid in theirs.items():
        if ref.startswith("heads/"):
            local = f"remotes/{remote}/{ref[6:]}"
        elif ref.startswith(("tags/", *EXPERIMENT_PREFIXES)):
            local = ref
            mine = _read_ref(repo, local)
            if mine is not None:
                if mine != oid:
                    kept[local] = oid.hex()  # tags are not moved by fetch
                continue
        else:
            continue
        cur = repo.refs.read(local)
        if cur != oid:
            repo.refs.cas(local, cur, oid, "exact", f"fetch {remote}")
            updated[local] = oid.hex()
    # remote branches that disappeared
    for local, oid in repo.refs.list(f"remotes/{remote}/").items():
        if "heads/" + local[len(f"remotes/{remote}/"):] not in theirs:
            repo.refs.cas(local, oid, None, "exact", f"fetch {remote}: gone")
    out = {"remote": remote, "objects": received, "updated": updated, "bytes": cl.bytes_received,
           "head": adv.get("head")}
    if kept:
        out["tags_kept"] = kept
    return out


def _local_artefacts(repo: Repository) -> list[bytes]:
    """Artefacts the local runs and commits reference (a fetch or push need not send them again)."""
    from . import codec
    from .objects import references

    out: dict[bytes, None] = {}
    for ref, oid in repo.refs.list().items():
        if not ref.startswith(EXPERIMENT_PREFIXES):
            continue
        try:
            t, data = repo.store.get(oid)
            if t == "artefact":
                out[oid] = None
            elif t == "run":
                out.update((a, None) for k, a in references(t, codec.unpack(data)) if k == "artefact")
        except ExactError:
            continue
    return list(out)


def _is_commit(repo: Repository, oid: bytes) -> bool:
    try:
        return repo.store.get(oid)[0] == "commit"
    except ExactError:
        return False


def push(repo: Repository, remote: str = "origin", branch: str | None = None, force: bool = False,
         set_upstream: bool = False, delete: bool = False, progress: Progress = None) -> dict[str, Any]:
    """Send one branch, tag or ``SRC:DST`` refspec (default: the current branch); see :func:`push_refs`."""
    return push_refs(repo, remote, [branch] if branch else [], force=force, set_upstream=set_upstream,
                     delete=delete, progress=progress)


@dataclass
class PushSpec:
    ref: str  # on the remote: heads/NAME or tags/NAME
    new: bytes | None  # what it is to point at (a commit, or an annotated tag object); None deletes
    force: bool
    branch: str | None  # the local branch pushed, for remote-tracking refs and -u


def _remote_ref(name: str, is_tag: bool) -> str:
    from .refs import check_ref_name

    name = name.removeprefix("refs/")
    if not name.startswith(("heads/", "tags/")):
        name = ("tags/" if is_tag else "heads/") + name
    check_ref_name(name)
    return name


def parse_push_spec(repo: Repository, spec: str, force: bool = False, delete: bool = False) -> PushSpec:
    """``NAME`` (a local branch, else a local tag), ``SRC:DST`` (any revision to a remote name; DST is a tag
    when SRC is one or DST says ``tags/``), ``:DST`` (delete), ``+`` in front to force that one."""
    if spec.startswith("+"):
        force, spec = True, spec[1:]
    src, sep, dst = spec.partition(":")
    if delete:
        if sep:
            raise UsageError("--delete takes remote names, not SRC:DST")
        is_tag = repo.refs.read(f"heads/{src}") is None and _read_ref(repo, f"tags/{src}") is not None
        return PushSpec(_remote_ref(src, is_tag), None, True, None)
    if sep and not src:
        return PushSpec(_remote_ref(dst, False), None, True, None)
    if not src:
        raise UsageError(f"empty refspec {spec!r}")
    if src == "HEAD":
        cur = repo.current_branch()
        head = repo.head_commit()
        if head is None:
            raise NotFound("HEAD has no commits to push")
        if not sep:
            if cur is None:
                raise UsageError("HEAD is detached: push HEAD:NAME to name the remote branch")
            return PushSpec(f"heads/{cur}", head, force, cur)
        return PushSpec(_remote_ref(dst, False), head, force, cur)
    name = src.removeprefix("refs/")
    branch_oid = _read_ref(repo, name if name.startswith("heads/") else f"heads/{name}")
    tag_oid = None if branch_oid is not None else _read_ref(repo, name if name.startswith("tags/") else f"tags/{name}")
    if branch_oid is not None:
        local = name.removeprefix("heads/")
        return PushSpec(_remote_ref(dst or local, False), branch_oid, force, local)
    if tag_oid is not None:
        return PushSpec(_remote_ref(dst or name.removeprefix("tags/"), True), tag_oid, force, None)
    if not sep:
        raise NotFound(f"no local branch or tag {src!r} (push SRC:DST to send another revision)")
    return PushSpec(_remote_ref(dst, False), repo.resolve(src), force, None)


def _read_ref(repo: Repository, name: str) -> bytes | None:
    try:
        return repo.refs.read(name)
    except InvalidInput:
        return None


def push_refs(repo: Repository, remote: str = "origin", specs: list[str] | None = None, tags: bool = False,
              force: bool = False, set_upstream: bool = False, delete: bool = False,
              progress: Progress = None, runs: bool = True) -> dict[str, Any]:
    """Send branches and tags in one request (all or nothing on the server).

    ``specs`` as :func:`parse_push_spec`; none: the current branch (unless ``tags``). ``tags``: every
    local tag too. A tag that exists on the remote with another value moves only with ``force``.
    """
    todo = [parse_push_spec(repo, s, force, delete) for s in specs or []]
    if not todo and not tags:
        branch = repo.current_branch()
        if branch is None:
            raise UsageError("HEAD is detached: name the branch to push")
        if repo.refs.read(f"heads/{branch}") is None:
            raise NotFound(f"no local branch {branch!r}")
        todo.append(parse_push_spec(repo, branch, force, delete))
    cl = _client(repo, remote)
    adv = cl.refs()
    theirs = {k: bytes.fromhex(v) for k, v in adv["refs"].items()}
    if tags:
        named = {t.ref for t in todo}
        for ref, oid in repo.refs.list("tags/").items():
            if ref not in named and theirs.get(ref) != oid:
                todo.append(PushSpec(ref, oid, force, None))
    if runs and not delete:  # runs, aliases and commit artefacts the remote lacks or has older
        named = {t.ref for t in todo}
        for ref, oid in repo.refs.list().items():
            if ref.startswith(EXPERIMENT_PREFIXES) and ref not in named and theirs.get(ref) != oid:
                todo.append(PushSpec(ref, oid, False, None))
    updates: list[transfer.RefUpdate] = []
    report: list[dict[str, Any]] = []
    wants: list[bytes] = []
    for t in todo:
        old = theirs.get(t.ref)
        entry: dict[str, Any] = {"ref": t.ref, "old": old.hex() if old else None,
                                 "new": t.new.hex() if t.new else None}
        report.append(entry)
        if t.new is None:
            if old is None:
                raise NotFound(f"{remote} has no {t.ref.replace('heads/', 'branch ').replace('tags/', 'tag ')}")
            updates.append(transfer.RefUpdate(t.ref, old, None, force=True))
            entry["status"] = "deleted"
            continue
        if old == t.new:
            entry["status"] = "up-to-date"
            continue
        if t.ref.startswith("tags/") and old is not None and not t.force:
            raise Conflict(f"tag {t.ref[5:]} already exists on {remote} (at {old.hex()[:12]}): "
                           "use --force to move it")
        if t.ref.startswith("heads/") and old is not None and not repo.store.has(old) and not t.force:
            raise Conflict(f"{remote}/{t.ref[6:]} has commits you do not have: exact pull {remote} {t.ref[6:]} "
                           "first (non-fast-forward)")
        updates.append(transfer.RefUpdate(t.ref, old, t.new, force=t.force))
        wants.append(t.new)
        entry["status"] = "pushed"
    oids: list[Any] = []
    body = b""
    res: Any = None
    if updates:
        if wants:
            haves = [k for k in theirs.values() if repo.store.has(k) and _is_commit(repo, k)]
            if not haves:
                haves = cl.negotiate(repo, [w for w in wants if _is_commit(repo, w)])
            known: list[bytes] = []
            if any(t.ref.startswith(EXPERIMENT_PREFIXES) for t in todo):
                mine = _local_artefacts(repo)
                for i in range(0, len(mine), 4096):
                    known += cl.negotiate_ids(mine[i:i + 4096])
            oids = list(transfer.objects_with_bases(repo, wants, haves, known))
        buf = io.BytesIO()
        if oids:
            transfer.write_stream(repo, oids, buf)
        body = _push_body(updates, buf.getvalue())
        if progress:
            progress(0, len(body))
        res = json.loads(cl._req("POST", "/push", body, "application/x-exactvc-push"))
        if progress:
            progress(len(body), len(body))
    for t, entry in zip(todo, report, strict=True):
        if t.ref.startswith("heads/") and entry["status"] != "up-to-date":
            tracking = f"remotes/{remote}/{t.ref[6:]}"
            cur = repo.refs.read(tracking)
            if cur != t.new:
                repo.refs.cas(tracking, cur, t.new, "exact", f"push {remote}")
        if set_upstream and t.branch is not None and t.new is not None and t.ref.startswith("heads/"):
            ups = dict(repo.config().get("upstream", {}))
            ups[t.branch] = {"remote": remote, "branch": t.ref[6:]}
            repo.set_config("upstream", ups)
    out: dict[str, Any] = {"remote": remote, "updates": report, "objects": len(oids), "bytes": len(body),
                           "status": "pushed" if updates else "up-to-date"}
    if res is not None:
        out["server"] = res
    report_refs = [e for e in report if not e["ref"].startswith(EXPERIMENT_PREFIXES)]
    exp = [e for e in report if e["ref"].startswith(EXPERIMENT_PREFIXES)]
    if exp:
        out["runs"] = sum(1 for e in exp if e["ref"].startswith("runs/") and e["status"] == "pushed")
    if len(report_refs) == 1 and len(report) > 1:
        report = report_refs
    if len(report) == 1:  # one ref: its fields at the top too (branch, old, new)
        e = report[0]
        name = e["ref"].split("/", 1)[1]
        out.update({"branch" if e["ref"].startswith("heads/") else "tag": name, "old": e["old"], "new": e["new"]})
        if e["status"] == "deleted":
            out["deleted"] = True
    return out


def _push_body(updates: list[transfer.RefUpdate], stream: bytes) -> bytes:
    header = json.dumps({"updates": [u.to_json() for u in updates]}).encode()
    if not stream:
        b = io.BytesIO()
        b.write(transfer.MAGIC)
        import blake3

        h = blake3.blake3(transfer.MAGIC)
        end = struct.pack("<BI", 0, 0)
        h.update(end)
        stream = transfer.MAGIC + end + h.digest()
    return struct.pack("<I", len(header)) + header + stream


def clone(url: str, dest: str | os.PathLike[str], progress: Progress = None, runs: bool = True) -> dict[str, Any]:
    d = Path(dest)
    if d.exists() and any(d.iterdir()):
        raise Conflict(f"destination {d} exists and is not empty")
    cl = Client(url)
    adv = cl.refs()  # fail early (auth, not found) before creating anything
    repo = Repository.init(d)
    try:
        remote_add(repo, "origin", url)
        res = fetch(repo, "origin", progress, runs=runs)
        head = adv.get("head") or "heads/main"
        branch = head[6:] if head.startswith("heads/") else "main"
        tip = repo.refs.read(f"remotes/origin/{branch}")
        if tip is not None:
            repo.refs.cas(f"heads/{branch}", None, tip, "exact", f"clone {url}")
            repo.refs.write_head(f"ref: heads/{branch}", "exact", f"clone: from {url}")
            repo.set_config("upstream", {branch: {"remote": "origin", "branch": branch}})
    except BaseException:
        import shutil

        shutil.rmtree(d, ignore_errors=True)
        raise
    return {"path": str(d), "url": url, "branch": branch, "objects": res["objects"], "bytes": res["bytes"]}


def pull(repo: Repository, remote: str | None = None, branch: str | None = None) -> dict[str, Any]:
    from .merge import merge

    cur = repo.current_branch()
    ups = repo.config().get("upstream", {}).get(cur or "", {})
    remote = remote or ups.get("remote") or "origin"
    branch = branch or ups.get("branch") or cur
    if branch is None:
        raise UsageError("HEAD is detached: name the branch to pull")
    f = fetch(repo, remote)
    tracking = f"remotes/{remote}/{branch}"
    if repo.refs.read(tracking) is None:
        raise NotFound(f"{remote} has no branch {branch!r}")
    res = merge(repo, tracking, message=f"Merge {remote}/{branch} into {cur}")
    return {"fetch": f, "merge": res.to_dict()}


def ahead_behind(repo: Repository, branch: str) -> dict[str, Any] | None:
    ups = repo.config().get("upstream", {}).get(branch)
    if not ups:
        return None
    tracking = repo.refs.read(f"remotes/{ups['remote']}/{ups['branch']}")
    local = repo.refs.read(f"heads/{branch}")
    if tracking is None or local is None:
        return None
    from .graph import only_in

    return {"upstream": f"{ups['remote']}/{ups['branch']}", "ahead": len(only_in(repo, [local], [tracking])),
            "behind": len(only_in(repo, [tracking], [local]))}


def upload_image(repo: Repository, image: str, remote: str = "origin", chunk: int = 8 << 20,
                 progress: Progress = None) -> dict[str, Any]:
    """Send an image's file to the server holding ``remote``, in chunks; an interrupted upload resumes
    where it stopped, and the server accepts the file only if its bytes match the fingerprint."""
    rec = repo.image(image, None)
    path = repo.image_path(rec.fingerprint)
    if path is None or not path.exists():
        raise NotFound(f"the file of image {rec.name!r} is not on this machine")
    url = remotes(repo).get(remote)
    if url is None:
        raise NotFound(f"no remote named {remote!r}")
    base = url.rsplit("/", 1)[0]  # the server, not the repository
    cl = Client(base)
    fp = rec.fingerprint
    st = cl.get_json(f"/slides/{fp}/upload")
    if st.get("complete"):
        return {"image": rec.name, "fingerprint": fp, "sent": 0, "status": "already there"}
    size = path.stat().st_size
    offset = int(st["received"])
    sent = 0
    with open(path, "rb") as f:
        f.seek(offset)
        while offset < size:
            data = f.read(chunk)
            res = json.loads(cl._req("PUT", f"/slides/{fp}/upload?offset={offset}", data, "application/octet-stream"))
            offset = int(res["received"])
            sent += len(data)
            if progress:
                progress(offset, size)
    cl._req("POST", f"/slides/{fp}/upload/complete?suffix={path.suffix or '.bin'}", b"")
    return {"image": rec.name, "fingerprint": fp, "sent": sent, "status": "uploaded"}
