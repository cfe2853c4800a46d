"""The annotation value type and its record encoding inside tree leaves.

A record is a map with short keys: ``k`` shape kind, ``g`` geometry (see
``geometry``), ``l`` label, ``p`` properties (omitted when empty), ``z`` plane
``[z, t]`` (omitted for the default plane), ``v`` verifications (omitted when
none; see ``verification``). No author or time of the annotation itself: those
belong to commits.
"""

from __future__ import annotations

from typing import Any

from . import codec, geometry
from .errors import InvalidInput
from .ids import format_id, parse_id


class Annotation:
    """One annotation of an image: immutable; ``id`` is its UUID text, ``key`` the 16 bytes."""

    __slots__ = ("key", "label", "kind", "geom", "properties", "plane", "verifications")

    key: bytes
    label: str
    kind: str
    geom: list[Any]
    properties: dict[str, Any]
    plane: tuple[int, int] | None
    verifications: list[dict[str, Any]]  # the record's ``v`` entries, sorted by user

    def __init__(self, id: str | bytes, label: str, kind: str, geom: list[Any],  # noqa: A002
                 properties: dict[str, Any] | None = None, plane: tuple[int, int] | None = None,
                 verifications: list[dict[str, Any]] | None = None) -> None:
        sa = object.__setattr__
        sa(self, "key", id if isinstance(id, bytes) else parse_id(id))
        sa(self, "label", label)
        sa(self, "kind", kind)
        sa(self, "geom", geom)
        sa(self, "properties", properties if properties is not None else {})
        sa(self, "plane", plane)
        sa(self, "verifications", verifications or [])

    def __setattr__(self, name: str, value: Any) -> None:
        raise AttributeError(f"Annotation is immutable (cannot set {name!r})")

    def __reduce__(self) -> tuple[Any, ...]:
        return (Annotation, self._fields())

    def _fields(self) -> tuple[Any, ...]:
        return (self.key, self.label, self.kind, self.geom, self.properties, self.plane, self.verifications)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Annotation) and self._fields() == other._fields()

    __hash__ = None  # type: ignore[assignment]  # properties and geometry are mutable containers

    def __repr__(self) -> str:
        return (f"Annotation(id={self.id!r}, label={self.label!r}, kind={self.kind!r}, "
                f"properties={self.properties!r}, plane={self.plane!r})")

    @property
    def id(self) -> str:
        return format_id(self.key)

    @property
    def geometry(self) -> Any:
        """The shape as a shapely geometry."""
        return geometry.to_shapely(self.kind, self.geom)

    @property
    def geojson(self) -> dict[str, Any]:
        return geometry.to_geojson(self.kind, self.geom)

    @property
    def bounds(self) -> tuple[float, float, float, float]:
        return geometry.bounds(self.kind, self.geom)

    def to_record(self) -> dict[str, Any]:
        return make_record(self.kind, self.geom, self.label, self.properties, self.plane, self.verifications)

    @classmethod
    def from_record(cls, key: bytes, rec: dict[str, Any]) -> Annotation:
        z = rec.get("z")
        a = object.__new__(cls)
        _SET_KEY(a, key)
        _SET_LABEL(a, rec["l"])
        _SET_KIND(a, rec["k"])
        _SET_GEOM(a, rec["g"])
        _SET_PROPS(a, rec.get("p") or {})
        _SET_PLANE(a, (int(z[0]), int(z[1])) if z else None)
        _SET_VERIFICATIONS(a, rec.get("v") or [])
        return a


    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"id": self.id, "label": self.label, "kind": self.kind, "geometry": self.geojson}
        if self.properties:
            out["properties"] = self.properties
        if self.plane:
            out["plane"] = {"z": self.plane[0], "t": self.plane[1]}
        if self.verifications:
            out["verifications"] = [{"user": e.get("u"), "yes": bool(e.get("y")), "time": e.get("t"),
                                     "comment": e.get("c", "")} for e in self.verifications]
        return out


# the slots' own setters (Annotation.__setattr__ refuses every change): building an annotation from a
# record is on the path of every query hit
_SET_KEY, _SET_LABEL, _SET_KIND, _SET_GEOM, _SET_PROPS, _SET_PLANE, _SET_VERIFICATIONS = (
    Annotation.__dict__[name].__set__ for name in Annotation.__slots__
)


def make_record(
    kind: str, geom: list[Any], label: str, properties: dict[str, Any] | None, plane: tuple[int, int] | None,
    verifications: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    rec: dict[str, Any] = {"g": geom, "k": kind, "l": label}
    if properties:
        if not isinstance(properties, dict):
            raise InvalidInput("annotation properties must be a JSON object")
        rec["p"] = codec.canonicalize(properties)
    if verifications:
        rec["v"] = codec.canonicalize(sorted(verifications, key=lambda e: str(e.get("u"))))
    if plane and (plane[0] or plane[1]):
        rec["z"] = [int(plane[0]), int(plane[1])]
    return rec


def normalize_plane(plane: Any) -> tuple[int, int] | None:
    """Accept None, an int z, a (z, t) pair or a QuPath plane map {"c","z","t"}."""
    if plane is None:
        return None
    try:
        if isinstance(plane, dict):
            z, t = int(plane.get("z", 0)), int(plane.get("t", 0))
        elif isinstance(plane, (list, tuple)):
            z, t = int(plane[0]), int(plane[1]) if len(plane) > 1 else 0
        else:
            z, t = int(plane), 0
    except (TypeError, ValueError):
        raise InvalidInput(f"invalid plane {plane!r}") from None
    if z < 0 or t < 0:
        raise InvalidInput(f"invalid plane {plane!r}: negative index")
    return (z, t) if (z or t) else None
