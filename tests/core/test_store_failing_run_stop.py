"""`pilothouse stop RUN` while the store cannot record the stop. A stop only takes power from
the agent, so it takes effect anyway (as `daemon stop` does); the person is told it is not on
the record, and so are the run's notes. Before, the stop raised out of the daemon as
"run.stop failed inside the daemon: StoreError", the run went on, and its stop flag stayed
set: when it later exited by itself it was recorded as "stopped" by that person."""

from __future__ import annotations

import json
import time
from pathlib import Path

from tests.conftest import Daemon, needs_bwrap
from tests.core.failing_store import start_run, store_failing, wait_file

SCRIPT = "while [ ! -e end ]; do sleep 0.05; done; exit 0"


def _ended(d: Daemon, run_id: str, timeout: float = 30) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        rows = {r["id"]: r for r in json.loads(d.cli("ps", "--all", "--json").stdout)}
        row = rows.get(run_id)
        if row and row["state"] not in ("starting", "running", "stopping"):
            return row
        assert time.monotonic() < deadline, rows
        time.sleep(0.1)


@needs_bwrap
def test_a_stop_the_store_cannot_record_still_stops_and_says_so(daemon: Daemon,
                                                                workspace: Path) -> None:
    run_id = start_run(daemon, "shell", workspace, "trap 'echo term > got-term; exit 0' TERM; "
                       "touch trapped; while :; do sleep 0.05; done")
    # Running is the sandbox's state, not the shell's: a TERM before its trap killed it
    # without the file (seen once with the suite's files run two at a time).
    wait_file(workspace / "trapped")
    with store_failing(daemon):
        out = daemon.cli("stop", run_id, check=False)
        live = [r["id"] for r in json.loads(daemon.cli("ps", "--json").stdout)]
    assert out.returncode == 0, out  # what was asked for happened
    assert "Traceback" not in out.stderr, out.stderr
    assert "failed inside the daemon" not in out.stderr and "StoreError" not in out.stderr, out.stderr
    assert f"warning: run {run_id} was stopped, but the history could not record the stop" \
        in out.stderr, out.stderr
    assert (workspace / "got-term").exists(), "the agent never got its SIGTERM"
    assert run_id not in live, live


@needs_bwrap
def test_a_run_that_exits_by_itself_is_not_marked_stopped(daemon: Daemon, workspace: Path) -> None:
    """The stop flag is set only by a stop that happens: a run that ends on its own (exit 0)
    is 'exited' and its end has no actor."""
    run_id = start_run(daemon, "shell", workspace, SCRIPT)
    (workspace / "end").touch()
    row = _ended(daemon, run_id)
    ended = [e for e in json.loads(daemon.cli("history", "--kind", "run.ended", "--json").stdout)
             if e["run_id"] == run_id]
    assert row["exit_code"] == 0 and row["state"] == "exited", row
    assert ended and ended[0]["actor"] is None, ended
