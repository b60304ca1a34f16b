"""Session 19: the CLI hands back what it borrowed from its parent."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

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


@pytest.mark.parametrize("words", [["ps", "--json"], ["daemon"], ["history"], ["doctor"]])
@pytest.mark.parametrize("variable", ["PILOTHOUSE_HOME", "PILOTHOUSE_CONFIG"])
def test_a_relative_home_or_config_is_refused_with_what_to_do(
        tmp_path: Path, words: list[str], variable: str) -> None:
    """Each folder resolved a relative PILOTHOUSE_HOME to a home of its own: a command run in
    another folder found no daemon there and started a second one, with a history of its own."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PILOTHOUSE_")}
    env.update({"PILOTHOUSE_HOME": str(tmp_path / "home"), variable: "ph-state"})
    proc = subprocess.run([str(BIN / "pilothouse"), *words], env=env, cwd=tmp_path,
                          capture_output=True, text=True, timeout=60, check=False)
    assert proc.returncode == 2, proc
    assert f"{variable}='ph-state' is a relative path" in proc.stderr, proc.stderr
    assert f"'{tmp_path}/ph-state'" in proc.stderr and "Traceback" not in proc.stderr, proc.stderr
    assert not (tmp_path / "ph-state").exists() and not (tmp_path / "home").exists()


def test_a_home_under_tilde_is_taken(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PILOTHOUSE_")}
    env.update({"HOME": str(tmp_path), "PILOTHOUSE_HOME": "~/ph"})
    proc = subprocess.run([str(BIN / "pilothouse"), "daemon", "stop"], env=env, cwd="/",
                          capture_output=True, text=True, timeout=60, check=False)
    assert proc.returncode == 0 and "not running" in proc.stdout, proc


def test_history_says_where_it_cut_an_events_text(daemon: Daemon, workspace: Path) -> None:
    """The table cut TEXT at 70 characters with no mark: a command's end was not there, and
    nothing said so (the review's rule: every cut is marked)."""
    tail = "&& echo THE-END-OF-IT"
    daemon.cli("run", "demo", "-w", str(workspace), "--wait", "--", "sh", "-c",
               "true " + "x" * 100 + " " + tail, check=False)
    table = daemon.cli("history").stdout
    started = next(line for line in table.splitlines() if "run.started" in line)
    assert "THE-END-OF-IT" not in started and "more⟩" in started, started
    rows = json.loads(daemon.cli("history", "--json").stdout)
    assert any(tail in (r.get("text") or "") for r in rows if r["kind"] == "run.started"), rows
