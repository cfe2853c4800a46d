"""Image files: content fingerprints, basic metadata and pseudonyms.

An image is identified by the blake3 hash of its bytes (its *fingerprint*),
so renaming or moving a slide does not change which annotations belong to it.
Metadata is read with OpenSlide for whole-slide formats, else tifffile for
plain or multi-page TIFFs, else Pillow for PNG/JPEG and friends. These readers
are imported lazily so that ``import exactvc`` stays light.
"""

from __future__ import annotations

import dataclasses
import math
import os
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import blake3

from exactvc.errors import InvalidInput, NotFound, UsageError

__all__ = [
    "ImageInfo",
    "ProgressFn",
    "fingerprint_file",
    "pseudonym",
    "read_image_info",
]

ProgressFn = Callable[[int, int], None]
"""Progress callback: ``(bytes_done, bytes_total)``."""

CHUNK_SIZE = 64 * 1024 * 1024
"""Bytes hashed per step; large enough for blake3 to spread one step over all cores."""

_FINGERPRINT_RE = re.compile(r"^[0-9a-f]{64}$")


@dataclass(frozen=True)
class ImageInfo:
    fingerprint: str  # 64 hex chars, blake3 of the file bytes
    width: int  # level-0 pixels
    height: int
    levels: int
    mpp: float | None  # micrometres per pixel (x), None if unknown
    vendor: str  # openslide vendor ('aperio', 'generic-tiff', ...) or 'png'/'jpeg'/'tiff' for plain images
    frames: int  # number of planes (z / time); 1 for normal slides; pages of a multi-page plain TIFF

    def to_dict(self) -> dict[str, object]:
        return dataclasses.asdict(self)


def check_file(path: str | os.PathLike[str]) -> str:
    name = os.fspath(path)
    if not os.path.exists(name):
        raise NotFound(f"no such file: {name}")
    if os.path.isdir(name):
        raise InvalidInput(f"is a directory, not an image file: {name}")
    return name


def fingerprint_file(path: str | os.PathLike[str], progress: ProgressFn | None = None) -> str:
    """Blake3 hex digest of the whole file, streamed in large chunks hashed on all cores.

    ``progress(bytes_done, bytes_total)`` is called after every chunk (once with (0, 0) for an empty file).
    """
    name = check_file(path)
    hasher = blake3.blake3(max_threads=blake3.blake3.AUTO)
    try:
        with open(name, "rb", buffering=0) as f:
            total = os.fstat(f.fileno()).st_size
            buf = bytearray(max(1, min(CHUNK_SIZE, total)))
            view = memoryview(buf)
            done = 0
            while True:
                n = f.readinto(view)
                if not n:
                    break
                hasher.update(view[:n])
                done += n
                if progress is not None:
                    progress(done, total)
            if done == 0 and progress is not None:
                progress(0, total)
    except FileNotFoundError:
        raise NotFound(f"no such file: {name}") from None
    except PermissionError:
        raise InvalidInput(f"permission denied reading: {name}") from None
    return hasher.hexdigest()


def _parse_mpp(value: Any) -> float | None:
    try:
        mpp = float(value)
    except (TypeError, ValueError):
        return None
    return mpp if math.isfinite(mpp) and mpp > 0 else None


def _openslide_info(name: str) -> tuple[int, int, int, float | None, str, int] | None:
    try:
        import openslide
    except (ImportError, OSError):  # the C library may be missing
        return None
    try:
        vendor = openslide.OpenSlide.detect_format(name)
    except (openslide.OpenSlideError, OSError):
        return None
    if not vendor:
        return None
    try:
        with openslide.OpenSlide(name) as slide:
            width, height = slide.dimensions
            mpp = _parse_mpp(slide.properties.get(openslide.PROPERTY_NAME_MPP_X))
            return int(width), int(height), int(slide.level_count), mpp, str(vendor), 1
    except (openslide.OpenSlideError, OSError) as exc:
        raise InvalidInput(f"openslide detects {vendor} but cannot open it ({exc}): {name}") from None


