"""Training data pinned to a commit: patches of pixels with the annotations inside them.

``Dataset(repo_or_url, rev)`` iterates ``(pixels, annotations)``: ``pixels`` a ``(h, w, 3)`` uint8 numpy
array read through openslide (local repository) or the server's region endpoint (URL), ``annotations``
the annotations whose bounding box meets the patch, as dicts (``id``, ``label``, ``kind``, ``geometry``
as GeoJSON in patch pixel coordinates, ``properties``). The patches tile each image; their order is
shuffled deterministically by the commit id, so the same commit gives the same order everywhere.
Inside ``exact run`` the commit used is recorded with the run. openslide and numpy load lazily.
"""

from __future__ import annotations

import json
import math
import os
import random
import urllib.parse
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from .errors import InvalidInput, NotFound

if TYPE_CHECKING:
    from .repo import Repository


@dataclass(frozen=True)
class Patch:
    image: str
    x: int  # level-0 pixels
    y: int
    w: int  # pixels at the dataset's level
    h: int


def _shift(coords: Any, x0: float, y0: float, ds: float) -> Any:
    if coords and isinstance(coords[0], (int, float)):
        return [(coords[0] - x0) / ds, (coords[1] - y0) / ds, *coords[2:]]
    return [_shift(c, x0, y0, ds) for c in coords]


def _bounds(coords: Any) -> tuple[float, float, float, float]:
    xs: list[float] = []
    ys: list[float] = []

    def walk(c: Any) -> None:
        if c and isinstance(c[0], (int, float)):
            xs.append(c[0])
            ys.append(c[1])
        else:
            for d in c:
                walk(d)

    walk(coords)
    return min(xs), min(ys), max(xs), max(ys)


class _Local:
    def __init__(self, repo: Repository, commit: bytes) -> None:
        self.repo = repo
        self.rev = commit.hex()
        self._slides: dict[str, Any] = {}

    def images(self) -> list[dict[str, Any]]:
        return [r.to_dict() for r in self.repo.images(self.rev)]

    def annotations(self, image: str) -> list[dict[str, Any]]:
        return [a.to_dict() for a in self.repo.annotations(image, self.rev)]

    def pixels(self, rec: dict[str, Any], x: int, y: int, level: int, w: int, h: int) -> Any:
        import numpy as np

        fp = rec["fingerprint"]
        if fp not in self._slides:
            import openslide

            path = self.repo.image_path(fp)
            if path is None:
                raise NotFound(f"the pixels of image {rec['name']} are not here (exact image add the slide)")
            self._slides[fp] = openslide.OpenSlide(str(path))
        im = self._slides[fp].read_region((x, y), level, (w, h))
        a = np.asarray(im)
        rgb = a[:, :, :3].astype(np.float32)
        alpha = a[:, :, 3:4].astype(np.float32) / 255.0
        return (rgb * alpha + 255.0 * (1 - alpha)).round().astype(np.uint8)  # transparent: white

    def downsample(self, rec: dict[str, Any], level: int) -> float:
        if level == 0:
            return 1.0
        self.pixels(rec, 0, 0, 0, 1, 1)
        return float(self._slides[rec["fingerprint"]].level_downsamples[level])


class _Remote:
    """A repository on a server: ``http://HOST:PORT/NAME``."""

    def __init__(self, url: str, rev: str) -> None:
        from .remote import token_for

        parts = urllib.parse.urlsplit(url.rstrip("/"))
        self.base = f"{parts.scheme}://{parts.netloc}"
        self.name = parts.path.strip("/")
        self.token = os.environ.get("EXACT_TOKEN") or token_for(url)
        got = self._json(f"/api/v1/repos/{self.name}/commits/{urllib.parse.quote(rev, safe='')}")
        self.rev = got.get("commit") or got.get("id")
        if not isinstance(self.rev, str):
            raise NotFound(f"{url} has no revision {rev!r}")

    def _get(self, path: str) -> bytes:
        req = urllib.request.Request(self.base + path)
        if self.token:
            req.add_header("Authorization", f"Bearer {self.token}")
        with urllib.request.urlopen(req, timeout=120) as r:  # noqa: S310 - the user's own server
            data: bytes = r.read()
            return data

    def _json(self, path: str) -> Any:
        return json.loads(self._get(path))

    def images(self) -> list[dict[str, Any]]:
        return list(self._json(f"/api/v1/repos/{self.name}/images?rev={self.rev}")["images"])

    def annotations(self, image: str) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        cursor = None
        for _ in range(100000):
            q = f"rev={self.rev}&limit=5000" + (f"&cursor={cursor}" if cursor else "")
            page = self._json(f"/api/v1/repos/{self.name}/images/{urllib.parse.quote(image)}/annotations?{q}")
            out.extend(page["annotations"])
            cursor = page.get("next_cursor")
            if not cursor:
                break
        return out

    def pixels(self, rec: dict[str, Any], x: int, y: int, level: int, w: int, h: int) -> Any:
        import io

        import numpy as np
        from PIL import Image

        max_level = math.ceil(math.log2(max(rec["width"], rec["height"], 1)))
        ds = 2 ** level
        q = f"level={max_level - level}&x={x // ds}&y={y // ds}&w={w}&h={h}"
        im = Image.open(io.BytesIO(self._get(f"/slides/{rec['fingerprint']}/region?{q}"))).convert("RGB")
        a = np.asarray(im, dtype=np.uint8)
        if a.shape[:2] != (h, w):  # the image's edge: pad with white as openslide would
            pad = np.full((h, w, 3), 255, dtype=np.uint8)
            pad[: a.shape[0], : a.shape[1]] = a
            a = pad
        return a

    def downsample(self, rec: dict[str, Any], level: int) -> float:
        return float(2 ** level)


