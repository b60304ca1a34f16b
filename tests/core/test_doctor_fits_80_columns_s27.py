"""`pilothouse doctor` at 80 columns (s26 CLI sweep, left over): a finding was one line of up
to 347 characters, which a terminal over SSH wraps at its edge, under the status column. Each
finding is now folded to the terminal's width, its later lines indented under its text."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

CLI = [sys.executable, "-m", "console.cli.main"]


def test_every_line_of_doctor_fits_the_terminal(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PILOTHOUSE_", "XDG_"))}
    env.update(PILOTHOUSE_HOME=str(tmp_path / "home"), COLUMNS="80")
    done = subprocess.run([*CLI, "doctor"], env=env, capture_output=True, text=True, timeout=120)
    lines = done.stdout.splitlines()
    assert lines and lines[0].startswith("["), done.stdout
    assert [x for x in lines if len(x) > 80] == [], done.stdout
    for x in lines:  # a finding's status, or a line folded under its text
        assert x.startswith(("[ok     ]", "[warning]", "[error  ]", " " * 10)), x
    wide = subprocess.run([*CLI, "doctor", "--json"], env=env, capture_output=True, text=True,
                          timeout=120)
    assert wide.stdout.lstrip().startswith("["), wide.stdout  # scripts read JSON, not columns
