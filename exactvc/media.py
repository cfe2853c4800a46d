"""Media attached to annotations (audio, video, images): the file is stored as a content-addressed,
chunked artefact (exactvc.artefacts; streamed in and out), named by a ref ``artefacts/<commit>/<id>`` so
push and pull carry it, and listed in the annotation's ``media`` property, edited in the working state
(commit it as any edit)."""

from __future__ import annotations

import mimetypes
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

from . import artefacts
from .errors import InvalidInput, NotFound

if TYPE_CHECKING:
    from .repo import Repository

KINDS = ("audio/", "video/", "image/")


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
