"""Faults and misuse through the real CLI and a real daemon: terminal escapes in a run's
output, `daemon stop` with a stuck store, a rolled-back database, and who may prune."""

from __future__ import annotations

import json
import os
import pty
import select
import shutil
import sqlite3
import subprocess
import time
from pathlib import Path

import pytest

from tests.conftest import BIN, Daemon, needs_bwrap

HOSTILE = r"printf 'plain\ttext\n\033]52;c;c3RvbGVu\007clip\n\033[2J\033[Hmoved\n\033[31mred\033[0m\n'"


def _on_a_terminal(d: Daemon, *args: str) -> bytes:
    """Run the CLI with its stdout on a pseudo-terminal, as a person's shell would."""
    main, sub = pty.openpty()
    env = {k: v for k, v in d.env.items() if k != "NO_COLOR"}  # the colour check needs colour
    proc = subprocess.Popen([str(BIN / "pilothouse"), *args], env=env, stdout=sub,
                            stderr=subprocess.PIPE, stdin=subprocess.DEVNULL)
    os.close(sub)
    out = b""
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        ready, _, _ = select.select([main], [], [], 0.2)
        if ready:
            try:
                chunk = os.read(main, 65536)
            except OSError:
                break
            if not chunk:
                break
            out += chunk
        elif proc.poll() is not None:
            break
    proc.wait(10)
    os.close(main)
    return out


@needs_bwrap
def test_logs_never_pass_terminal_control_sequences(daemon: Daemon, workspace: Path) -> None:
    run = json.loads(daemon.cli("run", "demo", "-w", str(workspace), "--json", "--wait", "--",
                                "sh", "-c", HOSTILE).stdout)
    shown = _on_a_terminal(daemon, "logs", run["id"])
    assert b"plain\ttext" in shown and b"clip" in shown and b"moved" in shown
    assert b"\x1b]52" not in shown, shown
    assert b"\x1b[2J" not in shown and b"\x1b[H" not in shown, shown
    assert b"\x07" not in shown
    assert b"\x1b[31mred\x1b[0m" in shown, "colour (SGR) stays"
    piped = daemon.cli("logs", run["id"]).stdout
    assert "\x1b" not in piped and "red" in piped, "a pipe gets plain text unless --raw"
    raw = subprocess.run([str(BIN / "pilothouse"), "logs", "--raw", run["id"]], env=daemon.env,
                         capture_output=True, timeout=30).stdout
    assert b"\x1b]52;c;c3RvbGVu\x07clip" in raw, "--raw gives the bytes as they came"


def test_daemon_stop_works_while_the_store_is_stuck(daemon: Daemon) -> None:
    assert daemon.proc is not None
    blocker = sqlite3.connect(daemon.home / "data" / "pilothouse.db", isolation_level=None)
    blocker.execute("BEGIN EXCLUSIVE")
    try:
        r = daemon.cli("daemon", "stop", check=False, timeout=60)
        assert r.returncode == 0, r.stderr
        daemon.proc.wait(30)
    finally:
        blocker.execute("ROLLBACK")
        blocker.close()


def test_audit_verify_reports_a_rolled_back_database(home: Path,
                                                     daemon_env: dict[str, str]) -> None:
    d = Daemon(home, daemon_env)
    d.start()
    d.stop()
    db = home / "data" / "pilothouse.db"
    shutil.copy(db, home / "old.db")
    d.start()
    d.cli("prune", "--older-than", "30d")  # a few more security events
    d.stop()
    shutil.copy(home / "old.db", db)
    for suffix in ("-wal", "-shm"):
        Path(f"{db}{suffix}").unlink(missing_ok=True)
    d.start()
    try:
        r = d.cli("audit", "verify", "--json", check=False)
        result = json.loads(r.stdout)
        assert r.returncode == 1 and not result["ok"], result
        assert "rolled back" in result["reason"] or "witness" in result["reason"]
    finally:
        d.stop()


@pytest.mark.skipif(os.getuid() != 0, reason="creating users needs root")
def test_prune_is_an_operators_act_confirmed_and_recorded(home: Path,
                                                          daemon_env: dict[str, str]) -> None:
    from tests.core.test_team import APPROVER, GROUP, _ensure_users, _open_parents, as_user

    _ensure_users()
    (home / "config.toml").write_text(f'[team]\ngroup = "{GROUP}"\napprovers = ["{APPROVER}"]\n')
    _open_parents(home / "run")
    d = Daemon(home, daemon_env)
    d.start()
    try:
        refused = as_user(APPROVER, d, "prune", "--older-than", "1s", "--yes")
        assert refused.returncode != 0 and "prune" in refused.stderr, refused
        unconfirmed = d.cli("prune", "--older-than", "1s", check=False)
        assert unconfirmed.returncode != 0 and "--yes" in unconfirmed.stderr
        time.sleep(1.1)
        done = json.loads(d.cli("prune", "--older-than", "1s", "--yes", "--json").stdout)
        assert done["pruned"] >= 1
        pruned = json.loads(d.cli("history", "--kind", "store.prune", "--json").stdout)
        assert pruned[-1]["actor"] == "root" and pruned[-1]["data"]["by"] == "root"
        verify = d.cli("audit", "verify")
        assert "anchor" in verify.stdout, verify.stdout
    finally:
        d.stop()

