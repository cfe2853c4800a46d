"""Fingerprints, image metadata and pseudonyms, on a real Aperio slide and generated images."""

from __future__ import annotations

import re
from datetime import datetime
from pathlib import Path

import blake3
import numpy as np
import openslide
import pytest

from exactvc.errors import InvalidInput, NotFound
from exactvc.images import ImageInfo, fingerprint_file, pseudonym, read_image_info
from exactvc.testing.slides import make_plain_image, make_pyramidal_tiff

from .conftest import REAL_SLIDE

REAL_SVS = REAL_SLIDE

needs_real_svs = pytest.mark.skipif(not REAL_SVS.exists(), reason=f"test slide missing: {REAL_SVS}")


def one_shot_blake3(path: Path) -> str:
    return blake3.blake3(path.read_bytes()).hexdigest()


@pytest.fixture(scope="module")
def slides(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("slides")
    return {
        "aperio": make_pyramidal_tiff(d / "aperio.svs", 3000, 2000, mpp=0.25, aperio=True, seed=1),
        "generic": make_pyramidal_tiff(
            d / "generic.tif", 3000, 2000, tile=128, mpp=0.5, aperio=False, photometric="rgb", seed=2
        ),
    }


# -- fingerprints ------------------------------------------------------------------------------


@needs_real_svs
def test_fingerprint_real_svs_matches_one_shot_blake3() -> None:
    assert fingerprint_file(REAL_SVS) == one_shot_blake3(REAL_SVS)


def test_fingerprint_generated_slide_matches_one_shot_blake3(slides: dict[str, Path]) -> None:
    for path in slides.values():
        digest = fingerprint_file(str(path))
        assert re.fullmatch(r"[0-9a-f]{64}", digest)
        assert digest == one_shot_blake3(path)


def test_fingerprint_multi_chunk_and_progress(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # shrink the chunk so a small file takes several steps, including a short last one
    import exactvc.images as images

    monkeypatch.setattr(images, "CHUNK_SIZE", 1000)
    path = tmp_path / "data.bin"
    path.write_bytes(np.random.default_rng(0).integers(0, 256, 4500, dtype=np.uint8).tobytes())
    calls: list[tuple[int, int]] = []
    assert fingerprint_file(
        path, progress=lambda done, total: calls.append((done, total))
    ) == one_shot_blake3(path)
    assert calls == [(1000, 4500), (2000, 4500), (3000, 4500), (4000, 4500), (4500, 4500)]


def test_fingerprint_progress_reaches_total(slides: dict[str, Path]) -> None:
    calls: list[tuple[int, int]] = []
    fingerprint_file(slides["aperio"], progress=lambda done, total: calls.append((done, total)))
    size = slides["aperio"].stat().st_size
    assert calls and calls[-1] == (size, size)
    assert [done for done, _ in calls] == sorted(done for done, _ in calls)


def test_fingerprint_empty_file(tmp_path: Path) -> None:
    path = tmp_path / "empty"
    path.write_bytes(b"")
    calls: list[tuple[int, int]] = []
    assert (
        fingerprint_file(path, progress=lambda d, t: calls.append((d, t))) == blake3.blake3(b"").hexdigest()
    )
    assert calls == [(0, 0)]


def test_fingerprint_missing_file(tmp_path: Path) -> None:
    with pytest.raises(NotFound, match="no such file"):
        fingerprint_file(tmp_path / "nope.svs")


# -- image info ----------------------------------------------------------------------------------


@needs_real_svs
def test_read_image_info_real_svs() -> None:
    calls: list[tuple[int, int]] = []
    info = read_image_info(REAL_SVS, progress=lambda d, t: calls.append((d, t)))
    assert (info.width, info.height) == (2220, 2967)
    assert info.vendor == "aperio"
    assert info.mpp == pytest.approx(0.499)
    assert info.levels == 1
    assert info.frames == 1
    assert info.fingerprint == one_shot_blake3(REAL_SVS)
    assert calls[-1][0] == calls[-1][1] == REAL_SVS.stat().st_size


@needs_real_svs
def test_read_image_info_uses_given_fingerprint() -> None:
    calls: list[tuple[int, int]] = []
    info = read_image_info(REAL_SVS, fingerprint="ab" * 32, progress=lambda d, t: calls.append((d, t)))
    assert info.fingerprint == "ab" * 32
    assert calls == []


def test_read_image_info_generated_aperio(slides: dict[str, Path]) -> None:
    info = read_image_info(slides["aperio"])
    assert (info.width, info.height) == (3000, 2000)
    assert info.vendor == "aperio"
    assert info.levels > 1
    assert info.mpp == pytest.approx(0.25)
    assert info.frames == 1
    d = info.to_dict()
    assert d["vendor"] == "aperio" and d["width"] == 3000 and d["fingerprint"] == info.fingerprint
    assert ImageInfo(**d) == info  # type: ignore[arg-type]


def test_read_image_info_generated_generic(slides: dict[str, Path]) -> None:
    info = read_image_info(slides["generic"])
    assert (info.width, info.height, info.vendor) == (3000, 2000, "generic-tiff")
    assert info.levels > 1
    assert info.mpp == pytest.approx(0.5)


@pytest.mark.parametrize(
    ("fmt", "pages", "vendor"),
    [("png", 1, "png"), ("jpeg", 1, "jpeg"), ("tiff", 1, "tiff"), ("tiff", 3, "tiff")],
)
def test_read_image_info_plain_images(tmp_path: Path, fmt: str, pages: int, vendor: str) -> None:
    path = make_plain_image(tmp_path / f"img.{fmt}", 320, 200, fmt=fmt, pages=pages, seed=3)
    info = read_image_info(path)
    assert (info.width, info.height, info.levels, info.frames) == (320, 200, 1, pages)
    assert info.vendor == vendor
    assert info.fingerprint == one_shot_blake3(path)


def test_read_image_info_text_file_is_invalid(tmp_path: Path) -> None:
    path = tmp_path / "notes.txt"
    path.write_text("not an image\n")
    with pytest.raises(
        InvalidInput, match=r"not an image openslide, tifffile or Pillow can read: .*notes\.txt"
    ):
        read_image_info(path)


def test_read_image_info_missing_file(tmp_path: Path) -> None:
    with pytest.raises(NotFound, match="missing.svs"):
        read_image_info(tmp_path / "missing.svs")


def test_read_image_info_directory_is_invalid(tmp_path: Path) -> None:
    with pytest.raises(InvalidInput, match="directory"):
        read_image_info(tmp_path)


# -- the generated slides themselves -------------------------------------------------------------


def test_generated_slides_open_in_openslide(slides: dict[str, Path]) -> None:
    for kind, path in slides.items():
        with openslide.OpenSlide(path) as slide:
            assert slide.dimensions == (3000, 2000)
            assert slide.level_count == 2
            assert slide.level_downsamples == pytest.approx((1.0, 4.0))
            assert slide.properties[openslide.PROPERTY_NAME_VENDOR] == (
                "aperio" if kind == "aperio" else "generic-tiff"
            )
            region = np.asarray(slide.read_region((1000, 600), 0, (512, 512)))
            assert region.shape == (512, 512, 4)
            assert (region[..., 3] == 255).all()
            small = np.asarray(slide.read_region((0, 0), 1, (750, 500)).convert("RGB")).reshape(-1, 3)
            # H&E-ish: mostly light pixels, some tissue (red > green), some dark purple nuclei
            assert (small.min(axis=1) > 200).mean() > 0.1
            assert ((small[:, 0].astype(int) - small[:, 1]) > 40).mean() > 0.1
            assert (small.max(axis=1) < 170).mean() > 0.005
    with openslide.OpenSlide(slides["aperio"]) as slide:
        assert "thumbnail" in slide.associated_images


def test_generated_levels_agree(slides: dict[str, Path]) -> None:
    # the pyramid is consistent: level 1 looks like level 0 shrunk by 4
    with openslide.OpenSlide(slides["aperio"]) as slide:
        lvl0 = np.asarray(slide.read_region((800, 400), 0, (1024, 1024)).convert("RGB"), dtype=float)
        lvl1 = np.asarray(slide.read_region((800, 400), 1, (256, 256)).convert("RGB"), dtype=float)
    shrunk = lvl0.reshape(256, 4, 256, 4, 3).mean(axis=(1, 3))
    assert np.abs(shrunk - lvl1).mean() < 12


def test_generated_slide_is_deterministic(tmp_path: Path) -> None:
    a = make_pyramidal_tiff(tmp_path / "a.svs", 600, 400, seed=7, min_level_size=100)
    b = make_pyramidal_tiff(tmp_path / "b.svs", 600, 400, seed=7, min_level_size=100)
    assert a.read_bytes() == b.read_bytes()


# -- pseudonyms ----------------------------------------------------------------------------------


def test_pseudonym_format_and_determinism() -> None:
    when = datetime(2024, 3, 5, 14, 7, 59)
    p = pseudonym("patient-0042_HE.svs", when)
    assert re.fullmatch(r"\d{6}-\d{4}-[0-9A-F]{4}", p)
    assert p.startswith("240305-1407-")
    assert p[-4:] == blake3.blake3(b"patient-0042_HE.svs").hexdigest()[:4].upper()
    assert pseudonym("patient-0042_HE.svs", when) == p
    assert pseudonym("patient-0043_HE.svs", when) != p
