"""The daemon under attack from inside a real bubblewrap sandbox: connection caps on agent.sock
and the gate, head timeouts, floods aggregated instead of one row each, an fd limit that one
run cannot exhaust, and an operator socket that keeps answering throughout.

Bounds are set small in the config ([limits]) so each attack stays a few hundred connections.
"""

from __future__ import annotations

import json
import os
import resource
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import Daemon, needs_bwrap
from tests.core.hold_connections import install as install_hold

LIMITS = """
[limits]
agent_connections = 4
gate_connections = 4
head_timeout = "2s"
head_bytes = "8k"
events_per_second = 5
ask_burst = 1000  # 300 quick asks here measure the folding of rows, not the ask rate (s14)

[profiles.flood]
command = ["true"]
[profiles.flood.network]
default = "deny"
deny = ["**.blocked.invalid"]
[profiles.flood.exec]
default = "ask"
allow = ["echo"]
"""

def _config(home: Path, extra: str = "") -> None:
    (home / "config.toml").write_text(LIMITS + extra)


def _fds(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


def _background(d: Daemon, ws: Path, profile: str, *cmd: str) -> tuple[threading.Thread, dict[str, Any]]:
    out: dict[str, Any] = {}

    def go() -> None:
        out["result"] = d.cli("run", profile, "-w", str(ws), "--wait", "--", *cmd, check=False,
                              timeout=120)

    t = threading.Thread(target=go)
    t.start()
    return t, out


def _wait_file(path: Path, timeout: float = 60) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if path.exists() and path.read_text():
            return path.read_text()
        time.sleep(0.1)
    raise AssertionError(f"{path} never appeared")


def _last_json(text: str) -> dict[str, Any]:
    return json.loads([line for line in text.splitlines() if line.startswith("{")][-1])


@needs_bwrap
def test_agent_sock_connection_cap_from_inside_the_sandbox(home: Path, daemon_env: dict[str, str],
                                                          workspace: Path) -> None:
    _config(home)
    install_hold(workspace)
    d = Daemon(home, daemon_env)
    d.start()
    try:
        assert d.proc is not None
        before = _fds(d.proc.pid)
        t, out = _background(d, workspace, "flood", "python3", "hold.py",
                             "/run/pilothouse/agent.sock", "60", "", "30")
        _wait_file(workspace / ".held")
        held_fds = _fds(d.proc.pid)
        # The operator socket answers while the run holds every connection it may.
        status = d.cli("approvals", "--json", timeout=20)
        assert json.loads(status.stdout) == []
        (workspace / ".release").write_text("1")
        t.join(120)
        report = _last_json(out["result"].stdout)
        # 4 connections may stay; the other 56 are answered "too many connections" and closed.
        assert report["closed_at_once"] >= 56, report
        assert any("too-many-connections" in r for r in report["replies"]), report
        # The run's share of the daemon's fds stays near the cap (plus the run's own pipes).
        assert held_fds - before < 30, (before, held_fds)
        refused = json.loads(d.cli("history", "--kind", "limits.refused", "--json").stdout)
        assert refused and sum(e["data"]["count"] for e in refused) >= 56
        assert len(refused) < 10, "one aggregated event per interval, not one per connection"
    finally:
        d.stop()


@needs_bwrap
def test_gate_partial_heads_are_capped_and_timed_out(home: Path, daemon_env: dict[str, str],
                                                     workspace: Path) -> None:
    _config(home)
    install_hold(workspace)
    d = Daemon(home, daemon_env)
    d.start()
    try:
        head = "GET http://a.blocked.invalid/ HTTP/1.1\r\nX-Pad: " + "a" * 6000
        # Held 8 s at most: past head_timeout (2 s) the daemon has closed the 4 it admitted,
        # and the hold ends as soon as it has (a daemon that never closes them fails below).
        t, out = _background(d, workspace, "flood", "python3", "hold.py", "bridge", "40",
                             head, "8", "until-closed")
        held = json.loads(_wait_file(workspace / ".held"))
        t.join(120)
        report = _last_json(out["result"].stdout)
        assert held["closed"] >= 36, held  # past the cap of 4: refused at once
        assert report["closed_later"] == 40, report  # the 4 admitted: closed by head_timeout
        assert any("503" in r for r in report["replies"]), report
    finally:
        d.stop()


@needs_bwrap
def test_floods_are_aggregated_not_one_row_each(home: Path, daemon_env: dict[str, str],
                                                workspace: Path) -> None:
    _config(home)
    (workspace / "flood.py").write_text(r"""
import json, socket
s = socket.socket(socket.AF_UNIX); s.connect("/run/pilothouse/agent.sock")
f = s.makefile("rwb")
allowed = 0
for i in range(300):
    f.write(json.dumps({"v": 1, "id": i, "op": "ask", "args": {"kind": "exec", "subject": "echo hi"}}).encode() + b"\n")
    f.flush()
    allowed += json.loads(f.readline())["result"]["allow"]
denied = 0
for i in range(300):
    host = "same.blocked.invalid" if i < 150 else f"n{i}.blocked.invalid"
    c = socket.create_connection(("127.0.0.1", 3128), timeout=10)
    c.sendall(f"CONNECT {host}:443 HTTP/1.1\r\nHost: {host}:443\r\n\r\n".encode())
    denied += b" 403 " in c.recv(4096)
    c.close()
print(json.dumps({"allowed": allowed, "denied": denied}))
""")
    d = Daemon(home, daemon_env)
    d.start()
    try:
        r = d.cli("run", "flood", "-w", str(workspace), "--wait", "--", "python3", "flood.py",
                  timeout=180)
        assert _last_json(r.stdout) == {"allowed": 300, "denied": 300}
        policy = json.loads(d.cli("history", "--kind", "policy.decision", "--json").stdout)
        assert sum(e["data"].get("count", 1) for e in policy) == 300, "every ask is counted"
        assert len(policy) < 30, f"{len(policy)} rows for one repeated ask"
        decisions = json.loads(d.cli("history", "--kind", "net.decision", "--json").stdout)
        throttled = json.loads(d.cli("history", "--kind", "store.throttled", "--json").stdout)
        counted = sum(e["data"].get("count", 1) for e in decisions)
        suppressed = sum(e["data"]["count"] for e in throttled)
        assert counted + suppressed == 300, (counted, suppressed)
        assert len(decisions) < 150, f"{len(decisions)} rows for 300 denied CONNECTs"
        assert throttled, "150 distinct names past 5 rows/s leave a store.throttled event"
    finally:
        d.stop()


@needs_bwrap
def test_fd_soft_limit_is_raised_at_start(home: Path, daemon_env: dict[str, str]) -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard < 2048:
        pytest.skip("the hard fd limit is too low to tell a raise apart")
    d = Daemon(home, daemon_env)
    log = open(home / "daemon-test.log", "ab")  # noqa: SIM115
    d.proc = subprocess.Popen(
        [sys.executable, "-m", "console", "daemon"], env=daemon_env, stdout=log,
        stderr=subprocess.STDOUT, start_new_session=True,
        preexec_fn=lambda: resource.setrlimit(resource.RLIMIT_NOFILE, (1024, hard)))
    log.close()
    try:
        deadline = time.monotonic() + 20
        while not d.sock.exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        d.cli("status")
        limits = Path(f"/proc/{d.proc.pid}/limits").read_text()
        line = next(x for x in limits.splitlines() if x.startswith("Max open files"))
        assert line.split()[3] == str(hard), line
    finally:
        d.stop()


@needs_bwrap
def test_fd_exhaustion_is_refused_quietly_and_operators_still_answer(
        home: Path, daemon_env: dict[str, str], workspace: Path) -> None:
    """One run may not take the daemon to its fd limit: a process-wide budget keeps a reserve
    for operator.sock, and an exhausted accept is one log line per interval, no tracebacks."""
    flood_profile = LIMITS[LIMITS.index("[profiles.flood]"):]
    (home / "config.toml").write_text("[limits]\nagent_connections = 5000\n\n" + flood_profile)
    d = Daemon(home, daemon_env)
    log = open(home / "daemon-test.log", "ab")  # noqa: SIM115
    d.proc = subprocess.Popen(
        [sys.executable, "-m", "console", "daemon"], env=daemon_env, stdout=log,
        stderr=subprocess.STDOUT, start_new_session=True,
        preexec_fn=lambda: resource.setrlimit(resource.RLIMIT_NOFILE, (256, 256)))
    log.close()
    held: list[socket.socket] = []
    try:
        deadline = time.monotonic() + 20
        while not d.sock.exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        t, out = _background(d, workspace, "flood", "sleep", "60")
        run_id = ""
        deadline = time.monotonic() + 30
        while not run_id and time.monotonic() < deadline:
            runs = json.loads(d.cli("ps", "--json").stdout)
            run_id = runs[0]["id"] if runs else ""
            time.sleep(0.1)
        assert run_id, d.log()
        # ps lists a run from its first record, a moment before its agent.sock is bound.
        agent = home / "runs" / run_id / "agent.sock"
        deadline = time.monotonic() + 30
        while not agent.exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        for _ in range(600):
            s = socket.socket(socket.AF_UNIX)
            s.connect(str(agent))
            held.append(s)
        time.sleep(1.5)
        assert d.cli("status", timeout=20).returncode == 0
        assert d.proc.poll() is None
        text = (home / "daemon-test.log").read_text()
        assert "Traceback" not in text, text[-3000:]
        assert text.count("\n") < 60, text[-3000:]
        d.cli("stop", run_id, check=False)
        t.join(60)
    finally:
        for s in held:
            s.close()
        d.stop()


@needs_bwrap
def test_another_runs_approval_is_decided_at_once_under_20000_connections(
        home: Path, daemon_env: dict[str, str], workspace: Path, tmp_path: Path) -> None:
    """Issue 16, point 7: 20,000 connections from one sandbox, with the default [limits], while
    a person decides another run's request: the answer reaches that run within a second.
    (A liveness bound from the issue, far above the normal few milliseconds.)"""
    (home / "config.toml").write_text(LIMITS[LIMITS.index("[profiles.flood]"):])
    install_hold(workspace)
    other = tmp_path / "other-ws"
    other.mkdir()
    d = Daemon(home, daemon_env)
    d.start()
    try:
        t, out = _background(d, workspace, "flood", "python3", "hold.py",
                             "/run/pilothouse/agent.sock", "19990", "", "60")  # the fd limit is 20,000
        _wait_file(workspace / ".held", timeout=120)  # all opened (most refused at once)
        asker, asked = _background(d, other, "flood", "sh", "-c",
                                   "ph-ask exec -- make deploy; echo asked-rc=$?")
        rows: list[Any] = []
        deadline = time.monotonic() + 30
        while not rows and time.monotonic() < deadline:
            rows = json.loads(d.cli("approvals", "--json", timeout=20).stdout)
            time.sleep(0.05)
        assert rows, d.log()
        started = time.monotonic()
        d.cli("approve", rows[0]["id"], timeout=20)
        asker.join(30)
        decided_in = time.monotonic() - started
        assert "asked-rc=0" in asked["result"].stdout, asked["result"]
        # Not behind the flood: its connections stay held 60 s, so a daemon that served them
        # first would answer after that. How quick the answer is (the second) is
        # bench/daemon_attack.py's figure; a clock bound here only failed a loaded machine.
        assert decided_in < 20, decided_in
        (workspace / ".release").write_text("1")
        t.join(120)
    finally:
        d.stop()
