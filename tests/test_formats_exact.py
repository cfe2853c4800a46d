"""EXACT's text export and label-upload format: the real exports, traps, round trips."""

from __future__ import annotations

from pathlib import Path

import pytest

from exactvc import geometry, porcelain
from exactvc.errors import InvalidInput
from exactvc.formats.registry import detect

from .formats_util import differences, export_bytes, repo_for, repo_with_images_of, round_trip, sample, state

GT = sample("exact/results_exact_study_EIPH_GT_changed.txt")
PARTICIPANT = sample("exact/results_exact_study_EIPH_Participant_11_export.txt")
MITOSEN = sample("exact/results_exact_study_Mitosen_FakeMitoticFigures_G0.txt")


@pytest.mark.parametrize("path", [GT, PARTICIPANT, MITOSEN], ids=lambda p: p.name)
def test_sample_imports_and_round_trips(tmp_path: Path, path: Path) -> None:
    assert detect(path) == "exact"
    repo = repo_with_images_of(tmp_path / "r", "exact", path)
    res = porcelain.import_(repo, None, str(path), create_labels=True)
    rows = [ln for ln in path.read_text().splitlines() if ln.strip() and not ln.startswith("[")]
    assert res["features"] + sum(v for k, v in res["skipped"].items() if k != "view-log lines") == len(rows)
    before = state(repo)
    again = porcelain.import_(repo, None, str(path))
    assert again["added"] == 0  # UUIDs kept (or, when empty, ids derived from the row)
    r2, data = round_trip(tmp_path, repo, "exact", ".txt")
    # editors and times are not in the upload format: the rest survives
    def upload(s: dict) -> dict:
        return {k: {i: (*a[:3], {x: y for x, y in (a[3].get("exact") or {}).items()
                                 if x in ("flags", "unclipped")}, a[4]) for i, a in v.items()} for k, v in s.items()}
    assert differences(upload(state(r2)), upload(before)) == []
    assert export_bytes(r2, "exact") == data


def test_quoted_numbers_trailing_comma_digit_types_and_editors(tmp_path: Path) -> None:
    repo = repo_with_images_of(tmp_path / "r", "exact", GT)
    porcelain.import_(repo, None, str(GT), create_labels=True)
    anns = state(repo)["04_EIPH_567017 Turnbull blue-001.png"]
    a = anns["8612d5e1-cfa3-4cba-9185-3fef73606b49"]
    assert a[0] == "2" and a[1] == "box" and geometry.bounds("box", a[2]) == (243, 147, 256, 175)
    assert a[3]["exact"] == {"first_editor": "marzahl", "first_time": "2020-01-11 15:55:06.370021",
                             "last_editor": "marzahl", "last_time": "2020-01-12 10:28:31.630570"}
    res = porcelain.import_(repo_with_images_of(tmp_path / "p", "exact", PARTICIPANT), None, str(PARTICIPANT),
                            create_labels=True)
    assert res["skipped"]["view-log lines"] == 58


def test_label_upload_lines_flags_frames_not_in_image(tmp_path: Path) -> None:
    f = tmp_path / "up.txt"
    f.write_text("a.png|cell|{\"x1\": 10, \"y1\": 20, \"x2\": 30, \"y2\": 40}|b|2b0e8c1e-7f9a-4c4e-9a4c-9d8f9e1b2c3d\n"
                 "a.png|dot|{\"x1\": 5, \"y1\": 6, \"frame\": 3}||\n"
                 "a.png|poly|{\"x1\": 0, \"y1\": 0, \"x2\": 10, \"y2\": 0, \"x3\": 10, \"y3\": 10}|bc|\n"
                 "a.png|cell|not in image||\n\n")
    repo = repo_for(tmp_path / "r", ["a.png"], 100, 100)
    res = porcelain.import_(repo, None, str(f), create_labels=True)
    assert res["features"] == 3 and res["skipped"] == {"not-in-image rows": 1}
    anns = {a[0]: a for a in state(repo)["a.png"].values()}
    assert anns["cell"][3] == {"exact": {"flags": "b"}}
    assert anns["dot"][1] == "point" and anns["dot"][4] == (2, 0)  # frame 3 is plane z 2
    assert anns["poly"][1] == "polygon"
    out = export_bytes(repo, "exact").decode()
    assert 'a.png|cell|{"x1": 10, "y1": 20, "x2": 30, "y2": 40}|b|2b0e8c1e-7f9a-4c4e-9a4c-9d8f9e1b2c3d' in out
    assert '"frame": 3}' in out
    r2, _ = round_trip(tmp_path, repo, "exact", ".txt")
    assert differences(state(r2), state(repo)) == []


@pytest.mark.parametrize(("line", "problem"), [
    ('a.png|x|{"x1": 1, "y1": }||', "is not JSON"),
    ('a.png|x|{"x1": 1, "y1": 2, "x3": 4, "y3": 5}||', "lacks x2 or y2"),
    ('a.png|x|{"x1": 1, "y1": 2}|z|', "flags 'z'"),
    ('a.png|x', "2 '|'-separated fields"),
    ('a.png|x|{"x1": 1, "y1": 2, "frame": 0}||', "frame 0"),
])
def test_problems_are_named_and_change_nothing(tmp_path: Path, line: str, problem: str) -> None:
    f = tmp_path / "bad.txt"
    f.write_text('a.png|ok|{"x1": 1, "y1": 1}||\n' + line + "\n")
    repo = repo_for(tmp_path / "r", ["a.png"], 100, 100)
    before = repo.working()
    with pytest.raises(InvalidInput) as e:
        porcelain.import_(repo, None, str(f), create_labels=True)
    assert str(e.value).startswith(f"{f}: line 2") and problem in str(e.value)
    assert repo.working() == before
