"""The daemon stops or dies while an agent waits for a person's decision: the agent never gets an
allow, nobody can approve the request later, and the history closes it. Before, after a SIGKILL
and a restart, `policy why` showed the lost run's request pending for good. Found by an attack
review, with the cases that held up kept as tests."""

from __future__ import annotations

import json
import time
from pathlib import Path

from tests.conftest import Daemon, needs_bwrap
from tests.core.test_approvals_e2e import background, wait_pending


def _mounts_clean(home: Path) -> bool:
    """No staged view of this home's runs is left mounted (other sessions' may be)."""
    return not [ln for ln in Path("/proc/self/mountinfo").read_text().splitlines()
                if "pilothouse-handoff" in ln and str(home) in ln]


@needs_bwrap
def test_sigkilled_daemon_leaves_no_request_pending_forever(
        home: Path, daemon_env: dict[str, str], workspace: Path) -> None:
    d = Daemon(home, daemon_env)
    d.start()
    try:
        t, out = background(d, workspace, "ph-ask exec -- make deploy; echo rc=$?")
        req = wait_pending(d)[0]
        d.kill9()
        t.join(timeout=60)
        assert "rc=0" not in out["result"].stdout
        d.start()  # a fresh daemon: reconcile marks the run lost
        assert json.loads(d.cli("approvals", "--json").stdout) == []
        run = json.loads(d.cli("ps", "--all", "--json").stdout)
        assert any(r["id"] == req["run_id"] and r["state"] == "lost" for r in run), run
        again = d.cli("approve", req["id"], check=False)
        assert again.returncode != 0
        why = json.loads(d.cli("policy", "why", req["id"], "--json").stdout)
        assert why["state"] == "denied", why
        assert "daemon stopped before it was decided" in why["describe"], why
    finally:
        d.stop()
    assert _mounts_clean(home)


def test_sigkilled_daemon_answers_an_unsandboxed_asker(
        home: Path, daemon_env: dict[str, str], workspace: Path) -> None:
    """sandbox = "none": the agent outlives a killed daemon; its ph-ask must not hang."""
    Path(daemon_env["PILOTHOUSE_CONFIG"]).write_text(
        '[profiles.bare]\ncommand = ["true"]\nsandbox = "none"\napproval_timeout = "60s"\n')
    d = Daemon(home, daemon_env)
    d.start()
    marker = workspace / "rc.txt"
    try:
        r = d.cli("run", "bare", "-w", str(workspace), "--", "sh", "-c",
                  f"ph-ask exec -- make deploy; echo rc=$? > {marker}")
        assert r.returncode == 0, r.stderr
        wait_pending(d)
        d.kill9()
        deadline = time.monotonic() + 15
        while not marker.exists() and time.monotonic() < deadline:
            time.sleep(0.1)
        assert marker.exists(), "ph-ask still waits 15 s after its daemon was killed"
        assert marker.read_text().strip() != "rc=0"
    finally:
        if d.proc is not None and d.proc.poll() is None:
            d.stop()
        else:
            d.start()
            d.stop()


@needs_bwrap
def test_daemon_stop_closes_a_pending_request_as_cancelled(
        home: Path, daemon_env: dict[str, str], workspace: Path) -> None:
    d = Daemon(home, daemon_env)
    d.start()
    try:
        t, out = background(d, workspace, "ph-ask exec -- make deploy; echo rc=$?")
        req = wait_pending(d)[0]
        d.cli("daemon", "stop")
        d.proc.wait(30)
        t.join(timeout=60)
        assert "rc=0" not in out["result"].stdout
        d.start()
        assert json.loads(d.cli("approvals", "--json").stdout) == []
        assert d.cli("approve", req["id"], check=False).returncode != 0
        why = json.loads(d.cli("policy", "why", req["id"], "--json").stdout)
        assert why["state"] == "denied" and why["provenance"]["kind"] == "cancelled", why
    finally:
        d.stop()
    assert _mounts_clean(home)
