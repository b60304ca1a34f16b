"""A rule-decided ask through a real daemon: its decision row is in the database (read by a
second connection) before the helper's answer arrives, and when the store cannot record, the
helper is refused. The helper runs as itself (python3 -S -E inside.py, as the wrapper runs
it); a relay between it and the run's agent.sock holds the daemon's answer back until the
database has been read."""

from __future__ import annotations

import json
import os
import shutil
import socket
import sqlite3
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from console.paths import resolve
from console.sandbox import inside
from tests.conftest import Daemon

INSIDE = Path(inside.__file__).resolve()
PYTHON = shutil.which("python3") or "python3"


class Relay:
    """A unix socket the helper connects to; each connection is passed on to agent.sock, and
    the answer is held until `check(request)` has looked at the database."""

    def __init__(self, upstream: Path, db: Path) -> None:
        self.dir = Path(tempfile.mkdtemp(prefix="ph-relay-", dir="/tmp"))
        self.path = self.dir / "relay.sock"
        self.upstream, self.db = upstream, db
        self.seen: list[tuple[str, int]] = []  # (subject, decision rows found before answering)
        self.server = socket.socket(socket.AF_UNIX)
        self.server.bind(str(self.path))
        self.server.listen(8)
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.server.accept()
            except OSError:
                return
            with conn, socket.socket(socket.AF_UNIX) as up:
                up.connect(str(self.upstream))
                request = conn.makefile("rb").readline()
                up.sendall(request)
                answer = up.makefile("rb").readline()
                subject = json.loads(request)["args"]["subject"]
                self.seen.append((subject, self.rows_for(subject)))
                conn.sendall(answer)

    def rows_for(self, subject: str) -> int:
        """Decision rows for subject; -1 when the database cannot be read (the answer is still
        passed on, so a test sees what the daemon said)."""
        try:
            reader = sqlite3.connect(f"file:{self.db}?mode=ro", uri=True)
        except sqlite3.Error:
            return -1
        try:
            return reader.execute(
                "SELECT count(*) FROM events WHERE kind = 'policy.decision' "
                "AND json_extract(data, '$.subject') = ?", (subject,)).fetchone()[0]
        except sqlite3.Error:
            return -1
        finally:
            reader.close()

    def close(self) -> None:
        self.server.close()
        shutil.rmtree(self.dir, ignore_errors=True)


@pytest.fixture
def rule_run(home: Path, daemon_env: dict[str, str], workspace: Path) -> Iterator[tuple[Daemon, Relay]]:
    (home / "config.toml").write_text(
        '[profiles.t]\ncommand = ["sleep", "120"]\nsandbox = "none"\n\n'
        '[profiles.t.exec]\ndefault = "ask"\nallow = ["git status"]\n')
    d = Daemon(home, daemon_env)
    d.start()
    try:
        run = json.loads(d.cli("run", "t", "-w", str(workspace), "--json").stdout)
        paths = resolve(home)
        sock = paths.runs_dir / run["id"] / "agent.sock"
        deadline = time.monotonic() + 20
        while not sock.exists():
            assert time.monotonic() < deadline, f"no agent.sock: {d.log()}"
            time.sleep(0.05)
        relay = Relay(sock, paths.db_file)
        try:
            yield d, relay
        finally:
            relay.close()
    finally:
        d.stop()


def helper(relay: Relay, *args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PILOTHOUSE_AGENT_SOCK": str(relay.path)}
    return subprocess.run([PYTHON, "-S", "-E", str(INSIDE), *args], input=stdin, env=env,
                          capture_output=True, text=True, timeout=60)


def hook_input(command: str) -> str:
    return json.dumps({"session_id": "s", "cwd": "/workspace", "hook_event_name": "PreToolUse",
                       "tool_name": "Bash", "tool_input": {"command": command}})


def test_the_decision_row_is_committed_before_the_answer_arrives(
        rule_run: tuple[Daemon, Relay]) -> None:
    _, relay = rule_run
    for i in range(5):
        out = helper(relay, "ph-claude-hook", stdin=hook_input(f"git status --short f{i}"))
        assert '"permissionDecision": "allow"' in out.stdout, out
        done = helper(relay, "ph-ask", "exec", "--", "git", "status", f"g{i}")
        assert done.returncode == 0, done.stderr
    expected = [(f"git status --short f{i}", 1) for i in range(5)]
    expected += [(f"git status g{i}", 1) for i in range(5)]
    assert sorted(relay.seen) == sorted(expected)


def test_the_helper_is_refused_when_the_store_cannot_record(rule_run: tuple[Daemon, Relay],
                                                             home: Path) -> None:
    _, relay = rule_run
    assert helper(relay, "ph-ask", "exec", "--", "git", "status", "before").returncode == 0
    # The WAL goes missing under the writer: what was committed can no longer be made durable,
    # so the store stops, and every later decision is refused rather than given unrecorded.
    wal = resolve(home).db_file.with_name(resolve(home).db_file.name + "-wal")
    os.rename(wal, wal.with_name("moved-away-wal"))
    refused = None
    for i in range(3):  # the commit that finds it gone may still answer; then nothing does
        out = helper(relay, "ph-claude-hook", stdin=hook_input(f"git status --short late{i}"))
        if '"permissionDecision": "deny"' in out.stdout:
            refused = out.stdout
            break
        time.sleep(0.2)
    assert refused is not None and "could not be recorded" in refused, refused
    asked = helper(relay, "ph-ask", "exec", "--", "git", "status", "after")
    assert asked.returncode == 1 and "could not be recorded" in asked.stderr, asked.stderr
