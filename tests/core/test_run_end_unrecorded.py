"""A run whose end the store cannot record still ends: the agent's process is gone whatever
the disk says, so the run leaves the live table, its end goes to every follower and
`run --wait` returns. Before, the failed save of the run's row raised out of the end, and the
run stayed "running" in the daemon for good, its followers waiting forever. The store is made
to fail as in test_rule_save_fail_closed.py: the daemon's file-size limit is lowered to the
audit witness's length, so no security record can be appended."""

from __future__ import annotations

import json
import time
from pathlib import Path

from tests.conftest import Daemon, needs_bwrap
from tests.core.failing_store import store_failing


@needs_bwrap
def test_a_run_whose_end_cannot_be_recorded_still_ends(daemon: Daemon, workspace: Path) -> None:
    run_id = daemon.cli("run", "shell", "-w", str(workspace), "--", "sleep", "1").stdout.split()[-1]
    with store_failing(daemon):
        deadline = time.monotonic() + 20
        while True:
            live = json.loads(daemon.cli("ps", "--json").stdout)
            if run_id not in [r["id"] for r in live]:
                break
            assert time.monotonic() < deadline, f"run {run_id} never left the live table: {live}"
            time.sleep(0.1)
    # The daemon goes on: a later run starts, ends and is recorded.
    done = daemon.cli("run", "shell", "-w", str(workspace), "--wait", "--", "echo", "after")
    assert "after" in done.stdout
