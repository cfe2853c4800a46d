"""Refs: names that point at commits, moved only by compare-and-swap.

On disk: ``.exact/HEAD`` (``ref: heads/main`` or a commit id) and one file per
ref under ``.exact/refs/`` (``heads/<branch>``, ``tags/<tag>``,
``remotes/<remote>/<branch>``). A ref moves by: take ``<ref>.lock`` with
O_EXCL, check the current value is the expected one, write the new value to
the lock file, fsync, rename over the ref. Every move is appended to the
ref's reflog under ``.exact/logs/``. ``.exact/logs/HEAD`` records every commit HEAD
pointed at (commits on the current branch, switches, detached commits), so commits made on
a detached HEAD stay findable (``HEAD@{N}``, short ids) and ``gc`` keeps them for a while.
"""

from __future__ import annotations

import builtins
import contextlib
import os
import re
import time
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from .errors import InvalidInput, LockError, RefConflict, RefNameConflict
from .fsutil import append_line, fsync_dir

_NAME_RE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9._/@+-]*$")
MAX_REF_NAME = 200  # a ref is a file: its name stays well inside the file system's 255 bytes per component
# a branch or tag named like a ref path would shadow (or be shadowed by) another ref in rev resolution
RESERVED_PREFIXES = ("heads/", "tags/", "remotes/", "refs/")
RESERVED_NAMES = ("HEAD", "heads", "tags", "remotes", "refs")
_EXPERIMENT_REF = {"runs": re.compile(r"^[0-9a-f]{32}$"), "runtags": re.compile(r"^[A-Za-z0-9_][A-Za-z0-9._-]*$"),
                   "artefacts": re.compile(r"^[0-9a-f]{64}/[0-9a-f]{64}$")}


def check_ref_name(name: str) -> str:
    if not isinstance(name, str):
        raise InvalidInput(f"invalid ref name {name!r}")
    parts = name.split("/")
    if (
        len(name) > MAX_REF_NAME
        or not _NAME_RE.match(name)
        or ".." in name
        or name.endswith((".lock", "/", "."))
        or "//" in name
        or any(p.startswith(".") or not p for p in parts)
    ):
        raise InvalidInput(f"invalid ref name {name[:80]!r}" + ("..." if len(name) > 80 else ""))
    return name


def check_short_name(name: str, what: str = "branch") -> str:
    """A branch or tag name as users give it (``main``, ``users/ada/x``): a valid ref name that does not
    look like a ref path (``heads/...``, ``tags/...``, ``refs/...``, ``remotes/...``) nor like ``HEAD``."""
    check_ref_name(name)
    if name in RESERVED_NAMES or name.startswith(RESERVED_PREFIXES):
        raise InvalidInput(f"invalid {what} name {name!r}: names starting with heads/, tags/, remotes/ or refs/ "
                           "(or equal to HEAD) would be mistaken for ref paths")
    return name


def check_new_branch(refs: RefStore, name: str) -> str:
    """Refuse a new branch ``name`` that is not a valid short name or that a tag already holds."""
    check_short_name(name, "branch")
    if refs.read(f"tags/{name}") is not None:
        raise RefNameConflict(f"a tag named {name!r} exists: a branch of the same name would make {name!r} ambiguous")
    return name


def check_new_tag(refs: RefStore, name: str) -> str:
    """Refuse a new tag ``name`` that is not a valid short name or that a branch already holds."""
    check_short_name(name, "tag")
    if refs.read(f"heads/{name}") is not None:
        raise RefNameConflict(f"a branch named {name!r} exists: a tag of the same name would make {name!r} ambiguous")
    return name


def check_pushed_ref(refs: RefStore, ref: str) -> str:
    """A ref a push may create or move: ``heads/NAME`` or ``tags/NAME`` with a valid short name that
    another kind of ref does not already hold."""
    check_ref_name(ref)
    kind, _, name = ref.partition("/")
    if kind in ("runs", "runtags", "artefacts"):  # experiments (docs/format.md §10)
        if not _EXPERIMENT_REF[kind].match(name):
            raise InvalidInput(f"invalid {kind} ref {ref[:120]!r}")
        return ref
    if kind not in ("heads", "tags") or not name:
        raise InvalidInput(f"cannot push to {ref} (only heads/NAME and tags/NAME)")
    if refs.read(ref) is None:  # a new ref; existing ones may be updated or deleted as they are
        (check_new_branch if kind == "heads" else check_new_tag)(refs, name)
    return ref


@dataclass(frozen=True)
class ReflogEntry:
    old: str
    new: str
    time: int
    who: str
    message: str