def _tiff_mpp(page: Any) -> float | None:
    """Micrometres per pixel from a TIFF page's XResolution/ResolutionUnit, if they say."""
    tag = page.tags.get("XResolution")
    unit_tag = page.tags.get("ResolutionUnit")
    if tag is None or unit_tag is None:
        return None
    try:
        num, den = tag.value
        per_unit = num / den
        unit = int(unit_tag.value)
    except (TypeError, ValueError, ZeroDivisionError):
        return None
    if per_unit <= 0:
        return None
    if unit == 3:  # centimetre
        return _parse_mpp(1e4 / per_unit)
    if unit == 2:  # inch
        return _parse_mpp(25400.0 / per_unit)
    return None


def _tifffile_info(name: str) -> tuple[int, int, int, float | None, str, int] | None:
    import tifffile

    try:
        with tifffile.TiffFile(name) as tif:
            pages = tif.pages
            first = pages.first
            width, height = int(first.imagewidth), int(first.imagelength)
            levels = len(tif.series[0].levels) if tif.series else 1
            frames = 0
            for page in pages:
                if page.shape == first.shape:
                    frames += 1
            return width, height, max(1, levels), _tiff_mpp(first), "tiff", max(1, frames)
    except (tifffile.TiffFileError, ValueError, IndexError, OSError):
        return None


def _pillow_info(name: str) -> tuple[int, int, int, float | None, str, int] | None:
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(name) as im:
            width, height = im.size
            vendor = (im.format or "image").lower()
            frames = int(getattr(im, "n_frames", 1))
            dpi = im.info.get("dpi")
            mpp = _parse_mpp(25400.0 / float(dpi[0])) if isinstance(dpi, tuple) and dpi and dpi[0] else None
            return int(width), int(height), 1, mpp, vendor, max(1, frames)
    except Image.DecompressionBombError as exc:
        raise InvalidInput(f"image too large for Pillow ({exc}): {name}") from None
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError):
        return None


def read_image_info(
    path: str | os.PathLike[str],
    fingerprint: str | None = None,
    progress: ProgressFn | None = None,
) -> ImageInfo:
    """Fingerprint (unless given) and basic metadata of an image file.

    Tries OpenSlide, then tifffile, then Pillow. Raises NotFound for a missing file and
    InvalidInput for a file none of them can read.
    """
    name = check_file(path)
    if fingerprint is not None and not _FINGERPRINT_RE.match(fingerprint):
        raise UsageError(f"fingerprint must be 64 lowercase hex characters: {fingerprint!r}")
    info = _openslide_info(name) or _tifffile_info(name) or _pillow_info(name)
    if info is None:
        raise InvalidInput(f"not an image openslide, tifffile or Pillow can read: {name}")
    width, height, levels, mpp, vendor, frames = info
    from .convert import frames as count_frames
    from .convert import needs_conversion

    if needs_conversion(name):  # served as planes of a converted pyramid: count them the same way
        frames = count_frames(name)
    if width < 1 or height < 1:
        raise InvalidInput(f"image has no pixels ({width}x{height}): {name}")
    if fingerprint is None:
        fingerprint = fingerprint_file(name, progress)
    return ImageInfo(
        fingerprint=fingerprint,
        width=width,
        height=height,
        levels=levels,
        mpp=mpp,
        vendor=vendor,
        frames=frames,
    )


def pseudonym(original_name: str, when: datetime) -> str:
    """Deterministic pseudonym 'yymmdd-hhmm-XXXX': ``when`` plus 4 hex digits of blake3(original_name)."""
    digest = blake3.blake3(original_name.encode("utf-8")).hexdigest()
    return f"{when.strftime('%y%m%d-%H%M')}-{digest[:4].upper()}"
