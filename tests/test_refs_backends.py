"""The RefStore contract on every backend: memory, disk, PostgreSQL (a real server, tests/engines).

Compare-and-swap semantics, the reflog, HEAD, listing by prefix, several refs moved together or not at
all, 16 threads racing one compare-and-swap (exactly one wins), and a PostgreSQL outage (a clear
BackendUnavailable, then working again)."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from exactvc.errors import BackendUnavailable, RefConflict
from exactvc.refs import DiskRefs, MemoryRefs, RefStore

A, B, C = b"\x0a" * 32, b"\x0b" * 32, b"\x0c" * 32


@pytest.fixture(scope="module")
def pg_db(postgres: Any) -> Iterator[Any]:
    from exactvc.backends.postgres import MIGRATIONS, Database

    db = Database(postgres.database("refs_tests"), max_size=20)
    assert db.migrate() == sorted(int(p.name[:4]) for p in MIGRATIONS.glob("[0-9][0-9][0-9][0-9]_*.sql"))
    assert db.migrate() == []  # applied once
    try:
        yield db
    finally:
        db.close()


@pytest.fixture(params=["memory", "disk", "postgres"])
def refs(request: pytest.FixtureRequest, tmp_path: Path) -> RefStore:
    if request.param == "memory":
        return MemoryRefs()
    if request.param == "disk":
        (tmp_path / "x").mkdir()
        return DiskRefs(tmp_path / "x")
    from exactvc.backends.postgres_refs import PgRefs

    return PgRefs(request.getfixturevalue("pg_db"), f"repo-{uuid.uuid4().hex[:8]}")


def test_cas_create_move_delete_and_conflicts(refs: RefStore) -> None:
    assert refs.read("heads/main") is None
    refs.cas("heads/main", None, A, "ada", "first")
    assert refs.read("heads/main") == A
    with pytest.raises(RefConflict):
        refs.cas("heads/main", None, B)  # exists already
    with pytest.raises(RefConflict):
        refs.cas("heads/main", B, C)  # not at B
    refs.cas("heads/main", A, B, "ben", "second")
    refs.cas("heads/dev", None, C)
    refs.cas("tags/v1", None, A)
    assert refs.list("heads/") == {"heads/dev": C, "heads/main": B}
    assert set(refs.list()) == {"heads/dev", "heads/main", "tags/v1"}
    refs.cas("heads/dev", C, None)
    assert refs.read("heads/dev") is None
    with pytest.raises(RefConflict):
        refs.cas("heads/dev", C, None)  # gone
    log = refs.reflog("heads/main")
    assert [(e.old, e.new, e.who, e.message) for e in log] == [
        ("0" * 64, A.hex(), "ada", "first"), (A.hex(), B.hex(), "ben", "second")]
    # HEAD follows heads/main by default and logs its moves
    assert refs.read_head() == "ref: heads/main"
    assert refs.head() == ("heads/main", B)
    assert [e.new for e in refs.reflog("HEAD")] == [A.hex(), B.hex()]
    refs.write_head(C.hex(), "ada", "detach")
    assert refs.head() == (None, C) and refs.reflog("HEAD")[-1].new == C.hex()


def test_cas_many_moves_all_or_none(refs: RefStore) -> None:
    refs.cas("heads/a", None, A)
    refs.cas("heads/b", None, A)
    with pytest.raises(RefConflict):
        refs.cas_many([("heads/a", A, B), ("heads/b", C, B), ("heads/new", None, B)], "ada", "push")
    assert refs.list() == {"heads/a": A, "heads/b": A}  # nothing moved
    refs.cas_many([("heads/a", A, B), ("heads/b", A, C), ("heads/new", None, B)], "ada", "push")
    assert refs.list() == {"heads/a": B, "heads/b": C, "heads/new": B}


def test_sixteen_threads_race_one_cas_exactly_one_wins(refs: RefStore) -> None:
    refs.cas("heads/main", None, A)
    wins: list[int] = []
    losses: list[int] = []
    start = threading.Barrier(16)

    def racer(i: int) -> None:
        start.wait()
        try:
            refs.cas("heads/main", A, bytes([i]) * 32, f"t{i}")
            wins.append(i)
        except RefConflict:
            losses.append(i)

    threads = [threading.Thread(target=racer, args=(i,)) for i in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert len(wins) == 1 and len(losses) == 15
    assert refs.read("heads/main") == bytes([wins[0]]) * 32
    assert len(refs.reflog("heads/main")) == 2  # the creation and the one winner


def test_postgres_outage_is_a_clear_503_and_recovers(pg_db: Any, postgres: Any) -> None:
    from exactvc.backends.postgres_refs import PgRefs

    refs = PgRefs(pg_db, "outage")
    refs.cas("heads/main", None, A)
    with postgres.stopped():
        with pytest.raises(BackendUnavailable) as exc:
            refs.cas("heads/main", A, B)
        assert exc.value.http_status == 503 and "PostgreSQL" in str(exc.value)
        assert "postgres@" not in str(exc.value)
    for _ in range(50):  # the pool reconnects; bounded
        try:
            refs.cas("heads/main", A, B)
            break
        except BackendUnavailable:
            import time

            time.sleep(0.2)
    assert refs.read("heads/main") == B  # nothing half-written: the failed swap left A, this one moved it
