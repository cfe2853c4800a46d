"""The checked, batched importer behind every format: features to tree entries (``_Converter``,
exactly the Editor's checks, vectorised), key-ordered tree building with spill runs
(``_TreeBuilder``), forked worker processes for large QuPath files, and ``import_file``."""

from __future__ import annotations

import contextlib
import gc
import heapq
import os
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO

import msgpack
import numpy as np

from .. import geometry, tree
from ..annotation import make_record
from ..edit import COMPATIBLE as _COMPATIBLE
from ..edit import set_working_tree
from ..errors import ExactError, InvalidGeometry, InvalidInput, UnknownLabel, UsageError
from ..ids import format_id, new_annotation_id
from ..store import Pending

if TYPE_CHECKING:
    from ..repo import Repository
from .jsonstream import CHUNK, _loads, _Malformed, _NoBlocks, _raw_features
from .model import _LABEL_SHAPE, UNCLASSIFIED, Feature, ImportResult, Progress
from .qupath import feature_from_json, read_features

CHECK_BATCH = 8192  # polygons validated together
PARALLEL_MIN_BYTES = 16 << 20  # files this large are converted by worker processes
PARALLEL_CHUNK = 2048  # features a worker task (when this process cuts features)
PARALLEL_BLOCK = 2 << 20  # bytes of raw features a worker task (when the workers parse)
MAX_WORKERS = 4
INFLIGHT = 8  # tasks queued a worker: enough to keep workers busy while this process writes a batch


# --- importing ----------------------------------------------------------------------------------------


def _prefixed(index: int, exc: ExactError) -> ExactError:
    return type(exc)(f"feature {index}: {exc.message}")


class _NewLabel:
    __slots__ = ("color", "kinds")

    def __init__(self, color: str | None) -> None:
        self.color = color
        self.kinds: dict[str, None] = {}  # kinds in order of appearance

    def shape(self) -> str:
        kinds = list(self.kinds)
        if not kinds:
            return "polygon"
        shape = _LABEL_SHAPE[kinds[0]]
        if all(k in _COMPATIBLE[shape] for k in kinds):
            return shape
        return "any"


