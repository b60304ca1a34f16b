"""Review s22: output lines written into the file for a run the history never knew.

Run output is sealed per run in its chained end (store/output_seal.py); lines stored under a
run id that no chained event names have no seal to break, so `audit verify` said nothing while
`pilothouse logs ghost` printed them as that run's output."""

from __future__ import annotations

import time
from pathlib import Path

from tests.store.test_audit_tamper_attacks import DAY, Make, _sql, _verify


def _history(make_writer: Make, witness: Path, *, old: bool = False) -> None:
    ts = time.time() - (100 * DAY if old else 10)
    w = make_writer(witness=witness)
    w.commit("approval.decided", run_id="r1", actor="alice", text="ls", data={}, ts=ts)
    w.record_output("r1", "out", "hello", ts=ts)
    w.commit("run.ended", run_id="r1", text="exited (exit 0)", data={"state": "exited",
             "exit_code": 0}, seal_output=True, ts=ts + 1)
    w.commit("approval.decided", actor="alice", text="young", data={})
    w.flush()
    w.close()


def test_lines_of_a_run_no_event_names_are_caught(make_writer: Make, db_path: Path, key: bytes,
                                                  witness: Path) -> None:
    _history(make_writer, witness)
    assert _verify(db_path, key, witness).ok
    _sql(db_path, "INSERT INTO output (run_id, ts, stream, line) VALUES ('ghost', ?, 'out', "
         "'tests passed, deployed to production')", params=(time.time() - 5,))
    result = _verify(db_path, key, witness)
    assert not result.ok and "ghost" in result.reason, result.reason


def test_lines_of_a_pruned_run_are_not_a_false_alarm(make_writer: Make, db_path: Path,
                                                     key: bytes, witness: Path) -> None:
    """A run pruned whole: its events and its lines are gone; a later run's lines are known."""
    _history(make_writer, witness, old=True)
    w = make_writer(witness=witness)
    w.commit("approval.decided", run_id="r2", actor="alice", text="ls", data={})
    w.record_output("r2", "out", "still going")
    w.flush()
    w.prune(time.time() - 30 * DAY)
    w.close()
    result = _verify(db_path, key, witness)
    assert result.ok, result.reason
