"""Docs stay true: the CLI reference matches the commands; the format spec names every object type."""

from __future__ import annotations

from exactvc.clidoc import render
from exactvc.objects import TYPES

from .conftest import ROOT


def test_cli_reference_is_current() -> None:
    assert (ROOT / "docs" / "cli.md").read_text() == render(), "run: python -m exactvc.clidoc > docs/cli.md"


def test_format_spec_covers_every_object_type() -> None:
    text = (ROOT / "docs" / "format.md").read_text()
    for t in TYPES:
        assert f"`{t}`" in text


def test_readme_starts_with_the_two_commands() -> None:
    lines = [ln for ln in (ROOT / "README.md").read_text().splitlines() if ln.strip()]
    block = lines[lines.index("```sh") + 1 : lines.index("```sh") + 3]
    assert block[0].startswith("make demo") and block[1].startswith("make test")


def test_library_imports_without_cli_or_server_stacks() -> None:
    import subprocess
    import sys

    code = "import sys, exactvc; print(','.join(m for m in ('flask','waitress','click','openslide') if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    assert out == ""
