"""`pilothouse doctor` at 80 columns (s26 CLI sweep, left over): a finding was one line of up
to 347 characters, which a terminal over SSH wraps at its edge, under the status column. Each
finding is now folded to the terminal's width, its later lines indented under its text."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

CLI = [sys.executable, "-m", "console.cli.main"]


def test_every_line_of_doctor_fits_the_terminal() -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PILOTHOUSE_", "XDG_"))}
    # A short home: the disk finding names it, and a path is one word, never folded (pytest's
    # tmp_path passed 70 characters once its run counter reached pytest-10, s44).
    home = Path(tempfile.mkdtemp(prefix="phd-", dir="/tmp"))
    env.update(PILOTHOUSE_HOME=str(home / "home"), COLUMNS="80")
    try:
        _check(env)
    finally:
        shutil.rmtree(home, ignore_errors=True)


def _check(env: dict[str, str]) -> None:
    done = subprocess.run([*CLI, "doctor"], env=env, capture_output=True, text=True, timeout=120)
    lines = done.stdout.splitlines()
    assert lines and lines[0].startswith("["), done.stdout
    assert [x for x in lines if len(x) > 80] == [], done.stdout
    for x in lines:  # a finding's status, or a line folded under its text
        assert x.startswith(("[ok     ]", "[warning]", "[error  ]", " " * 10)), x
    wide = subprocess.run([*CLI, "doctor", "--json"], env=env, capture_output=True, text=True,
                          timeout=120)
    assert wide.stdout.lstrip().startswith("["), wide.stdout  # scripts read JSON, not columns