class RefStore(ABC):
    @abstractmethod
    def read(self, name: str) -> bytes | None: ...

    @abstractmethod
    def cas(self, name: str, old: bytes | None, new: bytes | None, who: str = "", message: str = "") -> None:
        """Set ``name`` to ``new`` (None deletes) if it currently is ``old``; else RefConflict."""

    @abstractmethod
    def list(self, prefix: str = "") -> dict[str, bytes]: ...

    def cas_many(self, updates: Sequence[tuple[str, bytes | None, bytes | None]], who: str = "",
                 message: str = "") -> None:
        """Move several refs, each from its expected value to its new one, or none (RefConflict).

        This default checks every expected value first and undoes the swaps already made when one fails;
        a backend with transactions (PostgreSQL) does it in one transaction, atomic against every writer."""
        for name, old, _new in updates:
            cur = self.read(name)
            if cur != old:
                raise RefConflict(f"ref {name} moved: expected {_h(old)}, found {_h(cur)}")
        done: builtins.list[tuple[str, bytes | None, bytes | None]] = []
        try:
            for name, old, new in updates:
                self.cas(name, old, new, who, message)
                done.append((name, old, new))
        except RefConflict:
            for name, old, new in reversed(done):
                with contextlib.suppress(RefConflict):
                    self.cas(name, new, old, who, f"undo: {message}")
            raise

    @abstractmethod
    def read_head(self) -> str:
        """``ref: heads/NAME`` or a commit id in hex."""

    @abstractmethod
    def write_head(self, value: str, who: str = "", message: str = "") -> None:
        """Point HEAD at ``ref: heads/NAME`` or a commit id; the move is logged in the HEAD reflog."""

    @abstractmethod
    def reflog(self, name: str) -> builtins.list[ReflogEntry]: ...

    def _head_target(self, value: str) -> bytes | None:
        if value.startswith("ref: "):
            try:
                return self.read(value[5:])
            except InvalidInput:
                return None
        try:
            return bytes.fromhex(value)
        except ValueError:
            return None

    def head(self) -> tuple[str | None, bytes | None]:
        """(branch ref name or None when detached, commit id or None when unborn)."""
        v = self.read_head()
        if v.startswith("ref: "):
            name = v[5:]
            return name, self.read(name)
        return None, bytes.fromhex(v)


class MemoryRefs(RefStore):
    def __init__(self) -> None:
        self._refs: dict[str, bytes] = {}
        self._head = "ref: heads/main"
        self._logs: dict[str, list[ReflogEntry]] = {}

    def read(self, name: str) -> bytes | None:
        return self._refs.get(name)

    def cas(self, name: str, old: bytes | None, new: bytes | None, who: str = "", message: str = "") -> None:
        check_ref_name(name)
        cur = self._refs.get(name)
        if cur != old:
            raise RefConflict(f"ref {name} moved: expected {_h(old)}, found {_h(cur)}")
        if new is None:
            self._refs.pop(name, None)
        else:
            self._refs[name] = new
        entry = ReflogEntry(_h(old), _h(new), int(time.time()), who, message)
        self._logs.setdefault(name, []).append(entry)
        if self._head == f"ref: {name}":
            self._logs.setdefault("HEAD", []).append(entry)

    def list(self, prefix: str = "") -> dict[str, bytes]:
        return {k: v for k, v in sorted(self._refs.items()) if k.startswith(prefix)}

    def read_head(self) -> str:
        return self._head

    def write_head(self, value: str, who: str = "", message: str = "") -> None:
        old = self._head_target(self._head)
        self._head = value
        entry = ReflogEntry(_h(old), _h(self._head_target(value)), int(time.time()), who, message)
        self._logs.setdefault("HEAD", []).append(entry)

    def reflog(self, name: str) -> builtins.list[ReflogEntry]:
        return list(self._logs.get(name, []))


def _h(oid: bytes | None) -> str:
    return oid.hex() if oid else "0" * 64


_HOST = os.uname().nodename  # what socket.gethostname() gives, without importing socket