class _TreeBuilder:
    """Applies encoded entries to an image tree in key order, in batches, spilling unsorted input to disk.

    Input that arrives in increasing key order (ids made by exactvc, time-ordered)
    goes straight into the tree; otherwise each batch is sorted and written to a
    run file, and the runs are merged at the end, so every batch touches only
    the right edge of the tree: O(n) work and bounded memory for random UUIDs.
    """

    def __init__(self, store: Any, root: bytes | None, spill_dir: Path | None) -> None:
        self.store = store
        self.root = root
        self.spill_dir = spill_dir
        self.tmp: tempfile.TemporaryDirectory[str] | None = None
        self.runs: list[Path] = []
        self.last: bytes | None = None  # largest key applied straight
        self.keys: list[bytes] = []
        self.index: list[int] = []
        self.raws: list[bytes] = []
        self.sorted = True  # the current batch is in increasing key order
        self.blobs: list[Pending] = []
        # keys applied straight (increasing) and their feature numbers, compactly: a later run that
        # repeats one of them is a duplicate id in the file
        self.direct_keys: list[np.ndarray] = []
        self.direct_index: list[np.ndarray] = []

    def add(self, key: bytes, index: int, raw: bytes) -> None:
        keys = self.keys
        if self.sorted and keys and key <= keys[-1]:
            self.sorted = False
        keys.append(key)
        self.index.append(index)
        self.raws.append(raw)

    def __len__(self) -> int:
        return len(self.keys)

    def end_batch(self) -> None:
        if self.blobs:
            self.store.write(self.blobs)
            self.blobs = []
        if not self.keys:
            return
        if not self.runs and self.sorted and (self.last is None or self.keys[0] > self.last):
            self._apply(dict(zip(self.keys, self.raws, strict=True)))
            self.last = self.keys[-1]
            self.direct_keys.append(np.array(self.keys, dtype="S16"))
            self.direct_index.append(np.array(self.index, dtype=np.int64))
        else:
            self._spill()
        self.keys, self.index, self.raws = [], [], []
        self.sorted = True

    def _apply(self, edits: dict[bytes, bytes | None]) -> None:
        out: list[Pending] = []
        self.root = tree.apply(self.store, self.root, edits, out)
        self.store.write(out)

    def _spill(self) -> None:
        if self.tmp is None:
            self.tmp = tempfile.TemporaryDirectory(prefix="import-", dir=self.spill_dir)
        # sorted by key, then by position in the file (the later of two equal ids wins)
        run = sorted(zip(self.keys, self.index, self.raws, strict=True))
        path = Path(self.tmp.name) / f"run-{len(self.runs):05d}"
        path.write_bytes(msgpack.packb(run, use_bin_type=True))
        self.runs.append(path)

    @staticmethod
    def _read_run(f: BinaryIO) -> Iterator[tuple[bytes, int, bytes]]:
        unpacker = msgpack.Unpacker(f, use_list=False, raw=False, max_buffer_size=1 << 30)
        for _ in range(unpacker.read_array_header()):
            yield unpacker.unpack()

    def finish(self, batch: int) -> bytes | None:
        self.end_batch()
        if not self.runs:
            return self.root
        files = [open(p, "rb") for p in self.runs]  # noqa: SIM115 - closed below
        try:
            streams = [self._read_run(f) for f in files]
            edits: dict[bytes, bytes | None] = {}
            direct = np.concatenate(self.direct_keys) if self.direct_keys else None
            direct_index = np.concatenate(self.direct_index) if self.direct_index else None
            prev: tuple[bytes, int] | None = None
            for key, index, raw in heapq.merge(*streams):
                if prev is not None and prev[0] == key:  # equal keys come in file order
                    raise _duplicate(key, prev[1], index)
                prev = (key, index)
                if direct is not None and direct_index is not None:
                    at = int(np.searchsorted(direct, key))
                    if at < len(direct) and direct[at] == key:
                        raise _duplicate(key, min(int(direct_index[at]), index), max(int(direct_index[at]), index))
                if len(edits) >= batch and key not in edits:
                    self._apply(edits)
                    edits = {}
                edits[key] = raw
            if edits:
                self._apply(edits)
        finally:
            for f in files:
                f.close()
            self.close()
        return self.root

    def close(self) -> None:
        if self.tmp is not None:
            self.tmp.cleanup()
            self.tmp = None


def _duplicate(key: bytes, first: int, second: int) -> InvalidInput:
    return InvalidInput(f"features {first} and {second} have the same id {format_id(key)}: "
                        "ids must be unique in one file")


