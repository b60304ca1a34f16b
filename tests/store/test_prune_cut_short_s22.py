"""Review s22: a prune cut short (the daemon killed between its chunks, before its chained
note) leaves signed anchors and no note saying the cutoff. `prune_cutoff` then answered
infinity: every sealed run counted as maybe pruned, so from then on no edit of any run's
output, however young, was found by `audit verify`, and every runs row without a start was
excused. An anchor's own time is signed, and a prune removes nothing newer than itself: that
bounds it."""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path

from store import audit
from tests.store.test_audit_tamper_attacks import DAY, Make, _sql, _verify


def _cut_short_prune(db_path: Path, key: bytes) -> None:
    """The first chunk of a prune, committed, and then nothing (as a kill -9 leaves it)."""
    conn = sqlite3.connect(db_path, isolation_level=None)
    try:
        steps = audit.prune_steps(conn, key, time.time() - 30 * DAY, chunk=2, now=time.time())
        conn.execute("BEGIN IMMEDIATE")
        next(steps)
        conn.execute("COMMIT")
    finally:
        conn.close()


def test_a_prune_cut_short_does_not_switch_off_the_output_seals(make_writer: Make, db_path: Path,
                                                                key: bytes, witness: Path) -> None:
    w = make_writer(witness=witness)
    for i in range(4):
        w.commit("approval.decided", actor="alice", text=f"old {i}", data={},
                 ts=time.time() - 100 * DAY)
    w.commit("approval.decided", run_id="r1", actor="alice", text="ls", data={})
    w.record_output("r1", "out", "3 tests failed")
    w.commit("run.ended", run_id="r1", text="failed (exit 1)", data={}, seal_output=True)
    w.flush()
    w.close()
    _cut_short_prune(db_path, key)
    assert _verify(db_path, key, witness).ok
    _sql(db_path, "UPDATE output SET line = 'all tests passed' WHERE run_id = 'r1'")
    result = _verify(db_path, key, witness)
    assert not result.ok and "r1" in result.reason, result.reason


def test_a_run_whose_start_a_cut_short_prune_removed_is_not_a_false_alarm(
        make_writer: Make, db_path: Path, key: bytes, witness: Path) -> None:
    from tests.store.test_runs_row_chain_s22 import _started

    _started(make_writer, witness, "old", ts=time.time() - 100 * DAY)
    w = make_writer(witness=witness)
    for i in range(3):
        w.commit("approval.decided", actor="alice", text=f"old {i}", data={},
                 ts=time.time() - 90 * DAY)
    w.commit("approval.decided", actor="alice", text="young", data={})
    w.flush()
    w.close()
    _cut_short_prune(db_path, key)
    result = _verify(db_path, key, witness)
    assert result.ok, result.reason
