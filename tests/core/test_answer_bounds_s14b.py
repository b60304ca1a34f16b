"""Review s14b: no answer is a message a client cannot read. A run's command is bounded where
it comes in (`run.start`): it is kept in the run's row and sent in every `ps`."""

from __future__ import annotations

from pathlib import Path

from tests.conftest import Daemon


def test_a_run_command_past_the_bound_is_refused_clearly(daemon: Daemon, workspace: Path) -> None:
    big = ["x" * (100 * 1024)] * 3  # each under the kernel's per-argument limit
    done = daemon.cli("run", "demo", "-w", str(workspace), "--", "true", *big, check=False)
    assert done.returncode != 0 and "a run's command may be at most" in done.stderr, done
    assert "Traceback" not in done.stderr
    assert daemon.cli("ps", "-a", "--json").stdout.strip() == "[]"
