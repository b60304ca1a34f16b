"""The person's connection closes while their decision (or revoke, or stop) is being recorded.

The daemon cancelled a connection's operations when it closed (server.py `_session`), and the
store writer commits an event whose waiter was cancelled anyway (store/batch.py): the record
said what was never applied (a revoke on the record, the grant still in force). A state change
now runs to its end. A slow store (another connection holding SQLite's write lock for a moment,
well inside the writer's 5 s busy timeout) makes the window wide enough to hit on purpose.
Found by an attack review.
"""

from __future__ import annotations

import json
import socket
import sqlite3
import time
from pathlib import Path

from console.paths import resolve
from tests.conftest import Daemon, needs_bwrap, read_until
from tests.core.failing_store import wait_running
from tests.core.test_approvals_e2e import background, wait_pending


@needs_bwrap
def test_a_decision_recorded_as_made_is_the_one_applied(daemon: Daemon, workspace: Path) -> None:
    t, out = background(daemon, workspace, "ph-ask exec -- make deploy; echo rc=$?")
    req = wait_pending(daemon)[0]
    db = sqlite3.connect(resolve(daemon.home).db_file, timeout=10, isolation_level=None)
    db.execute("BEGIN IMMEDIATE")  # the store is slow: the writer waits on the lock
    try:
        s = socket.socket(socket.AF_UNIX)
        s.connect(str(daemon.sock))
        s.sendall(json.dumps({"v": 1, "id": 1, "op": "approval.decide",
                              "args": {"id": req["id"], "allow": True}}).encode() + b"\n")
        time.sleep(0.5)
        s.close()  # the person's terminal went away (Ctrl-C, SSH lost) before the answer
        time.sleep(0.5)
    finally:
        db.execute("ROLLBACK")
        db.close()
    # The store is free again: the decision lands and is applied (the request leaves the
    # queue). Read until it has, or as things stand once the deadline has passed.
    deadline = time.monotonic() + 10
    while True:
        decided = [e for e in json.loads(daemon.cli("history", "--kind", "approval.decided",
                                                    "--json").stdout)
                   if e["data"].get("id") == req["id"]]
        pending = [r["id"] for r in json.loads(daemon.cli("approvals", "--json").stdout)]
        if (decided and req["id"] not in pending) or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    assert not (decided and req["id"] in pending), (
        f"recorded as {decided[0]['text']!r} but still pending, unapplied")
    if req["id"] in pending:
        daemon.cli("deny", req["id"])
    t.join(timeout=60)
    decided = [e for e in json.loads(daemon.cli("history", "--kind", "approval.decided",
                                                "--json").stdout)
               if e["data"].get("id") == req["id"]]
    assert len(decided) == 1, [e["text"] for e in decided]
    applied = "rc=0" in out["result"].stdout
    assert decided[0]["data"]["allow"] == applied


def _send_and_go_away(d: Daemon, op: str, args: dict) -> None:
    """Send one decides-op while the store is slow, then close the connection before the answer."""
    db = sqlite3.connect(resolve(d.home).db_file, timeout=10, isolation_level=None)
    db.execute("BEGIN IMMEDIATE")
    try:
        s = socket.socket(socket.AF_UNIX)
        s.connect(str(d.sock))
        s.sendall(json.dumps({"v": 1, "id": 1, "op": op, "args": args}).encode() + b"\n")
        time.sleep(0.5)
        s.close()
        time.sleep(0.5)
    finally:
        db.execute("ROLLBACK")
        db.close()


@needs_bwrap
def test_a_grant_recorded_as_revoked_no_longer_allows(daemon: Daemon, workspace: Path) -> None:
    t, out = background(daemon, workspace,
                        "ph-ask exec -- make deploy; echo rc1=$?; "
                        "while [ ! -e go ]; do sleep 0.1; done; ph-ask exec -- make deploy; echo rc2=$?")
    req = wait_pending(daemon)[0]
    grant = json.loads(daemon.cli("approve", req["id"], "--scope", "run", "--json").stdout)["grants"][0]
    _send_and_go_away(daemon, "grant.revoke", {"id": grant["id"]})
    # Read until the store is free again and the revocation has landed and been applied.
    revoked, live = read_until(
        lambda: (json.loads(daemon.cli("history", "--kind", "grant.revoked", "--json").stdout),
                 [g["id"] for g in json.loads(daemon.cli("grants", "--json").stdout)]),
        lambda got: bool(got[0]) and grant["id"] not in got[1])
    (workspace / "go").write_text("")
    # The second ask is answered by the grant (the run ends) or waits for a person.
    deadline = time.monotonic() + 30
    while t.is_alive() and not json.loads(daemon.cli("approvals", "--json").stdout):
        assert time.monotonic() < deadline, "the second ask was neither answered nor asked"
        time.sleep(0.1)
    for r in json.loads(daemon.cli("approvals", "--json").stdout):
        daemon.cli("deny", r["id"])  # the second ask, if the grant did not answer it
    t.join(timeout=60)
    text = out["result"].stdout
    # Before: the history said the grant was revoked, the grant was still in force, and it
    # answered the agent's next ask with an allow (rc2=0).
    assert not (revoked and grant["id"] in live), (
        f"history: {revoked[0]['text']!r}; grants in force: {live}; agent: {text!r}")
    assert "rc2=0" not in text, text


@needs_bwrap
def test_a_run_recorded_as_stopped_is_stopped(daemon: Daemon, workspace: Path) -> None:
    run_id = daemon.cli("run", "demo", "-w", str(workspace), "--", "sh", "-c",
                        "sleep 60").stdout.split()[-1]
    wait_running(daemon, run_id)
    _send_and_go_away(daemon, "run.stop", {"run": run_id})
    stops, live = read_until(  # the deadline is more than the stop's grace
        lambda: ([e for e in json.loads(daemon.cli("history", "--kind", "run.stop",
                                                   "--json").stdout)
                  if e.get("run_id") == run_id],
                 {r["id"]: r["state"] for r in json.loads(daemon.cli("ps", "--json").stdout)}),
        lambda got: bool(got[0]) and got[1].get(run_id) != "running")
    try:
        # Before: "stop requested by root" was on the record and the run still running.
        assert not (stops and live.get(run_id) == "running"), (stops[0]["text"], live)
    finally:
        daemon.cli("stop", run_id, check=False)

