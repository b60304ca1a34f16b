"""Approvals end to end: an agent in real bubblewrap asks, a person decides from the CLI."""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path
from typing import Any

from tests.conftest import Daemon, needs_bwrap


def wait_pending(d: Daemon, n: int = 1, timeout: float = 30) -> list[dict[str, Any]]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        rows = json.loads(d.cli("approvals", "--json").stdout)
        if len(rows) >= n:
            return rows
        time.sleep(0.1)
    raise AssertionError(f"no pending request after {timeout}s: {d.log()}")


def background(d: Daemon, ws: Path, script: str) -> tuple[threading.Thread, dict[str, Any]]:
    out: dict[str, Any] = {}

    def go() -> None:
        out["result"] = d.cli("run", "demo", "-w", str(ws), "--wait", "--", "sh", "-c", script, check=False)

    t = threading.Thread(target=go)
    t.start()
    return t, out


@needs_bwrap
def test_run_scope_stops_the_prompts_for_that_pattern(daemon: Daemon, workspace: Path) -> None:
    t, out = background(daemon, workspace,
                        "for i in 1 2 3; do ph-ask exec -- make build; echo rc$i=$?; done")
    first = wait_pending(daemon)[0]
    assert first["subject"] == "make build" and first["kind"] == "exec"
    assert first["rule_provenance"]["kind"] == "default"
    decided = json.loads(daemon.cli("approve", first["id"], "--scope", "run", "--json").stdout)
    assert decided["scope"] == "run" and decided["grants"][0]["pattern"] == "make build"
    t.join(timeout=60)
    text = out["result"].stdout
    assert "rc1=0" in text and "rc2=0" in text and "rc3=0" in text
    asked = json.loads(daemon.cli("history", "--kind", "approval.requested", "--json").stdout)
    assert len(asked) == 1, "the run grant answered the later asks"
    policy = json.loads(daemon.cli("history", "--kind", "policy.decision", "--json").stdout)
    assert len(policy) == 2 and all(p["data"]["provenance"]["kind"] == "grant" for p in policy)
    why = json.loads(daemon.cli("policy", "why", first["id"], "--json").stdout)
    assert why["state"] == "allowed" and why["provenance"]["person"]


@needs_bwrap
def test_first_decision_wins(daemon: Daemon, workspace: Path) -> None:
    t, out = background(daemon, workspace, "ph-ask exec -- make deploy; echo rc=$?")
    req = wait_pending(daemon)[0]
    daemon.cli("deny", req["id"])
    second = daemon.cli("approve", req["id"], check=False)
    assert second.returncode != 0 and "already decided by" in second.stderr
    t.join(timeout=60)
    assert "rc=1" in out["result"].stdout


@needs_bwrap
def test_an_agent_cannot_decide_its_own_request(daemon: Daemon, workspace: Path) -> None:
    script = r"""
ph-ask exec -- make release &
sleep 1
python3 - <<'PY'
import json, os, socket
s = socket.socket(socket.AF_UNIX)
s.connect("/run/pilothouse/agent.sock")
f = s.makefile("rwb")
for op in ("approve", "deny", "approval.decide", "decide"):
    f.write(json.dumps({"v": 1, "id": op, "op": op, "args": {"id": "x", "allow": True}}).encode() + b"\n")
    f.flush()
    print("reply", op, json.loads(f.readline())["ok"])
for path in ("/run/pilothouse/../run/operator.sock", os.environ.get("PILOTHOUSE_HOME", "/nonexistent")):
    print("operator.sock visible:", os.path.exists(path))
PY
wait
"""
    t, out = background(daemon, workspace, script)
    req = wait_pending(daemon)[0]
    time.sleep(2)
    assert json.loads(daemon.cli("approvals", "--json").stdout)[0]["id"] == req["id"], \
        "still pending: the agent's decide attempts changed nothing"
    daemon.cli("deny", req["id"])
    t.join(timeout=60)
    text = out["result"].stdout
    for op in ("approve", "deny", "approval.decide", "decide"):
        assert f"reply {op} False" in text
    assert "operator.sock visible: True" not in text
    refused = json.loads(daemon.cli("history", "--kind", "approval.refused_op", "--json").stdout)
    assert len(refused) >= 4


@needs_bwrap
def test_ph_ask_net_uses_the_profiles_rules(daemon: Daemon, workspace: Path) -> None:
    r = daemon.cli("run", "demo", "-w", str(workspace), "--wait", "--", "sh", "-c",
                   "ph-ask net pypi.org:443; echo a=$?; ph-ask net t.example-tracker.com:443; echo d=$?")
    assert "a=0" in r.stdout and "d=1" in r.stdout


@needs_bwrap
def test_profile_scope_writes_the_rule_into_the_config(daemon: Daemon, workspace: Path) -> None:
    config = daemon.home / "config.toml"
    config.write_text("# my settings\n[defaults]\napproval_timeout = \"60s\"\n")
    daemon.cli("reload")  # in force and recorded: a rule is saved only into the file in force
    t, out = background(daemon, workspace, "ph-ask exec -- make lint; echo rc=$?")
    req = wait_pending(daemon)[0]
    shown = daemon.cli("approve", req["id"], "--scope", "profile", "--yes")
    assert "make lint" in shown.stdout and str(config) in shown.stdout
    t.join(timeout=60)
    assert "rc=0" in out["result"].stdout
    text = config.read_text()
    assert text.startswith("# my settings\n") and "make lint" in text
    check = json.loads(daemon.cli("policy", "check", "demo", "make", "lint", "--json").stdout)
    assert check["action"] == "allow"
    rules = json.loads(daemon.cli("policy", "rules", "demo", "--json").stdout)[0]["rules"]
    saved = [r for r in rules if r["rule"] == "make lint"]
    assert saved and saved[0]["list"] == "allow" and saved[0]["source"].startswith(f"{config}:")
    changed = json.loads(daemon.cli("history", "--kind", "policy.changed", "--json").stdout)
    saved_rules = [c for c in changed if c["data"].get("cause") == "profile-rule"]
    assert [c["data"]["diff"] for c in saved_rules] == [['+ demo exec allow "make lint"']]
    why = json.loads(daemon.cli("policy", "why", req["id"], "--json").stdout)
    assert [e["kind"] for e in why["events"]] == ["approval.requested", "approval.decided",
                                                  "policy.changed"]


@needs_bwrap
def test_profile_timeout_denies_unanswered_requests(daemon: Daemon, workspace: Path) -> None:
    (daemon.home / "config.toml").write_text('[profiles.quick]\ncommand = ["true"]\napproval_timeout = "1s"\n')
    daemon.cli("daemon", "stop")
    daemon.start()
    r = daemon.cli("run", "quick", "-w", str(workspace), "--wait", "--", "sh", "-c",
                   "ph-ask exec -- make deploy; echo rc=$?")
    assert "rc=1" in r.stdout and "no answer within 1s" in r.stderr + r.stdout
    decided = json.loads(daemon.cli("history", "--kind", "approval.decided", "--json").stdout)
    assert decided[0]["data"]["provenance"]["kind"] == "timeout"
    # the decision filter reads "allow" booleans and "action" words alike
    denied = json.loads(daemon.cli("history", "--decision", "deny", "--json").stdout)
    assert any(e["kind"] == "approval.decided" for e in denied)
    assert not json.loads(daemon.cli("history", "--decision", "allow", "--kind", "approval.", "--json").stdout)
