"""Conversion of PNG/JPEG/plain TIFF/multi-page TIFF into pyramidal JPEG TIFFs served as pure pass-through.

Real files, no mocks. Every DeepZoom tile of every converted image is compared with the source's pixels
of the same area (BOX-downscaled for lower levels). The fidelity checks convert at JPEG quality 95: the
synthetic tissue has per-pixel chromatin noise, and at the default quality 90 its densest 256 px tiles
reach a mean absolute difference of ~2.4 (the image-wide mean stays ~1), above the 2.0 bound per tile.
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import openslide
import pytest
import tifffile
from PIL import Image

from exactvc.convert import convert_to_pyramid, frames, needs_conversion, plane_path, pyramid_sizes
from exactvc.errors import InvalidInput, NotFound, UsageError
from exactvc.testing.slides import make_plain_image, make_pyramidal_tiff
from exactvc.tiles import Slide

W, H = 1500, 1100
QUALITY = 95  # see the module docstring


def tile_pixels(s: Slide, level: int, col: int, row: int) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(s.tile_jpeg(level, col, row))).convert("RGB"), dtype=np.int16)


def expected(ref: np.ndarray, s: Slide, level: int, col: int, row: int, w: int, h: int) -> np.ndarray:
    """The source pixels of the tile's area (clipped to the image), each ds x ds block averaged.

    A box filter over exact blocks, where a partial block at the right/bottom edge averages the pixels
    it has. (PIL's BOX ``resize`` of a clipped edge area to the rounded-up tile size drifts by up to a
    pixel, and ``Image.reduce`` is off by several grey levels for factors beyond ~256.)"""
    ds = 2 ** (s.max_level - level)
    x0, y0 = col * s.tile * ds, row * s.tile * ds
    area = ref[y0 : min(y0 + h * ds, ref.shape[0]), x0 : min(x0 + w * ds, ref.shape[1])].astype(np.float64)
    if ds == 1:
        return area.astype(np.int16)
    padded = np.zeros((h * ds, w * ds, 3))
    count = np.zeros((h * ds, w * ds, 1))
    padded[: area.shape[0], : area.shape[1]] = area
    count[: area.shape[0], : area.shape[1]] = 1
    mean = padded.reshape(h, ds, w, ds, 3).sum(axis=(1, 3)) / count.reshape(h, ds, w, ds, 1).sum(axis=(1, 3))
    return np.rint(mean).astype(np.int16)


def check_pyramid(path: Path, ref: np.ndarray, tile: int = 256, max_mad: float = 2.0) -> Slide:
    """openslide reads it as generic-tiff; every multi-tile DeepZoom level is a pass-through; every tile
    of every level matches the source."""
    assert ref.dtype == np.uint8 and ref.shape == (ref.shape[0], ref.shape[1], 3)
    with openslide.OpenSlide(path) as osr:
        assert osr.properties["openslide.vendor"] == "generic-tiff"
        assert osr.dimensions == (ref.shape[1], ref.shape[0])
        assert osr.level_dimensions == tuple(pyramid_sizes(ref.shape[1], ref.shape[0]))
    assert not needs_conversion(path)
    s = Slide(path)
    assert s.tile == tile
    # every DeepZoom level is stored, down to 1x1: nothing is resampled at serving time
    assert sorted(s.passthrough) == list(range(s.max_level + 1))
    for level in range(s.max_level + 1):
        cols, rows = s.grid(level)
        w, h = s.level_size(level)
        for c in range(cols):
            for r in range(rows):
                got = tile_pixels(s, level, c, r)
                assert got.shape[:2] == (min(tile, h - r * tile), min(tile, w - c * tile))
                want = expected(ref, s, level, c, r, got.shape[1], got.shape[0])
                mad = float(np.abs(got - want).mean())
                assert mad <= max_mad, (path.name, level, c, r, mad)
    return s


def rgb_of(path: Path) -> np.ndarray:
    return np.asarray(Image.open(path).convert("RGB"))


@pytest.fixture(scope="module")
def sources(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("sources")
    out = {
        "png": make_plain_image(d / "a.png", W, H, "png", seed=1),
        "jpeg": make_plain_image(d / "a.jpg", W, H, "jpeg", seed=2),
        "striped": make_plain_image(d / "a.tiff", W, H, "tiff", seed=3),
        "multi": make_plain_image(d / "m.tiff", 1100, 900, "tiff", pages=3, seed=4),
    }
    base = rgb_of(out["png"])
    # RGBA: alpha from opaque (left) to clear (right), with a fully transparent block
    alpha = np.broadcast_to(np.linspace(255, 0, W).round().astype(np.uint8), (H, W)).copy()
    alpha[100:300, 100:400] = 0
    Image.fromarray(np.dstack([base, alpha]), "RGBA").save(d / "rgba.png", dpi=(50800, 50800))  # 0.5 um/px
    out["rgba"] = d / "rgba.png"
    # greyscale 16-bit, range 1000..~10000 (not the type's 0..65535), 0.25 um/px in centimetre units
    grey = (1000 + 37 * np.asarray(Image.fromarray(base).convert("L"), dtype=np.uint16)).astype(np.uint16)
    tifffile.imwrite(d / "grey16.tiff", grey, photometric="minisblack", rowsperstrip=100,
                     resolution=(40000, 40000), resolutionunit="CENTIMETER", metadata=None)
    out["grey16"] = d / "grey16.tiff"
    return out


@pytest.fixture(scope="module")
def converted(sources: dict[str, Path], tmp_path_factory: pytest.TempPathFactory) -> dict[str, list[Path]]:
    d = tmp_path_factory.mktemp("pyramids")
    return {k: convert_to_pyramid(p, d / f"{k}.tiff", quality=QUALITY) for k, p in sources.items()}


@pytest.mark.parametrize("kind", ["png", "jpeg", "striped"])
def test_plain_images(sources: dict[str, Path], converted: dict[str, list[Path]], kind: str) -> None:
    src = sources[kind]
    assert needs_conversion(src) and frames(src) == 1
    (out,) = converted[kind]
    assert out.name == f"{kind}.tiff"
    with openslide.OpenSlide(out) as osr:
        assert osr.level_count == 12  # 1500x1100, 750x550, 375x275, 188x138, ..., 1x1
    check_pyramid(out, rgb_of(src))
    # nothing else was left beside it (temporary files are renamed or removed)
    assert sorted(p.name for p in out.parent.iterdir() if p.name.startswith(".")) == []


def test_multi_page_tiff_planes(sources: dict[str, Path], converted: dict[str, list[Path]]) -> None:
    src = sources["multi"]
    assert needs_conversion(src) and frames(src) == 3
    outs = converted["multi"]
    assert outs == [plane_path(outs[0], i) for i in range(3)]
    assert [p.name for p in outs] == ["multi.tiff", "multi.p1.tiff", "multi.p2.tiff"]
    pages = [tifffile.imread(src, key=i) for i in range(3)]
    for a, b in ((0, 1), (1, 2), (0, 2)):  # each page shows its own field
        assert np.abs(pages[a].astype(np.int16) - pages[b]).mean() > 10
    for out, page in zip(outs, pages, strict=True):
        check_pyramid(out, page)
        assert frames(out) == 1


def test_rgba_composited_on_white(sources: dict[str, Path], converted: dict[str, list[Path]]) -> None:
    rgba = np.asarray(Image.open(sources["rgba"]), dtype=np.float64)
    a = rgba[:, :, 3:4] / 255.0
    ref = np.rint(rgba[:, :, :3] * a + 255.0 * (1.0 - a)).astype(np.uint8)
    (out,) = converted["rgba"]
    s = check_pyramid(out, ref)
    assert float(tile_pixels(s, s.max_level, 0, 0)[150:250, 150:350].mean()) > 254  # the transparent block
    with openslide.OpenSlide(out) as osr:
        assert float(osr.properties["openslide.mpp-x"]) == pytest.approx(0.5, rel=1e-6)


def test_grey16_scaled_by_its_range(sources: dict[str, Path], converted: dict[str, list[Path]]) -> None:
    grey = tifffile.imread(sources["grey16"]).astype(np.float64)
    lo, hi = grey.min(), grey.max()
    assert 1000 <= lo < hi <= 1000 + 37 * 255
    scaled = np.rint((grey - lo) * 255.0 / (hi - lo)).astype(np.uint8)
    (out,) = converted["grey16"]
    check_pyramid(out, np.dstack([scaled] * 3))
    with openslide.OpenSlide(out) as osr:
        assert float(osr.properties["openslide.mpp-x"]) == pytest.approx(0.25, rel=1e-6)
        assert float(osr.properties["openslide.mpp-y"]) == pytest.approx(0.25, rel=1e-6)


def test_default_quality_tile_size_and_determinism(sources: dict[str, Path], tmp_path: Path) -> None:
    calls: list[tuple[int, int]] = []
    (a,) = convert_to_pyramid(sources["png"], tmp_path / "a.tiff", tile=512, progress=lambda d, t: calls.append((d, t)))
    assert calls[-1] == (H, H) and all(d1 <= d2 for (d1, _), (d2, _) in zip(calls, calls[1:], strict=False))
    ref = rgb_of(sources["png"])
    s = check_pyramid(a, ref, tile=512, max_mad=3.0)  # quality 90: a dense 512 px tile stays under 3
    # quality 90 over the whole full-resolution level: about one grey level
    cols, rows = s.grid(s.max_level)
    full = np.concatenate([np.concatenate([tile_pixels(s, s.max_level, c, r) for c in range(cols)], axis=1)
                           for r in range(rows)])
    assert float(np.abs(full - ref).mean()) < 1.5
    (b,) = convert_to_pyramid(sources["png"], tmp_path / "b.tiff", tile=512)
    assert a.read_bytes() == b.read_bytes()


def test_small_image_one_level(tmp_path: Path) -> None:
    src = make_plain_image(tmp_path / "small.png", 200, 130, "png")
    (out,) = convert_to_pyramid(src, tmp_path / "small.tiff", quality=QUALITY)
    with openslide.OpenSlide(out) as osr:
        assert osr.level_dimensions[:3] == ((200, 130), (100, 65), (50, 33))
    check_pyramid(out, rgb_of(src))


def test_what_needs_conversion(tmp_path: Path) -> None:
    svs = make_pyramidal_tiff(tmp_path / "s.svs", 1200, 900, min_level_size=200)
    assert not needs_conversion(svs) and frames(svs) == 1
    z = np.zeros((300, 400, 3), np.uint8)
    with tifffile.TiffWriter(tmp_path / "z.tiff") as tw:  # tiled pages openslide would hide: a z-stack
        for i in range(3):
            tw.write(z + 40 * i, tile=(256, 256), metadata=None)
    assert openslide.OpenSlide.detect_format(tmp_path / "z.tiff") == "generic-tiff"
    assert needs_conversion(tmp_path / "z.tiff") and frames(tmp_path / "z.tiff") == 3
    outs = convert_to_pyramid(tmp_path / "z.tiff", tmp_path / "zp.tiff")
    assert [float(tile_pixels(Slide(p), Slide(p).max_level, 0, 0).mean()) for p in outs] == pytest.approx(
        [0, 40, 80], abs=1)


def test_tiff_flavours(tmp_path: Path) -> None:
    """OME channels (16-bit, separate pages) become planes scaled by one range; planar RGB, palette,
    min-is-white and JPEG-tiled pages decode to their RGB pixels; OME's PhysicalSizeX is the mpp."""
    base = rgb_of(make_plain_image(tmp_path / "b.png", 600, 400, seed=5))
    chans = np.stack([base[:, :, i].astype(np.uint16) * 10 + 7 for i in range(3)])
    ome = tmp_path / "c.ome.tiff"
    tifffile.imwrite(ome, chans, tile=(256, 256), compression="zlib",
                     metadata={"axes": "CYX", "PhysicalSizeX": 0.325, "PhysicalSizeY": 0.325})
    assert needs_conversion(ome) and frames(ome) == 3
    outs = convert_to_pyramid(ome, tmp_path / "ome.tiff", quality=QUALITY)
    lo, hi = float(chans.min()), float(chans.max())
    for out, chan in zip(outs, chans, strict=True):
        grey = np.rint((chan - lo) * 255.0 / (hi - lo)).astype(np.uint8)
        check_pyramid(out, np.dstack([grey] * 3))
    with openslide.OpenSlide(outs[0]) as osr:
        assert float(osr.properties["openslide.mpp-x"]) == pytest.approx(0.325, rel=1e-6)
    tifffile.imwrite(tmp_path / "planar.tiff", np.moveaxis(base, -1, 0).copy(), planarconfig="separate",
                     photometric="rgb", metadata=None)
    tifffile.imwrite(tmp_path / "miniswhite.tiff", 255 - base[:, :, 1], photometric="miniswhite", metadata=None)
    tifffile.imwrite(tmp_path / "jpeg_tiled.tiff", base, tile=(256, 256), compression="jpeg",
                     compressionargs={"level": 95}, metadata=None)
    refs = {"planar": base, "miniswhite": np.dstack([base[:, :, 1]] * 3),
            "jpeg_tiled": tifffile.imread(tmp_path / "jpeg_tiled.tiff")}  # the decoded JPEG tiles
    pal = Image.fromarray(base).quantize(64)
    pal.save(tmp_path / "palette.tiff")
    refs["palette"] = np.asarray(pal.convert("RGB"))
    for name, ref in refs.items():
        (out,) = convert_to_pyramid(tmp_path / f"{name}.tiff", tmp_path / f"{name}.out.tiff", quality=QUALITY)
        check_pyramid(out, ref)