class Dataset:
    """Patches and their annotations at one commit (see the module's docstring)."""

    def __init__(self, repo_or_url: Any, rev: str = "HEAD", images: list[str] | None = None,
                 labels: list[str] | None = None, patch: tuple[int, int] = (256, 256), level: int = 0,
                 only_annotated: bool = False) -> None:
        if not (isinstance(patch, tuple | list) and len(patch) == 2 and all(int(v) > 0 for v in patch)):
            raise InvalidInput(f"patch must be (width, height), not {patch!r}")
        self.patch = (int(patch[0]), int(patch[1]))
        self.level = int(level)
        self.labels = set(labels) if labels else None
        self.only_annotated = only_annotated
        src: _Local | _Remote
        if isinstance(repo_or_url, str) and repo_or_url.startswith(("http://", "https://")):
            src = _Remote(repo_or_url, rev)
            self.commit = src.rev
            where = repo_or_url
        else:
            from .repo import Repository

            repo = repo_or_url if isinstance(repo_or_url, Repository) else Repository.open(repo_or_url)
            c = repo.resolve(rev)
            src = _Local(repo, c)
            self.commit = c.hex()
            where = str(repo.path)
        self._src = src
        recs = {r["name"]: r for r in src.images()}
        names = sorted(recs) if images is None else list(images)
        for n in names:
            if n not in recs:
                raise NotFound(f"no image {n!r} at {self.commit[:12]}")
        self.images = names
        self._recs = recs
        self._anns: dict[str, list[tuple[tuple[float, float, float, float], dict[str, Any]]]] = {}
        self.patches = self._tiles()
        self._record(where, rev)

    def _annotations(self, image: str) -> list[tuple[tuple[float, float, float, float], dict[str, Any]]]:
        if image not in self._anns:
            out = []
            for a in self._src.annotations(image):
                if self.labels is not None and a["label"] not in self.labels:
                    continue
                out.append((_bounds(a["geometry"]["coordinates"]), a))
            self._anns[image] = out
        return self._anns[image]

    def _tiles(self) -> list[Patch]:
        out = []
        pw, ph = self.patch
        for name in self.images:
            rec = self._recs[name]
            ds = self._src.downsample(rec, self.level)
            sw, sh = round(pw * ds), round(ph * ds)
            for y in range(0, rec["height"], sh):
                for x in range(0, rec["width"], sw):
                    p = Patch(name, x, y, pw, ph)
                    if self.only_annotated and not self._inside(p, ds):
                        continue
                    out.append(p)
        random.Random(int(self.commit[:16], 16)).shuffle(out)
        return out

    def _inside(self, p: Patch, ds: float) -> list[dict[str, Any]]:
        x1, y1 = p.x + p.w * ds, p.y + p.h * ds
        hits = []
        for (bx0, by0, bx1, by1), a in self._annotations(p.image):
            if bx1 >= p.x and bx0 <= x1 and by1 >= p.y and by0 <= y1:
                g = dict(a["geometry"])
                g["coordinates"] = _shift(g["coordinates"], p.x, p.y, ds)
                hits.append(a | {"geometry": g})
        return hits

    def _record(self, where: str, rev: str) -> None:
        d = os.environ.get("EXACT_RUN_DIR")
        if not d:
            return
        entry = {"repo": where, "rev": rev, "commit": self.commit, "images": self.images,
                 "labels": sorted(self.labels) if self.labels else None, "patch": list(self.patch),
                 "level": self.level, "patches": len(self.patches)}
        with open(os.path.join(d, "datasets.jsonl"), "a", encoding="utf-8") as f:
            f.write(json.dumps(entry, sort_keys=True) + "\n")

    def __len__(self) -> int:
        return len(self.patches)

    def __getitem__(self, i: int) -> tuple[Any, list[dict[str, Any]]]:
        p = self.patches[i]
        rec = self._recs[p.image]
        ds = self._src.downsample(rec, self.level)
        return self._src.pixels(rec, p.x, p.y, self.level, p.w, p.h), self._inside(p, ds)

    def __iter__(self) -> Iterator[tuple[Any, list[dict[str, Any]]]]:
        for i in range(len(self.patches)):
            yield self[i]

    def annotations(self) -> dict[str, list[dict[str, Any]]]:
        """Every annotation of the selected images and labels at the commit (image coordinates)."""
        return {n: [a for _b, a in self._annotations(n)] for n in self.images}

    def torch(self) -> Any:
        """A ``torch.utils.data.Dataset`` over the same patches (needs torch; it is not a dependency)."""
        try:
            from torch.utils.data import Dataset as TorchDataset
        except ImportError:
            raise InvalidInput("Dataset.torch() needs PyTorch installed (pip install torch)") from None
        outer = self

        class _Torch(TorchDataset):  # type: ignore[misc]
            def __len__(self) -> int:
                return len(outer)

            def __getitem__(self, i: int) -> tuple[Any, list[dict[str, Any]]]:
                import torch

                px, anns = outer[i]
                return torch.from_numpy(px).permute(2, 0, 1).contiguous(), anns

        return _Torch()
