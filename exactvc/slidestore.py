"""Where a server finds pixels: uploaded files and indexed slide folders, by fingerprint.

Layout under the server ROOT::

    .slides/slides.sqlite          fingerprint -> path, companion pyramid, planes
    .slides/files/<fp><ext>        uploaded (verified) files
    .slides/uploads/<fp>.part      uploads in progress (resumable)
    .slides/converted/<fp>*.tiff   pyramids made from formats openslide cannot read
    .slides/companions/<fp>/       DeepZoom levels the file lacks, built once (a TIFF per level)

Folders configured for indexing are read in place and never copied.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import blake3

from .errors import Conflict, InvalidInput, NotFound

EXTENSIONS = {".svs", ".tif", ".tiff", ".ndpi", ".mrxs", ".scn", ".vms", ".vmu", ".bif", ".svslide", ".dcm",
              ".png", ".jpg", ".jpeg", ".ome.tif", ".ome.tiff"}
MAX_UPLOAD = 64 * 1024**3

_SCHEMA = """
CREATE TABLE IF NOT EXISTS slides (fingerprint TEXT PRIMARY KEY, path TEXT NOT NULL, companion TEXT,
    planes TEXT NOT NULL DEFAULT '[]', source TEXT NOT NULL, size INTEGER, mtime REAL, added INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS seen (path TEXT PRIMARY KEY, size INTEGER, mtime REAL, fingerprint TEXT);
"""


def _check_fp(fp: str) -> str:
    if len(fp) != 64 or any(c not in "0123456789abcdef" for c in fp):
        raise NotFound(f"no slide {fp[:80]!r}")
    return fp


class SlideStore:
    def __init__(self, root: Path) -> None:
        self.dir = root / ".slides"
        for sub in ("files", "uploads", "converted", "companions"):
            (self.dir / sub).mkdir(parents=True, exist_ok=True)
        self._local = threading.local()
        self._reg_lock = threading.Lock()
        conn = sqlite3.connect(self.dir / "slides.sqlite", timeout=30, isolation_level=None)
        try:
            conn.executescript(_SCHEMA)
        finally:
            conn.close()

    def _db(self) -> sqlite3.Connection:
        c = getattr(self._local, "conn", None)
        if c is None:
            c = sqlite3.connect(self.dir / "slides.sqlite", timeout=30, isolation_level=None)
            c.execute("PRAGMA journal_mode=WAL")
            self._local.conn = c
        return c

    # --- lookup ---
    def get(self, fp: str) -> dict[str, Any]:
        import json

        row = self._db().execute("SELECT path, companion, planes FROM slides WHERE fingerprint = ?",
                                 (_check_fp(fp),)).fetchone()
        if row is None or not Path(row[0]).exists():
            raise NotFound(f"no pixels here for slide {fp[:12]}")
        return {"path": row[0], "companion": row[1], "planes": json.loads(row[2])}

    def has(self, fp: str) -> bool:
        try:
            self.get(fp)
            return True
        except NotFound:
            return False

    # --- registration ---
    def register(self, path: str | os.PathLike[str], fingerprint: str | None = None, source: str = "folder",
                 progress: Callable[[int, int], None] | None = None) -> str:
        """Index one file by fingerprint (converting it / building its companion levels once)."""
        import json

        from .images import fingerprint_file
        from .tiles import Slide, build_companion

        p = Path(path).resolve()
        st = p.stat()
        fp = fingerprint or fingerprint_file(p, progress)
        with self._reg_lock:
            planes: list[str] = []
            serve = str(p)
            from .convert import convert_to_pyramid, needs_conversion

            if needs_conversion(p):
                outs = convert_to_pyramid(p, self.dir / "converted" / f"{fp}.tiff")
                planes = [str(o) for o in outs[1:]]
                serve = str(outs[0])
            slide = Slide(serve)
            try:
                comp = build_companion(slide, self.dir / "companions" / fp)
            finally:
                slide.close()
            self._db().execute(
                "INSERT OR REPLACE INTO slides (fingerprint, path, companion, planes, source, size, mtime, added) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (fp, serve, str(comp) if comp else None, json.dumps(planes), source, st.st_size, st.st_mtime,
                 int(time.time())))
            self._db().execute("INSERT OR REPLACE INTO seen (path, size, mtime, fingerprint) VALUES (?, ?, ?, ?)",
                               (str(p), st.st_size, st.st_mtime, fp))
        return fp

    def index_folder(self, folder: str | os.PathLike[str]) -> list[str]:
        """Register every slide file under ``folder`` in place (files already seen unchanged are skipped)."""
        out = []
        for p in sorted(Path(folder).rglob("*")):
            if not p.is_file() or not any(p.name.lower().endswith(e) for e in EXTENSIONS):
                continue
            st = p.stat()
            row = self._db().execute("SELECT size, mtime, fingerprint FROM seen WHERE path = ?",
                                     (str(p.resolve()),)).fetchone()
            if row and row[0] == st.st_size and row[1] == st.st_mtime and self.has(row[2]):
                out.append(row[2])
                continue
            try:
                out.append(self.register(p))
            except Exception:  # noqa: BLE001 - a file no reader understands is skipped, not fatal
                continue
        return out

    # --- resumable upload ---
    def _part(self, fp: str) -> Path:
        return self.dir / "uploads" / f"{_check_fp(fp)}.part"

    def upload_status(self, fp: str) -> dict[str, Any]:
        part = self._part(fp)
        return {"fingerprint": fp, "received": part.stat().st_size if part.exists() else 0,
                "complete": self.has(fp)}

    def upload_chunk(self, fp: str, offset: int, data: bytes) -> int:
        part = self._part(fp)
        if self.has(fp):
            raise Conflict(f"slide {fp[:12]} is already here")
        have = part.stat().st_size if part.exists() else 0
        if offset != have:
            raise Conflict(f"upload of {fp[:12]} is at byte {have}, not {offset}: resume from there")
        if have + len(data) > MAX_UPLOAD:
            raise InvalidInput("upload too large")
        with open(part, "ab") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        return have + len(data)

    def upload_finish(self, fp: str, suffix: str = ".svs") -> str:
        """Verify the whole file against its fingerprint, then make it servable; a mismatch discards it."""
        part = self._part(fp)
        if not part.exists():
            raise NotFound(f"no upload of {fp[:12]} in progress")
        h = blake3.blake3(max_threads=blake3.blake3.AUTO)
        with open(part, "rb") as f:
            for chunk in iter(lambda: f.read(64 << 20), b""):
                h.update(chunk)
        if h.hexdigest() != fp:
            part.unlink()
            raise InvalidInput(f"uploaded bytes do not match fingerprint {fp[:12]}: discarded")
        if not suffix.startswith(".") or len(suffix) > 12 or not suffix[1:].replace(".", "").isalnum():
            suffix = ".bin"
        dest = self.dir / "files" / f"{fp}{suffix.lower()}"
        os.replace(part, dest)
        try:
            self.register(dest, fingerprint=fp, source="upload")
        except Exception:
            with contextlib.suppress(FileNotFoundError):
                dest.unlink()
            # the reader's own message names the server's files: say what happened without it
            raise InvalidInput(f"the uploaded file ({fp[:12]}, {suffix.lower()}) is not an image this server can "
                               "read: discarded") from None
        return fp
