"""QuPath GeoJSON: reading features (the streaming reader is ``jsonstream``, the importer ``importer``,
the record ``model``) and the GeoJSON exporter.

Reading accepts what QuPath (v0.2 to v0.5) writes, compact or pretty-printed:

* a ``FeatureCollection``, a top-level array of Features, or one ``Feature``;
* ``id`` as a UUID (kept as the annotation id) or v0.2's object type
  (``"id": "PathAnnotationObject"``; the annotation then gets a new id);
* ``properties.objectType`` (or v0.3's ``object_type``);
* ``classification`` with ``name``, or ``names`` for a derived class, joined
  with ``": "`` the way QuPath displays it (``["Tumor", "Positive"]`` becomes
  the label ``"Tumor: Positive"``), its colour as ``color: [r, g, b]`` or
  v0.2's packed ``colorRGB``; a feature without a classification gets the
  label ``"unclassified"`` on import;
* ``isLocked``; ``measurements`` as a map or as v0.2's list of
  ``{"name", "value"}`` (always stored as a map; ``NaN``, which QuPath writes
  as a bare ``NaN`` token, and other non-finite values are dropped: QuPath
  reads a missing measurement as NaN);
* ``isEllipse`` and ``plane`` on the geometry (where QuPath writes them) or in
  the properties; ``nucleusGeometry`` of cell objects is kept.

What is kept in an annotation's properties so that export writes it back:
``measurements`` (a map), ``isLocked: true`` (only when locked),
``objectType`` (only when not ``"annotation"``), ``name``,
``nucleusGeometry`` and every other property key as it is. The
classification's colour only colours labels created by an import.

Streaming: the file is read in chunks; each feature is cut out by a regular
expression that proposes where an object ends and parsed by orjson, which
proves the proposal right (a proper prefix of a JSON object never parses).
When it does not parse (a "}" inside the feature, ``NaN``), the next feature's
``{"type": "Feature"`` start, then proposals whose brackets balance, then an
exact string-aware scan find the end, and Python's ``json`` (which accepts
``NaN``) parses it. Memory stays at a chunk plus one feature, whatever the
file size. (ijson was measured at 13-23 us a feature against 5 us here, and
it rejects the ``NaN`` QuPath writes.)

Importing checks every feature as the Editor would, in batches (bounds and
shapely validity of polygons vectorised), and builds the image's tree in key
order: ids that arrive in order (exactvc's own) go straight in, others (QuPath's
random UUIDs) are sorted through run files on disk and merged, so each batch
only extends the tree. Large files are converted by forked worker processes.

Export writes a FeatureCollection in one fixed byte form: features sorted by
image then id, one feature per line, keys in a fixed order (``type``, ``id``,
``geometry`` with ``plane`` and ``isEllipse`` where QuPath puts them,
``nucleusGeometry``, ``properties``: ``objectType``, ``classification`` (not for
"unclassified"), ``image`` (multi-image exports only), then the kept
properties sorted), numbers as orjson writes them (shortest round-trip form),
so one commit always exports to the same bytes.
"""
from __future__ import annotations

import math
import os
import uuid
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any, BinaryIO

import orjson

from .. import geometry, tree, verification
from ..annotation import normalize_plane
from ..errors import InvalidGeometry, InvalidInput, UsageError
from ..ids import format_id
from ..objects import ImageEntry, LabelSet

if TYPE_CHECKING:
    from ..repo import Repository
from .jsonstream import BLOCK_SPAN_MAX, CHUNK, _loads, _raw_features  # noqa: F401 - re-exported
from .model import _LEGACY_TYPES, UNCLASSIFIED, Feature, ImportResult, Progress  # noqa: F401 - re-exported

_IMPORTER_NAMES = frozenset({"import_file", "CHECK_BATCH", "PARALLEL_MIN_BYTES", "PARALLEL_CHUNK", "PARALLEL_BLOCK",
                             "MAX_WORKERS", "INFLIGHT", "_Converter", "_TreeBuilder", "_NewLabel"})


