"""A daemon whose history cannot be opened does not start, and says why in a line (review s17):
it printed a Python traceback into its log, which every CLI command then showed as the reason."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

from tests.conftest import BIN


def test_a_history_that_cannot_be_opened_is_said_in_one_line(tmp_path: Path) -> None:
    home = tmp_path / "home"
    (home / "data" / "pilothouse.db").mkdir(parents=True)  # not a file SQLite can open
    env = {k: v for k, v in os.environ.items() if not k.startswith("PILOTHOUSE_")}
    env["PILOTHOUSE_HOME"] = str(home)
    done = subprocess.run([str(BIN / "pilothouse"), "ps"], env=env, capture_output=True,
                          text=True, timeout=60)
    assert done.returncode == 1, (done.stdout, done.stderr)
    assert "Traceback" not in done.stderr, done.stderr
    assert f"cannot start: the history at {home / 'data' / 'pilothouse.db'}" in done.stderr
    assert "pilothouse doctor" in done.stderr
