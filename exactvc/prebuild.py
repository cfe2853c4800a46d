"""Annotation tiles built ahead of the first viewer: when a branch moves (a push, a save in the viewer, a
merged pull request), the pyramids of the new commit's images are built in the background, so the
first person to open the slide afterwards (and the label counts of the image set page) finds them
ready instead of paying a pass over every annotation.

Each build runs in a child process (``python -m exactvc.prebuild REPO COMMIT [IMAGE ...]``) that
writes the cache file ``exactvc.annotiles`` would write: the server's heap never holds the pass's
million short-lived objects, and the build does not hold the server's GIL while viewers pan. Bounded:
one build at a time, at most ``max_pending`` waiting and ``per_repo`` of one repository (the oldest
waiting one of a repository gives way to a newer commit; beyond ``max_pending`` new ones are dropped:
the viewer then builds on demand, as without prebuilding), each limited to ``timeout_s``.
"""

from __future__ import annotations

import logging
import subprocess
import sys
import threading
import time
from collections import deque
from collections.abc import Sequence
from pathlib import Path

Job = tuple[str, str, tuple[str, ...]]  # repository path, commit (hex), images (empty: every image)


class Prebuilder:
    def __init__(self, max_pending: int = 32, timeout_s: float = 900.0, per_repo: int = 2) -> None:
        self.max_pending = max_pending
        self.per_repo = per_repo
        self.timeout_s = timeout_s
        self._q: deque[Job] = deque()
        self._running: Job | None = None
        self._cv = threading.Condition()
        self._thread: threading.Thread | None = None
        self._closed = False
        self.done = 0
        self.failed = 0
        self.dropped = 0
        self.last_error = ""

    def submit(self, repo_path: str | Path, commit: bytes, images: Sequence[str] = ()) -> bool:
        """Queue the pyramids of ``commit``'s images (or only ``images``); False when the queue is full."""
        job: Job = (str(repo_path), commit.hex(), tuple(images))
        with self._cv:
            if self._closed:
                return False
            if job in self._q or job == self._running:
                return True
            same = [j for j in self._q if j[0] == job[0]]
            if len(same) >= self.per_repo:  # a branch moving fast: its newest commits matter, not every one
                self._q.remove(same[0])
                self.dropped += 1
            elif len(self._q) >= self.max_pending:
                self.dropped += 1
                return False
            self._q.append(job)
            if self._thread is None:
                self._thread = threading.Thread(target=self._work, name="annotile-prebuild", daemon=True)
                self._thread.start()
            self._cv.notify_all()
        return True

    def wait_running(self, repo_path: str | Path, commit: bytes, timeout: float) -> bool:
        """Wait (at most ``timeout`` s) while a prebuild of this commit runs: a viewer asking for it then
        loads the built file rather than building the same pyramid again. Whether none runs now."""
        deadline = time.monotonic() + timeout
        with self._cv:
            while self._running is not None and self._running[:2] == (str(repo_path), commit.hex()):
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._cv.wait(left)
        return True

    def idle(self, timeout: float) -> bool:
        """Wait (bounded) until nothing is queued or running."""
        deadline = time.monotonic() + timeout
        with self._cv:
            while self._q or self._running is not None:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._cv.wait(left)
        return True

    def close(self) -> None:
        with self._cv:
            self._closed = True
            self._q.clear()
            self._cv.notify_all()

    def _work(self) -> None:
        while True:
            with self._cv:
                while not self._q:
                    idle = self._closed or not self._cv.wait(30)
                    if idle and not self._q:
                        self._thread = None  # closed, or idle for 30 s: the next submit starts a new worker
                        return
                job = self._q.popleft()
                self._running = job
            ok, err = _run(job, self.timeout_s)
            with self._cv:
                self._running = None
                if ok:
                    self.done += 1
                else:
                    self.failed += 1
                    self.last_error = err
                    logging.getLogger("exactvc.prebuild").warning(
                        "annotation tiles of %s at %s not built ahead (a viewer builds them on demand): %s",
                        job[0], job[1][:12], err)
                self._cv.notify_all()


def _run(job: Job, timeout_s: float) -> tuple[bool, str]:
    path, commit, images = job
    try:
        proc = subprocess.run([sys.executable, "-m", "exactvc.prebuild", path, commit, *images],
                              capture_output=True, timeout=timeout_s, stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired:
        return False, f"timed out after {timeout_s:.0f} s"
    except OSError as exc:
        return False, str(exc)
    if proc.returncode != 0:
        lines = proc.stderr.decode("utf-8", "replace").strip().splitlines()
        return False, lines[-1] if lines else f"exit code {proc.returncode}"
    return True, ""


def build(path: str | Path, commit: bytes, images: Sequence[str] = ()) -> list[str]:
    """Build (or find cached) the pyramids of ``commit``'s images in repository ``path``; their names."""
    from . import annotiles
    from .repo import Repository

    repo = Repository.open(path, search_parents=False)
    names = list(images) or [rec.name for rec in repo.images(commit.hex())]
    for name in names:
        p, _img, _root = annotiles.for_commit(repo, name, commit)  # what the viewer opens (frame 0)
        if "frame" in p.manifest:  # a multi-frame image: also every frame together (its label counts)
            annotiles.for_commit(repo, name, commit, None)
    return names


def main(argv: Sequence[str]) -> int:
    if len(argv) < 2 or len(argv[1]) != 64:
        print("usage: python -m exactvc.prebuild REPOSITORY COMMIT [IMAGE ...]", file=sys.stderr)
        return 2
    build(argv[0], bytes.fromhex(argv[1]), argv[2:])
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
