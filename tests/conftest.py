from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from exactvc.objects import ImageRecord
from exactvc.repo import Repository
from tests.engines.postgres import postgres  # noqa: F401  (session PostgreSQL engine fixture)
from tests.engines.seaweed import s3_env, seaweed  # noqa: F401  (session S3 engine fixtures)

ROOT = Path(__file__).resolve().parents[1]
# ../shared beside the repository; from a worktree (ROOT/../../wt/NAME) the one two levels up
SHARED = next((p for p in (ROOT.parent / "shared", ROOT.parent.parent / "shared") if p.is_dir()), ROOT.parent / "shared")
REAL_SLIDE = SHARED / "data" / "cmu_small_region.svs"


def square(x: float, y: float, s: float = 10) -> dict[str, object]:
    return {"type": "Polygon", "coordinates": [[[x, y], [x + s, y], [x + s, y + s], [x, y + s], [x, y]]]}


@pytest.fixture(params=["disk", "s3pg"])
def backend_pair(request: pytest.FixtureRequest) -> Iterator[str]:
    """The backends of every server ROOT the test makes (tests/server_fixtures.py ``prepare_root``):
    ``disk`` (files and SQLite under ROOT, the embedded default) or ``s3pg`` (a fresh PostgreSQL database
    per ROOT, objects on S3 under a fresh prefix, see ``S3_OBJECTS``)."""
    import uuid

    from tests import server_fixtures

    if request.param == "s3pg" and request.node.originalname in S3PG_HEAVY and not os.environ.get(FULL):
        pytest.skip(f"heavy on every pair; its PostgreSQL counterpart is {S3PG_HEAVY[request.node.originalname]} "
                    f"({FULL}=1 runs it here too)")
    if request.param == "s3pg":
        pg = request.getfixturevalue("postgres")

        if S3_OBJECTS:
            request.getfixturevalue("s3_env")

        def make() -> dict[str, str]:
            conf = {"db": pg.fresh()}
            if S3_OBJECTS:
                conf["objects"] = f"s3://exact-test/{uuid.uuid4().hex[:12]}"
            return conf

        server_fixtures.PAIR["make"] = make
    try:
        yield request.param
    finally:
        server_fixtures.PAIR.pop("make", None)
        server_fixtures.close_pools()


FULL = "EXACT_FULL_CONFORMANCE"
# whole-minute tests that the s3pg pair runs only with EXACT_FULL_CONFORMANCE=1 (both pass there; the suite
# must stay fast on 2 cores), each with the PostgreSQL test that covers the same ground on every run
S3PG_HEAVY = {
    "test_concurrent_pushes_one_winner_per_round": "tests/test_pg_multiprocess.py (3 processes, 8 clients)",
    "test_two_institutions_exchange_a_branch": "tests/test_pg_wiring.py (push, clone through --db)",
    "test_role_action_matrix": "tests/test_server_stores.py (roles, teams, settings on PostgreSQL) with "
                               "test_annotators_own_their_branches_only on this pair",
}
S3_OBJECTS = True  # the s3pg pair: objects on S3 (SeaweedFS), refs and server data in PostgreSQL


# tests that reopen a repository from its folder (a restart): on the disk pair only
DISK_ONLY = {"test_repository_merge_conflicts_resolve_continue": "reopens the repository from its folder"}


def pair_repository(request: pytest.FixtureRequest, path: Path) -> Repository:
    """A new, empty repository on the backend pair of ``request.param``: ``memory`` (objects and refs in
    memory), ``disk`` (``Repository.init(path)``) or ``s3pg`` (objects on the session's SeaweedFS, refs in a
    fresh PostgreSQL database; the working state in memory)."""
    import uuid

    kind = request.param
    if kind != "disk" and request.node.originalname in DISK_ONLY:
        pytest.skip(f"disk pair only: {DISK_ONLY[request.node.originalname]}")
    if kind == "memory":
        return Repository.memory()
    if kind == "disk":
        return Repository.init(path)
    from exactvc.backends.postgres import Database
    from exactvc.backends.postgres_refs import PgRefs
    from exactvc.backends.s3 import open_s3_store
    from tests.engines.seaweed import BUCKET

    request.getfixturevalue("s3_env")
    db = Database(request.getfixturevalue("postgres").fresh())
    request.addfinalizer(db.close)
    store = open_s3_store(f"s3://{BUCKET}/{uuid.uuid4().hex[:12]}", path.name, path.parent / "s3-cache")
    return Repository(store, PgRefs(db, path.name))


@pytest.fixture
def repo(tmp_path: Path) -> Repository:
    r = Repository.init(tmp_path / "repo")
    r.add_image_record(ImageRecord("img", "ab" * 32, 50000, 40000, levels=4, mpp=0.25))
    r.add_label("cell", shape="polygon", color="#ff0000")
    r.add_label("mitosis", shape="point", color="#00ff00", size=(50, 50), key="1")
    return r


def run_exact(*args: str, cwd: Path | None = None, input: bytes | None = None) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ)
    env["EXACT_AUTHOR"] = "Test <test@example.org>"
    return subprocess.run([sys.executable, "-m", "exactvc.cli", *args], cwd=cwd, capture_output=True, text=True,
                          env=env, input=input.decode() if input else None, timeout=300)