def __getattr__(name: str) -> Any:
    """The importer's names, from ``importer`` (imported when first asked for: it imports this module)."""
    if name in _IMPORTER_NAMES:
        from . import importer

        return getattr(importer, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def read_features(
    path: str | os.PathLike[str], progress: Progress | None = None, chunk_size: int = CHUNK
) -> Iterator[Feature]:
    """Stream the features of a QuPath GeoJSON file; ``progress(bytes_read, file_size)`` after each chunk.

    Raises InvalidInput("malformed JSON in FILE: ...") for text that is not JSON,
    InvalidInput / InvalidGeometry naming the feature for features QuPath could not have written.
    """
    for index, obj in enumerate(_raw_features(path, progress, chunk_size, False)):
        yield feature_from_json(index, obj)


def _uuid_bytes(s: str) -> bytes | None:
    if len(s) == 36 and s[8] == "-" and s[13] == "-" and s[18] == "-" and s[23] == "-":
        try:
            b = bytes.fromhex(s[:8] + s[9:13] + s[14:18] + s[19:23] + s[24:])
        except ValueError:
            b = b""
        if len(b) == 16:
            return b
    try:
        return uuid.UUID(s.strip()).bytes
    except ValueError:
        return None


_RGB: dict[tuple[Any, ...], str | None] = {}


def _color(v: Any) -> str | None:
    if type(v) is list and len(v) >= 3:
        key = (v[0], v[1], v[2])
        got = _RGB.get(key, "")
        if got != "":
            return got
        ok = all(type(c) is int and 0 <= c <= 255 for c in key)
        got = "#{:02x}{:02x}{:02x}".format(*key) if ok else None
        if len(_RGB) < 4096:
            _RGB[key] = got
        return got
    if type(v) is int:  # packed (A)RGB, as Java's signed int
        return f"#{(v >> 16) & 255:02x}{(v >> 8) & 255:02x}{v & 255:02x}"
    return None


def _classification(v: Any) -> tuple[str | None, str | None]:
    if isinstance(v, str):
        return (v or None), None
    if not isinstance(v, dict):
        return None, None
    names = v.get("names")
    name = v.get("name")
    label: str | None = None
    if isinstance(names, list) and names and all(isinstance(n, str) for n in names):
        label = ": ".join(names)
    elif isinstance(name, str) and name:
        label = name
    color = v.get("color")
    if color is None:
        color = v.get("colorRGB")
    return label, _color(color)


def _measurements(index: int, v: Any) -> dict[str, Any]:
    """A measurement map; non-finite values and nulls dropped (QuPath reads a missing measurement as NaN)."""
    inf = math.inf
    if type(v) is dict:
        return {k: x for k, x in v.items() if x is not None and (type(x) is not float or -inf < x < inf)}
    if type(v) is list:
        out: dict[str, Any] = {}
        for item in v:
            name = item.get("name") if type(item) is dict else None
            if type(name) is not str:
                raise InvalidInput(f"feature {index}: measurements must be a map or a list of {{name, value}}")
            x = item.get("value")
            if x is not None and (type(x) is not float or -inf < x < inf):
                out[name] = x
            else:
                out.pop(name, None)
        return out
    if v is None:
        return {}
    raise InvalidInput(f"feature {index}: measurements must be a map or a list of {{name, value}}")


_PLAIN_PROPS = frozenset({"objectType", "classification"})
_PLAIN_CLASS = frozenset({"name", "color"})


def _plain_feature(index: int, obj: dict[str, Any]) -> Feature | None:
    """The usual QuPath object (a UUID, an object type, a class name and colour, nothing else), read
    without the general walk; None for anything else. Gives exactly what ``_feature`` gives."""
    props = obj.get("properties")
    geom = obj.get("geometry")
    if (type(props) is not dict or type(geom) is not dict or not props.keys() <= _PLAIN_PROPS
            or obj.get("type") != "Feature" or "plane" in geom or "isEllipse" in geom or "nucleusGeometry" in obj):
        return None
    ot = props.get("objectType", "annotation")
    cls = props.get("classification")
    if type(ot) is not str or not ot or type(cls) is not dict or not cls.keys() <= _PLAIN_CLASS:
        return None
    name = cls.get("name")
    raw_id = obj.get("id")
    if type(name) is not str or not name or (raw_id is not None and (type(raw_id) is not str
                                                                      or raw_id in _LEGACY_TYPES)):
        return None
    fid = _uuid_bytes(raw_id) if raw_id is not None else None
    kept = {"objectType": ot} if ot != "annotation" else {}
    return Feature(index, fid, name, _color(cls.get("color")), geom, kept, None, False, ot)


def feature_from_json(index: int, obj: Any) -> Feature:
    """A Feature from one parsed GeoJSON feature (QuPath's fields mapped as in the module docstring)."""
    if type(obj) is dict:
        f = _plain_feature(index, obj)
        if f is not None:
            return f
    return _feature(index, obj)


def _feature(index: int, obj: Any) -> Feature:
    if not isinstance(obj, dict):
        raise InvalidInput(f"feature {index}: not a JSON object")
    t = obj.get("type")
    if t is not None and t != "Feature":
        raise InvalidInput(f"feature {index}: not a GeoJSON Feature (type {t!r})")
    geom = obj.get("geometry")
    if not isinstance(geom, dict):
        raise InvalidGeometry(f"feature {index}: no geometry")
    props = obj.get("properties")
    if props is None:
        props = {}
    elif not isinstance(props, dict):
        raise InvalidInput(f"feature {index}: properties must be a JSON object")

    fid: bytes | None = None
    object_type: str | None = None
    raw_id = obj.get("id")
    if isinstance(raw_id, str):
        legacy = _LEGACY_TYPES.get(raw_id)
        if legacy is not None:
            object_type = legacy
        else:
            fid = _uuid_bytes(raw_id)  # like QuPath: an id that is no UUID is ignored

    label: str | None = None
    color: str | None = None
    locked = False
    plane_raw = geom.get("plane")
    ellipse = geom.get("isEllipse") is True
    kept: dict[str, Any] = {}
    snake_type: str | None = None
    for k, v in props.items():
        if k == "classification":
            label, color = _classification(v)
        elif k == "objectType":
            if isinstance(v, str) and v:
                object_type = v
        elif k == "object_type":
            if isinstance(v, str) and v:
                snake_type = v
        elif k == "isLocked":
            locked = v is True
        elif k == "measurements":
            m = _measurements(index, v)
            if m:
                kept["measurements"] = m
        elif k == "plane":
            if plane_raw is None:
                plane_raw = v
        elif k == "isEllipse":
            ellipse = ellipse or v is True
        else:
            kept[k] = v
    if object_type is None:
        object_type = snake_type or "annotation"
    if object_type != "annotation":
        kept["objectType"] = object_type
    if locked:
        kept["isLocked"] = True
    nucleus = obj.get("nucleusGeometry")
    if nucleus is not None:
        kept["nucleusGeometry"] = nucleus
    if ellipse and geom.get("isEllipse") is not True:
        geom = {**geom, "isEllipse": True}
    plane = None
    if plane_raw is not None:
        try:
            plane = normalize_plane(plane_raw)
        except InvalidInput as exc:
            raise InvalidInput(f"feature {index}: {exc.message}") from None
    return Feature(index, fid, label, color, geom, kept, plane, locked, object_type)



# --- exporting ----------------------------------------------------------------------------------------


format_uuid = format_id


def selected_images(repo: Repository, rev: str | None, image: str | None) -> tuple[list[tuple[str, ImageEntry]], LabelSet]:
    """The (name, entry) pairs to export, in name order, and the label set of ``rev``."""
    r = None if rev in (None, "WORKING") else rev
    snap = repo.snapshot_at(r)
    if image is not None:
        name = repo.image(image, r).name
        chosen = [(name, snap.images[name])]
    else:
        chosen = sorted(snap.images.items())
    labels = (
        LabelSet.from_body(repo.read_body(snap.labels, "labels")) if snap.labels is not None else LabelSet()
    )
    return chosen, labels


def iter_records(repo: Repository, entry: ImageEntry) -> Iterator[tuple[bytes, dict[str, Any]]]:
    """``(key, record with its geometry inline)`` in id order (within ``verification.export_filter(N)``,
    only those verified by N users)."""
    store = repo.store
    join = tree.join_record
    need = verification.min_yes()
    for key, rec in tree.items(store, entry.tree):
        if need and not verification.enough(rec, need):
            continue
        yield key, join(store, rec) if "G" in rec else rec


def _rgb(color: str) -> list[int] | None:
    try:
        return [int(color[1:3], 16), int(color[3:5], 16), int(color[5:7], 16)]
    except (ValueError, IndexError):
        return None


def feature_json(key: bytes, rec: dict[str, Any], colors: dict[str, list[int] | None], image: str | None) -> bytes:
    """One annotation as a QuPath GeoJSON feature, keys in a fixed order, compact."""
    kind = rec["k"]
    g = geometry.to_geojson(kind, rec["g"])
    geom: dict[str, Any] = {"type": g["type"], "coordinates": g["coordinates"]}
    z = rec.get("z")
    if z:
        geom["plane"] = {"c": -1, "z": z[0], "t": z[1]}
    if kind == "ellipse":
        geom["isEllipse"] = True
    p: dict[str, Any] = rec.get("p") or {}
    props: dict[str, Any] = {"objectType": p.get("objectType", "annotation")}
    label = rec["l"]
    if label != UNCLASSIFIED:
        cls: dict[str, Any] = {"name": label}
        rgb = colors.get(label)
        if rgb is not None:
            cls["color"] = rgb
        props["classification"] = cls
    if image is not None:
        props["image"] = image
    nucleus = None
    for k, v in p.items():
        if k == "objectType":
            continue
        if k == "nucleusGeometry":
            nucleus = v
            continue
        props[k] = v
    feat: dict[str, Any] = {"type": "Feature", "id": format_uuid(key), "geometry": geom}
    if nucleus is not None:
        feat["nucleusGeometry"] = nucleus
    feat["properties"] = props
    return orjson.dumps(feat)


def export_geojson(repo: Repository, rev: str | None, image: str | None, out: BinaryIO) -> int:
    """Write one FeatureCollection (byte-identical for the same commit); returns the number of features.

    With ``image`` None and several images, every feature carries
    ``properties.image`` (the image's name); features are ordered by image, then id.
    """
    chosen, labels = selected_images(repo, rev, image)
    colors = {lb.name: _rgb(lb.color) for lb in labels.labels}
    tag = len(chosen) > 1
    out.write(b'{"type":"FeatureCollection","features":[')
    sep = b"\n"
    n = 0
    buf: list[bytes] = []
    for name, entry in chosen:
        img = name if tag else None
        for key, rec in iter_records(repo, entry):
            buf.append(sep)
            buf.append(feature_json(key, rec, colors, img))
            sep = b",\n"
            n += 1
            if len(buf) >= 4096:
                out.write(b"".join(buf))
                buf.clear()
    buf.append(b"\n]}\n")
    out.write(b"".join(buf))
    return n


FORMATS = ("geojson", "csv")


def export(repo: Repository, rev: str, image: str | None, fmt: str, out: BinaryIO) -> int:
    """Write the annotations of ``rev`` (a revision, or "WORKING") to ``out``; returns the number of features.

    ``fmt``: "geojson" (a QuPath-compatible FeatureCollection; "qupath" is an alias) or "csv"
    (see ``csvfmt``). Both are byte-identical for the same commit on every machine.
    ``image`` None exports every image: GeoJSON features then carry ``properties.image``
    when there is more than one; CSV rows always name their image.
    """
    f = fmt.lower()
    if f in ("geojson", "qupath"):
        return export_geojson(repo, rev, image, out)
    if f == "csv":
        from .csvfmt import export_csv

        return export_csv(repo, rev, image, out)
    raise UsageError(f"unknown export format {fmt!r} (one of {', '.join(FORMATS)})")
