"""Immutable object types and their canonical encodings.

Each object is ``(type_tag, data)`` where ``data`` is canonical msgpack (see
``codec``) and the id is ``codec.object_id(type_tag, data)``. Type tags:

``node``      a node of a per-image annotation tree (see ``tree``)
``blob``      a large geometry split out of a tree leaf
``labels``    the label set ("product" of annotation templates)
``image``     an image record (fingerprint, size, levels, mpp, public name)
``snapshot``  a snapshot root: images -> (record, tree, count) and the label set
``commit``    a commit
``tag``       an annotated tag
``chunk``     a piece (at most 1 MiB) of an artefact's bytes
``artefact``  a file attached to a run or a commit: name, kind, size, hash, its chunks
``run``       an experiment run: labels commit, parameters, command, code state, metrics, artefacts
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from . import codec
from .errors import CorruptObject

ARTEFACT_CHUNK = 1 << 20  # an artefact's chunks hold this many bytes each, the last one fewer (format.md §10)
TYPES = ("node", "blob", "labels", "image", "snapshot", "commit", "tag", "chunk", "artefact", "run")


def encode(type_tag: str, body: Any) -> tuple[bytes, bytes]:
    """Canonically encode ``body``; return ``(id, data)``."""
    data = codec.pack_canonical(body)
    return codec.object_id(type_tag, data), data


def _need(body: Any, key: str, kind: type | tuple[type, ...], tag: str) -> Any:
    if not isinstance(body, dict) or key not in body or not isinstance(body[key], kind):
        raise CorruptObject(f"{tag} object lacks a valid {key!r} field")
    return body[key]


@dataclass(frozen=True)
class Label:
    name: str
    shape: str
    color: str = "#ffcc00"
    key: str | None = None
    size: tuple[int, int] | None = None
    order: int = 0
    example: str | None = None  # hex id of an example image blob, optional

    def to_body(self) -> dict[str, Any]:
        out: dict[str, Any] = {"name": self.name, "shape": self.shape, "color": self.color, "order": self.order}
        if self.key is not None:
            out["key"] = self.key
        if self.size is not None:
            out["size"] = list(self.size)
        if self.example is not None:
            out["example"] = self.example
        return out

    @classmethod
    def from_body(cls, b: dict[str, Any]) -> Label:
        size = b.get("size")
        return cls(
            name=b["name"],
            shape=b["shape"],
            color=b.get("color", "#ffcc00"),
            key=b.get("key"),
            size=(int(size[0]), int(size[1])) if size else None,
            order=int(b.get("order", 0)),
            example=b.get("example"),
        )


@dataclass(frozen=True)
class LabelSet:
    product: str = "default"
    labels: tuple[Label, ...] = ()

    def to_body(self) -> dict[str, Any]:
        return {
            "product": self.product,
            "labels": [lb.to_body() for lb in sorted(self.labels, key=lambda lb: lb.name)],
        }

    @classmethod
    def from_body(cls, b: Any) -> LabelSet:
        labels = _need(b, "labels", list, "labels")
        return cls(product=b.get("product", "default"), labels=tuple(Label.from_body(x) for x in labels))

    def get(self, name: str) -> Label | None:
        for lb in self.labels:
            if lb.name == name:
                return lb
        return None

    def with_label(self, label: Label) -> LabelSet:
        rest = tuple(lb for lb in self.labels if lb.name != label.name)
        return LabelSet(self.product, tuple(sorted((*rest, label), key=lambda lb: lb.name)))

    def ordered(self) -> list[Label]:
        return sorted(self.labels, key=lambda lb: (lb.order, lb.name))


@dataclass(frozen=True)
class ImageRecord:
    name: str  # public (pseudonymised) name
    fingerprint: str  # blake3 hex of the file bytes
    width: int
    height: int
    levels: int = 1
    mpp: float | None = None
    vendor: str = ""
    frames: int = 1
    origin: str | None = None  # URL of a server holding the pixels (virtual image sets)

    def to_body(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "name": self.name,
            "fingerprint": self.fingerprint,
            "width": self.width,
            "height": self.height,
            "levels": self.levels,
            "vendor": self.vendor,
            "frames": self.frames,
        }
        if self.mpp is not None:
            out["mpp"] = float(self.mpp)
        if self.origin is not None:
            out["origin"] = self.origin
        return out

    @classmethod
    def from_body(cls, b: Any) -> ImageRecord:
        return cls(
            name=_need(b, "name", str, "image"),
            fingerprint=_need(b, "fingerprint", str, "image"),
            width=_need(b, "width", int, "image"),
            height=_need(b, "height", int, "image"),
            levels=int(b.get("levels", 1)),
            mpp=float(b["mpp"]) if b.get("mpp") is not None else None,
            vendor=str(b.get("vendor", "")),
            frames=int(b.get("frames", 1)),
            origin=b.get("origin"),
        )

    def to_dict(self) -> dict[str, Any]:
        return self.to_body() | {"mpp": self.mpp}


@dataclass(frozen=True)
class ImageEntry:
    """One image inside a snapshot: its record, its annotation tree and the tree's size."""

    record: bytes  # id of the image object
    tree: bytes | None  # id of the root node, None when the image has no annotations
    count: int = 0

    def to_body(self) -> list[Any]:
        return [self.record, self.tree, self.count]


