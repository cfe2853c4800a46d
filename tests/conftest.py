from __future__ import annotations

import os
import subprocess
import sys
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
