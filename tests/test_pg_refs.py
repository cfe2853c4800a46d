"""PostgreSQL refs on a real PostgreSQL 15: the RefStore contract, racing compare-and-swaps, the database
going away and coming back."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from exactvc.backends.postgres import PgDatabase, migrate
from exactvc.backends.postgres_refs import PgRefs
from exactvc.errors import BackendUnavailable, RefConflict
from exactvc.refs import DiskRefs, MemoryRefs, RefStore

A, B, C = bytes([1]) * 32, bytes([2]) * 32, bytes([3]) * 32


@pytest.fixture
def db(postgres: Any) -> Iterator[PgDatabase]:
    d = PgDatabase(postgres.new_database(), max_size=20)
    assert migrate(d) == ["0001_refs.sql"]
    assert migrate(d) == []  # applied once
    yield d
    d.close()


@pytest.fixture(params=["memory", "disk", "postgres"])
def refs(request: pytest.FixtureRequest, tmp_path: Path) -> RefStore:
    if request.param == "memory":
        return MemoryRefs()
    if request.param == "disk":
        (tmp_path / ".exact").mkdir()
        return DiskRefs(tmp_path / ".exact")
    return PgRefs(request.getfixturevalue("db"), "proj")


def test_cas_and_reflog(refs: RefStore) -> None:
    refs.cas("heads/main", None, A, "ann", "first")
    with pytest.raises(RefConflict):
        refs.cas("heads/main", None, B)
    with pytest.raises(RefConflict):
        refs.cas("heads/main", B, C)
    refs.cas("heads/main", A, B, "bob", "second")
    assert refs.read("heads/main") == B and refs.head() == ("heads/main", B)
    log = refs.reflog("heads/main")
    assert [(e.old, e.new, e.who, e.message) for e in log] == [("0" * 64, A.hex(), "ann", "first"),
                                                              (A.hex(), B.hex(), "bob", "second")]
    assert [e.new for e in refs.reflog("HEAD")] == [A.hex(), B.hex()]
    refs.cas("tags/v1", None, A)
    assert refs.list("tags/") == {"tags/v1": A}
    refs.cas("tags/v1", A, None)
    assert refs.read("tags/v1") is None and refs.list() == {"heads/main": B}


def test_multi_ref_update_is_all_or_nothing(refs: RefStore) -> None:
    refs.cas("heads/main", None, A)
    refs.cas("heads/dev", None, A)
    with pytest.raises(RefConflict, match="heads/dev"):
        refs.update_many([("heads/main", A, B), ("heads/dev", C, B), ("heads/new", None, B)], "ann", "push")
    assert refs.list() == {"heads/dev": A, "heads/main": A}
    assert refs.reflog("heads/new") == []
    refs.update_many([("heads/main", A, B), ("heads/dev", A, C), ("heads/new", None, B)], "ann", "push")
    assert refs.list() == {"heads/dev": C, "heads/main": B, "heads/new": B}


def test_sixteen_threads_race_one_cas_exactly_one_wins(db: PgDatabase) -> None:
    stores = [PgRefs(db, "race") for _ in range(16)]
    stores[0].cas("heads/main", None, A)
    barrier = threading.Barrier(16)
    won: list[int] = []
    lost: list[int] = []

    def go(i: int) -> None:
        barrier.wait(timeout=30)
        try:
            stores[i].cas("heads/main", A, bytes([i + 10]) * 32, f"t{i}", "race")
            won.append(i)
        except RefConflict:
            lost.append(i)

    threads = [threading.Thread(target=go, args=(i,)) for i in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert len(won) == 1 and len(lost) == 15, (won, lost)
    assert stores[0].read("heads/main") == bytes([won[0] + 10]) * 32
    assert [e.who for e in stores[0].reflog("heads/main")] == ["", f"t{won[0]}"]


def test_repositories_do_not_share_refs(db: PgDatabase) -> None:
    PgRefs(db, "one").cas("heads/main", None, A)
    assert PgRefs(db, "two").list() == {}


def test_database_down_is_backend_unavailable_then_works_again(postgres: Any, tmp_path: Path) -> None:
    d = PgDatabase(postgres.new_database(), timeout=2.0)
    try:
        migrate(d)
        refs = PgRefs(d, "proj")
        refs.cas("heads/main", None, A)
        postgres.stop()
        try:
            with pytest.raises(BackendUnavailable, match="metadata database is unavailable") as e:
                refs.cas("heads/main", A, B)
            assert e.value.http_status == 503 and e.value.exit_code == 75
        finally:
            postgres.start()
        assert refs.read("heads/main") == A  # nothing half-done
        refs.cas("heads/main", A, B)
        assert refs.read("heads/main") == B
    finally:
        d.close()