def test_bad_input_leaves_nothing(tmp_path: Path, sources: dict[str, Path]) -> None:
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    text = tmp_path / "notes.png"
    text.write_text("not an image\n")
    truncated = tmp_path / "cut.png"
    data = sources["png"].read_bytes()
    truncated.write_bytes(data[: len(data) // 2])
    cut_tiff = tmp_path / "cut.tiff"
    cut_tiff.write_bytes(sources["grey16"].read_bytes()[:200])
    video = tmp_path / "clip.avi"
    video.write_bytes(b"RIFF\x00\x00\x00\x00AVI LIST")
    for bad in (text, truncated, cut_tiff, video):
        with pytest.raises(InvalidInput) as err:
            convert_to_pyramid(bad, out_dir / "x.tiff")
        assert str(bad) in str(err.value) and "\n" not in str(err.value)
        assert list(out_dir.iterdir()) == [], bad
    with pytest.raises(NotFound):
        convert_to_pyramid(tmp_path / "missing.png", out_dir / "x.tiff")
    with pytest.raises(UsageError):
        convert_to_pyramid(sources["png"], out_dir / "x.tiff", tile=100)
    with pytest.raises(UsageError):
        convert_to_pyramid(sources["multi"], plane_path(sources["multi"], 0))  # would overwrite its source
    assert list(out_dir.iterdir()) == []