@dataclass(frozen=True)
class Snapshot:
    images: dict[str, ImageEntry] = field(default_factory=dict)  # public name -> entry
    labels: bytes | None = None  # id of the label set object

    def to_body(self) -> dict[str, Any]:
        return {
            "images": {name: e.to_body() for name, e in self.images.items()},
            "labels": self.labels,
        }

    @classmethod
    def from_body(cls, b: Any) -> Snapshot:
        images = _need(b, "images", dict, "snapshot")
        out = {}
        for name, v in images.items():
            if not isinstance(v, list) or len(v) != 3:
                raise CorruptObject(f"snapshot entry for image {name!r} is malformed")
            out[name] = ImageEntry(v[0], v[1], int(v[2]))
        return cls(images=out, labels=b.get("labels"))

    def with_tree(self, image: str, root: bytes | None, count: int) -> Snapshot:
        """This snapshot with ``image``'s annotation tree replaced."""
        images = dict(self.images)
        images[image] = ImageEntry(self.images[image].record, root, count)
        return Snapshot(images, self.labels)

    def references(self) -> list[tuple[str, bytes]]:
        refs: list[tuple[str, bytes]] = []
        if self.labels is not None:
            refs.append(("labels", self.labels))
        for e in self.images.values():
            refs.append(("image", e.record))
            if e.tree is not None:
                refs.append(("node", e.tree))
        return refs


@dataclass(frozen=True)
class Commit:
    root: bytes
    parents: tuple[bytes, ...]
    author: str
    committer: str
    time: int  # unix seconds
    tz: int  # minutes east of UTC
    message: str
    generation: int  # 1 + max(parent generations); 1 for a root commit

    def to_body(self) -> dict[str, Any]:
        return {
            "root": self.root,
            "parents": list(self.parents),
            "author": self.author,
            "committer": self.committer,
            "time": self.time,
            "tz": self.tz,
            "message": self.message,
            "generation": self.generation,
        }

    @classmethod
    def from_body(cls, b: Any) -> Commit:
        return cls(
            root=_need(b, "root", bytes, "commit"),
            parents=tuple(_need(b, "parents", list, "commit")),
            author=_need(b, "author", str, "commit"),
            committer=str(b.get("committer", b["author"])),
            time=_need(b, "time", int, "commit"),
            tz=int(b.get("tz", 0)),
            message=_need(b, "message", str, "commit"),
            generation=int(b.get("generation", 1)),
        )


@dataclass(frozen=True)
class Tag:
    target: bytes
    name: str
    tagger: str
    time: int
    message: str

    def to_body(self) -> dict[str, Any]:
        return {"object": self.target, "name": self.name, "tagger": self.tagger, "time": self.time,
                "message": self.message}

    @classmethod
    def from_body(cls, b: Any) -> Tag:
        return cls(
            target=_need(b, "object", bytes, "tag"),
            name=_need(b, "name", str, "tag"),
            tagger=str(b.get("tagger", "")),
            time=int(b.get("time", 0)),
            message=str(b.get("message", "")),
        )


def _ids_in(v: Any, what: str) -> list[bytes]:
    if not isinstance(v, list) or not all(isinstance(x, bytes) and len(x) == 32 for x in v):
        raise CorruptObject(f"{what} must be a list of object ids")
    return list(v)


def artefact_references(body: Any) -> list[tuple[str, bytes]]:
    """What an ``artefact`` object references: its chunks (in order) and, when attached to one, a commit."""
    _need(body, "name", str, "artefact")
    _need(body, "kind", str, "artefact")
    _need(body, "size", int, "artefact")
    _need(body, "hash", str, "artefact")
    out = [("chunk", c) for c in _ids_in(body.get("chunks"), "artefact chunks")]
    commit = body.get("commit")
    if commit is not None:
        if not isinstance(commit, bytes) or len(commit) != 32:
            raise CorruptObject("artefact commit must be an object id")
        out.append(("commit", commit))
    return out


def run_references(body: Any) -> list[tuple[str, bytes]]:
    """What a ``run`` object references: its labels commit, its artefacts, predictions and code diff."""
    _need(body, "id", str, "run")
    _need(body, "status", str, "run")
    out: list[tuple[str, bytes]] = []
    commit = body.get("commit")
    if commit is not None:
        if not isinstance(commit, bytes) or len(commit) != 32:
            raise CorruptObject("run commit must be an object id")
        out.append(("commit", commit))
    out += [("artefact", a) for a in _ids_in(body.get("artefacts", []), "run artefacts")]
    preds = body.get("predictions", {})
    if not isinstance(preds, dict):
        raise CorruptObject("run predictions must be a map")
    out += [("artefact", a) for a in _ids_in(list(preds.values()), "run predictions")]
    code = body.get("code")
    if isinstance(code, dict) and code.get("diff") is not None:
        out += [("artefact", a) for a in _ids_in([code["diff"]], "run code diff")]
    return out


def references(type_tag: str, body: Any) -> list[tuple[str, bytes]]:
    """(expected type, id) of every object a chunk, artefact or run object references."""
    if type_tag == "artefact":
        return artefact_references(body)
    if type_tag == "run":
        return run_references(body)
    if type_tag == "chunk" and not isinstance(body, bytes):
        raise CorruptObject("a chunk object must hold bytes")
    return []
