"""Three daemon bounds that were missing (s14): `runs.list`'s limit, a stalled reader on
operator.sock, and the rate of one run's asks on agent.sock. Each first test failed on
557ad2a (/work/notes/bounds-s14-before.txt).

Real daemons on temporary homes, real sockets, SQLite and bubblewrap. Nothing leaves the machine.
"""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from console.client.sync import Client, ClientError
from console.paths import resolve
from tests.approvals.test_daemon_attacks_s13 import attempts
from tests.conftest import Daemon, needs_bwrap, read_until

RUNS_LIST_MAX = 1000  # docs/protocol.md: runs.list answers at most this many runs

# --- runs.list ----------------------------------------------------------------------------------


def _ended_runs(home: Path, n: int) -> None:
    """n ended runs in the store's runs table, as a long-lived daemon's history holds them."""
    db = sqlite3.connect(resolve(home).db_file)
    now = time.time()
    with db:
        db.executemany(
            "INSERT INTO runs (id, profile, backend, state, command, workspace, started_at, "
            "ended_at, exit_code, pids, info) VALUES (?, 'demo', 'bubblewrap', 'exited', "
            "'[\"true\"]', '/tmp', ?, ?, 0, '[]', '{}')",
            [(f"old{i:05d}", now - 10_000 + i, now - 10_000 + i + 1) for i in range(n)])
    db.close()


def test_runs_list_refuses_a_limit_below_one_and_caps_a_huge_one(
        home: Path, daemon_env: dict[str, str]) -> None:
    """`runs.list` read `limit` runs whatever it was: limit=10**9 made the daemon read and
    serialize every run ever (any watcher may ask), and 0 or -5 quietly listed no ended run.
    Secure: at most RUNS_LIST_MAX rows, and a limit below 1 is a bad-args error that says so."""
    d = Daemon(home, daemon_env)
    d.start()
    d.stop()
    _ended_runs(home, RUNS_LIST_MAX + 5)
    d.start()
    try:
        with Client(resolve(home), autostart=False) as client:
            huge = client.call("runs.list", all=True, limit=10**9)
            assert len(huge) == RUNS_LIST_MAX, len(huge)
            assert len(client.call("runs.list", all=True, limit=7)) == 7
            for bad in (0, -5):
                with pytest.raises(ClientError) as caught:
                    client.call("runs.list", all=True, limit=bad)
                assert caught.value.code == "bad-args", caught.value
                assert f"limit must be between 1 and {RUNS_LIST_MAX}" in caught.value.message
        rows = json.loads(d.cli("ps", "-a", "--limit", "3", "--json").stdout)
        assert len(rows) == 3, rows
        capped = json.loads(d.cli("ps", "-a", "--limit", "5000", "--json").stdout)
        assert len(capped) == RUNS_LIST_MAX
        for bad in ("0", "-1", "many"):
            out = d.cli("ps", "-a", "--limit", bad, check=False)
            assert out.returncode == 2, out
            assert "--limit" in out.stderr and "Traceback" not in out.stderr, out.stderr
    finally:
        d.stop()


# --- a reader that never reads --------------------------------------------------------------------

STALLED = r"""
import json, socket, sys
s = socket.socket(socket.AF_UNIX)
s.connect(sys.argv[1])
s.settimeout(float(sys.argv[2]))  # only a bound on a hang: the daemon closes long before
line = (json.dumps({"v": 1, "id": 1, "op": "hello", "args": {}}) + "\n").encode()
sent = 0
try:
    while sent < 200_000:  # requests, never reading an answer
        s.sendall(line * 100)
        sent += 100
    print(json.dumps({"outcome": "never refused", "sent": sent}))
except socket.timeout:
    print(json.dumps({"outcome": "still open, the daemon stopped reading", "sent": sent}))
except (BrokenPipeError, ConnectionResetError) as exc:
    print(json.dumps({"outcome": "closed", "sent": sent, "error": type(exc).__name__}))
"""


def test_a_client_that_never_reads_its_answers_is_closed(
        home: Path, daemon_env: dict[str, str], tmp_path: Path) -> None:
    """operator.sock's send() waited on drain() without end: a client that sends requests and
    never reads held its handler, its MAX_IN_FLIGHT slots and the output buffered for it,
    for as long as it liked. Secure: past [limits] send_timeout with no output taken at all,
    the daemon closes the connection and logs one line; other clients go on."""
    (home / "config.toml").write_text('[limits]\nsend_timeout = "2s"\n')
    d = Daemon(home, daemon_env)
    d.start()
    script = tmp_path / "stalled.py"
    script.write_text(STALLED)
    try:
        done = subprocess.run([sys.executable, "-S", str(script), str(d.sock), "60"],
                              capture_output=True, text=True, timeout=120)
        report = json.loads(done.stdout)
        assert report["outcome"] == "closed", (report, done.stderr)
        log = (home / "daemon-test.log").read_text()
        assert log.count("read none of its answers") == 1, log[-3000:]
        assert "Traceback" not in log, log[-3000:]
        assert json.loads(d.cli("ps", "--json").stdout) == []  # others are still answered
    finally:
        d.stop()


