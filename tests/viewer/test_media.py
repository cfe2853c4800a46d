"""Media attached to an annotation (exact media add) play in the viewer's selection panel (real Chromium),
served from the repository's content-addressed artefact store."""

from __future__ import annotations

import math
import struct
import wave
from pathlib import Path

from .conftest import Site, Tab


def _wav(path: Path, seconds: float = 3.0, rate: int = 8000) -> None:
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(b"".join(struct.pack("<h", int(8000 * math.sin(2 * math.pi * 440 * i / rate)))
                               for i in range(int(seconds * rate))))


def test_attached_audio_plays(tab: Tab, site: Site, tmp_path: Path) -> None:
    f = tmp_path / "whale.wav"
    _wav(f)
    _label, _geom, aid = site.known[1]
    out = site.exact("media", "add", "cmu", aid, str(f))
    assert "attached whale.wav (audio/" in out
    site.exact("commit", "-m", "a recording of the call")
    tab.sign_in("ada")
    page = tab.open_slide()
    page.evaluate("(id) => window.exact.editor.select([id])", aid)
    page.wait_for_selector("#selection-info audio", timeout=20000)
    playing = page.evaluate("""() => new Promise((ok, no) => {
        const a = document.querySelector('#selection-info audio');
        a.muted = true;  // muted media may start without a user gesture
        // once playing, the clock advances (polled: a loaded machine may take a while to render audio)
        a.addEventListener('playing', () => {
            const t0 = Date.now();
            const poll = () => (a.currentTime > 0 || Date.now() - t0 > 10000)
                ? ok({paused: a.paused, t: a.currentTime, d: a.duration}) : setTimeout(poll, 100);
            poll();
        }, {once: true});
        a.addEventListener('error', () => no(new Error('media error ' + (a.error && a.error.code))), {once: true});
        a.play().catch(no);
        setTimeout(() => no(new Error('not playing within 25 s')), 25000);
    })""")
    assert playing["paused"] is False and playing["t"] > 0 and abs(playing["d"] - 3.0) < 0.1, playing
    assert not tab.errors, tab.errors


def test_uploaded_audio_plays(tab: Tab, site: Site, tmp_path: Path) -> None:
    """The viewer's upload: file input -> streamed upload route -> one commit on the user's branch -> it plays."""
    f = tmp_path / "call.wav"
    _wav(f, seconds=2.0)
    _label, _geom, aid = site.known[2]
    tab.sign_in("ben")
    page = tab.open_slide()
    page.evaluate("(id) => window.exact.editor.select([id])", aid)
    page.wait_for_selector("#media-upload", timeout=20000)
    page.set_input_files("#media-upload", str(f))
    page.wait_for_selector("#selection-info audio", timeout=20000)
    branch = "users/ben/edits"
    refs = site.api("GET", "/api/v1/repos/cells/refs", token=site.tokens["ben"])["refs"]
    tip = refs[f"heads/{branch}"]
    c = site.api("GET", f"/api/v1/repos/cells/commits/{tip}", token=site.tokens["ben"])
    assert c["parents"] == [refs["heads/main"]]  # one commit on ben's branch
    ann = site.api("GET", f"/api/v1/repos/cells/images/cmu/annotations?rev={branch}&limit=50",
                   token=site.tokens["ben"])["annotations"]
    (media,) = next(a for a in ann if a["id"] == aid)["properties"]["media"]
    assert media["name"] == "call.wav" and media["type"].startswith("audio/") and media["size"] == f.stat().st_size
    playing = page.evaluate("""() => new Promise((ok, no) => {
        const a = document.querySelector('#selection-info audio');
        a.muted = true;
        a.addEventListener('playing', () => setTimeout(() => ok({paused: a.paused, t: a.currentTime,
            d: a.duration}), 300), {once: true});
        a.addEventListener('error', () => no(new Error('media error ' + (a.error && a.error.code))), {once: true});
        a.play().catch(no);
        setTimeout(() => no(new Error('not playing within 15 s')), 15000);
    })""")
    assert playing["paused"] is False and playing["t"] > 0 and abs(playing["d"] - 2.0) < 0.1, playing
    assert not tab.errors, tab.errors