def _acquire(lock: Path, name: str, wait: float = 10.0) -> int:
    """Create ``lock`` exclusively (holding our pid); clear it when its holder died."""
    deadline = time.monotonic() + wait
    while True:
        try:
            fd = os.open(lock, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        except FileExistsError:
            if _stale(lock):
                with contextlib.suppress(FileNotFoundError):
                    lock.unlink()
                continue
            if time.monotonic() > deadline:
                raise LockError(f"ref {name} is being updated by another process; try again") from None
            time.sleep(0.005)
            continue
        os.write(fd, f"{os.getpid()} {_HOST}\n".encode())
        return fd


def _stale(lock: Path) -> bool:
    try:
        text = lock.read_text()
        age = time.time() - lock.stat().st_mtime
    except (FileNotFoundError, UnicodeDecodeError):
        return False
    parts = text.split()
    if len(parts) == 2 and parts[0].isdigit() and parts[1] == _HOST:
        try:
            os.kill(int(parts[0]), 0)
        except ProcessLookupError:
            return True  # its process is gone
        except PermissionError:
            return False
        return False
    if not text:
        return age > 1  # the holder died between creating the lock and naming itself in it
    return age > 10  # a value about to be renamed in: its writer died just before


class DiskRefs(RefStore):
    def __init__(self, exact_dir: Path) -> None:
        self.dir = exact_dir
        self.refs_dir = exact_dir / "refs"
        self.logs_dir = exact_dir / "logs"

    def _path(self, name: str) -> Path:
        check_ref_name(name)
        return self.refs_dir / name

    def read(self, name: str) -> bytes | None:
        try:
            text = self._path(name).read_text().strip()
        except (FileNotFoundError, NotADirectoryError, IsADirectoryError):
            return None
        try:
            return bytes.fromhex(text)
        except ValueError:
            raise InvalidInput(f"ref {name} is corrupt: {text[:80]!r}") from None

    def cas(self, name: str, old: bytes | None, new: bytes | None, who: str = "", message: str = "") -> None:
        path = self._path(name)
        path.parent.mkdir(parents=True, exist_ok=True)
        lock = path.with_name(path.name + ".lock")
        fd = _acquire(lock, name)
        try:
            cur = self.read(name)
            if cur != old:
                raise RefConflict(f"ref {name} moved: expected {_h(old)[:12]}, found {_h(cur)[:12]}")
            if new is None:
                os.close(fd)
                fd = -1
                with contextlib.suppress(FileNotFoundError):
                    path.unlink()
                lock.unlink()
            else:
                os.ftruncate(fd, 0)
                os.lseek(fd, 0, os.SEEK_SET)
                os.write(fd, (new.hex() + "\n").encode())
                os.fsync(fd)
                os.close(fd)
                fd = -1
                os.replace(lock, path)
            fsync_dir(path.parent)
        except BaseException:
            if fd >= 0:
                os.close(fd)
            with contextlib.suppress(FileNotFoundError):
                lock.unlink()
            raise
        self._log(name, old, new, who, message)
        if self.read_head() == f"ref: {name}":
            self._log("HEAD", old, new, who, message)

    def _log(self, name: str, old: bytes | None, new: bytes | None, who: str, message: str) -> None:
        msg = message.replace("\n", " ").replace("\t", " ")
        who = who.replace("\n", " ").replace("\t", " ")
        append_line(self.logs_dir / name, f"{_h(old)} {_h(new)} {int(time.time())} {who}\t{msg}")

    def list(self, prefix: str = "") -> dict[str, bytes]:
        out: dict[str, bytes] = {}
        # walk only the folder the prefix names ("heads/users/ann/" walks heads/users/ann, not every ref)
        start = self.refs_dir / prefix.rpartition("/")[0] if "/" in prefix else self.refs_dir
        if not start.is_dir():
            return out
        for p in start.rglob("*"):
            if p.is_file() and not p.name.endswith(".lock") and not p.name.startswith("."):
                name = p.relative_to(self.refs_dir).as_posix()
                if name.startswith(prefix):
                    oid = self.read(name)
                    if oid is not None:
                        out[name] = oid
        return dict(sorted(out.items()))

    def read_head(self) -> str:
        try:
            return (self.dir / "HEAD").read_text().strip()
        except FileNotFoundError:
            return "ref: heads/main"

    def write_head(self, value: str, who: str = "", message: str = "") -> None:
        from .fsutil import atomic_write

        old = self._head_target(self.read_head())
        atomic_write(self.dir / "HEAD", (value + "\n").encode())
        self._log("HEAD", old, self._head_target(value), who, message)

    def reflog(self, name: str) -> builtins.list[ReflogEntry]:
        if name != "HEAD":
            check_ref_name(name)  # a ref name, never a path out of .exact/logs
        try:
            lines = (self.logs_dir / name).read_text().splitlines()
        except (FileNotFoundError, NotADirectoryError, IsADirectoryError):
            return []
        out = []
        for line in lines:
            head, _, msg = line.partition("\t")
            parts = head.split(" ", 3)
            if len(parts) >= 3 and parts[2].isdigit():
                out.append(ReflogEntry(parts[0], parts[1], int(parts[2]), parts[3] if len(parts) > 3 else "", msg))
        return out
