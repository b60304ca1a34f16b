"""`--config` naming no file (s26 CLI sweep, finding 3).

`pilothouse --config /nonexistent/typo.toml status` started a daemon on the built-in defaults
and exited 0: none of the person's rules were in force, and nothing said so (`policy check`
alone refused). A `--config` that is no file is now refused before anything starts."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

CLI = [sys.executable, "-m", "console.cli.main"]


@pytest.mark.parametrize("command", [["status"], ["ps"], ["profiles", "--json"],
                                     ["policy", "check", "demo", "--", "ls"]])
def test_a_config_that_is_no_file_is_refused_and_nothing_starts(
        tmp_path: Path, command: list[str]) -> None:
    home = tmp_path / "home"
    home.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith("PILOTHOUSE_")}
    env["PILOTHOUSE_HOME"] = str(home)
    for given, said in ((tmp_path / "typo.toml", "no such file"), (tmp_path, "not a file")):
        done = subprocess.run([*CLI, "--config", str(given), *command], env=env,
                              capture_output=True, text=True, timeout=60)
        assert done.returncode == 2, (done.stdout, done.stderr)
        assert f"--config {given}: {said}" in done.stderr, done.stderr
        assert "Traceback" not in done.stderr
        assert not list(home.rglob("*.sock")), "a daemon was started"
