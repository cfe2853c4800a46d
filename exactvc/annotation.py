"""The annotation value type and its record encoding inside tree leaves.

A record is a map with short keys: ``k`` shape kind, ``g`` geometry (see
``geometry``), ``l`` label, ``p`` properties (omitted when empty), ``z`` plane
``[z, t]`` (omitted for the default plane). No author or time: those belong
to commits.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from . import codec, geometry
from .errors import InvalidInput
from .ids import format_id, parse_id


@dataclass(frozen=True)
class Annotation:
    id: str
    label: str
    kind: str
    geom: list[Any] = field(repr=False)
    properties: dict[str, Any] = field(default_factory=dict)
    plane: tuple[int, int] | None = None

    @property
    def key(self) -> bytes:
        return parse_id(self.id)

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
        return make_record(self.kind, self.geom, self.label, self.properties, self.plane)

    @classmethod
    def from_record(cls, key: bytes, rec: dict[str, Any]) -> Annotation:
        z = rec.get("z")
        return cls(
            id=format_id(key),
            label=rec["l"],
            kind=rec["k"],
            geom=rec["g"],
            properties=rec.get("p", {}),
            plane=(int(z[0]), int(z[1])) if z else None,
        )

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"id": self.id, "label": self.label, "kind": self.kind, "geometry": self.geojson}
        if self.properties:
            out["properties"] = self.properties
        if self.plane:
            out["plane"] = {"z": self.plane[0], "t": self.plane[1]}
        return out


def make_record(
    kind: str, geom: list[Any], label: str, properties: dict[str, Any] | None, plane: tuple[int, int] | None
) -> dict[str, Any]:
    rec: dict[str, Any] = {"g": geom, "k": kind, "l": label}
    if properties:
        if not isinstance(properties, dict):
            raise InvalidInput("annotation properties must be a JSON object")
        rec["p"] = codec.canonicalize(properties)
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
