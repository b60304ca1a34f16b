"""Review s22: the row of a run that was live when the daemon died, deleted from the file
before the next start. The restarted daemon looked for lost runs in the runs table only: the
run was never marked lost, its output never sealed (so its lines stayed open to edits), `ps
--all` never showed it, and `audit verify` said ok. A daemon dying between a start's commit
and its row leaves the same state, so the next start now recovers both: the run is marked
lost, with a row rebuilt from its recorded start, and the event says the row was missing."""

from __future__ import annotations

import json
from pathlib import Path

from tests.conftest import Daemon, needs_bwrap
from tests.store.conftest import killed_mid_run, run_sql


@needs_bwrap
def test_a_lost_runs_deleted_row_is_recovered_at_the_next_start(
        home: Path, daemon_env: dict[str, str], workspace: Path) -> None:
    d = Daemon(home, daemon_env)
    d.start()
    try:
        rid = killed_mid_run(d, workspace)
        run_sql(home / "data" / "pilothouse.db", "DELETE FROM runs WHERE id = ?", (rid,))
        d.start()
        lost = json.loads(d.cli("history", "--run", rid, "--kind", "run.lost", "--json").stdout)
        assert lost, f"run {rid} (its row deleted) was never marked lost"
        assert lost[0]["data"]["output"]["lines"] == 1 and lost[0]["data"].get("row_missing")
        runs = json.loads(d.cli("ps", "--all", "--json").stdout)
        shown = [r for r in runs if r["id"] == rid]
        assert shown and shown[0]["state"] == "lost", runs
        assert shown[0]["command"] == ["sh", "-c", "echo printed; sleep 60"], shown
        done = d.cli("audit", "verify", "--json", check=False)
        assert json.loads(done.stdout)["ok"], done.stdout
    finally:
        d.stop()
