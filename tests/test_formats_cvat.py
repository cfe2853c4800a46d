"""CVAT for images 1.1 XML: the real samples, shapes, masks, attributes, project exports, round trips."""

from __future__ import annotations

from pathlib import Path

import pytest

from exactvc import geometry, porcelain
from exactvc.errors import InvalidInput
from exactvc.formats.registry import detect

from .formats_util import differences, export_bytes, repo_for, repo_with_images_of, round_trip, sample, state

TASK = sample("cvat/datumaro_export_task_train.xml")
PROJECT = sample("cvat/datumaro_export_project_annotations.xml")
DOCS = sample("cvat/cvat_docs_xml_format_images_example.xml")


@pytest.mark.parametrize("path", [TASK, PROJECT, DOCS], ids=lambda p: p.name)
def test_sample_imports_and_round_trips(tmp_path: Path, path: Path) -> None:
    assert detect(path) == "cvat"
    repo = repo_with_images_of(tmp_path / "r", "cvat", path)
    res = porcelain.import_(repo, None, str(path), create_labels=True)
    assert res["features"] > 0
    before = state(repo)
    again = porcelain.import_(repo, None, str(path))  # ids derived from content: nothing new
    assert again["added"] == 0 and state(repo) == before
    r2, data = round_trip(tmp_path, repo, "cvat", ".xml")
    assert differences(state(r2), before) == []
    assert export_bytes(r2, "cvat") == data


def test_task_shapes_attributes_occluded_z_order(tmp_path: Path) -> None:
    repo = repo_with_images_of(tmp_path / "r", "cvat", TASK)
    porcelain.import_(repo, None, str(TASK), create_labels=True)
    s = state(repo)
    (box,) = [a for a in s["img0.jpg"].values() if a[1] == "box"]
    assert box[0] == "label1" and geometry.bounds("box", box[2]) == (0, 2, 4, 4)
    assert box[3]["cvat"] == {"shape": "box", "occluded": 1, "z_order": 1,
                              "attributes": {"a1": "true", "a2": "v3", "a3": "0003", "a4": "2.4"}}  # strings
    (line,) = [a for a in s["img0.jpg"].values() if a[1] == "line"]
    assert line[0] == "unclassified"  # label=""; and "1.0,2" reads as (1, 2)
    assert geometry.to_geojson("line", line[2])["coordinates"][0] == [1, 2]
    kinds = sorted(a[1] for a in s["img1.jpg"].values())
    assert kinds == ["multipoint", "polygon"]


def test_project_export_repeats_image_ids_across_subsets(tmp_path: Path) -> None:
    repo = repo_with_images_of(tmp_path / "r", "cvat", PROJECT)
    porcelain.import_(repo, None, str(PROJECT), create_labels=True)
    names = sorted(state(repo))
    assert names == sorted(f"{sub}:{n}" for sub in ("Test", "Train", "Validation") for n in ("img0.jpg", "img1.jpg"))
    # one subset's image into a repository image of the plain name
    r2 = repo_for(tmp_path / "r2", ["img0.jpg"])
    porcelain.import_(r2, "img0.jpg", str(PROJECT), source_image="Train:img0.jpg", create_labels=True)
    assert len(state(r2)["img0.jpg"]) == len(state(repo)["Train:img0.jpg"])


def test_mask_tag_and_skeleton(tmp_path: Path) -> None:
    repo = repo_with_images_of(tmp_path / "r", "cvat", DOCS)
    res = porcelain.import_(repo, None, str(DOCS), create_labels=True)
    assert res["skipped"] == {"skeleton shapes": 1}
    anns = list(state(repo)["filename000.jpg"].values())
    (mask,) = [a for a in anns if a[3]["cvat"]["shape"] == "mask"]
    import shapely
    rle = [3, 5, 7, 7, 5, 9, 3, 11, 2, 11, 2, 12, 1, 12, 1, 26, 1, 12, 1, 12, 2, 11, 3, 9, 5, 7, 7, 5, 3]
    assert shapely.area(geometry.to_shapely(mask[1], mask[2])) == sum(rle[1::2])
    x0, y0, x1, y1 = geometry.bounds(mask[1], mask[2])
    assert x0 >= 707 and y0 >= 888 and x1 <= 707 + 13 and y1 <= 888 + 15
    (tag,) = [a for a in anns if a[3]["cvat"]["shape"] == "tag"]
    assert tag[0] == "good_frame" and tag[3]["image_label"] is True  # a label not declared in meta
    assert geometry.bounds("box", tag[2]) == (0, 0, 200_000, 200_000)
    out = export_bytes(repo, "cvat").decode()
    assert f'rle="{", ".join(map(str, rle))}" left="707" top="888" width="13" height="15"' in out
    assert '<tag label="good_frame" source="manual" occluded="0"' in out


def test_rotated_box_and_ellipse(tmp_path: Path) -> None:
    f = tmp_path / "rot.xml"
    f.write_text('<annotations><version>1.1</version><image id="0" name="a.png" width="100" height="100">'
                 '<box label="x" xtl="10" ytl="20" xbr="30" ybr="30" rotation="90" occluded="0"/>'
                 '<ellipse label="y" cx="50" cy="50" rx="10" ry="5" occluded="0"/></image></annotations>')
    repo = repo_with_images_of(tmp_path / "r", "cvat", f)
    porcelain.import_(repo, None, str(f), create_labels=True)
    anns = {a[0]: a for a in state(repo)["a.png"].values()}
    assert anns["x"][1] == "polygon" and geometry.bounds("polygon", anns["x"][2]) == (15, 15, 25, 35)
    assert geometry.bounds("ellipse", anns["y"][2]) == (40, 45, 60, 55)
    out = export_bytes(repo, "cvat").decode()
    assert 'xtl="10" ytl="20" xbr="30" ybr="30" rotation="90"' in out
    r2, _ = round_trip(tmp_path, repo, "cvat", ".xml")
    assert differences(state(r2), state(repo)) == []


@pytest.mark.parametrize(("shape", "problem"), [
    ('<polygon label="x" points="1,2;3,x"/>', "are not x,y;x,y pairs"),
    ('<box label="x" xtl="1" ytl="2" xbr="3"/>', "no ybr"),
    ('<mask label="x" rle="1, 2" left="0" top="0" width="2" height="2"/>', "RLE counts sum to 3"),
    ('<points label="x" points="1,2" z_order="top"/>', "z_order='top' is not an integer"),
])
def test_problems_are_named_and_change_nothing(tmp_path: Path, shape: str, problem: str) -> None:
    f = tmp_path / "bad.xml"
    f.write_text(f'<annotations><version>1.1</version><image id="3" name="a.png" width="100" height="100">'
                 f'<points label="x" points="5,5"/>{shape}</image></annotations>')
    repo = repo_for(tmp_path / "r", ["a.png"])
    before = repo.working()
    with pytest.raises(InvalidInput) as e:
        porcelain.import_(repo, None, str(f), create_labels=True)
    msg = str(e.value)
    assert msg.startswith(str(f)) and "image 'a.png' (id 3) shape 1" in msg and problem in msg
    assert repo.working() == before


def test_video_tracks_are_refused(tmp_path: Path) -> None:
    f = tmp_path / "video.xml"
    f.write_text('<annotations><version>1.1</version><track id="0" label="car"></track></annotations>')
    repo = repo_for(tmp_path / "r", ["a.png"])
    with pytest.raises(InvalidInput, match="CVAT for video"):
        porcelain.import_(repo, "a.png", str(f))
