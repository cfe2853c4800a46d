"""The repository: objects, refs, the working state, images and labels of one image set.

Layout of ``<folder>/.exact/``::

    HEAD            ref: heads/main | <commit id>
    WORKING         {"base": <commit id|null>, "snapshot": <snapshot id>} (uncommitted edits)
    config.json     repository settings (shared-safe)
    local.json      private: original image file names and paths (never sent anywhere)
    objects/        loose objects and packs (see store)
    refs/, logs/    refs and reflogs (see refs)
    hooks/          pre-commit and friends
    cache/          rebuildable caches (spatial indexes)
    lock            held while the working state or gc changes
"""

from __future__ import annotations

import getpass
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC
from pathlib import Path
from typing import Any

import orjson

from . import codec, tree
from .annotation import Annotation
from .errors import (
    InvalidInput,
    NotARepository,
    NotFound,
    UsageError,
)
from .fsutil import atomic_write, flock
from .objects import Commit, ImageEntry, ImageRecord, Label, LabelSet, Snapshot, Tag
from .refs import DiskRefs, MemoryRefs, RefStore
from .store import DiskStore, MemoryStore, ObjectStore, pending

EXACT_DIR = ".exact"
SHAPES = ("point", "multipoint", "box", "ellipse", "line", "polygon", "multipolygon", "any")


@dataclass(frozen=True)
class LogEntry:
    id: str
    commit: Commit

    def to_dict(self) -> dict[str, Any]:
        c = self.commit
        return {
            "id": self.id,
            "parents": [p.hex() for p in c.parents],
            "root": c.root.hex(),
            "author": c.author,
            "committer": c.committer,
            "time": c.time,
            "tz": c.tz,
            "message": c.message,
            "generation": c.generation,
        }


def default_author() -> str:
    env = os.environ.get("EXACT_AUTHOR")
    if env:
        return env
    try:
        user = getpass.getuser()
    except Exception:
        user = "unknown"
    return f"{user} <{user}@localhost>"


def _server_backends(path: Path) -> Any:
    """The backends of the server ROOT holding repository folder ``path`` if its backends.json names any."""
    if not (path.parent / "backends.json").is_file():
        return None
    from .backends.config import of_server_root

    b = of_server_root(path.parent)
    return None if b is None or b.embedded else b