class _Converter:
    """Turns Features into tree entries, checking them exactly as the Editor does, a batch at a time
    (labels, shapes, canonical geometry and polygon validity via ``geometry.canonical_many``, bounds)."""

    def __init__(self, image: str, width: int, height: int, shapes: dict[str, str], create_labels: bool) -> None:
        self.image = image
        self.width = width
        self.height = height
        self.shapes = shapes  # label name -> shape kind, for the labels that exist
        self.create_labels = create_labels
        self.new_labels: dict[str, _NewLabel] = {}
        self.blobs: list[Pending] = []  # large geometries split out of their records

    def _label(self, feat: Feature) -> tuple[str, str | None]:
        label = feat.label or UNCLASSIFIED
        shape = self.shapes.get(label)
        forced = feat.geometry.get("kind") if type(feat.geometry) is dict else None  # other formats' boxes
        if forced is not None:
            if shape is None:
                self._label_new(feat, label)
            return label, forced
        if shape is None:
            nl = self.new_labels.get(label)
            if nl is None:
                if not self.create_labels:
                    raise UnknownLabel(
                        f"feature {feat.index}: unknown label {label!r} (import with --create-labels to create it)"
                    )
                nl = self.new_labels[label] = _NewLabel(feat.color)
            elif nl.color is None:
                nl.color = feat.color
            return label, None
        return label, shape if shape in ("box", "ellipse") else None

    def _label_new(self, feat: Feature, label: str) -> None:
        nl = self.new_labels.get(label)
        if nl is None:
            if not self.create_labels:
                raise UnknownLabel(
                    f"feature {feat.index}: unknown label {label!r} (import with --create-labels to create it)"
                )
            self.new_labels[label] = _NewLabel(feat.color)
        elif nl.color is None:
            nl.color = feat.color

    def convert_many(self, feats: list[Feature]) -> list[tuple[bytes, bytes]]:
        """``(key, encoded tree entry)`` of each feature; the first bad feature raises, named."""
        try:
            return self._convert_many(feats)
        except ExactError:
            # the vectorised pass found a problem: redo the batch in file order to name the first one
            new_labels = dict(self.new_labels)
            for f in feats:
                self._convert_many([f])
            self.new_labels = new_labels
            raise

    def _convert_many(self, feats: list[Feature]) -> list[tuple[bytes, bytes]]:
        labels = [self._label(f) for f in feats]
        by_hint: dict[str | None, list[int]] = {}
        for j, (_label, hint) in enumerate(labels):
            by_hint.setdefault(hint, []).append(j)
        canon: list[Any] = [None] * len(feats)
        for hint, idxs in by_hint.items():
            geoms = [feats[j].geometry for j in idxs]
            try:
                res = geometry.canonical_many(geoms, hint, check_valid=True)
            except InvalidInput:
                for j in idxs:  # find the first culprit to name it
                    try:
                        k, enc = geometry.canonical(feats[j].geometry, hint)
                    except InvalidGeometry as exc:
                        raise InvalidGeometry(f"feature {feats[j].index}: invalid geometry: {exc.message}") from None
                    except InvalidInput as exc:
                        raise _prefixed(feats[j].index, exc) from None
                    try:
                        geometry.validate(k, enc)
                    except InvalidInput as exc:
                        raise _prefixed(feats[j].index, exc) from None
                raise
            for j, r in zip(idxs, res, strict=True):
                canon[j] = r
        out: list[tuple[bytes, bytes]] = []
        w, h = self.width, self.height
        for j, feat in enumerate(feats):
            i = feat.index
            label = labels[j][0]
            kind, enc, (x0, y0, x1, y1) = canon[j]
            shape = self.shapes.get(label)
            if shape is None:
                self.new_labels[label].kinds[kind] = None
            elif shape != "any" and kind not in _COMPATIBLE.get(shape, (kind,)):
                raise InvalidGeometry(f"feature {i}: label {label!r} takes {shape} shapes, got a {kind}")
            if x0 < 0 or y0 < 0 or x1 > w or y1 > h:
                raise InvalidGeometry(
                    f"feature {i}: coordinates outside the image {self.image!r} ({w}x{h}): "
                    f"bounds {x0:g},{y0:g},{x1:g},{y1:g}"
                )
            props = feat.properties
            if "image" in props and props["image"] == self.image:
                props = {k: v for k, v in props.items() if k != "image"}  # written by a multi-image export
            try:
                record = make_record(kind, enc, label, props, feat.plane)
            except InvalidInput as exc:
                raise _prefixed(i, exc) from None
            key = feat.id if feat.id is not None else new_annotation_id()
            try:
                out.append((key, tree.encode_record(tree.split_record(record, self.blobs))))
            except (OverflowError, ValueError):
                raise InvalidGeometry(f"feature {i}: coordinates too large to store") from None
        return out


def _merge_labels(into: dict[str, _NewLabel], found: dict[str, tuple[str | None, list[str]]]) -> None:
    for name, (color, kinds) in found.items():
        nl = into.get(name)
        if nl is None:
            nl = into[name] = _NewLabel(color)
        elif nl.color is None:
            nl.color = color
        for k in kinds:
            nl.kinds[k] = None


_WORKER_STATE: dict[str, Any] = {}


def _worker_init() -> None:
    gc.disable()  # short-lived worker, no cycles made


def _convert_chunk(
    setup: tuple[str, int, int, tuple[tuple[str, str], ...], bool], first: int, raws: list[Any]
) -> tuple[list[tuple[bytes, int, bytes]], list[Pending], dict[str, tuple[str | None, list[str]]]]:
    """Worker: convert a chunk of raw features (numbered from ``first``)."""
    conv = _WORKER_STATE.get("conv")
    if conv is None or _WORKER_STATE.get("setup") != setup:
        image, width, height, shapes, create = setup
        conv = _Converter(image, width, height, dict(shapes), create)
        _WORKER_STATE["conv"], _WORKER_STATE["setup"] = conv, setup
    try:
        feats = [feature_from_json(first + j, _loads(raw) if isinstance(raw, bytes) else raw)
                 for j, raw in enumerate(raws)]
        out = [(key, f.index, entry) for f, (key, entry) in zip(feats, conv.convert_many(feats), strict=True)]
        return out, conv.blobs, {n: (nl.color, list(nl.kinds)) for n, nl in conv.new_labels.items()}
    finally:
        conv.blobs, conv.new_labels = [], {}


