"""Annotation file formats: QuPath GeoJSON in and out, CSV out.

    from exactvc.formats import import_file, export

    res = import_file(repo, "slide-1", "slide-1.geojson", create_labels=True)
    with open("out.geojson", "wb") as f:
        export(repo, "HEAD", "slide-1", "geojson", f)

Both exports are byte-identical for the same commit on every machine.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, BinaryIO

from ..errors import UsageError
from .csvfmt import export_csv
from .qupath import Feature, ImportResult, export_geojson, feature_from_json, import_file, read_features

if TYPE_CHECKING:
    from ..repo import Repository

FORMATS = ("geojson", "csv")


def export(repo: Repository, rev: str, image: str | None, fmt: str, out: BinaryIO) -> int:
    """Write the annotations of ``rev`` (a revision, or "WORKING") to ``out``; returns the number of features.

    ``fmt``: "geojson" (QuPath-compatible FeatureCollection; "qupath" is an alias) or "csv".
    ``image`` None exports every image: GeoJSON features then carry ``properties.image``
    when there is more than one, CSV rows always name their image.
    """
    f = fmt.lower()
    if f in ("geojson", "qupath"):
        return export_geojson(repo, rev, image, out)
    if f == "csv":
        return export_csv(repo, rev, image, out)
    raise UsageError(f"unknown export format {fmt!r} (one of {', '.join(FORMATS)})")


__all__ = [
    "FORMATS",
    "Feature",
    "ImportResult",
    "export",
    "export_csv",
    "export_geojson",
    "feature_from_json",
    "import_file",
    "read_features",
]
