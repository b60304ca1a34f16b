"""Review s17 (daemon): what a watcher (a real second local user on operator.sock, the least
trusted role that gets in) could make the daemon's loop do for everyone else.

1. `policy.check` (a watching op) evaluated its command on the daemon's loop. A 4 KiB command
   of 2,000 parts (`a|a|...`) is about 0.55 s of pure CPU under the built-in claude rules
   (more with a larger config); a watcher's 32 of them held the loop 17 s (the owner's `hello`
   waited 16 s), and 16 connections of 256 open requests are allowed. Secure: the evaluation runs off the
   loop, one at a time per user (as policy.shadow). Measured by where the CPU goes (the loop's
   thread against the daemon's other threads), not by a clock.

2. Every `subscribe` a teammate keeps open is one more copy of every event encoded and written:
   a watcher's 16 connections x 256 subscriptions, reading everything, while one run printed
   about 90 KB/s, held the owner's `hello` for 18 to 25 s. Secure: a teammate holds at most as
   many streams (subscribe, logs, export) as connections (`teammate_connections`); past that a
   stream is answered `busy`. Counted.

Real daemons on temporary homes, real users (setpriv), real sockets. Nothing leaves the machine.
"""

from __future__ import annotations

import json
import os
import pwd
import subprocess
import time
from pathlib import Path

import pytest

from tests.approvals.test_inbox_and_team_attacks import team_daemon
from tests.core.loop_share import LoopShare
from tests.core.test_team import WATCHER

pytestmark = pytest.mark.skipif(os.getuid() != 0, reason="real second users need root (setpriv)")

TEAMMATE_CONNECTIONS = 16  # [limits] teammate_connections, the default


def _as(user: str, script: Path, *args: str) -> subprocess.CompletedProcess[str]:
    pw = pwd.getpwnam(user)
    return subprocess.run(
        ["setpriv", f"--reuid={user}", f"--regid={pw.pw_gid}", "--init-groups",
         "/usr/bin/python3", "-S", str(script), *args],
        capture_output=True, text=True, timeout=300, env={"PATH": "/usr/bin:/bin"})



# --- 1. policy.check ------------------------------------------------------------------------

CHECKS = r"""
import json, socket, sys
s = socket.socket(socket.AF_UNIX)
s.connect(sys.argv[1])
f = s.makefile("rwb", buffering=0)
codes = {}
for i in range(int(sys.argv[2])):  # one at a time: each answered before the next is sent
    command = ("a|" * 2000)[:3990] + f"a {i}"  # its own each time: a repeat is read from a cache
    f.write((json.dumps({"v": 1, "id": i, "op": "policy.check",
                         "args": {"profile": "claude", "command": command}}) + "\n").encode())
    answer = json.loads(f.readline())
    code = "ok" if answer.get("ok") else answer["error"]["code"]
    codes[code] = codes.get(code, 0) + 1
print(json.dumps(codes), flush=True)
"""


def test_a_watchers_policy_checks_run_off_the_daemons_loop(
        home: Path, daemon_env: dict[str, str], tmp_path: Path) -> None:
    d = team_daemon(home, daemon_env)
    script = tmp_path / "checks.py"
    script.write_text(CHECKS)
    os.chmod(tmp_path, 0o755)
    assert d.proc is not None
    pid = d.proc.pid
    try:
        with LoopShare(pid) as share:
            outs = share.repeat_until(50, lambda: _as(WATCHER, script, str(d.sock), "6"))
        for out in outs:
            assert json.loads(out.stdout) == {"ok": 6}, (out.stdout, out.stderr)
        share.assert_off_loop("a watcher's policy checks", least=50, at_most=1 / 4)
    finally:
        d.stop()


CONCURRENT = r"""
import json, socket, sys
s = socket.socket(socket.AF_UNIX)
s.connect(sys.argv[1])
f = s.makefile("rwb", buffering=0)
command = ("a|" * 2000)[:4000]
n = int(sys.argv[2])
f.write(b"".join((json.dumps({"v": 1, "id": i, "op": "policy.check",
                              "args": {"profile": "claude", "command": command}}) + "\n").encode()
                 for i in range(n)))
codes = {}
for _ in range(n):
    answer = json.loads(f.readline())
    code = "ok" if answer.get("ok") else answer["error"]["code"]
    codes[code] = codes.get(code, 0) + 1
print(json.dumps(codes), flush=True)
"""


def test_a_watchers_policy_checks_are_computed_one_at_a_time(
        home: Path, daemon_env: dict[str, str], tmp_path: Path) -> None:
    d = team_daemon(home, daemon_env)
    script = tmp_path / "concurrent.py"
    script.write_text(CONCURRENT)
    os.chmod(tmp_path, 0o755)
    try:
        out = _as(WATCHER, script, str(d.sock), "8")
        codes = json.loads(out.stdout)
        assert codes.get("ok", 0) >= 1 and codes.get("busy", 0) >= 1, (codes, out.stderr)
        assert codes["ok"] + codes["busy"] == 8, codes
        # Once answered, the user's next check is computed again.
        out = _as(WATCHER, script, str(d.sock), "1")
        assert json.loads(out.stdout) == {"ok": 1}, (out.stdout, out.stderr)
    finally:
        d.stop()


