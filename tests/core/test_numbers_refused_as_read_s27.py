"""Numbers no answer could use are refused as the command line is read (s26 CLI sweep, left
over): `ps --limit 0` was refused there (exit 2), but `history --limit 0`, `history --before
-3` and `logs --tail -5` started a daemon to be told no (exit 1), or answered "no events
match". The same kind of mistake now gets the same answer everywhere, and asks nobody."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

CLI = [sys.executable, "-m", "console.cli.main"]


@pytest.mark.parametrize("args", [["history", "--limit", "0"], ["history", "--limit", "-5"],
                                  ["history", "--before", "-3"], ["logs", "--tail", "-5", "r1"],
                                  ["ps", "--limit", "0"]])
def test_a_number_out_of_range_is_refused_when_read(tmp_path: Path, args: list[str]) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PILOTHOUSE_", "XDG_"))}
    env["PILOTHOUSE_HOME"] = str(tmp_path / "home")
    done = subprocess.run([*CLI, *args], env=env, capture_output=True, text=True, timeout=60)
    try:
        assert done.returncode == 2, (done.returncode, done.stdout, done.stderr)
        assert "is smaller than the minimum" in done.stderr, done.stderr
        assert not list((tmp_path / "home").rglob("*.sock")), "it started a daemon to ask"
    finally:
        subprocess.run([*CLI, "daemon", "stop"], env=env, capture_output=True, timeout=60)
