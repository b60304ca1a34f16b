"""`pilothouse demo-workspace PATH` wrote PATH to the terminal as given (s26 CLI sweep,
finding 8): an escape sequence in it reached the terminal (`\\e]0;TITLE\\a` set the window's
title), and the `next:` command it printed broke on a path with a space. The path is now shown
escaped, and quoted in the command."""

from __future__ import annotations

import os
import shlex
import subprocess
import sys
from pathlib import Path

CLI = [sys.executable, "-m", "console.cli.main"]


def test_the_path_reaches_the_terminal_escaped_and_the_command_quoted(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PILOTHOUSE_")}
    env["PILOTHOUSE_HOME"] = str(tmp_path / "home")
    for name in ("two words", "title\x1b]0;OWNED\x07here"):
        target = tmp_path / name
        done = subprocess.run([*CLI, "demo-workspace", str(target)], env=env,
                              capture_output=True, text=True, timeout=60)
        assert done.returncode == 0, done.stderr
        assert (target / ".git").exists() or any(target.iterdir())
        assert "\x1b" not in done.stdout + done.stderr and "\x07" not in done.stderr
        nxt = next(line for line in done.stderr.splitlines() if line.startswith("next:"))
        if "\x1b" not in name:
            words = shlex.split(nxt.removeprefix("next: "))
            assert words[words.index("-w") + 1] == str(target), words
