"""Attack review h137 on 8d9421b: a teammate's requests still pile up in the daemon.

A bound on the requests *waiting for a turn* (h135's first fix); one refused `busy` (or answered)
still holds its message (its id and args) until its answer is written, and the answers of a
client that reads nothing (or 4 KiB a send_timeout window) wait on the connection's send lock.
So each connection still holds MAX_IN_FLIGHT (256) parsed messages, 16 connections a watcher:
a 192 KiB line of `[[],[],...]` is ~5 MiB of Python objects once parsed, 256 of them ~1.3 GiB
on one connection (x16 = 21 GiB; 4 MiB lines of them, ~90 MiB each, far more). The answer
echoes the request's id (up to 4 MiB), so the first answer alone fills the socket.
"""

from __future__ import annotations

import os
import pwd
import subprocess
import time
from pathlib import Path

import pytest

from tests.approvals.test_inbox_and_team_attacks import team_daemon
from tests.core.test_team import WATCHER

pytestmark = pytest.mark.skipif(os.getuid() != 0, reason="real second users need root (setpriv)")

FLOOD = r'''
import json, socket, sys, time
s = socket.socket(socket.AF_UNIX); s.connect(sys.argv[1])
s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
big = "x" * (600 * 1024)  # echoed in the answer: the socket is full after the first
s.sendall((json.dumps({"v": 1, "id": big, "op": "hello", "args": {}}) + "\n").encode())
pad = "[" + ",".join(["[]"] * 64000) + "]"  # 192 KiB of text, ~5 MiB parsed
s.settimeout(3)  # a daemon that stops reading is what a fix looks like
sent = 0
try:
    for i in range(255):
        s.sendall(('{"v": 1, "id": %d, "op": "hello", "args": {"pad": %s}}\n' % (i, pad)).encode())
        sent += 1
except socket.timeout:
    pass
print("sent", sent, flush=True)
time.sleep(float(sys.argv[2]))
'''


def _rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError("no VmRSS")


def test_a_watcher_that_reads_nothing_cannot_make_the_daemon_hold_its_requests(
        home: Path, daemon_env: dict[str, str], tmp_path: Path) -> None:
    d = team_daemon(home, daemon_env)
    script = tmp_path / "flood.py"
    script.write_text(FLOOD)
    os.chmod(tmp_path, 0o755)
    assert d.proc is not None
    pid = d.proc.pid
    pw = pwd.getpwnam(WATCHER)
    try:
        before = _rss_kib(pid)
        p = subprocess.Popen(
            ["setpriv", f"--reuid={WATCHER}", f"--regid={pw.pw_gid}", "--init-groups",
             "/usr/bin/python3", "-S", str(script), str(d.sock), "12"],
            stdout=subprocess.PIPE, text=True, env={"PATH": "/usr/bin:/bin"})
        assert p.stdout is not None
        assert p.stdout.readline().startswith("sent")
        time.sleep(2)
        grown = (_rss_kib(pid) - before) // 1024
        p.kill()
        p.wait()
        # 255 of them held are ~1.3 GiB; a bound of 64 open requests ~330 MiB; 4 MiB of their
        # lines open at once (TEAMMATE_OPEN_BYTES) about 110 MiB.
        assert grown < 200, f"the daemon holds {grown} MiB more for one watcher connection"
    finally:
        d.stop()


LONG = r'''
import json, socket, sys
s = socket.socket(socket.AF_UNIX); s.connect(sys.argv[1])
s.sendall((json.dumps({"v": 1, "id": 1, "op": "hello", "args": {"pad": "x" * (1200 * 1024)}})
           + "\n").encode())
s.settimeout(10)
print(s.makefile().readline().strip(), flush=True)
'''


def test_a_teammates_message_is_at_most_a_mebibyte(
        home: Path, daemon_env: dict[str, str], tmp_path: Path) -> None:
    """A teammate's line is bounded at 1 MiB (the owner's at 4 MiB): a message parses to ~30
    times its size, and each open one is held until its answer is written."""
    import json

    d = team_daemon(home, daemon_env)
    script = tmp_path / "long.py"
    script.write_text(LONG)
    os.chmod(tmp_path, 0o755)
    pw = pwd.getpwnam(WATCHER)
    try:
        done = subprocess.run(
            ["setpriv", f"--reuid={WATCHER}", f"--regid={pw.pw_gid}", "--init-groups",
             "/usr/bin/python3", "-S", str(script), str(d.sock)],
            capture_output=True, text=True, timeout=30, env={"PATH": "/usr/bin:/bin"})
        answer = json.loads(done.stdout)
    finally:
        d.stop()
    assert answer.get("error", {}).get("code") == "bad-message", answer
