"""Running repository hooks (``.exact/hooks/<name>``)."""

from __future__ import annotations

import os
import sys
from pathlib import Path

from .errors import HookFailed


def run_hook(exact_dir: Path | None, name: str, env_extra: dict[str, str] | None = None,
             stdin: bytes = b"") -> None:
    """Run a hook if present; a non-zero exit aborts with the hook's message."""
    if exact_dir is None:
        return
    path = exact_dir / "hooks" / name
    if not path.is_file() or not os.access(path, os.X_OK):
        return
    with open(path, "rb") as f:
        first = f.readline()
    cmd = [str(path)]
    if first.startswith(b"#!") and b"python" in first:
        cmd = [sys.executable, str(path)]  # the interpreter that has exactvc installed
    env = dict(os.environ)
    env["EXACT_DIR"] = str(exact_dir)
    env["EXACT_REPO"] = str(exact_dir.parent)
    env.update(env_extra or {})
    import subprocess  # here: most commands never run a hook

    proc = subprocess.run(cmd, input=stdin, capture_output=True, env=env, cwd=exact_dir.parent, timeout=600)
    if proc.returncode != 0:
        msg = (proc.stderr or proc.stdout).decode("utf-8", "replace").strip().splitlines()
        text = msg[-1] if msg else f"exit code {proc.returncode}"
        raise HookFailed(f"{name} hook refused: {text}")
