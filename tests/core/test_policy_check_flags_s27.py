"""`policy check` flags that only mean something for a destination (s26 CLI sweep, left over):
`--resolve` and `--exact` on a command were dropped without a word, so a person who asked to
have the name resolved read an answer that had not resolved anything. They are now refused
before anything is asked, with what to do instead."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

CLI = [sys.executable, "-m", "console.cli.main"]


def test_destination_flags_on_a_command_are_refused(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PILOTHOUSE_", "XDG_"))}
    env["PILOTHOUSE_HOME"] = str(tmp_path / "home")
    for flag in ("--resolve", "--exact"):
        done = subprocess.run([*CLI, "policy", "check", flag, "demo", "git", "status"], env=env,
                              capture_output=True, text=True, timeout=60)
        assert done.returncode == 2, (flag, done.returncode, done.stdout, done.stderr)
        assert f"{flag} applies to a destination" in done.stderr, done.stderr
        assert "--host" in done.stderr and "Traceback" not in done.stderr
        assert not list((tmp_path / "home").rglob("*.sock")), "it asked a daemon anyway"
