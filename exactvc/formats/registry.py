"""Which formats exist, which module reads and writes each, and detecting a file's format from its content."""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import Any, BinaryIO

from ..errors import InvalidInput, UsageError

# name -> module (imported when used: `import exactvc` loads none of them)
MODULES = {
    "qupath": "qupath",
    "coco": "coco",
    "asap": "asap",
    "sliderunner": "sliderunner",
    "cvat": "cvat",
    "histomicsui": "histomicsui",
    "exact": "exacttext",
}
ALIASES = {"geojson": "qupath", "sqlite": "sliderunner", "histomics": "histomicsui", "dsa": "histomicsui",
           "exact-text": "exact"}
IMPORT_FORMATS = tuple(MODULES)
EXPORT_FORMATS = ("geojson", "csv", "coco", "asap", "sliderunner", "cvat", "histomicsui", "exact")


def canonical_name(fmt: str) -> str:
    f = fmt.lower()
    f = ALIASES.get(f, f)
    if f not in MODULES and f != "csv":
        raise UsageError(f"unknown format {fmt!r} (one of {', '.join(sorted(set(MODULES) | {'geojson', 'csv'}))})")
    return f


def module(fmt: str) -> Any:
    return importlib.import_module(f"{__package__}.{MODULES[canonical_name(fmt)]}")


def detect(path: Path) -> str:
    """The format of a file, from its content (the name only breaks ties)."""
    try:
        with open(path, "rb") as f:
            head = f.read(1 << 16)
    except OSError as exc:
        raise InvalidInput(f"cannot read {path}: {exc.strerror}") from None
    if head.startswith(b"SQLite format 3\0"):
        return "sliderunner"
    text = head.lstrip(b"\xef\xbb\xbf \t\r\n")
    if text[:1] == b"<":
        if b"<ASAP_Annotations" in text:
            return "asap"
        if b"<annotations" in text:
            return "cvat"
        raise InvalidInput(f"{path}: XML that is neither ASAP (<ASAP_Annotations>) nor CVAT (<annotations>)")
    first = text.split(b"\n", 1)[0].strip()
    if first.startswith(b"[") and first.endswith(b"]") and b"|" in first and b'"' not in first:
        return "exact"  # EXACT's view-log lines: [image|user|time|action]
    if text[:1] in (b"{", b"["):
        if b'"FeatureCollection"' in text or b'"Feature"' in text:
            return "qupath"
        if b'"elements"' in text:
            return "histomicsui"
        if b'"annotations"' in text or b'"categories"' in text or b'"images"' in text or b'"image_id"' in text:
            return "coco"
        if path.suffix.lower() in (".geojson",):
            return "qupath"
        raise InvalidInput(f"{path}: JSON that is neither QuPath GeoJSON, COCO nor HistomicsUI; name it with --format")
    if b"|" in first:
        return "exact"
    if path.suffix.lower() in (".csv", ".tsv") or b"," in first or b"\t" in first:
        raise InvalidInput(f"{path}: CSV import is not supported; import QuPath GeoJSON "
                           "(QuPath: File > Export objects as GeoJSON) or another format of `exact import --help`")
    raise InvalidInput(f"{path}: cannot tell the format from the content; name it with --format")


def export(repo: Any, rev: str | None, image: str | None, fmt: str, out: BinaryIO) -> int:
    f = canonical_name(fmt)
    if f in ("qupath", "csv"):
        from .qupath import export as qexport

        return qexport(repo, rev or "HEAD", image, "geojson" if f == "qupath" else "csv", out)
    return int(module(f).export(repo, rev, image, out))
