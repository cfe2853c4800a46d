"""One set of ObjectStore tests on every backend: memory, disk, S3 (a real SeaweedFS)."""

from __future__ import annotations

import os
import threading
import uuid
from pathlib import Path

import pytest

from exactvc import codec
from exactvc.backends.s3 import BLOCK, S3ObjectStore, open_s3_store
from exactvc.errors import BackendUnavailable, MissingObject
from exactvc.repo import Repository
from exactvc.store import DiskStore, MemoryStore, ObjectStore, pending
from tests.engines.seaweed import BUCKET, Seaweed


def _s3(tmp_path: Path, name: str, cache_bytes: int = 64 << 20) -> S3ObjectStore:
    return open_s3_store(f"s3://{BUCKET}/conformance", name, tmp_path / f"cache-{uuid.uuid4().hex[:6]}",
                         cache_bytes)


@pytest.fixture(params=["memory", "disk", "s3"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> ObjectStore:
    if request.param == "memory":
        return MemoryStore()
    if request.param == "disk":
        return DiskStore(tmp_path / "objects")
    request.getfixturevalue("s3_env")
    return _s3(tmp_path, uuid.uuid4().hex)


def _objs(n: int, tag: str = "x") -> list:
    return [pending("blob", {"i": i, "tag": tag, "pad": "p" * (i % 50)}) for i in range(n)]


def test_write_read_has_iter(store: ObjectStore) -> None:
    few, many = _objs(3, "few"), _objs(200, "many")
    assert store.write(few) == 3
    assert store.write(many) == 200
    assert store.write(many[:10]) == 0  # immutable: a second write stores nothing
    for p in few + many:
        assert store.has(p.oid)
        t, data = store.get(p.oid)
        assert t == "blob" and codec.object_id(t, data) == p.oid
    assert set(store.iter_ids()) == {p.oid for p in few + many}
    missing = pending("blob", {"absent": True}).oid
    assert not store.has(missing)
    with pytest.raises(MissingObject):
        store.get(missing)


def test_deltas_read_back(store: ObjectStore) -> None:
    base = pending("blob", {"k": list(range(400))})
    store.write([base] + _objs(20, "fill"))
    edited = pending("blob", {"k": list(range(400)) + [1]}, base=(base.oid, base.data))
    store.write([edited] + _objs(20, "fill2"))
    assert store.get(edited.oid)[1] == edited.data


@pytest.mark.parametrize("kind", ["disk", "s3"])
def test_consolidate_and_gc(kind: str, tmp_path: Path, request: pytest.FixtureRequest) -> None:
    from exactvc import maintenance

    if kind == "s3":
        request.getfixturevalue("s3_env")
        s3 = _s3(tmp_path, uuid.uuid4().hex)
        repo = Repository(s3, Repository.memory().refs)
    else:
        repo = Repository.init(tmp_path / "r")
    for i in range(12):
        repo.store.write(_objs(20, f"batch{i}"))
    before = set(repo.store.iter_ids())
    assert repo.store.consolidate(max_packs=4) >= 2  # type: ignore[attr-defined]
    assert set(repo.store.iter_ids()) == before
    for oid in before:
        repo.store.get(oid)
    keep = pending("commit", {"not": "a commit"})  # unreachable too: nothing is reachable (no refs)
    repo.store.write([keep])
    if kind == "s3":
        report = maintenance.gc(repo, grace=0)
        assert report.packs_removed >= 1
        remaining = set(repo.store.iter_ids())
        assert len(remaining) == report.kept and not remaining & (before | {keep.oid})  # unreachable: gone
        young = _s3(tmp_path, uuid.uuid4().hex)
        young_objs = _objs(20, "young")
        young.write(young_objs)
        assert maintenance.gc(Repository(young, Repository.memory().refs)).packs_removed == 0  # grace
        assert {p.oid for p in young_objs} <= set(young.iter_ids())  # an upload in flight is kept


def test_s3_range_reads_and_cache_bound(s3_env: Seaweed, tmp_path: Path) -> None:
    name = uuid.uuid4().hex
    writer = _s3(tmp_path, name)
    big = [pending("blob", {"i": i, "noise": os.urandom(1200).hex()}) for i in range(3000)]
    writer.write(big)
    pack = writer.packs()[0]
    assert pack.size > 3 * BLOCK
    cache_bytes = 2 * BLOCK + 200_000
    reader = _s3(tmp_path, name, cache_bytes)  # a fresh process: nothing cached, LIST finds the pack
    for p in big[::7]:
        assert reader.get(p.oid)[1] == p.data
    assert reader.cache.total <= cache_bytes
    files = sum(f.stat().st_size for f in reader.cache.root.iterdir())
    assert files <= cache_bytes


def test_s3_discovery_of_other_writers_and_concurrency(s3_env: Seaweed, tmp_path: Path) -> None:
    name = uuid.uuid4().hex
    reader = _s3(tmp_path, name)
    writers = [_s3(tmp_path, name) for _ in range(4)]
    batches = [_objs(30, f"w{i}") for i in range(4)]
    errors: list[BaseException] = []

    def run(i: int) -> None:
        try:
            writers[i].write(batches[i])
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not errors
    for b in batches:
        for p in b:
            assert reader.get(p.oid)[1] == p.data  # an id not found: the listing is refreshed
    restarted = _s3(tmp_path, name)
    assert set(restarted.iter_ids()) == {p.oid for b in batches for p in b}


def test_s3_outage_is_503_then_recovers(s3_env: Seaweed, tmp_path: Path) -> None:
    name = uuid.uuid4().hex
    s = _s3(tmp_path, name)
    before = _objs(20, "before")
    s.write(before)
    cold = _s3(tmp_path, name)  # listed its packs, read nothing yet
    during = _objs(20, "during")
    with s3_env.stopped():
        assert s.get(before[0].oid)[1] == before[0].data  # cached: immutable bytes need no round trip
        with pytest.raises(BackendUnavailable):
            cold.get(before[1].oid)
        with pytest.raises(BackendUnavailable) as info:
            s.write(during)
        assert info.value.http_status == 503 and "unavailable" in info.value.message
        assert s3_env.env()["AWS_SECRET_ACCESS_KEY"] not in info.value.message
    fresh = _s3(tmp_path, name)
    assert not any(fresh.has(p.oid) for p in during)  # nothing half-written became visible
    assert fresh.write(during) == 20
    assert all(_s3(tmp_path, name).get(p.oid)[1] == p.data for p in during)


def test_s3_pack_without_index_is_invisible_and_gc_removes_it(s3_env: Seaweed, tmp_path: Path) -> None:
    import obstore

    from exactvc import maintenance

    name = uuid.uuid4().hex
    s = _s3(tmp_path, name)
    objs = _objs(20, "crashed")
    # an upload that died between the pack and its index: the pack's bytes are there, the index is not
    other = _s3(tmp_path, uuid.uuid4().hex)
    other.write(objs)
    pack_name = other.packs()[0].path.stem
    body = bytes(obstore.get(other.client, f"packs/{pack_name}.pack").bytes())
    obstore.put(s.client, f"packs/{pack_name}.pack", body)
    fresh = _s3(tmp_path, name)
    assert fresh.packs() == [] and not any(fresh.has(p.oid) for p in objs)
    maintenance.gc(Repository(fresh, Repository.memory().refs), grace=0)
    listed = [m["path"] for batch in obstore.list(fresh.client, prefix="packs/") for m in batch]
    assert f"packs/{pack_name}.pack" not in listed
