"""Annotation file formats: QuPath GeoJSON, COCO, ASAP, SlideRunner, CVAT, HistomicsUI and EXACT
in and out (one module each, sharing ``common``; ``registry`` detects and dispatches), CSV out.
docs/formats.md says what maps to what.

    from exactvc.formats import import_file, export

    res = import_file(repo, "slide-1", "slide-1.geojson", create_labels=True)
    with open("out.geojson", "wb") as f:
        export(repo, "HEAD", "slide-1", "geojson", f)

Both exports are byte-identical for the same commit on every machine.
"""

from __future__ import annotations

from .csvfmt import export_csv
from .importer import import_file
from .model import Feature, ImportResult
from .qupath import FORMATS, export, export_geojson, feature_from_json, read_features

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
