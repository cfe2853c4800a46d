"""Media on annotations: `exact media add` stores the file content-addressed (once however often it is
attached), lists it on the annotation, and push / clone carry it (a real server)."""

from __future__ import annotations

from pathlib import Path

from exactvc import artefacts
from exactvc.repo import Repository

from .server_fixtures import ServerProcess, add_squares, exact, make_repo, ok, users


def test_media_add_push_clone(tmp_path: Path) -> None:
    root = tmp_path / "root"
    make_repo(root / "proj", "slide-1", n=0)
    tok = users(root, {"ada": "maintain"}, "proj")
    srv = ServerProcess(root, tmp_path / "s.log")
    try:
        work = tmp_path / "work"
        ok(exact("clone", srv.repo_url("proj"), str(work), token=tok["ada"]))
        repo = Repository.open(work)
        aid = add_squares(repo, "slide-1", 2)[0]
        repo.commit("two cells", author="A <a@x>")
        f = tmp_path / "call.wav"
        f.write_bytes(b"RIFF" + bytes(range(256)) * 600)
        out = ok(exact("-C", str(work), "media", "add", "slide-1", aid, str(f)))
        assert out.startswith("attached call.wav (audio/")
        bad = exact("-C", str(work), "media", "add", "slide-1", aid, str(tmp_path / "nope.wav"))
        assert bad.returncode == 4 and bad.stderr.startswith("error: no file")
        txt = tmp_path / "notes.txt"
        txt.write_text("x")
        bad = exact("-C", str(work), "media", "add", "slide-1", aid, str(txt))
        assert bad.returncode == 5 and "not an audio, video or image file" in bad.stderr
        ok(exact("-C", str(work), "commit", "-m", "the call"))
        ok(exact("-C", str(work), "push", "origin", "main", token=tok["ada"]))
        other = tmp_path / "other"
        ok(exact("clone", srv.repo_url("proj"), str(other), token=tok["ada"]))
        r2 = Repository.open(other)
        ann = next(a for a in r2.annotations("slide-1", "HEAD") if a.id == aid)
        (m,) = ann.properties["media"]
        assert m["name"] == "call.wav" and m["type"].startswith("audio/") and m["size"] == f.stat().st_size
        artefacts.write_file(r2, bytes.fromhex(m["artefact"]), tmp_path / "back.wav")
        assert (tmp_path / "back.wav").read_bytes() == f.read_bytes()
    finally:
        srv.stop()
