"""Browser tests of the web viewer: one real ``exact serve`` subprocess per module (a fresh server root
with the repository ``cells`` on the real CMU slide) and one headless Chromium for the session.

Chromium is Debian's (/usr/bin/chromium, `make test` installs it), driven by Python Playwright; WebGL2
comes from SwiftShader. Every test gets its own browser context (cookies, localStorage).
"""

from __future__ import annotations

import io
import json
import os
import queue
import re
import subprocess
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from exactvc.access import AccessStore
from exactvc.repo import Repository

from ..server_fixtures import AUTHOR, NO_CONFIG, request

PROJECT = Path(__file__).resolve().parents[2]
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--use-angle=swiftshader", "--enable-unsafe-swiftshader",
                 "--disable-background-networking", "--disable-component-update"]
VIEWPORT = {"width": 1280, "height": 860}


def real_slide() -> Path:
    """The CMU slide from shared/data, found beside the repository or beside its worktree folder."""
    for base in (PROJECT.parent, PROJECT.parent.parent):
        p = base / "shared" / "data" / "cmu_small_region.svs"
        if p.is_file():
            return p
    pytest.skip("shared/data/cmu_small_region.svs not found")


# The repository every module starts from: labels of every shape, a few annotations at known places.
LABELS = [
    # name, shape, colour, key, default size, order
    ("tumor", "polygon", "#ff0000", "t", (60, 40), 1),
    ("mitosis", "point", "#00ff00", "m", (30, 30), 2),
    ("region", "box", "#0000ff", "r", (200, 100), 3),
    ("nucleus", "ellipse", "#ff00ff", "n", (50, 30), 4),
    ("fiber", "line", "#00ffff", "f", None, 5),
    ("cell", "polygon", "#ffff00", "c", (40, 40), 6),
    ("apoptosis", "point", "#ff8800", "a", (20, 20), 7),
]
KNOWN = [  # label, geometry
    ("tumor", {"type": "Polygon", "coordinates": [[[300, 300], [700, 300], [700, 600], [300, 600], [300, 300]]]}),
    ("mitosis", {"type": "Point", "coordinates": [1500, 800]}),
    ("region", {"type": "Polygon", "coordinates": [[[1000, 1500], [1600, 1500], [1600, 2000], [1000, 2000],
                                                    [1000, 1500]]]}),
    ("cell", {"type": "Polygon", "coordinates": [[[400, 2200], [500, 2200], [500, 2300], [400, 2300],
                                                  [400, 2200]]]}),
]
IMAGE = "cmu"


@dataclass
class Site:
    url: str
    root: Path
    tokens: dict[str, str]
    passwords: dict[str, str]
    known: list[tuple[str, dict[str, Any], str]] = field(default_factory=list)  # label, geometry, id
    proc: subprocess.Popen[bytes] | None = None

    @property
    def repo_path(self) -> Path:
        return self.root / "cells"

    def repo(self) -> Repository:
        return Repository.open(self.repo_path, search_parents=False)

    def api(self, method: str, path: str, body: Any = None, token: str | None = None) -> Any:
        r = request(method, self.url + path, body, token=token)
        assert r.status < 300, (r.status, r.body[:500])
        return r.json()

    def exact(self, *args: str) -> str:
        env = {**os.environ, "EXACT_CONFIG_DIR": str(NO_CONFIG), "EXACT_AUTHOR": AUTHOR}
        env.pop("EXACT_TOKEN", None)
        r = subprocess.run([sys.executable, "-m", "exactvc.cli", "-C", str(self.repo_path), *args],
                           capture_output=True, text=True, env=env, timeout=120)
        assert r.returncode == 0, r.stderr
        return r.stdout


