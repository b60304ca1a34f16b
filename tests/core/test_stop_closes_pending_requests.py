"""A run is stopped while one of its requests waits for a person: the request is closed at the
stop, not at the run's end, and its later requests are refused. Before, a person could approve
it while the run was stopping and the agent (ignoring SIGTERM) acted on it. Found by an attack
review."""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path
from typing import Any

from tests.conftest import Daemon, needs_bwrap
from tests.core.failing_store import start_run
from tests.core.test_approvals_e2e import wait_pending


@needs_bwrap
def test_a_stopped_runs_pending_request_cannot_be_approved(daemon: Daemon, workspace: Path) -> None:
    # An agent that ignores SIGTERM (so does its ph-ask: an ignored signal stays ignored
    # across exec) keeps its request open through the stop's grace.
    run_id = start_run(daemon, "demo", workspace,
                       "trap '' TERM; ph-ask exec -- make deploy; echo rc=$? > rc.txt; sleep 30")
    req = wait_pending(daemon)[0]
    res: dict[str, Any] = {}
    th = threading.Thread(target=lambda: res.update(r=daemon.cli("stop", run_id, check=False)))
    th.start()
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        live = {r["id"]: r["state"] for r in json.loads(daemon.cli("ps", "--json").stdout)}
        if live.get(run_id) == "stopping":
            break
        time.sleep(0.05)
    approved = daemon.cli("approve", req["id"], check=False)
    th.join(30)
    rc = (workspace / "rc.txt").read_text().strip() if (workspace / "rc.txt").exists() else None
    assert approved.returncode != 0, (approved.stdout, rc)
    assert "already closed" in approved.stderr, approved.stderr
    assert rc != "rc=0"


@needs_bwrap
def test_a_request_of_a_run_that_ended_cannot_be_approved(daemon: Daemon, workspace: Path) -> None:
    run_id = start_run(daemon, "demo", workspace,
                       "ph-ask exec -- make deploy & while [ ! -e end ]; do sleep 0.05; done")
    req = wait_pending(daemon)[0]
    (workspace / "end").write_text("")
    deadline = time.monotonic() + 20
    while run_id in {r["id"] for r in json.loads(daemon.cli("ps", "--json").stdout)}:
        assert time.monotonic() < deadline
        time.sleep(0.05)
    r = daemon.cli("approve", req["id"], "--scope", "run", check=False)
    assert r.returncode != 0 and "already closed" in r.stderr, (r.stdout, r.stderr)
    assert json.loads(daemon.cli("grants", "--json").stdout) == []