# --- 2. streams -------------------------------------------------------------------------------

STREAMS = r"""
import json, socket, sys
conns, per = int(sys.argv[2]), int(sys.argv[3])
codes, socks = {}, []
for c in range(conns):
    s = socket.socket(socket.AF_UNIX)
    s.connect(sys.argv[1])
    s.sendall(b"".join((json.dumps({"v": 1, "id": i, "op": "subscribe",
                                    "args": {"topics": ["run"]}}) + "\n").encode()
                       for i in range(per)))
    socks.append(s)
for s in socks:
    f = s.makefile("rb")
    for _ in range(per):  # each subscribe answers once: its first event, or an error
        msg = json.loads(f.readline())
        if msg.get("event", {}).get("kind") == "subscribed":
            codes["subscribed"] = codes.get("subscribed", 0) + 1
        elif "error" in msg:
            codes[msg["error"]["code"]] = codes.get(msg["error"]["code"], 0) + 1
print(json.dumps(codes), flush=True)
"""


def test_a_watcher_holds_no_more_streams_than_connections(
        home: Path, daemon_env: dict[str, str], tmp_path: Path) -> None:
    d = team_daemon(home, daemon_env)
    script = tmp_path / "streams.py"
    script.write_text(STREAMS)
    os.chmod(tmp_path, 0o755)
    try:
        out = _as(WATCHER, script, str(d.sock), "2", "256")
        codes = json.loads(out.stdout)
        assert codes == {"subscribed": TEAMMATE_CONNECTIONS, "busy": 512 - TEAMMATE_CONNECTIONS}, (
            codes, out.stderr)
        # Its connections are gone, its streams with them (once the daemon has read their
        # end), so it may subscribe again.
        for _ in range(50):
            out = _as(WATCHER, script, str(d.sock), "1", "1")
            if json.loads(out.stdout) == {"subscribed": 1}:
                break
            time.sleep(0.1)
        assert json.loads(out.stdout) == {"subscribed": 1}, (out.stdout, out.stderr)
    finally:
        d.stop()


def test_held_the_owner_may_hold_many_streams(
        home: Path, daemon_env: dict[str, str], tmp_path: Path) -> None:
    d = team_daemon(home, daemon_env)
    try:
        out = subprocess.run(["/usr/bin/python3", "-S", "-c", STREAMS, str(d.sock), "1", "64"],
                             capture_output=True, text=True, timeout=120)
        assert json.loads(out.stdout) == {"subscribed": 64}, (out.stdout, out.stderr)
    finally:
        d.stop()


# --- 3. the threads every part shares --------------------------------------------------------

VERIFIES = r"""
import json, socket, sys
s = socket.socket(socket.AF_UNIX)
s.connect(sys.argv[1])
n = int(sys.argv[2])
s.sendall(b"".join((json.dumps({"v": 1, "id": i, "op": "audit.verify"}) + "\n").encode()
                   for i in range(n)))
print("sent", flush=True)
f = s.makefile("rb")
for _ in range(n):
    # Only the verifies done count: an answer that is not one (busy) was not computed.
    print("answered" if json.loads(f.readline()).get("ok") else "busy", flush=True)
"""


def test_a_watchers_reads_do_not_queue_ahead_of_the_owners(
        home: Path, daemon_env: dict[str, str], tmp_path: Path) -> None:
    """Store reads (and run starts, config reloads, the gates' DNS lookups) share one pool of
    threads. A watcher's 128 `audit.verify` of a 20,000-event history queued ahead of
    everyone's: the owner's `history` waited 58 s, `pilothouse run ... -- true` 54 s. Secure: a
    teammate's operations take at most TEAMMATE_AT_ONCE of it at once, the rest wait their
    turn, so the owner's read is answered before most of the watcher's. Counted: how many of
    the watcher's answers came before the owner's."""
    from tests.conftest import history_writer

    with history_writer(home) as w:
        for i in range(20_000):
            w.record("policy.decision", run_id="r0001", actor="rule", text="deny",
                     data={"kind": "exec", "action": "deny", "subject": f"make t{i}"})
    d = team_daemon(home, daemon_env)
    script = tmp_path / "verifies.py"
    script.write_text(VERIFIES)
    os.chmod(tmp_path, 0o755)
    pw = pwd.getpwnam(WATCHER)
    p = subprocess.Popen(["setpriv", f"--reuid={WATCHER}", f"--regid={pw.pw_gid}", "--init-groups",
                          "/usr/bin/python3", "-S", str(script), str(d.sock), "64"],
                         stdout=subprocess.PIPE, env={"PATH": "/usr/bin:/bin"})
    try:
        assert p.stdout is not None and p.stdout.readline().strip() == b"sent"
        os.set_blocking(p.stdout.fileno(), False)
        rows = json.loads(d.cli("history", "--limit", "1", "--json", timeout=300).stdout)
        assert rows, "the owner's history answered nothing"
        try:
            before = os.read(p.stdout.fileno(), 1 << 20).count(b"answered")
        except BlockingIOError:  # none of the watcher's answers came first
            before = 0
        assert before < 16, f"{before} of the watcher's 64 verifies were answered before the owner's read"
    finally:
        p.kill()
        p.wait()
        d.stop()
