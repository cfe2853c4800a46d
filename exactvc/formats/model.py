"""The record every format reads into (``Feature``, a QuPath object or any format's annotation) and the
import result: shared by the QuPath reader, the importer and the other formats (``common.Record``)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    pass

Progress = Callable[[int, int], None]

UNCLASSIFIED = "unclassified"
_LEGACY_TYPES = {
    "PathAnnotationObject": "annotation",
    "PathDetectionObject": "detection",
    "PathCellObject": "cell",
    "PathTileObject": "tile",
    "TMACoreObject": "tmaCore",
    "PathRootObject": "root",
}
_LABEL_SHAPE = {
    "point": "point",
    "multipoint": "point",
    "polygon": "polygon",
    "multipolygon": "polygon",
    "line": "line",
    "ellipse": "ellipse",
    "box": "box",
}


@dataclass(slots=True)
class Feature:
    """One QuPath object, read from GeoJSON (see the module docstring for the mapping)."""

    index: int  # position in the file, from 0
    id: bytes | None  # 16-byte UUID, None when the file has none (v0.2)
    label: str | None  # classification, None when unclassified
    color: str | None  # classification colour, '#rrggbb'
    geometry: dict[str, Any]  # GeoJSON geometry; "isEllipse": True when QuPath marked an ellipse
    properties: dict[str, Any]  # what the annotation keeps
    plane: tuple[int, int] | None  # (z, t); None for the default plane
    locked: bool = False
    object_type: str = "annotation"


@dataclass
class ImportResult:
    features: int  # features read
    added: int  # annotations that did not exist before
    replaced: int  # features that replaced an annotation with the same id
    labels_created: list[str] = field(default_factory=list)

