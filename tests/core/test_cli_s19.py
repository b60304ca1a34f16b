"""Session 19: the CLI hands back what it borrowed from its parent."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from tests.conftest import BIN, Daemon


@pytest.mark.parametrize("program", [[str(BIN / "pilothouse")], [sys.executable, "-m", "console"]])
@pytest.mark.parametrize("words", [["--version"], ["ps", "--json"], ["nope"]])
def test_a_non_blocking_output_is_non_blocking_again_after_the_cli(
        daemon: Daemon, program: list[str], words: list[str]) -> None:
    """The flag is on the pipe the parent shares: node (Claude Code, Codex) keeps its pipes
    non-blocking, and the CLI left them blocking for the parent after it ended."""
    read, write = os.pipe()
    os.set_blocking(write, False)
    try:
        proc = subprocess.run([*program, *words], env=daemon.env, stdout=write, stderr=write,
                              timeout=60, check=False)
        assert proc.returncode == (2 if words == ["nope"] else 0), proc
        assert not os.get_blocking(write), "the parent's pipe was left blocking"
        assert os.read(read, 1 << 16)  # the output itself arrived
    finally:
        os.close(read)
        os.close(write)