def build_root(root: Path) -> Site:
    slides = root.parent / (root.name + "-slides")
    slides.mkdir(parents=True)
    (slides / "cmu.svs").symlink_to(real_slide())
    repo = Repository.init(root / "cells")
    repo.add_image(slides / "cmu.svs", name=IMAGE)
    for name, shape, color, key, size, order in LABELS:
        repo.add_label(name, shape=shape, color=color, key=key, size=size, order=order)
    known = []
    with repo.edit(IMAGE) as ed:
        for label, geom in KNOWN:
            known.append((label, geom, ed.add(label, geom)))
    repo.commit("Seed: labels and four annotations", author=AUTHOR)
    acc = AccessStore(root)
    tokens, passwords = {}, {}
    for name, role in (("ada", "annotate"), ("ben", "annotate"), ("rita", "read")):
        tokens[name] = acc.add_user(name)
        acc.grant("cells", name, role)
        set_password = getattr(acc, "set_password", None)
        if set_password is not None:
            passwords[name] = f"pw-{name}-correct-horse"
            set_password(name, passwords[name])
    return Site("", root, tokens, passwords, known)


def start_server(site: Site, slides: Path, log: Path, *extra: str) -> None:
    env = {**os.environ, "EXACT_CONFIG_DIR": str(NO_CONFIG)}
    env.pop("EXACT_TOKEN", None)
    site.proc = subprocess.Popen(
        [sys.executable, "-m", "exactvc.cli", "serve", str(site.root), "--port", "0", "--slides", str(slides), *extra],
        stdout=subprocess.PIPE, stderr=open(log, "wb"), env=env)  # noqa: SIM115 - the child owns it
    lines: queue.Queue[bytes] = queue.Queue()

    def drain() -> None:
        assert site.proc is not None and site.proc.stdout is not None
        for line in site.proc.stdout:
            lines.put(line)
        lines.put(b"")

    threading.Thread(target=drain, daemon=True).start()
    try:
        first = lines.get(timeout=120).decode()
    except queue.Empty:
        site.proc.kill()
        raise AssertionError("exact serve did not start within 120 s") from None
    m = re.search(r"listening on (http://127\.0\.0\.1:\d+)/", first)
    assert m, f"unexpected first line of exact serve: {first!r}\n{log.read_text()}"
    site.url = m.group(1)


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    base = tmp_path_factory.mktemp("viewer")
    s = build_root(base / "root")
    start_server(s, base / "root-slides", base / "server.log")
    try:
        yield s
    finally:
        assert s.proc is not None
        s.proc.terminate()
        try:
            s.proc.wait(10)
        except subprocess.TimeoutExpired:
            s.proc.kill()
            s.proc.wait(10)


