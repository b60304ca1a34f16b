"""A daemon that is stopped (SIGSTOP, a suspended VM) or stuck still takes connections, and
never answers: every CLI command waited without a word, as if it had hung (review s18, CLI).
Now a call whose answer is late says so once on a terminal, with what it waits for and where
to look, and goes on waiting: a busy daemon's late answer is still taken.

A real daemon, stopped with SIGSTOP; the CLI on a pseudo-terminal. The notice's delay is made
1 s here by starting the real CLI with that constant changed (10 s otherwise)."""

from __future__ import annotations

import os
import pty
import select
import signal
import subprocess
import sys
import time

from tests.conftest import Daemon

CLI = ("import sys; import console.client.sync as s; s.SLOW_ANSWER_S = 1.0; "
       "from console.cli.main import main; sys.argv[0] = 'pilothouse'; main.script()")


def test_a_late_answer_is_said_and_still_taken(daemon: Daemon) -> None:
    daemon.cli("ps")  # started and answering
    assert daemon.proc is not None
    leader, follower = pty.openpty()
    os.kill(daemon.proc.pid, signal.SIGSTOP)
    try:
        proc = subprocess.Popen([sys.executable, "-c", CLI, "ps"], env=daemon.env,
                                stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                stderr=follower)
        os.close(follower)
        seen = b""
        deadline = time.monotonic() + 30
        while b"still waiting" not in seen and time.monotonic() < deadline:
            if select.select([leader], [], [], 0.2)[0]:
                seen += os.read(leader, 65536)
        text = seen.decode(errors="replace")
        assert "still waiting for the daemon to answer" in text, text
        assert "daemon.log" in text and proc.poll() is None, text
    finally:
        os.kill(daemon.proc.pid, signal.SIGCONT)
    out, _ = proc.communicate(timeout=60)
    os.close(leader)
    assert proc.returncode == 0, out
    assert b"ID" in out or b"no runs" in out, out


def test_no_notice_off_a_terminal(daemon: Daemon) -> None:
    """A script's stderr gets nothing of it: only a person at a terminal is told."""
    daemon.cli("ps")
    assert daemon.proc is not None
    os.kill(daemon.proc.pid, signal.SIGSTOP)
    try:
        proc = subprocess.Popen([sys.executable, "-c", CLI, "ps", "--json"], env=daemon.env,
                                stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE)
        time.sleep(2.5)  # past the 1 s notice
    finally:
        os.kill(daemon.proc.pid, signal.SIGCONT)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0 and err == b"", err
    assert out.strip().startswith(b"["), out