class Repository:
    def __init__(self, store: ObjectStore, refs: RefStore, path: Path | None = None) -> None:
        self.store = store
        self.refs = refs
        self.path = path  # folder holding .exact, None for in-memory repositories
        self._mem_working: dict[str, Any] | None = None
        self._mem_config: dict[str, Any] = {}
        self._mem_local: dict[str, Any] = {}
        # another lock than the folder's (a server on shared backends: one lock across its machines)
        self.lock_factory: Callable[[], Any] | None = None

    # --- creation -----------------------------------------------------------------
    @classmethod
    def init(cls, path: str | os.PathLike[str], hooks: bool = False, product: str = "default") -> Repository:
        root = Path(path)
        d = root / EXACT_DIR
        if (d / "HEAD").exists():
            raise UsageError(f"{root} is already an exactvc repository")
        root.mkdir(parents=True, exist_ok=True)
        for sub in ("objects/pack", "refs/heads", "refs/tags", "logs", "hooks", "cache"):
            (d / sub).mkdir(parents=True, exist_ok=True)
        atomic_write(d / "config.json", orjson.dumps({"product": product, "merge.policy": "field"}))
        atomic_write(d / "HEAD", b"ref: heads/main\n")  # written last: marks a complete repository
        repo = cls.open(root, search_parents=False)
        if hooks:
            repo.install_sample_hooks()
        return repo

    @classmethod
    def open(cls, path: str | os.PathLike[str] = ".", search_parents: bool = True) -> Repository:
        start = Path(path).resolve()
        cand = start
        while True:
            if (cand / EXACT_DIR / "HEAD").is_file():
                d = cand / EXACT_DIR
                shared = _server_backends(cand)  # a server ROOT's repository: its objects and refs are there
                if shared is not None and shared.objects is not None:
                    opened: Repository = shared.open_repository(cand.parent, cand.name)
                    return opened
                refs = shared.refs_for(cand.name) if shared is not None else None
                return cls(DiskStore(d / "objects"), refs or DiskRefs(d), cand)
            if not search_parents or cand.parent == cand:
                raise NotARepository(f"not an exactvc repository (no {EXACT_DIR}/ here or above): {start}")
            cand = cand.parent

    @classmethod
    def memory(cls) -> Repository:
        return cls(MemoryStore(), MemoryRefs())

    @property
    def exact_dir(self) -> Path | None:
        return self.path / EXACT_DIR if self.path else None

    # --- config ---------------------------------------------------------------------
    def _json(self, name: str, mem: dict[str, Any]) -> dict[str, Any]:
        if self.exact_dir is None:
            return mem
        try:
            data: dict[str, Any] = orjson.loads((self.exact_dir / name).read_bytes())
            return data
        except FileNotFoundError:
            return {}
        except orjson.JSONDecodeError:
            raise InvalidInput(f"{EXACT_DIR}/{name} is not valid JSON") from None

    def _save_json(self, name: str, data: dict[str, Any], mode: int = 0o644) -> None:
        if self.exact_dir is None:
            if name == "config.json":
                self._mem_config = data
            else:
                self._mem_local = data
            return
        atomic_write(self.exact_dir / name, orjson.dumps(data, option=orjson.OPT_SORT_KEYS | orjson.OPT_INDENT_2), mode)

    def config(self) -> dict[str, Any]:
        return self._json("config.json", self._mem_config)

    def set_config(self, key: str, value: Any) -> None:
        cfg = self.config()
        cfg[key] = value
        self._save_json("config.json", cfg)

    def local(self) -> dict[str, Any]:
        """Private, never-shared settings: original image names and paths."""
        return self._json("local.json", self._mem_local)

    def lock(self) -> Any:
        if self.lock_factory is not None:
            return self.lock_factory()
        if self.exact_dir is None:
            import contextlib

            return contextlib.nullcontext()
        return flock(self.exact_dir / "lock")

    # --- objects --------------------------------------------------------------------
    def put(self, type_tag: str, body: Any) -> bytes:
        p = pending(type_tag, body)
        self.store.write([p])
        return p.oid

    def read_body(self, oid: bytes, type_tag: str) -> Any:
        return codec.unpack(self.store.get_typed(oid, type_tag))

    def commit_object(self, oid: bytes) -> Commit:
        return Commit.from_body(self.read_body(oid, "commit"))

    def snapshot_object(self, oid: bytes) -> Snapshot:
        return Snapshot.from_body(self.read_body(oid, "snapshot"))

    def check_commit(self, oid: bytes) -> bytes:
        """``oid`` if it names a commit the caller may read (404 otherwise). A server hands a blind-mode
        annotator a view that also refuses commits no visible ref reaches (exactvc/visibility.py)."""
        if not self.store.has_now(oid) or self.store.get(oid)[0] != "commit":
            raise NotFound(f"no commit {oid.hex()}")
        return oid

    def readable(self, oid: bytes) -> bool:
        """May the caller name object ``oid`` directly (fetch wants)? Everyone may, but in a scoped view."""
        return True

    def empty_snapshot_id(self) -> bytes:
        return self.put("snapshot", Snapshot().to_body())

    # --- revisions ------------------------------------------------------------------
    def head_commit(self) -> bytes | None:
        return self.refs.head()[1]

    def current_branch(self) -> str | None:
        name = self.refs.head()[0]
        return name[len("heads/") :] if name and name.startswith("heads/") else None

    def resolve(self, rev: str) -> bytes:
        """A commit id from ``HEAD``, a branch, a tag, a (prefix of a) commit id, with ``~N``/``^`` suffixes."""
        rev = rev.strip()
        if not rev:
            raise NotFound("empty revision")
        suffix_steps = 0
        base = rev
        while True:
            if base.endswith("^"):
                base = base[:-1]
                suffix_steps += 1
                continue
            if "~" in base:
                b, _, n = base.rpartition("~")
                if n.isdigit() or n == "":
                    base = b
                    suffix_steps += int(n) if n else 1
                    continue
            break
        oid = self._resolve_base(base)
        for _ in range(suffix_steps):
            c = self.commit_object(oid)
            if not c.parents:
                raise NotFound(f"revision {rev!r} goes past the first commit")
            oid = c.parents[0]
        return oid

    def _resolve_base(self, rev: str) -> bytes:
        if rev.endswith("}") and "@{" in rev:
            return self._resolve_reflog(rev)
        if rev == "HEAD":
            oid = self.head_commit()
            if oid is None:
                raise NotFound("HEAD has no commits yet")
            return oid
        # explicit ref paths first, then tags (annotators cannot make tags, so no branch shadows one),
        # branches, remote-tracking branches (docs/cli.md, docs/api.md)
        path = rev[5:] if rev.startswith("refs/") else rev
        explicit = [path] if path.startswith(("heads/", "tags/", "remotes/")) else []
        for name in (*explicit, f"tags/{rev}", f"heads/{rev}", f"remotes/{rev}"):
            try:
                oid = self.refs.read(name)
            except InvalidInput:
                oid = None
            if oid is not None:
                return self._peel(oid)
        low = rev.lower()
        if 4 <= len(low) <= 64 and all(c in "0123456789abcdef" for c in low):
            if len(low) == 64:
                oid = bytes.fromhex(low)
                if self.store.has_now(oid):
                    return self._peel(oid)
            else:
                matches = self._prefix_matches(low)
                if len(matches) == 1:
                    return self._peel(matches[0])
                if len(matches) > 1:
                    some = ", ".join(sorted(m.hex()[:12] for m in matches)[:5])
                    raise UsageError(f"short id {rev!r} is ambiguous: {len(matches)} commits start with it "
                                     f"({some}{', ...' if len(matches) > 5 else ''}); give more digits")
        raise NotFound(f"unknown revision {rev[:100]!r}" + ("..." if len(rev) > 100 else ""))

    def _resolve_reflog(self, rev: str) -> bytes:
        """``NAME@{N}``: what HEAD (or branch NAME) pointed at N moves ago, from its reflog."""
        name, _, n = rev[:-1].partition("@{")
        if not n.isdigit():
            raise NotFound(f"unknown revision {rev!r} (NAME@{{N}} counts moves back)")
        ref = "HEAD" if name in ("", "HEAD") else f"heads/{name}"
        try:
            log = self.refs.reflog(ref)
        except InvalidInput:
            raise NotFound(f"unknown revision {rev[:100]!r}: {name[:80]!r} is not a branch name") from None
        if int(n) >= len(log):
            raise NotFound(f"{rev}: the reflog of {name or 'HEAD'} has only {len(log)} entries")
        new = log[-1 - int(n)].new
        if new == "0" * 64:
            raise NotFound(f"{rev}: {name or 'HEAD'} pointed at nothing then")
        oid = bytes.fromhex(new)
        if not self.store.has(oid):
            raise NotFound(f"{rev}: commit {new[:12]} is no longer stored (removed by gc)")
        return oid

    def reflog_commits(self) -> list[bytes]:
        """Commits the HEAD reflog names that are still stored (newest first, once each)."""
        out: dict[bytes, None] = {}
        for e in reversed(self.refs.reflog("HEAD")):
            for h in (e.new, e.old):
                if h != "0" * 64:
                    oid = bytes.fromhex(h)
                    if oid not in out and self.store.has(oid):
                        out[oid] = None
        return list(out)

    def _prefix_matches(self, prefix: str) -> list[bytes]:
        seen: set[bytes] = set()
        out = []
        # walk commits reachable from refs and the HEAD reflog: prefixes name commits, not arbitrary objects
        starts = list(self.refs.list().values())
        head = self.head_commit()
        if head:
            starts.append(head)
        starts.extend(self.reflog_commits())
        stack = []
        for s in starts:
            try:
                stack.append(self._peel(s))
            except NotFound:  # a run or artefact without a commit names none
                continue
        while stack:
            c = stack.pop()
            if c in seen:
                continue
            seen.add(c)
            if c.hex().startswith(prefix):
                out.append(c)
            stack.extend(self.commit_object(c).parents)
        return out

    def _peel(self, oid: bytes) -> bytes:
        t, data = self.store.get(oid)
        if t == "tag":
            return Tag.from_body(codec.unpack(data)).target
        if t in ("run", "artefact"):  # experiments name the labels commit they used (docs/format.md §10)
            commit = codec.unpack(data).get("commit")
            if isinstance(commit, bytes) and self.store.has(commit):
                return commit
            raise NotFound(f"{oid.hex()[:12]} is a {t} without a commit")
        if t != "commit":
            raise NotFound(f"{oid.hex()[:12]} is a {t}, not a commit")
        return oid

    # --- working state ----------------------------------------------------------------
    def working(self) -> tuple[bytes | None, bytes]:
        """(base commit, working snapshot id). Without uncommitted edits: (HEAD, HEAD's root)."""
        data: dict[str, Any] | None
        if self.exact_dir is None:
            data = self._mem_working
        else:
            try:
                data = orjson.loads((self.exact_dir / "WORKING").read_bytes())
            except FileNotFoundError:
                data = None
            except orjson.JSONDecodeError:
                raise InvalidInput(f"{EXACT_DIR}/WORKING is corrupt") from None
        head = self.head_commit()
        if data is not None:
            base = bytes.fromhex(data["base"]) if data.get("base") else None
            if base == head:
                return base, bytes.fromhex(data["snapshot"])
        # no edits, or HEAD moved under a stale file: the working state is HEAD
        if head is None:
            return None, self.empty_snapshot_id()
        return head, self.commit_object(head).root

    def set_working(self, base: bytes | None, snapshot: bytes) -> None:
        data = {"base": base.hex() if base else None, "snapshot": snapshot.hex()}
        if self.exact_dir is None:
            self._mem_working = data
        else:
            atomic_write(self.exact_dir / "WORKING", orjson.dumps(data))

    def snapshot_at(self, rev: str | None) -> Snapshot:
        """The snapshot of a revision; ``None`` or ``"WORKING"`` means the working state."""
        if rev is None or rev == "WORKING":
            return self.snapshot_object(self.working()[1])
        return self.snapshot_object(self.commit_object(self.resolve(rev)).root)

    def is_dirty(self) -> bool:
        base, snap = self.working()
        if base is None:
            return snap != self.empty_snapshot_id()
        return snap != self.commit_object(base).root

    # --- labels ---------------------------------------------------------------------
    def labels(self, rev: str | None = None) -> LabelSet:
        snap = self.snapshot_at(rev)
        if snap.labels is None:
            return LabelSet(product=str(self.config().get("product", "default")))
        return LabelSet.from_body(self.read_body(snap.labels, "labels"))

    def add_label(
        self,
        name: str,
        shape: str = "polygon",
        color: str = "#ffcc00",
        size: tuple[int, int] | None = None,
        key: str | None = None,
        order: int | None = None,
        example: str | None = None,
    ) -> Label:
        if not name or not name.strip() or len(name) > 200:
            raise InvalidInput(f"invalid label name {name!r}")
        if shape not in SHAPES:
            raise InvalidInput(f"unknown shape kind {shape!r} (one of {', '.join(SHAPES)})")
        color = _check_color(color)
        if size is not None and (len(size) != 2 or size[0] <= 0 or size[1] <= 0):
            raise InvalidInput(f"invalid default size {size!r}")
        if key is not None and len(key) != 1:
            raise InvalidInput(f"keyboard key must be one character: {key!r}")

        def change(snap: Snapshot, ls: LabelSet) -> tuple[Snapshot, LabelSet]:
            old = ls.get(name)
            o = order if order is not None else (old.order if old else len(ls.labels))
            label = Label(name, shape, color, key, size, o, example)
            return snap, ls.with_label(label)

        self._change_working(change)
        got = self.labels().get(name)
        assert got is not None
        return got

    def _change_working(self, fn: Callable[[Snapshot, LabelSet], tuple[Snapshot, LabelSet]]) -> bytes:
        with self.lock():
            base, snap_id = self.working()
            snap = self.snapshot_object(snap_id)
            ls = self.labels(None)
            new_snap, new_ls = fn(snap, ls)
            labels_id = self.put("labels", new_ls.to_body()) if new_ls.labels or snap.labels else None
            final = Snapshot(images=new_snap.images, labels=labels_id)
            sid = self.put("snapshot", final.to_body())
            self.set_working(base, sid)
            return sid

    # --- images ---------------------------------------------------------------------
    def images(self, rev: str | None = None) -> list[ImageRecord]:
        snap = self.snapshot_at(rev)
        return [self.image_record(e) for _, e in sorted(snap.images.items())]

    def image_record(self, entry: ImageEntry) -> ImageRecord:
        return ImageRecord.from_body(self.read_body(entry.record, "image"))

    def image(self, name: str, rev: str | None = None) -> ImageRecord:
        snap = self.snapshot_at(rev)
        entry = self._entry(snap, name)
        return self.image_record(entry)

    def _entry(self, snap: Snapshot, name: str) -> ImageEntry:
        e = snap.images.get(name)
        if e is None:
            # accept the original (private) file name, or a fingerprint, too
            fp = self._find_image_alias(name, snap)
            if fp is not None:
                e = snap.images[fp]
        if e is None:
            raise NotFound(f"no image named {name!r}")
        return e

    def _find_image_alias(self, name: str, snap: Snapshot) -> str | None:
        local = self.local().get("images", {})
        for public, e in snap.images.items():
            rec = self.image_record(e)
            if rec.fingerprint == name or rec.fingerprint[:12] == name:
                return public
            info = local.get(rec.fingerprint, {})
            if name and name in (info.get("original_name"), info.get("path")):
                return public
        return None

    def add_image(
        self, file_path: str | os.PathLike[str], name: str | None = None,
        progress: Callable[[int, int], None] | None = None, origin: str | None = None,
    ) -> ImageRecord:
        """Register an image file; ``origin``: URL of the server that will hold its pixels (virtual image sets)."""
        from .images import pseudonym, read_image_info

        p = Path(file_path)
        if not p.exists():
            raise NotFound(f"no such file: {p}")
        info = read_image_info(p, progress=progress)
        snap = self.snapshot_at(None)
        for e in snap.images.values():
            rec = self.image_record(e)
            if rec.fingerprint == info.fingerprint:
                self._remember_local(rec.fingerprint, p)
                return rec  # same pixels: link, don't duplicate
        public = name if name else pseudonym(p.name, _file_time(p))
        _check_image_name(public)
        if public in snap.images:
            raise InvalidInput(f"an image named {public!r} already exists")
        if origin is not None and not origin.startswith(("http://", "https://")):
            raise InvalidInput(f"origin must be an http(s) URL: {origin!r}")
        rec = ImageRecord(public, info.fingerprint, info.width, info.height, info.levels, info.mpp,
                          info.vendor, info.frames, origin.rstrip("/") if origin else None)

        def change(s: Snapshot, ls: LabelSet) -> tuple[Snapshot, LabelSet]:
            rid = self.put("image", rec.to_body())  # under the lock: gc cannot drop it meanwhile
            if public in s.images:
                raise InvalidInput(f"an image named {public!r} already exists")
            return Snapshot({**s.images, public: ImageEntry(rid, None, 0)}, s.labels), ls

        self._change_working(change)
        self._remember_local(info.fingerprint, p)
        return rec

    def add_image_record(self, rec: ImageRecord) -> ImageRecord:
        """Register an image from its record alone (pixels held elsewhere)."""
        _check_image_name(rec.name)

        def change(s: Snapshot, ls: LabelSet) -> tuple[Snapshot, LabelSet]:
            rid = self.put("image", rec.to_body())  # under the lock: gc cannot drop it meanwhile
            if rec.name in s.images:
                raise InvalidInput(f"an image named {rec.name!r} already exists")
            return Snapshot({**s.images, rec.name: ImageEntry(rid, None, 0)}, s.labels), ls

        self._change_working(change)
        return rec

    def _remember_local(self, fingerprint: str, p: Path) -> None:
        loc = self.local()
        imgs = loc.setdefault("images", {})
        imgs[fingerprint] = {"original_name": p.name, "path": str(p.resolve())}
        self._save_json("local.json", loc, 0o600)

    def image_path(self, fingerprint: str) -> Path | None:
        info = self.local().get("images", {}).get(fingerprint)
        return Path(info["path"]) if info and info.get("path") else None

    # --- annotations ------------------------------------------------------------------
    def edit(self, image: str) -> Any:
        from .edit import Editor

        return Editor(self, image)

    def tree_of(self, image: str, rev: str | None = "HEAD") -> tuple[ImageEntry, bytes | None]:
        snap = self.snapshot_at(rev)
        e = self._entry(snap, image)
        return e, e.tree

    def annotations(self, image: str, rev: str | None = "HEAD") -> Iterator[Annotation]:
        _, root = self.tree_of(image, rev)
        for k, rec in tree.items(self.store, root):
            yield Annotation.from_record(k, tree.join_record(self.store, rec))

    def annotation(self, image: str, aid: str, rev: str | None = "HEAD") -> Annotation:
        from .ids import parse_id

        _, root = self.tree_of(image, rev)
        key = parse_id(aid)
        rec = tree.get(self.store, root, key)
        if rec is None:
            raise NotFound(f"no annotation {aid} on image {image!r}")
        return Annotation.from_record(key, tree.join_record(self.store, rec))

    def count(self, image: str, rev: str | None = "HEAD") -> int:
        e, _ = self.tree_of(image, rev)
        return e.count

    def query(
        self, image: str, bbox: tuple[float, float, float, float], rev: str | None = "HEAD",
        label: str | None = None,
    ) -> list[Annotation]:
        """Annotations whose bounding box meets ``bbox`` (x0, y0, x1, y1), via a cached rtree."""
        from . import spatial

        x0, y0, x1, y1 = bbox
        q = (min(x0, x1), min(y0, y1), max(x0, x1), max(y0, y1))
        _, root = self.tree_of(image, rev)
        if root is None:
            return []
        indexed, overlay = root, None
        cache = self.exact_dir / "cache" / "rtree" if self.exact_dir else None
        if rev is None or rev == "WORKING":
            # uncommitted trees change often: use HEAD's index plus the (small) difference
            head = self.head_commit()
            if head is not None:
                hs = self.snapshot_object(self.commit_object(head).root)
                he = hs.images.get(self.image(image, rev).name)
                if he is not None and he.tree is not None and he.tree != root:
                    indexed = he.tree
                    overlay = {k: new for k, _old, new in tree.diff(self.store, he.tree, root)}
        idx = spatial.open_or_build(self.store, indexed, cache)
        from_record, join, store = Annotation.from_record, tree.join_record, self.store
        out: list[Annotation] = [
            from_record(k, join(store, rec) if "G" in rec else rec)
            for k, rec in idx.entries_in(q)
            if (label is None or rec["l"] == label) and (overlay is None or k not in overlay)
        ]
        if overlay:
            for k, new in overlay.items():
                if new is not None and (label is None or new["l"] == label) and spatial.intersects(
                    spatial.record_bounds(new), q
                ):
                    out.append(Annotation.from_record(k, tree.join_record(self.store, new)))
            out.sort(key=lambda a: a.key)
        return out

    # --- commits ----------------------------------------------------------------------
    def commit(self, message: str, author: str | None = None, allow_empty: bool = False,
               run_hooks: bool = True) -> str:
        from .history import make_commit

        return make_commit(self, message, author=author, allow_empty=allow_empty, run_hooks=run_hooks)

    def log(self, rev: str = "HEAD", n: int | None = None, image: str | None = None) -> list[LogEntry]:
        from .history import log

        return log(self, rev, n=n, image=image)

    def install_sample_hooks(self) -> None:
        if self.exact_dir is None:
            return
        src = Path(__file__).resolve().parent / "hook_samples"
        for f in sorted(src.iterdir()):
            if f.is_file() and not f.name.startswith(("_", ".")):
                dst = self.exact_dir / "hooks" / f.name
                dst.write_bytes(f.read_bytes())
                dst.chmod(0o755)


def _check_color(color: str) -> str:
    c = color.strip().lower()
    if len(c) == 7 and c[0] == "#" and all(ch in "0123456789abcdef" for ch in c[1:]):
        return c
    raise InvalidInput(f"invalid colour {color!r} (expected #rrggbb)")


def _check_image_name(name: str) -> None:
    if not name or "/" in name or "\\" in name or name.startswith(".") or len(name) > 200 or "\0" in name:
        raise InvalidInput(f"invalid image name {name!r}")


def _file_time(p: Path) -> Any:
    from datetime import datetime

    return datetime.fromtimestamp(p.stat().st_mtime, tz=UTC)

