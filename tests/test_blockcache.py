"""The local cache of immutable blobs shared by several processes (server processes on one ROOT)."""

from __future__ import annotations

import os
import time
from pathlib import Path

from exactvc.backends.blockcache import TMP_GRACE, BlockCache


def test_a_second_cache_on_the_folder_leaves_a_live_writers_temporary_file(tmp_path: Path) -> None:
    a = BlockCache(tmp_path, 1 << 20)
    a.put("k1", b"x" * 100)
    live = tmp_path / ".upload-123-456-abc"  # another process is writing this now
    live.write_bytes(b"partial")
    old = tmp_path / ".k2.999.1"  # left by a process that died long ago
    old.write_bytes(b"stale")
    past = time.time() - TMP_GRACE - 10
    os.utime(old, (past, past))
    b = BlockCache(tmp_path, 1 << 20)
    assert live.exists() and not old.exists()
    assert b.get("k1") == b"x" * 100
    (tmp_path / "k1").unlink()  # evicted by another process: a miss, not an error
    c = BlockCache(tmp_path, 1 << 20, memory_bytes=0)
    assert c.get("k1") is None
