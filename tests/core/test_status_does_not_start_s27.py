"""`pilothouse status` answers "is the daemon up" (s26 CLI sweep, left over): it started a
daemon when none ran, so its answer was always yes, and a person who only looked had started
one. It now says the daemon is not running, with the LSB status of a stopped service (3), and
starts nothing; --json says the same to a script."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

CLI = [sys.executable, "-m", "console.cli.main"]


def _cli(home: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PILOTHOUSE_", "XDG_"))}
    env["PILOTHOUSE_HOME"] = str(home)
    return subprocess.run([*CLI, *args], env=env, capture_output=True, text=True, timeout=60)


def _no_daemon_started(home: Path) -> None:
    socks = list(home.rglob("*.sock")) if home.exists() else []
    assert socks == [], f"status started a daemon: {socks}"


def test_status_with_no_daemon_says_so_and_starts_none(tmp_path: Path) -> None:
    home = tmp_path / "home"
    done = _cli(home, "status")
    try:
        assert done.returncode == 3, (done.returncode, done.stdout, done.stderr)
        assert "the daemon is not running" in done.stdout, done.stdout
        assert "Traceback" not in done.stderr
        _no_daemon_started(home)
        done = _cli(home, "status", "--json")
        assert done.returncode == 3, (done.returncode, done.stdout, done.stderr)
        assert json.loads(done.stdout) == {"running": False}
        _no_daemon_started(home)
    finally:
        _cli(home, "daemon", "stop")


def test_status_of_a_running_daemon_says_running(tmp_path: Path) -> None:
    home = tmp_path / "home"
    try:
        assert _cli(home, "ps").returncode == 0  # any other command starts one
        done = _cli(home, "status", "--json")
        assert done.returncode == 0, done.stderr
        info = json.loads(done.stdout)
        assert info["running"] is True and isinstance(info["pid"], int)
        done = _cli(home, "status")
        assert done.returncode == 0 and f"pid {info['pid']}" in done.stdout, done.stdout
    finally:
        _cli(home, "daemon", "stop")