def _workers(path: Path, asked: int | None) -> int:
    """Worker processes to use: forked, so only from a single-threaded process on Linux."""
    import multiprocessing
    import sys
    import threading

    if asked is not None and asked <= 1:
        return 1
    if not sys.platform.startswith("linux") or "fork" not in multiprocessing.get_all_start_methods():
        return 1
    if threading.active_count() > 1:  # forking a threaded process (a server) is not safe
        return 1
    if asked is not None:
        return asked
    try:
        size = path.stat().st_size
    except OSError:
        return 1
    cpus = os.cpu_count() or 1
    return min(cpus, MAX_WORKERS) if size >= PARALLEL_MIN_BYTES and cpus > 1 else 1


def import_file(
    repo: Repository,
    image: str,
    path: str | os.PathLike[str],
    create_labels: bool = False,
    progress: Progress | None = None,
    batch: int = 50_000,
    workers: int | None = None,
) -> ImportResult:
    """Import a QuPath GeoJSON file into the working state of ``image``; all or nothing.

    Features with a UUID id replace the annotation with that id (re-importing an
    export changes nothing); others get new ids. Two features with the same id are
    refused, naming the id and both features. Every feature is checked as the
    Editor checks it (label known and of a matching shape, canonical geometry
    inside the image, polygons valid); an error names the first bad feature and
    leaves the working state (annotations and labels) exactly as it was.
    ``create_labels`` creates missing labels, in name order, coloured by the first
    feature's classification colour, shaped by the first feature's kind ("any"
    when later features have incompatible kinds). ``progress(bytes_read, file_size)``.
    Memory is bounded by ``batch`` features, whatever the file size.
    ``workers``: processes converting features (None: one a CPU, at most 4, for
    files of 16 MB or more; 1: this process only). Workers are forked, so they are
    used only on Linux and when the calling process has a single thread.
    """
    if batch < 1:
        raise UsageError("batch must be at least 1")
    p = Path(path)
    nworkers = _workers(p, workers)
    base0, snap0 = repo.working()
    gc_on = gc.isenabled()
    gc.disable()  # millions of short-lived containers and no cycles: collections would cost ~30% of the time
    try:
        return _import(repo, image, p, create_labels, progress, batch, snap0, nworkers)
    except BaseException:
        with contextlib.suppress(Exception):
            if repo.working() != (base0, snap0):
                repo.set_working(base0, snap0)
        raise
    finally:
        if gc_on:
            gc.enable()


def _import(
    repo: Repository,
    image: str,
    path: Path,
    create_labels: bool,
    progress: Progress | None,
    batch: int,
    snap0: bytes,
    nworkers: int,
) -> ImportResult:
    rec_img = repo.image(image, None)
    name = rec_img.name
    entry0 = repo.snapshot_object(snap0).images[name]
    shapes = {lb.name: lb.shape for lb in repo.labels(None).labels}
    spill = repo.exact_dir / "cache" if repo.exact_dir is not None else None
    builder = _TreeBuilder(repo.store, entry0.tree, spill)
    try:
        if nworkers > 1:
            setup = (name, rec_img.width, rec_img.height, tuple(sorted(shapes.items())), create_labels)
            try:
                n, new_labels = _convert_parallel(path, progress, batch, builder, setup, nworkers, True)
            except _NoBlocks:
                # not cut into blocks, or something in a block is wrong: again, feature by feature
                # (what was written so far is unreferenced and goes at the next gc)
                builder.close()
                builder = _TreeBuilder(repo.store, entry0.tree, spill)
                n, new_labels = _convert_parallel(path, progress, batch, builder, setup, nworkers, False)
        else:
            conv = _Converter(name, rec_img.width, rec_img.height, shapes, create_labels)
            conv.blobs = builder.blobs
            n = _convert_serial(path, progress, batch, builder, conv)
            new_labels = conv.new_labels
        root = builder.finish(batch)
    finally:
        builder.close()

    created: list[str] = []
    for lname in sorted(new_labels):
        nl = new_labels[lname]
        repo.add_label(lname, nl.shape(), nl.color or "#ffcc00")
        created.append(lname)

    with repo.lock():
        set_working_tree(repo, name, root, expected=entry0.tree)
    count = tree.count(repo.store, root)
    added = count - entry0.count
    return ImportResult(features=n, added=added, replaced=n - added, labels_created=created)