SLOW = r"""
import json, socket, sys, time
s = socket.socket(socket.AF_UNIX)
s.connect(sys.argv[1])
s.settimeout(60)
s.sendall((json.dumps({"v": 1, "id": 1, "op": "logs", "args": {"run": sys.argv[2]}}) + "\n").encode())
data = b""
slow_until = time.monotonic() + float(sys.argv[3])
while time.monotonic() < slow_until:  # 40 KB/s: a drain takes seconds, never stands still
    data += s.recv(4096)
    time.sleep(0.1)
while not data.endswith(b"\n") or b'"ok"' not in data.rsplit(b"\n", 2)[-2]:
    chunk = s.recv(1 << 16)
    if not chunk:
        break
    data += chunk
msgs = [json.loads(line) for line in data.splitlines()]
lines = sum(len(m["event"]["lines"]) for m in msgs if "event" in m)
print(json.dumps({"lines": lines, "answer": msgs[-1].get("result")}))
"""


def test_a_slow_reader_is_not_cut_off(home: Path, daemon_env: dict[str, str], workspace: Path,
                                      tmp_path: Path) -> None:
    """The bound is on no progress, not on time: a reader taking a long log at 40 KB/s keeps
    a drain waiting longer than send_timeout (a full unix socket is writable again only once
    three quarters of it is read), and still gets all of it."""
    (home / "config.toml").write_text(
        '[limits]\nsend_timeout = "2s"\n'
        '[profiles.long]\ncommand = ["seq", "1", "60000"]\nsandbox = "none"\n')
    d = Daemon(home, daemon_env)
    d.start()
    script = tmp_path / "slow.py"
    script.write_text(SLOW)
    try:
        run_id = json.loads(d.cli("run", "long", "-w", str(workspace), "--json").stdout)["id"]
        d.cli("logs", run_id, "--follow")  # until the run has ended
        whole = len(d.cli("logs", run_id).stdout.splitlines())
        assert whole > 30_000, whole
        # 4 s of slow reading: the first drain, started as the answer begins, times out
        # (send_timeout, 2 s) inside it (a daemon that cut on time alone fails here).
        done = subprocess.run([sys.executable, "-S", str(script), str(d.sock), run_id, "4"],
                              capture_output=True, text=True, timeout=120)
        report = json.loads(done.stdout or "null")
        assert report == {"lines": whole, "answer": {"run": run_id, "lines": whole,
                                                     "output_dropped": 0}}, done.stderr
        assert "read none of its answers" not in (home / "daemon-test.log").read_text()
    finally:
        d.stop()


# --- one run's asks -------------------------------------------------------------------------------

ASKS = r"""
import json, socket
s = socket.socket(socket.AF_UNIX); s.connect("/run/pilothouse/agent.sock")
f = s.makefile("rwb")
first_refused, kinds = None, {}
for i in range(1000):
    f.write(json.dumps({"v": 1, "id": i, "op": "ask", "args": {"kind": "exec", "subject": "echo hi"}}).encode() + b"\n")
    f.flush()
    r = json.loads(f.readline())["result"]
    if not r["allow"] and first_refused is None:
        first_refused = i
    key = json.dumps([r["allow"], r["decision"], r["reason"][:60]])
    kinds[key] = kinds.get(key, 0) + 1
print(json.dumps({"first_refused": first_refused, "answers": kinds}))
"""


@needs_bwrap
def test_one_runs_asks_are_rate_bounded_and_folded(home: Path, daemon_env: dict[str, str],
                                                   workspace: Path) -> None:
    """agent.sock evaluated every ask at once, on the loop every run and console shares: a
    crafted 4 KiB command costs ~35 ms of policy work, so a hostile agent asking in a loop
    kept the loop busy for as long as it liked. Secure, with the default bound (a burst of
    [limits] ask_burst, then asks_per_second): the first asks are answered, those past the
    bound are denied at once with "too many requests", the refusals are folded into a few
    rows with a count, and operators are still answered."""
    (home / "config.toml").write_text(
        '[profiles.asker]\ncommand = ["true"]\n[profiles.asker.exec]\ndefault = "ask"\n'
        'allow = ["echo"]\n')
    (workspace / "asks.py").write_text(ASKS)
    d = Daemon(home, daemon_env)
    d.start()
    try:
        r = d.cli("run", "asker", "-w", str(workspace), "--wait", "--", "python3",
                  "asks.py", timeout=180)
        report = json.loads([x for x in r.stdout.splitlines() if x.startswith("{")][-1])
        answers = {tuple(json.loads(k)): n for k, n in report["answers"].items()}
        assert report["first_refused"] is not None and report["first_refused"] >= 64, report
        refused = sum(n for (allow, _, _), n in answers.items() if not allow)
        assert refused >= 500, f"{refused} of 1000 quick asks refused: {report}"
        for allow, decision, reason in answers:  # fail closed, and say why
            assert allow or (decision == "deny" and reason.startswith("too many requests: ")), report
        # The flood windows close at the first tick past a second, and their summaries land
        # then: read until every refusal is accounted for (or far past that tick).
        rows = read_until(lambda: json.loads(d.cli("history", "--kind", "approval.refused",
                                                   "--limit", "5000", "--json").stdout),
                          lambda rows: attempts(rows) >= refused, timeout=30, every=0.2)
        assert attempts(rows) == refused, rows[:5]  # every refusal counted
        assert len(rows) < 60, f"{len(rows)} rows for {refused} refused asks"
        assert json.loads(d.cli("ps", "--json").stdout) == []  # the operator is answered
    finally:
        d.stop()

