"""A run whose start the store cannot record never runs (fail closed), and leaves nothing: no
live entry in `ps`, no process, the person told why. The store is made to fail as in
test_run_end_unrecorded.py: the daemon's file-size limit is lowered to the audit witness's
length, so no security record can be appended."""

from __future__ import annotations

import json
import time
from pathlib import Path

from tests.conftest import Daemon, needs_bwrap
from tests.core.failing_store import store_failing


def _wait_for_a_spare(home: Path) -> None:
    deadline = time.monotonic() + 10
    while not any(p.name.startswith(".spare") for p in (home / "runs").iterdir()):
        assert time.monotonic() < deadline, sorted(p.name for p in (home / "runs").iterdir())
        time.sleep(0.05)


@needs_bwrap
def test_a_run_whose_start_cannot_be_recorded_does_not_run(daemon: Daemon, workspace: Path) -> None:
    # One run first, so the next one's folder is a spare made ahead (spare_folders.py) and the
    # lowered limit meets the store, not the folder's files.
    daemon.cli("run", "shell", "-w", str(workspace), "--wait", "--", "true")
    _wait_for_a_spare(daemon.home)
    marker = workspace / "ran"
    with store_failing(daemon):
        out = daemon.cli("run", "shell", "-w", str(workspace), "--wait", "--",
                         "sh", "-c", f"touch {marker}", timeout=30, check=False)
        live = json.loads(daemon.cli("ps", "--json").stdout)
    assert out.returncode != 0, out
    assert not marker.exists(), "the agent's command ran although its start was not recorded"
    assert live == [], live
    assert "Traceback" not in out.stderr, out.stderr
    assert "was not started: its start could not be recorded" in out.stderr, out.stderr
    run_id = out.stderr.split("run ", 1)[1].split()[0]
    assert not (daemon.home / "runs" / run_id).exists(), "the refused run's folder was left"
    # The daemon goes on: a later run starts, ends and is recorded.
    done = daemon.cli("run", "shell", "-w", str(workspace), "--wait", "--", "echo", "after")
    assert "after" in done.stdout, done