def _convert_serial(
    path: Path, progress: Progress | None, batch: int, builder: _TreeBuilder, conv: _Converter
) -> int:
    n = 0
    pending: list[Feature] = []

    def flush() -> None:
        for f, (key, entry) in zip(pending, conv.convert_many(pending), strict=True):
            builder.add(key, f.index, entry)
        pending.clear()
        if len(builder) >= batch:
            builder.end_batch()

    for feat in read_features(path, progress):
        pending.append(feat)
        n += 1
        if len(pending) >= CHECK_BATCH:
            flush()
    if pending:
        flush()
    return n


def _convert_block(
    setup: tuple[str, int, int, tuple[tuple[str, str], ...], bool], block: bytes
) -> tuple[list[tuple[bytes, int, bytes]], list[Pending], dict[str, tuple[str | None, list[str]]]]:
    """Worker: parse and convert one run of features (see ``_Reader._blocks``), numbered from 0."""
    objs = _loads(b"[" + block + b"]")  # one parse for the whole run; _Malformed when it is not one
    return _convert_chunk(setup, 0, objs)


def _convert_parallel(
    path: Path,
    progress: Progress | None,
    batch: int,
    builder: _TreeBuilder,
    setup: tuple[str, int, int, tuple[tuple[str, str], ...], bool],
    nworkers: int,
    blocks: bool,
) -> tuple[int, dict[str, _NewLabel]]:
    """Features converted by worker processes, applied to the tree in file order by this one.

    ``blocks``: the workers get runs of about ``PARALLEL_BLOCK`` bytes of raw features
    and parse them (this process only reads); any problem raises _NoBlocks, and the
    caller starts again feature by feature. Otherwise this process cuts the file into
    features, checking each, and errors name the feature.
    """
    import multiprocessing
    from collections import deque
    from concurrent.futures import Future, ProcessPoolExecutor

    new_labels: dict[str, _NewLabel] = {}
    inflight: deque[Future[Any]] = deque()
    n = 0  # features collected

    def collect(fut: Future[Any]) -> None:
        nonlocal n
        try:
            entries, blobs, labels = fut.result()
        except (ExactError, _Malformed):
            if blocks:
                raise _NoBlocks from None
            raise
        _merge_labels(new_labels, labels)
        builder.blobs.extend(blobs)
        add = builder.add
        offset = n if blocks else 0  # block entries are numbered from 0 in their block
        for key, i, entry in entries:
            add(key, i + offset, entry)
            if len(builder) >= batch:
                builder.end_batch()
        n += len(entries)

    def submit(fn: Callable[..., Any], *args: Any) -> None:
        inflight.append(pool.submit(fn, setup, *args))
        while len(inflight) > INFLIGHT * nworkers:
            collect(inflight.popleft())

    ctx = multiprocessing.get_context("fork")  # no re-import of __main__, no start-up cost
    pool = ProcessPoolExecutor(nworkers, mp_context=ctx, initializer=_worker_init)
    try:
        if blocks:
            try:
                for block in _raw_features(path, progress, CHUNK, True, PARALLEL_BLOCK):
                    submit(_convert_block, block)
            except InvalidInput:
                raise _NoBlocks from None
        else:
            chunk: list[Any] = []
            first = 0
            try:
                for raw in _raw_features(path, progress, CHUNK, True):
                    chunk.append(raw)
                    if len(chunk) >= PARALLEL_CHUNK:
                        submit(_convert_chunk, first, chunk)
                        first += len(chunk)
                        chunk = []
            except ExactError:
                if chunk:
                    inflight.append(pool.submit(_convert_chunk, setup, first, chunk))
                while inflight:  # an earlier feature's error comes first
                    collect(inflight.popleft())
                raise
            if chunk:
                inflight.append(pool.submit(_convert_chunk, setup, first, chunk))
        while inflight:
            collect(inflight.popleft())
    finally:
        for fut in inflight:
            fut.cancel()
        pool.shutdown(wait=True)
    return n, new_labels


