"""`pilothouse logs RUN` for a run that never existed printed nothing and exited 0, with
--follow too: a typo read as "that run said nothing". It now says there is no such run, as
`report` and `stop` do; a run that exists but printed nothing still exits 0."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.conftest import Daemon


@pytest.mark.parametrize("follow", [[], ["-f"]], ids=["past", "follow"])
def test_logs_of_a_run_that_never_was_says_so(daemon: Daemon, follow: list[str]) -> None:
    done = daemon.cli("logs", *follow, "zzzz", check=False)
    assert done.returncode == 1, (done.returncode, done.stdout, done.stderr)
    assert "no run 'zzzz'" in done.stderr
    assert "pilothouse ps" in done.stderr
    assert "Traceback" not in done.stderr


def test_logs_of_a_silent_run_is_empty_and_fine(daemon: Daemon, workspace: Path) -> None:
    daemon.cli("run", "demo", "--wait", "-w", str(workspace), "--", "true")
    (run,) = json.loads(daemon.cli("ps", "-a", "--json").stdout)
    run_id = run["id"]
    for follow in ([], ["-f"]):
        done = daemon.cli("logs", *follow, run_id, check=False)
        assert done.returncode == 0, done.stderr
