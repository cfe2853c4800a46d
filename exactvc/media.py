"""Media attached to annotations (audio, video, images): the file is stored as a content-addressed,
chunked artefact (exactvc.artefacts; streamed in and out), named by a ref ``artefacts/<commit>/<id>`` so
push and pull carry it, and listed in the annotation's ``media`` property, edited in the working state
(commit it as any edit)."""

from __future__ import annotations

import mimetypes
import os
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

from . import artefacts
from .errors import InvalidInput, NotFound, TooLarge

if TYPE_CHECKING:
    from .repo import Repository

KINDS = ("audio/", "video/", "image/")
MAX_BYTES = 256 * 1024 * 1024  # an upload from the viewer


def media_type(name: str) -> str:
    t = mimetypes.guess_type(name)[0] or ""
    if not t.startswith(KINDS):
        raise InvalidInput(f"{name}: not an audio, video or image file ({t or 'unknown type'})")
    return t


def add(repo: Repository, image: str, aid: str, path: str | os.PathLike[str]) -> dict[str, Any]:
    p = Path(path)
    if not p.is_file():
        raise NotFound(f"no file {p}")
    mtype = media_type(p.name)
    ann = next((a for a in repo.annotations(image, None) if a.id == aid), None)
    if ann is None:
        raise NotFound(f"no annotation {aid[:80]} on image {image!r}")
    head = repo.head_commit()
    if head is None:
        raise InvalidInput("commit once before attaching media")
    art = artefacts.attach_to_commit(repo, head, p, p.name)
    item = {"artefact": art["id"], "name": p.name, "type": mtype, "size": art["size"]}
    props = dict(ann.properties or {})
    media = [m for m in props.get("media", []) if isinstance(m, dict) and m.get("artefact") != art["id"]]
    props["media"] = [*media, item]
    with repo.edit(image) as ed:
        ed.update(aid, properties=props)
    return item


class _Limited:
    """A read-only stream that refuses to give more than ``limit`` bytes."""

    def __init__(self, raw: IO[bytes], limit: int) -> None:
        self.raw, self.limit, self.seen = raw, limit, 0

    def read(self, n: int = -1) -> bytes:
        data = self.raw.read(n)
        self.seen += len(data)
        if self.seen > self.limit:
            raise TooLarge(f"media file over the limit of {self.limit} bytes")
        return data


def attach_stream(repo: Repository, image: str, aid: str, stream: IO[bytes], filename: str, branch: str,
                  expected_parent: bytes | None, author: str, start: str | None = None,
                  max_bytes: int = MAX_BYTES) -> tuple[bytes, dict[str, Any]]:
    """Store ``stream`` (at most ``max_bytes``) as a content-addressed artefact attached to the branch's
    tip and commit the annotation's new ``media`` list on ``branch`` (the viewer's upload: one commit).
    ``expected_parent`` as for every browser edit (history.commit_changes). Returns (commit, media item)."""
    from .history import commit_changes
    from .refs import check_short_name

    mtype = media_type(filename)
    if not filename or "/" in filename or "\\" in filename or len(filename) > 255 or filename in (".", ".."):
        raise InvalidInput(f"invalid media file name {filename[:80]!r}")
    cur = repo.refs.read("heads/" + check_short_name(branch))
    base = cur if cur is not None else (repo.resolve(start) if start else repo.head_commit())
    if base is None:
        raise InvalidInput("commit once before attaching media")
    ann = repo.annotation(image, aid, base.hex())  # NotFound before any byte is stored
    limited: Any = _Limited(stream, max_bytes)  # store_stream only calls read()
    oid, body = artefacts.store_stream(repo, limited, filename, "other", base)
    ref = f"artefacts/{base.hex()}/{oid.hex()}"
    if repo.refs.read(ref) is None:
        repo.refs.cas(ref, None, oid, author, f"artefact add {filename}")
    item = {"artefact": oid.hex(), "name": filename, "type": mtype, "size": body["size"]}
    props = dict(ann.properties or {})
    media = [m for m in props.get("media", []) if isinstance(m, dict) and m.get("artefact") != item["artefact"]]
    props["media"] = [*media, item]
    cid, _ = commit_changes(repo, branch, expected_parent, image, f"Attach {filename} to {aid[:8]}", author,
                            update=[{"id": aid, "properties": props}], start=start)
    return cid, item
