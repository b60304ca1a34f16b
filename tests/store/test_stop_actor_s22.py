"""Review s22: who ended a run. A teammate (an approver) stopped the owner's run: `run.stop`
named the approver, but the chained `run.ended` named the run's starter as its actor
(`actor=run.actor` whenever a stop was asked), so `history --kind run.ended` said the owner
stopped it. The end now names whoever asked for the stop."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import pytest

from tests.conftest import Daemon, needs_bwrap
from tests.core.test_team import APPROVER, GROUP, _ensure_users, _open_parents, as_user

pytestmark = pytest.mark.skipif(os.getuid() != 0, reason="creating users needs root")


@needs_bwrap
def test_the_end_of_a_run_a_teammate_stopped_names_the_teammate(
        home: Path, daemon_env: dict[str, str], workspace: Path) -> None:
    _ensure_users()
    (home / "config.toml").write_text(f'[team]\ngroup = "{GROUP}"\napprovers = ["{APPROVER}"]\n')
    _open_parents(home / "run")
    d = Daemon(home, daemon_env)
    d.start()
    try:
        rid = json.loads(d.cli("run", "shell", "-w", str(workspace), "--json", "--",
                               "sleep", "600").stdout)["id"]
        stopped = as_user(APPROVER, d, "stop", rid)
        assert stopped.returncode == 0, stopped.stderr
        deadline = time.monotonic() + 30
        while not (ended := json.loads(d.cli("history", "--run", rid, "--kind", "run.ended",
                                             "--json").stdout)):
            assert time.monotonic() < deadline, "the run never ended"
            time.sleep(0.2)
        stop = json.loads(d.cli("history", "--run", rid, "--kind", "run.stop", "--json").stdout)
        assert stop[0]["actor"] == APPROVER, stop
        assert ended[0]["actor"] == APPROVER, f"run.ended names {ended[0]['actor']!r}"
        done = d.cli("audit", "verify", "--json", check=False)
        assert json.loads(done.stdout)["ok"], done.stdout
    finally:
        d.stop()
