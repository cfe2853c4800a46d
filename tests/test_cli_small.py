"""Smaller CLI promises: -C, export file modes, CSV import, no `None` in output, log messages, usage errors,
`image add --name` on an image already recorded. Every command is a real `exact` subprocess."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

from exactvc.repo import Repository
from exactvc.testing.slides import make_plain_image

from .conftest import run_exact, square


def test_dash_c_acts_as_if_started_there(repo: Repository, tmp_path: Path) -> None:
    with repo.edit("img") as ed:
        ed.add("cell", square(10, 10))
    repo.commit("one")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    r = run_exact("-C", "../repo", "export", "-o", "out.geojson", cwd=elsewhere)
    assert r.returncode == 0, r.stderr
    assert (tmp_path / "repo" / "out.geojson").is_file() and not (elsewhere / "out.geojson").exists()
    r = run_exact("-C", str(repo.path), "import", "out.geojson", "--image", "img")  # an input file there too
    assert r.returncode == 0 and "Imported 1 features" in r.stdout, r.stderr
    r = run_exact("-C", str(tmp_path / "missing"), "status")
    assert r.returncode == 4 and r.stderr == f"error: -C {tmp_path / 'missing'}: no such folder\n"


def test_export_follows_the_umask(repo: Repository, tmp_path: Path) -> None:
    repo.commit("labels and image")
    old = os.umask(0o022)
    try:
        r = run_exact("-C", str(repo.path), "export", "-o", str(tmp_path / "a.geojson"))
    finally:
        os.umask(old)
    assert r.returncode == 0, r.stderr
    assert stat.S_IMODE((tmp_path / "a.geojson").stat().st_mode) == 0o644


def test_csv_import_is_named(repo: Repository, tmp_path: Path) -> None:
    repo.commit("labels and image")
    d = str(repo.path)
    r = run_exact("-C", d, "export", "--format", "csv", "-o", str(tmp_path / "a.csv"))
    assert r.returncode == 0, r.stderr
    for name in ("a.csv", "b.txt"):
        (tmp_path / name).write_text("image,id,label,wkt\nimg,x,cell,POINT (1 2)\n")
        r = run_exact("-C", d, "import", str(tmp_path / name), "--image", "img")
        assert r.returncode == 5 and "CSV import is not supported" in r.stderr, r.stderr


def test_no_none_in_output(tmp_path: Path) -> None:
    d = tmp_path / "r"
    assert run_exact("init", str(d)).returncode == 0
    r = run_exact("-C", str(d), "config", "user")
    assert r.returncode == 1 and r.stderr == "error: user is not set\n" and "None" not in r.stdout
    assert json.loads(run_exact("-C", str(d), "config", "user", "--json").stdout) == {"exactvc.config/v1":
                                                                                     {"user": None}}
    r = run_exact("-C", str(d), "gc")
    assert r.returncode == 0 and "None" not in r.stdout + r.stderr, r.stdout


def test_log_messages(repo: Repository) -> None:
    with repo.edit("img") as ed:
        ed.add("cell", square(10, 10))
    c = repo.commit("one")
    d = str(repo.path)
    r = run_exact("-C", d, "log", "-n", "0")
    assert r.returncode == 0 and r.stdout == ""
    r = run_exact("-C", d, "log", "--", "img", "--json")
    assert r.returncode == 0, r.stderr
    assert [e["id"] for e in json.loads(r.stdout)["exactvc.log/v1"]] == [c]
    r = run_exact("-C", d, "log", "HEAD", "--", "img")
    assert r.returncode == 0 and c in r.stdout
    r = run_exact("-C", d, "log", "--", "nosuch")
    assert r.returncode == 4 and "nosuch" in r.stderr and "revision" not in r.stderr, r.stderr


def test_usage_errors_are_one_line(repo: Repository) -> None:
    d = str(repo.path)
    for args in (["log", "--bogus"], ["frobnicate"], ["log", "-n", "many"], ["merge", "--duplicates", "x"]):
        r = run_exact("-C", d, *args)
        assert r.returncode == 2, (args, r.stderr)
        assert r.stderr.startswith("error: ") and r.stderr.count("\n") == 1, (args, r.stderr)
    assert run_exact("--help").returncode == 0


def test_image_add_name_on_a_recorded_image(repo: Repository, tmp_path: Path) -> None:
    f = make_plain_image(tmp_path / "slide.png", 64, 48)
    d = str(repo.path)
    r = run_exact("-C", d, "image", "add", str(f), "--name", "first")
    assert r.returncode == 0 and "Added image first" in r.stdout, r.stderr
    r = run_exact("-C", d, "image", "add", str(f), "--name", "second", "--json")
    res = json.loads(r.stdout)["exactvc.image/v1"]
    assert res["linked"] is True and res["name"] == "first" and res["name_not_used"] == "second"
    r = run_exact("-C", d, "image", "add", str(f), "--name", "second")
    assert "Linked existing image first" in r.stdout and "'first'" in r.stderr and "second" in r.stderr
    assert [x["name"] for x in json.loads(run_exact("-C", d, "image", "ls", "--json").stdout)["exactvc.images/v1"]
            ] == ["first", "img"]