@pytest.fixture(scope="session")
def browser() -> Iterator[Any]:
    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} is missing: `make test` installs it (apt-get install chromium)")
    if not (PROJECT / "viewer" / "dist" / "slide.js").is_file():
        pytest.fail("the viewer is not built: `make test` builds it (npm ci + node build.mjs in viewer/)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        try:
            yield b
        finally:
            b.close()


class Tab:
    """One page with its console errors collected (a test fails on any uncaught page error)."""

    def __init__(self, page: Any, site: Site) -> None:
        self.page = page
        self.site = site
        self.errors: list[str] = []
        page.on("pageerror", lambda e: self.errors.append(str(e)))
        page.on("console", self._console)

    def _console(self, m: Any) -> None:
        # refused requests (401 of the session check, 409 of a conflicting save) are expected; CSP
        # violations and uncaught errors are not
        if m.type == "error" and not m.text.startswith("Failed to load resource"):
            self.errors.append(m.text)

    def open_slide(self, query: str = "", image: str = IMAGE) -> Any:
        self.page.goto(f"{self.site.url}/cells/slide/{image}{query}")
        self.page.wait_for_function("() => document.body.dataset.ready === '1'", timeout=60000)
        err = self.page.locator("#page-error")
        assert err.count() == 0, f"the slide page failed: {err.inner_text()} {self.errors}"
        self.idle()
        return self.page

    def idle(self) -> None:
        self.page.evaluate("""() => Promise.race([window.exact.whenIdle(),
            new Promise((_, no) => setTimeout(() => no(new Error('whenIdle: not idle within 30 s')), 30000))])""")

    def to_screen(self, x: float, y: float) -> tuple[float, float]:
        """Page coordinates of image point (x, y)."""
        sx, sy = self.page.evaluate(
            """([x, y]) => { const v = window.exact.viewer;
                 const p = v.viewport.viewportToViewerElementCoordinates(v.viewport.imageToViewportCoordinates(x, y));
                 const r = v.element.getBoundingClientRect(); return [p.x + r.left, p.y + r.top]; }""", [x, y])
        return float(sx), float(sy)

    def click(self, x: float, y: float, modifiers: str = "") -> None:
        """Click image point (x, y) (``modifiers``: "Shift", "Alt")."""
        sx, sy = self.to_screen(x, y)
        if modifiers:
            self.page.keyboard.down(modifiers)
        self.page.mouse.click(sx, sy)
        if modifiers:
            self.page.keyboard.up(modifiers)
        self.page.wait_for_timeout(60)
        self.settled()

    def settled(self) -> None:
        """Wait until the editor has handled every pointer action so far (picking is asynchronous)."""
        self.page.evaluate("() => window.exact && window.exact.editor && window.exact.editor.settled()")

    def drag(self, points: list[tuple[float, float]], steps: int = 4) -> None:
        """Press at the first image point, move through the others, release at the last."""
        sx, sy = self.to_screen(*points[0])
        self.page.mouse.move(sx, sy)
        self.page.mouse.down()
        for x, y in points[1:]:
            tx, ty = self.to_screen(x, y)
            self.page.mouse.move(tx, ty, steps=steps)
        self.page.mouse.up()
        self.page.wait_for_timeout(80)
        self.settled()

    def key(self, k: str) -> None:
        self.page.keyboard.press(k)
        self.page.wait_for_timeout(40)

    def pending(self) -> dict[str, Any]:
        """The body the next save would send (create / update / delete)."""
        return dict(self.page.evaluate("() => window.exact.editor.state.body()"))

    def save(self, message: str) -> Any:
        self.page.fill("#commit-message", message)
        return self.page.evaluate("() => window.exact.editor.save()")

    def pixels(self) -> Any:
        from PIL import Image

        return Image.open(io.BytesIO(self.page.screenshot())).convert("RGB")

    def sign_in(self, user: str) -> None:
        """Sign in through the sign-in page with the user's password (or token where no passwords exist)."""
        self.page.goto(f"{self.site.url}/-/signin")
        self.page.wait_for_function("() => document.body.dataset.ready === '1'")
        if user in self.site.passwords:
            self.page.fill("#user", user)
            self.page.fill("#password", self.site.passwords[user])
            self.page.click("#signin-submit")
        else:
            self.page.fill("#token", self.site.tokens[user])
            self.page.click("#token-submit")
        self.page.wait_for_url(f"{self.site.url}/")
        self.page.wait_for_function("() => document.body.dataset.ready === '1'")


@pytest.fixture
def tab(browser: Any, site: Site) -> Iterator[Tab]:
    ctx = browser.new_context(viewport=VIEWPORT)
    t = Tab(ctx.new_page(), site)
    try:
        yield t
    finally:
        ctx.close()


@pytest.fixture
def new_tab(browser: Any, site: Site) -> Iterator[Any]:
    """A factory of further tabs (several in one context share cookies and localStorage)."""
    ctxs: list[Any] = []

    def make(context: Any = None) -> Tab:
        if context is None:
            context = browser.new_context(viewport=VIEWPORT)
            ctxs.append(context)
        return Tab(context.new_page(), site)

    yield make
    for c in ctxs:
        c.close()


def near_color(img: Any, x: float, y: float, rgb: tuple[int, int, int], radius: int = 3, tol: int = 60) -> bool:
    """Is there a pixel within ``radius`` of (x, y) whose colour is within ``tol`` of ``rgb`` (per channel)?"""
    for dx in range(-radius, radius + 1):
        for dy in range(-radius, radius + 1):
            px = img.getpixel((int(round(x)) + dx, int(round(y)) + dy))
            if all(abs(a - b) <= tol for a, b in zip(px, rgb, strict=True)):
                return True
    return False


def hex_rgb(color: str) -> tuple[int, int, int]:
    return int(color[1:3], 16), int(color[3:5], 16), int(color[5:7], 16)


def to_json(x: Any) -> str:
    return json.dumps(x)
