"""Shared by the tests of the annotation formats: repositories for sample files, round trips."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

from exactvc import porcelain
from exactvc.formats.registry import module
from exactvc.objects import ImageRecord
from exactvc.repo import Repository

SAMPLES = Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "formats"
if not SAMPLES.is_dir():
    SAMPLES = Path("/work/shared/data/formats")
BIG = 200_000


def sample(rel: str) -> Path:
    return SAMPLES / rel


def repo_for(tmp: Path, names: list[str | None], w: int = BIG, h: int = BIG) -> Repository:
    r = Repository.init(tmp)
    for n in names:
        name = n or "img"
        r.add_image_record(ImageRecord(name, (name.encode().hex() * 64)[:64], w, h))
    return r


def repo_with_images_of(tmp: Path, fmt: str, path: Path, **kw: Any) -> Repository:
    read = module(fmt).read(path, **kw)
    names = [s.name for s in read.images if s.has_records]
    return repo_for(tmp, names or [None])


def state(repo: Repository) -> dict[str, dict[str, Any]]:
    """image -> id -> (label, kind, geometry, properties, plane) of the working state."""
    out: dict[str, dict[str, Any]] = {}
    for rec in repo.images(None):
        anns = porcelain_annotations(repo, rec.name)
        out[rec.name] = anns
    return out


def porcelain_annotations(repo: Repository, image: str) -> dict[str, Any]:
    from exactvc.formats.common import export_images

    imgs, _ = export_images(repo, "WORKING", image)
    return {o.id: (o.label, o.kind, o.geom, o.properties, o.plane) for o in imgs[0].annotations}


def export_bytes(repo: Repository, fmt: str, image: str | None = None) -> bytes:
    buf = io.BytesIO()
    porcelain.export(repo, "WORKING", image, fmt, buf)
    return buf.getvalue()


def round_trip(tmp: Path, repo: Repository, fmt: str, suffix: str) -> tuple[Repository, bytes]:
    """Export every image of ``repo`` to ``fmt``, import into a fresh repository with the same images."""
    data = export_bytes(repo, fmt)
    f = tmp / f"export{suffix}"
    f.write_bytes(data)
    r2 = Repository.init(tmp / "again")
    for rec in repo.images(None):
        r2.add_image_record(rec)
    for lb in repo.labels(None).labels:
        r2.add_label(lb.name, shape=lb.shape, color=lb.color)
    porcelain.import_(r2, None, str(f))
    return r2, data


def differences(a: dict[str, dict[str, Any]], b: dict[str, dict[str, Any]]) -> list[Any]:
    """What differs between two ``state`` results (for readable failures)."""
    out: list[Any] = []
    for img in sorted(set(a) | set(b)):
        x, y = a.get(img, {}), b.get(img, {})
        for k in sorted(set(x) | set(y)):
            if x.get(k) != y.get(k):
                out.append((img, k, x.get(k), y.get(k)))
    return out
