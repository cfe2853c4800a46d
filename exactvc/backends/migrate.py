"""``exact server migrate``: copy a local (embedded) server's repositories into the scaled-out backends.

For every repository under ROOT: its objects (packs and loose files of ``.exact/objects``) are written to
the object store (S3) in packs, skipping those already there; then every object is read back from S3
through a fresh, empty cache and re-hashed; only then are its refs, HEAD and reflog written to PostgreSQL
(so no ref there ever names an object S3 lacks). A ref already in the database with the same target is
left alone; one with another target is reported and kept (the scaled-out server has moved on). Running it
again copies nothing new, verifies again, and changes nothing: it is idempotent.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from ..errors import ExactError
from ..refs import DiskRefs
from ..repo import EXACT_DIR, Repository
from ..store import Pending
from .config import Backends

PACK_BYTES = 64 << 20  # objects per uploaded pack: about this many bytes
Progress = Callable[[str, int, int], None]  # (repository, done, total)


@dataclass
class RepoMigration:
    name: str
    objects: int = 0  # objects of the local store
    copied: int = 0  # written to the object store now (the others were there already)
    verified: int = 0  # read back from the object store and re-hashed
    refs_written: int = 0
    refs_same: int = 0
    problems: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def server_repositories(root: Path) -> list[str]:
    return sorted(p.name for p in root.iterdir()
                  if not p.name.startswith(".") and (p / EXACT_DIR / "HEAD").is_file())


def migrate_server(root: Path, backends: Backends, progress: Progress | None = None) -> list[RepoMigration]:
    """Copy and verify every repository under ``root``; one report each."""
    return [migrate_repository(root, name, backends, progress) for name in server_repositories(root)]


def _batches(local: Repository, oids: list[bytes]) -> Iterator[list[Pending]]:
    batch: list[Pending] = []
    size = 0
    for oid in oids:
        t, data = local.store.get_uncached(oid)
        batch.append(Pending(oid, t, data))
        size += len(data)
        if size >= PACK_BYTES:
            yield batch
            batch, size = [], 0
    if batch:
        yield batch


def migrate_repository(root: Path, name: str, backends: Backends, progress: Progress | None = None) -> RepoMigration:
    rep = RepoMigration(name)
    path = root / name
    local = Repository.open(path, search_parents=False)  # the embedded layout: its own objects and ref files
    ids = list(local.store.iter_ids())
    rep.objects = len(ids)
    if backends.objects is not None:
        from .s3 import open_s3_store

        target = backends.object_store(root, name)
        missing = [oid for oid in ids if not target.has(oid)]
        done = 0
        for batch in _batches(local, missing):
            target.write_pack(batch, deltas=False)
            done += len(batch)
            rep.copied = done
            if progress is not None:
                progress(f"{name}: copy", done, len(missing))
        # read everything back from S3 itself: a fresh store with an empty cache of its own
        scratch = Path(tempfile.mkdtemp(prefix="exact-migrate-"))
        try:
            fresh = open_s3_store(backends.objects, name, scratch, 4 << 30)
            for i, oid in enumerate(ids):
                try:
                    fresh.verify(oid)
                    rep.verified += 1
                except ExactError as exc:
                    rep.problems.append(f"object {oid.hex()} on {fresh.where}: {exc.message}")
                if progress is not None and (i + 1) % 5000 == 0:
                    progress(f"{name}: verify", i + 1, len(ids))
        finally:
            shutil.rmtree(scratch, ignore_errors=True)
    if rep.problems:
        rep.problems.append("refs not copied: the objects are not all readable on the object store")
        return rep
    if backends.db is not None:
        _copy_refs(local.refs, backends, name, rep)
        backends.register(root, name)  # every machine on the database serves it
    return rep


def _copy_refs(refs: Any, backends: Backends, name: str, rep: RepoMigration) -> None:
    from .postgres_refs import PgRefs

    db = backends.database()
    pg = PgRefs(db, name)
    have = pg.list()
    for ref, oid in sorted(refs.list().items()):
        cur = have.get(ref)
        if cur == oid:
            rep.refs_same += 1
            continue
        if cur is not None:
            rep.problems.append(f"ref {ref} is at {cur.hex()[:12]} in the database and {oid.hex()[:12]} here: "
                                "kept the database's")
            continue
        log = refs.reflog(ref) if isinstance(refs, DiskRefs) else []
        with db.tx() as cur_:
            cur_.execute("INSERT INTO refs (repo, name, target) VALUES (%s, %s, %s) ON CONFLICT DO NOTHING",
                         (name, ref, oid))
            if cur_.rowcount != 1:
                rep.problems.append(f"ref {ref} was created in the database meanwhile: kept the database's")
                continue
            entries = [(name, ref, e.old, e.new, e.time, e.who, e.message) for e in log] or [
                (name, ref, "0" * 64, oid.hex(), _now(), "exact server migrate", "migrated from the local server")]
            cur_.executemany("INSERT INTO reflog (repo, name, old, new, time, who, message) "
                             "VALUES (%s, %s, %s, %s, %s, %s, %s)", entries)
        rep.refs_written += 1
    head = refs.read_head()
    if pg.read_head() != head:
        pg.write_head(head, "exact server migrate", "migrated from the local server")


def _now() -> int:
    import time

    return int(time.time())
